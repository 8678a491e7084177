"""Startup of Optuna 5.0: a whole Python process running a 1-trial study, in memory.

What it measures: the harness times the whole process (interpreter start to exit). The
process runs `import optuna`, `optuna.create_study()` (in-memory storage, the default
sampler) and `study.optimize(objective, n_trials=1)` where the objective suggests
x in [0, 1] and returns x**2. Everything happens in this one process; nothing is written
to disk. Optuna's logging is left at its default (one INFO line per trial).

Prints `RESULT_JSON {...}` with in-process timings in seconds: import_s, create_study_s,
optimize_s, in_process_s, n_complete, optuna_version.
"""

import time

T0 = time.perf_counter()

import json  # noqa: E402


def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    return x**2


def main() -> None:
    out = {}
    t = time.perf_counter()
    import optuna

    out["import_s"] = time.perf_counter() - t
    out["optuna_version"] = optuna.__version__
    t = time.perf_counter()
    study = optuna.create_study()
    out["create_study_s"] = time.perf_counter() - t
    t = time.perf_counter()
    study.optimize(objective, n_trials=1)
    out["optimize_s"] = time.perf_counter() - t
    out["n_complete"] = sum(1 for tr in study.trials if tr.state == optuna.trial.TrialState.COMPLETE)
    out["in_process_s"] = time.perf_counter() - T0
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
