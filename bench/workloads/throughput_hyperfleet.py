"""Result throughput: T trials, each calling tune.report() R times in a tight loop, all at once.

What it measures: Tuner(...).fit() over T trials (num_samples=T) of a function trainable that
reports {"i": i, "loss": 1 / (i + 1)} R times, each trial asking for 2/T CPU so all T run at
once on 2 cores (the peers' scripts do the same with 0.5 CPU for 4 trials). Each trial runs in
its own worker process; every report() crosses to the driver and back.

--durability durable (the default): report() returns only after the transaction holding its
result has committed to the experiment's SQLite file, so a crash of the driver at any moment
loses no acknowledged result. --durability relaxed: report() returns once the result is queued
for the store (committed a few milliseconds later, in the same grouped transactions), so a
driver crash can lose the last few acknowledged results. The difference is the cost of
durability.

Prints `RESULT_JSON {...}`: trials, reports_per_trial, durability, fit_s, results_per_s
(T*R / fit_s, end to end: worker start-up included), results_in_store (must be T*R).
"""

import argparse
import json
import os
import shutil
import sqlite3
import tempfile
import time


def trainable(config):
    from hyperfleet import tune

    for i in range(config["n_reports"]):
        tune.report({"i": i, "loss": 1.0 / (i + 1)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--reports", type=int, default=2000)
    ap.add_argument("--durability", choices=["durable", "relaxed"], default="durable")
    args = ap.parse_args()

    from hyperfleet import tune

    given = os.environ.get("BENCH_TMP")
    storage = given or tempfile.mkdtemp(prefix="hf-throughput-")
    t = time.perf_counter()
    grid = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 2.0 / args.trials}),
        param_space={"n_reports": args.reports},
        tune_config=tune.TuneConfig(num_samples=args.trials),
        run_config=tune.RunConfig(storage_path=storage, name="throughput", verbose=0, durability=args.durability),
    ).fit()
    fit_s = time.perf_counter() - t
    with sqlite3.connect(os.path.join(storage, "throughput", "experiment.db")) as c:
        in_store = c.execute("SELECT count(*) FROM results").fetchone()[0]
    total = args.trials * args.reports
    out = {
        "trials": args.trials,
        "reports_per_trial": args.reports,
        "durability": args.durability,
        "fit_s": fit_s,
        "results_per_s": total / fit_s,
        "results_in_store": in_store,
        "n_errors": len(grid.errors),
    }
    if in_store != total:
        raise SystemExit(f"the store holds {in_store} results, expected {total}")
    if not given:
        shutil.rmtree(storage, ignore_errors=True)
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
