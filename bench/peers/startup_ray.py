"""Startup of Ray Tune 2.60: a whole Python process running a 1-trial experiment, as a user would.

What it measures: the harness times the whole process (interpreter start to exit) and sums
the PSS of every process Ray starts. The process runs

    from ray import tune
    tune.Tuner(trainable, param_space={"x": tune.uniform(0, 1)},
               tune_config=tune.TuneConfig(num_samples=1),
               run_config=tune.RunConfig(storage_path=<fresh folder>)).fit()
    ray.shutdown()

with no ray.init() before it: Tuner.fit() starts the local Ray cluster (GCS, raylet,
dashboard agents, workers) itself. `trainable` calls tune.report({"score": x**2}) once.
Output verbosity is Ray's default. ray.shutdown() is called explicitly only to time it
(Ray would otherwise run it at exit). Results go to $BENCH_TMP (a fresh folder from the
harness), else a temporary folder that is removed.

Prints `RESULT_JSON {...}` with in-process timings in seconds: import_s (`import ray` and
`from ray import tune`), fit_s (Tuner(...).fit(), cluster start included), shutdown_s,
in_process_s, n_terminated, ray_version.
"""

import time

T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402


def trainable(config):
    from ray import tune

    tune.report({"score": config["x"] ** 2})


def main() -> None:
    out = {}
    t = time.perf_counter()
    import ray
    from ray import tune

    out["import_s"] = time.perf_counter() - t
    out["ray_version"] = ray.__version__
    given = os.environ.get("BENCH_TMP")
    storage = given or tempfile.mkdtemp(prefix="ray-startup-")
    t = time.perf_counter()
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(storage_path=storage),
    ).fit()
    out["fit_s"] = time.perf_counter() - t
    out["n_terminated"] = sum(1 for r in grid if r.metrics and "score" in r.metrics)
    out["n_errors"] = len(grid.errors)
    t = time.perf_counter()
    ray.shutdown()
    out["shutdown_s"] = time.perf_counter() - t
    if not given:
        shutil.rmtree(storage, ignore_errors=True)
    out["in_process_s"] = time.perf_counter() - T0
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
