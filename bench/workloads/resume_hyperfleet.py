"""Resume: how long `tune run --resume` takes to start the first new trial of a big experiment.

What it measures: the time from launching `tune run exp.toml --resume --num-samples N+1` on a
finished experiment of N trials and N*R results (default N = 10,000, R = 100: 1,000,000
results) until the controller has rebuilt its state (replayed the log into the searcher and
scheduler, loaded every trial) and created the first new trial (seq N).

Setup (before the clock starts, in this process; ~30 s at full size):

1. Writes a TOML experiment (`exp.toml`): metric "v", mode "max", random search with seed 0,
   space {x: uniform(0, 1), n_results: R}, max_concurrent_trials = 2, verbose = 0, FIFO
   scheduler, and a `command` trainable: `/bin/sh t.sh {n_results}`, a shell script that
   prints `@hyperfleet report {"v": i}` for i = 1..R and reads one line of reply from stdin
   after each (it exits early on `stop`).
2. Runs it for real with `tune run exp.toml` at B = 100 trials x R results (the "block 0").
3. Grows the SQLite file to N trials by copying block 0 with SQL, block k = 1..N/B-1 after
   block k-1, each copy shifting trial_seq by k*B: `trials` rows (new trial_id, name and
   logdir, built from the experiment's id prefix and the new seq), `results` rows (the
   `trial_id` inside the metrics JSON rewritten to the new id) and the replay `log` rows of
   kinds add/result/end, in their order, so the log stays a valid history. Block 0's single
   `no_more` log entry (its searcher ran out after B trials) is moved to the end of the log,
   where an N-trial run would have written it. The copies repeat block 0's configs, metric
   values and timestamps. `events` and `checkpoints` are not copied (block 0 has no
   checkpoints). Each copied trial also gets its folder `trials/<trial_id>/` with the same
   files as its block-0 original (params.json, result.json, progress.csv, stdout.log,
   stderr.log) as hard links, so the resume sees the folders a real run leaves.
   The database is then checkpointed (no WAL left) and closed. It was just written, so it is
   in the page cache: this is a warm-cache resume.

Timed part: t0 = time.time() just before launching
`tune run exp.toml --resume --num-samples N+1` (the `tune` next to this Python, i.e.
.venv/bin/tune); it waits for the command to exit (the new trial runs its R reports and ends),
then reads the new trial's created_at and started_at (wall-clock epoch seconds written by the
controller) from the database. Checks: exit code 0, N+1 trials, >= N*R results.

Prints `RESULT_JSON {...}`: trials_before, results_before, db_mb, setup_s (steps 1-3),
to_first_new_trial_s (created_at - t0), to_first_new_trial_started_s (started_at - t0),
resume_total_s (t0 to the command's exit), trials_after, results_after.

The experiment goes to $BENCH_TMP (a fresh folder from the harness), else a temporary folder
(removed at the end). Full size needs ~1 GB of disk (the database).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import List

TRAINABLE_SH = """#!/bin/sh
# $1: number of results to report; after each, one line of reply on stdin (continue / stop).
i=0
while [ "$i" -lt "$1" ]; do
  i=$((i+1))
  echo "@hyperfleet report {\\"v\\": $i}"
  read r
  [ "$r" = stop ] && exit 0
done
exit 0
"""

EXPERIMENT_TOML = """[experiment]
name = "resume"
storage = "{storage}"
metric = "v"
mode = "max"
num_samples = {base_trials}
max_concurrent_trials = 2
verbose = 0

[trainable]
command = ["/bin/sh", "{script}", "{{n_results}}"]

[space]
x = {{ uniform = [0, 1] }}
n_results = {results_per_trial}

[search]
algorithm = "random"
seed = 0
"""

TRIAL_FILES = ("params.json", "result.json", "progress.csv", "stdout.log", "stderr.log")


def tune_cli() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "tune")
    return here if os.path.exists(here) else "tune"


def grow(exp_dir: str, base: int, copies: int) -> None:
    """Copies block 0 (trial seqs 0..base-1) `copies` times, block k at seq offset k*base."""
    db = os.path.join(exp_dir, "experiment.db")
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA synchronous = OFF")
    c.execute("PRAGMA cache_size = -262144")  # 256 MiB
    (prefix,) = c.execute("SELECT value FROM experiment WHERE key = 'id_prefix'").fetchone()
    n_trials, max_seq = c.execute("SELECT count(*), max(seq) FROM trials").fetchone()
    if n_trials != base or max_seq != base - 1:
        raise SystemExit(f"block 0 has {n_trials} trials (max seq {max_seq}), expected {base}")
    # The name is "<trainable>_<trial_id>" (hyperfleet's default); keep its stem.
    (name0,) = c.execute("SELECT name FROM trials WHERE seq = 0").fetchone()
    stem = name0[: len(name0) - len(f"{prefix}_00000")]
    c.execute("BEGIN")
    c.execute("CREATE TEMP TABLE blocks (k INTEGER PRIMARY KEY)")
    c.executemany("INSERT INTO blocks (k) VALUES (?)", [(k,) for k in range(1, copies + 1)])
    c.execute("CREATE TEMP TABLE no_more AS SELECT trial_seq, kind, detail FROM log WHERE kind = 'no_more'")
    c.execute("DELETE FROM log WHERE kind = 'no_more'")
    cols = ("config, status, resources, num_failures, error, traceback, stop_reason, "
            "created_at, started_at, ended_at")
    c.execute(
        f"""INSERT INTO trials (seq, trial_id, name, logdir, {cols})
            SELECT t.seq + b.k * :base,
                   printf('%s_%05d', :prefix, t.seq + b.k * :base),
                   :stem || printf('%s_%05d', :prefix, t.seq + b.k * :base),
                   'trials/' || printf('%s_%05d', :prefix, t.seq + b.k * :base),
                   {', '.join('t.' + x.strip() for x in cols.split(','))}
            FROM blocks b, trials t WHERE t.seq < :base ORDER BY b.k, t.seq""",
        {"base": base, "prefix": prefix, "stem": stem},
    )
    c.execute(
        """INSERT INTO results (trial_seq, training_iteration, timestamp, metrics)
           SELECT r.trial_seq + b.k * :base, r.training_iteration, r.timestamp,
                  replace(r.metrics, printf('"trial_id":"%s_%05d"', :prefix, r.trial_seq),
                          printf('"trial_id":"%s_%05d"', :prefix, r.trial_seq + b.k * :base))
           FROM blocks b, results r WHERE r.trial_seq < :base ORDER BY b.k, r.id""",
        {"base": base, "prefix": prefix},
    )
    c.execute(
        """INSERT INTO log (trial_seq, kind, detail)
           SELECT l.trial_seq + b.k * :base, l.kind, l.detail
           FROM blocks b, log l WHERE l.trial_seq < :base AND l.kind IN ('add', 'result', 'end')
           ORDER BY b.k, l.seq""",
        {"base": base},
    )
    c.execute("INSERT INTO log (trial_seq, kind, detail) SELECT trial_seq, kind, detail FROM no_more")
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    # The trial folders, as hard links to block 0's files.
    trials_dir = os.path.join(exp_dir, "trials")
    for seq0 in range(base):
        src = os.path.join(trials_dir, f"{prefix}_{seq0:05d}")
        files: List[str] = [f for f in TRIAL_FILES if os.path.exists(os.path.join(src, f))]
        for k in range(1, copies + 1):
            dst = os.path.join(trials_dir, f"{prefix}_{seq0 + k * base:05d}")
            os.mkdir(dst)
            for f in files:
                os.link(os.path.join(src, f), os.path.join(dst, f))


def count(db: str, sql: str) -> int:
    with sqlite3.connect(db) as c:
        return c.execute(sql).fetchone()[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10000, help="trials in the experiment before the resume")
    ap.add_argument("--results-per-trial", type=int, default=100)
    ap.add_argument("--base-trials", type=int, default=100, help="trials run for real (block 0)")
    args = ap.parse_args()
    if args.trials % args.base_trials:
        raise SystemExit("--trials must be a multiple of --base-trials")

    given = os.environ.get("BENCH_TMP")
    work = given or tempfile.mkdtemp(prefix="hf-resume-")
    tune = tune_cli()
    t_setup = time.perf_counter()
    script = os.path.join(work, "t.sh")
    with open(script, "w") as f:
        f.write(TRAINABLE_SH)
    toml = os.path.join(work, "exp.toml")
    with open(toml, "w") as f:
        f.write(EXPERIMENT_TOML.format(storage=os.path.join(work, "results"), base_trials=args.base_trials,
                                       script=script, results_per_trial=args.results_per_trial))
    exp_dir = os.path.join(work, "results", "resume")
    db = os.path.join(exp_dir, "experiment.db")
    r = subprocess.run([tune, "run", toml, "--json"], cwd=work, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"tune run (block 0) failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    results0 = count(db, "SELECT count(*) FROM results")
    if results0 != args.base_trials * args.results_per_trial:
        raise SystemExit(f"block 0 has {results0} results, expected {args.base_trials * args.results_per_trial}")
    grow(exp_dir, args.base_trials, args.trials // args.base_trials - 1)
    trials_before = count(db, "SELECT count(*) FROM trials")
    results_before = count(db, "SELECT count(*) FROM results")
    if trials_before != args.trials or results_before != args.trials * args.results_per_trial:
        raise SystemExit(f"grown database has {trials_before} trials and {results_before} results")
    db_mb = os.path.getsize(db) / 2**20
    setup_s = time.perf_counter() - t_setup

    # The timed part.
    new_seq = args.trials
    t0 = time.time()
    r = subprocess.run([tune, "run", toml, "--resume", "--num-samples", str(new_seq + 1), "--json"],
                       cwd=work, capture_output=True, text=True)
    resume_total_s = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"tune run --resume failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT created_at, started_at FROM trials WHERE seq = ?", (new_seq,)).fetchone()
        trials_after = c.execute("SELECT count(*) FROM trials").fetchone()[0]
        results_after = c.execute("SELECT count(*) FROM results").fetchone()[0]
    if row is None or row[1] is None:
        raise SystemExit(f"the new trial (seq {new_seq}) is missing or never started: {row}")
    if trials_after != args.trials + 1 or results_after < args.trials * args.results_per_trial:
        raise SystemExit(f"after the resume: {trials_after} trials, {results_after} results")
    out = {
        "trials_before": trials_before,
        "results_before": results_before,
        "db_mb": db_mb,
        "setup_s": setup_s,
        "to_first_new_trial_s": row[0] - t0,
        "to_first_new_trial_started_s": row[1] - t0,
        "resume_total_s": resume_total_s,
        "trials_after": trials_after,
        "results_after": results_after,
    }
    if not given:
        shutil.rmtree(work, ignore_errors=True)
    print("RESULT_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
