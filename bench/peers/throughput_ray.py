"""Result throughput on Ray Tune 2.60: T trials, each calling tune.report() R times, all at once.

What it measures: Tuner(...).fit() over T trials (num_samples=T) of a function trainable that
reports {"i": i, "loss": 1 / (i + 1)} R times in a tight loop, the same work as
bench/workloads/throughput_hyperfleet.py. Each trial asks for 2/T CPU
(tune.with_resources(trainable, {"cpu": 2 / T})) so that all T run at once on 2 cores.
reuse_actors stays at Ray's default (each trial is its own actor process; there is one
trial per actor here anyway). Ray's loggers (JSON, CSV, TensorBoard if installed) are left
at their defaults; Ray writes each result to files from the driver without fsync, so
nothing is durable the way hyperfleet's `durable` mode is.

ray.init() is called first, so fit_s (and results_per_s) exclude the cluster start; the
harness's whole-process wall time includes it. A driver-side tune.Callback counts the
results the driver processed (on_trial_result) and notes the first and the last, which also
gives the rate inside the reporting window (without actor start-up and teardown). Results
go to $BENCH_TMP (a fresh folder from the harness), else a temporary folder (removed).

Prints `RESULT_JSON {...}`: trials, reports_per_trial, cpu_per_trial, init_s, fit_s,
results_per_s (T*R / fit_s, end to end), results_seen (by the callback; must be T*R),
window_s, results_per_s_in_window, n_errors, shutdown_s, ray_version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Any, Optional


def trainable(config: dict) -> None:
    from ray import tune

    for i in range(config["n_reports"]):
        tune.report({"i": i, "loss": 1.0 / (i + 1)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--reports", type=int, default=2000)
    args = ap.parse_args()

    import ray
    from ray import tune

    class Counter(tune.Callback):
        def __init__(self) -> None:
            self.n = 0
            self.first: Optional[float] = None
            self.last: Optional[float] = None

        def on_trial_result(self, iteration: int, trials: Any, trial: Any, result: Any, **info: Any) -> None:
            now = time.perf_counter()
            if self.first is None:
                self.first = now
            self.last = now
            self.n += 1

    t = time.perf_counter()
    ray.init()
    init_s = time.perf_counter() - t
    given = os.environ.get("BENCH_TMP")
    storage = given or tempfile.mkdtemp(prefix="ray-throughput-")
    counter = Counter()
    cpu = 2.0 / args.trials
    t = time.perf_counter()
    grid = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpu}),
        param_space={"n_reports": args.reports},
        tune_config=tune.TuneConfig(num_samples=args.trials),
        run_config=tune.RunConfig(storage_path=storage, name="throughput", callbacks=[counter]),
    ).fit()
    fit_s = time.perf_counter() - t
    total = args.trials * args.reports
    window = (counter.last - counter.first) if counter.n > 1 and counter.first is not None else None
    out = {
        "trials": args.trials,
        "reports_per_trial": args.reports,
        "cpu_per_trial": cpu,
        "init_s": init_s,
        "fit_s": fit_s,
        "results_per_s": total / fit_s,
        "results_seen": counter.n,
        "window_s": window,
        "results_per_s_in_window": (counter.n - 1) / window if window else None,
        "n_errors": len(grid.errors),
        "ray_version": ray.__version__,
    }
    t = time.perf_counter()
    ray.shutdown()
    out["shutdown_s"] = time.perf_counter() - t
    if not given:
        shutil.rmtree(storage, ignore_errors=True)
    if counter.n != total:
        raise SystemExit(f"the driver saw {counter.n} results, expected {total}")
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
