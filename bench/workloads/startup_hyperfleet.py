"""Startup: a whole Python process that imports hyperfleet and runs a 1-trial experiment.

What it measures: the harness times the whole process (interpreter start to exit). The
process runs

    from hyperfleet import tune
    tune.Tuner(trainable, param_space={"x": tune.uniform(0, 1)},
               tune_config=tune.TuneConfig(num_samples=1),
               run_config=tune.RunConfig(storage_path=<fresh folder>, verbose=0)).fit()

where `trainable` calls tune.report({"score": x**2}) once. The trial runs in a worker
process that the Rust controller starts; its result is in the SQLite store when fit()
returns. The experiment goes to $BENCH_TMP (a fresh folder from the harness), else to a
new temporary folder that is removed at the end.

The same experiment through the CLI is `tune run startup_cli.toml` (run from this folder;
its `[trainable] python = "startup_hyperfleet:trainable"` imports the trainable below).

Prints `RESULT_JSON {...}` with in-process timings in seconds: import_s (`from hyperfleet
import tune`), fit_s (Tuner(...).fit()), in_process_s (first line of this script to the
end), n_terminated and score.
"""

import time

T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402


def trainable(config):
    from hyperfleet import tune

    tune.report({"score": config["x"] ** 2})


def main() -> None:
    out = {}
    t = time.perf_counter()
    from hyperfleet import tune

    out["import_s"] = time.perf_counter() - t
    given = os.environ.get("BENCH_TMP")
    storage = given or tempfile.mkdtemp(prefix="hf-startup-")
    t = time.perf_counter()
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    ).fit()
    out["fit_s"] = time.perf_counter() - t
    results = list(grid)
    out["n_terminated"] = sum(1 for r in results if r.status == "TERMINATED")
    out["n_errors"] = len(grid.errors)
    out["score"] = results[0].metrics.get("score") if results and results[0].metrics else None
    if not given:
        shutil.rmtree(storage, ignore_errors=True)
    out["in_process_s"] = time.perf_counter() - T0
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
