"""Scheduling overhead: N trials that each sleep S seconds and report once, C at a time.

What it measures: Tuner(...).fit() over N trials (num_samples=N) of a function trainable that
sleeps config["sleep"] seconds and then calls tune.report({"score": 1.0}) once. Each trial
asks for 1 CPU (the default) and max_concurrent_trials=C (C = 2 on a 2-core machine), workers
reused (hyperfleet's default), every result in the SQLite store before report() returns.
Progress output is left at its default. With no overhead at all, fit() would take
ideal_s = ceil(N / C) * S; everything above that is what the tuner adds: worker start-up,
handing out trials, recording results, gaps between one trial's end and the next one's
start, shutdown. (The full size, N = 400, S = 0.5 s, C = 2, has ideal_s = 100 s.)

Prints `RESULT_JSON {...}`: num_samples, sleep_s, max_concurrent_trials, fit_s, ideal_s,
overhead_pct (100 * (fit_s - ideal_s) / ideal_s), overhead_per_round_ms ((fit_s - ideal_s) /
ceil(N / C), in ms), n_terminated, n_errors, results_in_store (must be N).

The experiment goes to $BENCH_TMP, else a temporary folder (removed).
"""

import argparse
import json
import math
import os
import shutil
import sqlite3
import tempfile
import time


def trainable(config):
    import time

    from hyperfleet import tune

    time.sleep(config["sleep"])
    tune.report({"score": 1.0})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--sleep", type=float, default=0.5)
    ap.add_argument("--concurrent", type=int, default=2)
    args = ap.parse_args()

    from hyperfleet import tune

    given = os.environ.get("BENCH_TMP")
    storage = given or tempfile.mkdtemp(prefix="hf-overhead-")
    t = time.perf_counter()
    grid = tune.Tuner(
        trainable,
        param_space={"sleep": args.sleep},
        tune_config=tune.TuneConfig(num_samples=args.trials, max_concurrent_trials=args.concurrent),
        run_config=tune.RunConfig(storage_path=storage, name="overhead"),
    ).fit()
    fit_s = time.perf_counter() - t
    results = list(grid)
    with sqlite3.connect(os.path.join(storage, "overhead", "experiment.db")) as c:
        in_store = c.execute("SELECT count(*) FROM results").fetchone()[0]
    rounds = math.ceil(args.trials / args.concurrent)
    ideal_s = rounds * args.sleep
    out = {
        "num_samples": args.trials,
        "sleep_s": args.sleep,
        "max_concurrent_trials": args.concurrent,
        "fit_s": fit_s,
        "ideal_s": ideal_s,
        "overhead_pct": 100.0 * (fit_s - ideal_s) / ideal_s,
        "overhead_per_round_ms": 1000.0 * (fit_s - ideal_s) / rounds,
        "n_terminated": sum(1 for r in results if r.status == "TERMINATED"),
        "n_errors": len(grid.errors),
        "results_in_store": in_store,
    }
    if not given:
        shutil.rmtree(storage, ignore_errors=True)
    if in_store != args.trials:
        raise SystemExit(f"the store holds {in_store} results, expected {args.trials}")
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
