"""Result throughput on Optuna 5.0: T trials, each reporting R intermediate values, all at once.

What it measures: study.optimize(objective, n_trials=T, n_jobs=T): T threads of this one
process (GIL-bound, no isolation) each run one trial whose objective suggests x in [0, 1]
and then, R times, calls trial.report(x / (i + 1), step=i) and trial.should_prune() (the
default MedianPruner; its answer is ignored so every trial runs to the end). This is
Optuna's closest analogue of a per-trial result stream. RandomSampler.

Storage: a fresh SQLite file (`sqlite:///...` in $BENCH_TMP or a temporary folder; each
report() is its own committed transaction, SQLite's default rollback journal with
synchronous=FULL, so every result is durable) or in memory (nothing durable).

Prints `RESULT_JSON {...}`: trials, reports_per_trial, n_jobs, storage, optimize_s,
results_per_s (T*R / optimize_s), results_stored (intermediate values found in the study
afterwards; must be T*R), n_complete, optuna_version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--reports", type=int, default=2000)
    ap.add_argument("--storage", choices=["memory", "sqlite"], default="sqlite")
    ap.add_argument("--no-should-prune", action="store_true",
                    help="only trial.report(): no pruning decision per result (with SQLite, should_prune() "
                         "reads every trial's intermediate values, so its cost grows with the reports made)")
    args = ap.parse_args()

    import optuna

    def objective(trial: "optuna.Trial") -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for i in range(args.reports):
            trial.report(x / (i + 1), i)
            if not args.no_should_prune:
                trial.should_prune()  # ignored: every trial runs to the end
        return x

    given = os.environ.get("BENCH_TMP")
    folder = None
    storage = None
    if args.storage == "sqlite":
        folder = given or tempfile.mkdtemp(prefix="optuna-throughput-")
        storage = "sqlite:///" + os.path.join(folder, "study.db")
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler())
    t = time.perf_counter()
    study.optimize(objective, n_trials=args.trials, n_jobs=args.trials)
    optimize_s = time.perf_counter() - t
    total = args.trials * args.reports
    stored = sum(len(tr.intermediate_values) for tr in study.trials)
    out = {
        "trials": args.trials,
        "reports_per_trial": args.reports,
        "n_jobs": args.trials,
        "storage": args.storage,
        "should_prune": not args.no_should_prune,
        "optimize_s": optimize_s,
        "results_per_s": total / optimize_s,
        "results_stored": stored,
        "n_complete": sum(1 for tr in study.trials if tr.state == optuna.trial.TrialState.COMPLETE),
        "optuna_version": optuna.__version__,
    }
    if folder and not given:
        shutil.rmtree(folder, ignore_errors=True)
    if stored != total:
        raise SystemExit(f"the study holds {stored} intermediate values, expected {total}")
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
