"""Tiny trials: throughput of N trivial trials on hyperfleet, 2 at a time, every result durable.

What it measures: Tuner(...).fit() over N trials (num_samples=N) of a function trainable
that calls tune.report({"score": config["x"] ** 2}) once. Space {"x": tune.uniform(0, 1)},
random search (the default), max_concurrent_trials=2, 1 CPU per trial (the default).
Each trial runs in a worker process; by default hyperfleet keeps the 2 workers warm and
reuses them (reuse_actors=None: on for trials without GPUs); --no-reuse sets
reuse_actors=False, so every trial gets a fresh worker process (like Ray's default).
Every result is in the experiment's SQLite store before report() returns, so nothing is
lost if the machine stops; the script checks the store holds N results at the end.
Progress output is left at its default (RunConfig(verbose=None)), as a user runs it.

The harness takes whole-process wall time and the summed PSS of the driver and its
worker processes. The experiment goes to $BENCH_TMP, else a temporary folder (removed).

Prints `RESULT_JSON {...}`: num_samples, import_s, fit_s, trials_per_s (N / fit_s),
n_terminated, n_errors, results_in_store, reuse_actors.
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

    tune.report({"score": config["x"] ** 2})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--max-concurrent", type=int, default=2)
    ap.add_argument("--no-reuse", action="store_true", help="reuse_actors=False: a fresh worker per trial")
    args = ap.parse_args()

    t = time.perf_counter()
    from hyperfleet import tune

    import_s = time.perf_counter() - t
    given = os.environ.get("BENCH_TMP")
    storage = given or tempfile.mkdtemp(prefix="hf-tiny-")
    tc = dict(num_samples=args.num_samples, max_concurrent_trials=args.max_concurrent)
    if args.no_reuse:
        tc["reuse_actors"] = False
    t = time.perf_counter()
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(**tc),
        run_config=tune.RunConfig(storage_path=storage, name="tiny"),
    ).fit()
    fit_s = time.perf_counter() - t
    results = list(grid)
    with sqlite3.connect(os.path.join(storage, "tiny", "experiment.db")) as c:
        in_store = c.execute("SELECT count(*) FROM results").fetchone()[0]
    out = {
        "num_samples": args.num_samples,
        "max_concurrent_trials": args.max_concurrent,
        "reuse_actors": not args.no_reuse,
        "import_s": import_s,
        "fit_s": fit_s,
        "trials_per_s": args.num_samples / fit_s,
        "n_terminated": sum(1 for r in results if r.status == "TERMINATED"),
        "n_errors": len(grid.errors),
        "results_in_store": in_store,
    }
    if not given:
        shutil.rmtree(storage, ignore_errors=True)
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
