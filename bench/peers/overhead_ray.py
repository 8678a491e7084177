"""Scheduling overhead on Ray Tune 2.60: N trials that each sleep S seconds and report once, C at a time.

What it measures: Tuner(...).fit() over N trials (num_samples=N) of a function trainable that
sleeps config["sleep"] seconds and then calls tune.report({"score": 1.0}) once, the same work
as bench/workloads/overhead_hyperfleet.py. 1 CPU per trial (the default),
max_concurrent_trials=C (C = 2 on a 2-core machine, so also Ray's own limit) and
reuse_actors=True (not Ray's default: with reuse_actors=False every trial starts a new worker
process, ~1 s each on 2 cores, which would swamp the sleeps). Output verbosity is Ray's
default. ideal_s = ceil(N / C) * S is the time with no overhead at all.

ray.init() is called first, so fit_s excludes the cluster start (the harness's whole-process
wall time includes it). Results go to $BENCH_TMP (a fresh folder from the harness), else a
temporary folder (removed).

Prints `RESULT_JSON {...}`: num_samples, sleep_s, max_concurrent_trials, reuse_actors, init_s,
fit_s, ideal_s, overhead_pct (100 * (fit_s - ideal_s) / ideal_s), overhead_per_round_ms
((fit_s - ideal_s) / ceil(N / C), in ms), n_terminated (trials with a reported score),
n_errors, shutdown_s, ray_version.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time


def trainable(config: dict) -> None:
    import time

    from ray import tune

    time.sleep(config["sleep"])
    tune.report({"score": 1.0})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--sleep", type=float, default=0.5)
    ap.add_argument("--concurrent", type=int, default=2)
    args = ap.parse_args()

    import ray
    from ray import tune

    t = time.perf_counter()
    ray.init()
    init_s = time.perf_counter() - t
    given = os.environ.get("BENCH_TMP")
    storage = given or tempfile.mkdtemp(prefix="ray-overhead-")
    t = time.perf_counter()
    grid = tune.Tuner(
        trainable,
        param_space={"sleep": args.sleep},
        tune_config=tune.TuneConfig(num_samples=args.trials, max_concurrent_trials=args.concurrent,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, name="overhead"),
    ).fit()
    fit_s = time.perf_counter() - t
    rounds = math.ceil(args.trials / args.concurrent)
    ideal_s = rounds * args.sleep
    out = {
        "num_samples": args.trials,
        "sleep_s": args.sleep,
        "max_concurrent_trials": args.concurrent,
        "reuse_actors": True,
        "init_s": init_s,
        "fit_s": fit_s,
        "ideal_s": ideal_s,
        "overhead_pct": 100.0 * (fit_s - ideal_s) / ideal_s,
        "overhead_per_round_ms": 1000.0 * (fit_s - ideal_s) / rounds,
        "n_terminated": sum(1 for r in grid if r.metrics and "score" in r.metrics),
        "n_errors": len(grid.errors),
        "ray_version": ray.__version__,
    }
    t = time.perf_counter()
    ray.shutdown()
    out["shutdown_s"] = time.perf_counter() - t
    if not given:
        shutil.rmtree(storage, ignore_errors=True)
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
