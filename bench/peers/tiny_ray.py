"""Tiny trials on Ray Tune 2.60: throughput of N trivial trials, 2 at a time.

What it measures: Tuner(...).fit() over N trials (num_samples=N) of a function trainable
that calls tune.report({"score": config["x"] ** 2}) once. Space {"x": tune.uniform(0, 1)},
Ray's default search (BasicVariantGenerator: random), 1 CPU per trial (the default),
max_concurrent_trials=2 (this machine has 2 CPUs, so it is also Ray's own limit).
reuse_actors stays at Ray's default (False: a new worker process per trial) unless
--reuse-actors is given. Output verbosity is Ray's default.

ray.init() is called first, so fit_s (and trials_per_s) exclude the cluster start; the
harness's whole-process wall time includes it, and the harness sums the PSS of every
process of the run (driver, GCS, raylet, dashboard and agents, workers). Results go to
$BENCH_TMP (a fresh folder from the harness), else a temporary folder (removed).

Prints `RESULT_JSON {...}`: num_samples, reuse_actors, init_s, fit_s, trials_per_s
(N / fit_s), n_terminated (trials with a reported score), n_errors, shutdown_s,
ray_version.
"""

import argparse
import json
import os
import shutil
import tempfile
import time


def trainable(config):
    from ray import tune

    tune.report({"score": config["x"] ** 2})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--max-concurrent", type=int, default=2)
    ap.add_argument("--reuse-actors", action="store_true")
    args = ap.parse_args()

    import ray
    from ray import tune

    t = time.perf_counter()
    ray.init()
    init_s = time.perf_counter() - t
    given = os.environ.get("BENCH_TMP")
    storage = given or tempfile.mkdtemp(prefix="ray-tiny-")
    tc = dict(num_samples=args.num_samples, max_concurrent_trials=args.max_concurrent)
    if args.reuse_actors:
        tc["reuse_actors"] = True
    t = time.perf_counter()
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(**tc),
        run_config=tune.RunConfig(storage_path=storage),
    ).fit()
    fit_s = time.perf_counter() - t
    out = {
        "num_samples": args.num_samples,
        "max_concurrent_trials": args.max_concurrent,
        "reuse_actors": bool(args.reuse_actors),
        "init_s": init_s,
        "fit_s": fit_s,
        "trials_per_s": args.num_samples / fit_s,
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
