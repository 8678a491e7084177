"""Tiny trials on Optuna 5.0: throughput of N trivial trials with study.optimize().

What it measures: study.optimize(objective, n_trials=N, n_jobs=1) where the objective
suggests x in [0, 1] and returns x**2 (the same trivial work as the other tuners). One
trial at a time (n_jobs=1), all in this one process: no worker processes, no isolation.
Storage: in memory (nothing durable) or a fresh SQLite file (`sqlite:///...`, in
$BENCH_TMP or a temporary folder; each trial's result is committed to it). Sampler:
RandomSampler (comparable to the random search of the other tuners) or TPESampler()
(Optuna's default). Optuna's logging is left at its default (one INFO line per trial).

The harness takes whole-process wall time and the process's PSS.

Prints `RESULT_JSON {...}`: n_trials, storage, sampler, import_s, create_study_s,
optimize_s, trials_per_s (N / optimize_s), n_complete, optuna_version.
"""

import argparse
import json
import os
import shutil
import tempfile
import time


def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    return x**2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-trials", type=int, default=1000)
    ap.add_argument("--storage", choices=["memory", "sqlite"], default="memory")
    ap.add_argument("--sampler", choices=["random", "tpe"], default="tpe")
    args = ap.parse_args()

    t = time.perf_counter()
    import optuna

    import_s = time.perf_counter() - t
    given = os.environ.get("BENCH_TMP")
    folder = None
    storage = None
    if args.storage == "sqlite":
        folder = given or tempfile.mkdtemp(prefix="optuna-tiny-")
        storage = "sqlite:///" + os.path.join(folder, "study.db")
    sampler = optuna.samplers.RandomSampler() if args.sampler == "random" else optuna.samplers.TPESampler()
    t = time.perf_counter()
    study = optuna.create_study(storage=storage, sampler=sampler)
    create_s = time.perf_counter() - t
    t = time.perf_counter()
    study.optimize(objective, n_trials=args.n_trials, n_jobs=1)
    optimize_s = time.perf_counter() - t
    out = {
        "n_trials": args.n_trials,
        "storage": args.storage,
        "sampler": type(study.sampler).__name__,
        "n_jobs": 1,
        "import_s": import_s,
        "create_study_s": create_s,
        "optimize_s": optimize_s,
        "trials_per_s": args.n_trials / optimize_s,
        "n_complete": sum(1 for tr in study.trials if tr.state == optuna.trial.TrialState.COMPLETE),
        "optuna_version": optuna.__version__,
    }
    if folder and not given:
        shutil.rmtree(folder, ignore_errors=True)
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
