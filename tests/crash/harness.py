"""Crash harness: SIGKILL the driver again and again, resume each time, then hold the store to
every promise of an uninterrupted run.

    python tests/crash/harness.py                    # the long version: 100 kills
    python tests/crash/harness.py --kills 20 --seed 3
    python tests/crash/harness.py --scheduler pbt_synch --samples 6   # synchronous PBT instead of ASHA

Each cycle starts `tune run` (with `--resume` after the first) and kills it with SIGKILL, either
after a random delay or at a failpoint (`HYPERFLEET_FAILPOINT`): just before a transaction
commits, just after it commits (before the trainable hears back), after a checkpoint is copied
but before it is renamed into place, and after the rename but before the commit. A final
`--resume` runs the experiment to its end. Then it checks, against the store and against the
side log the trainables wrote themselves:

- every result a trainable saw acknowledged is in the store, with the value it reported;
- each trial's results are iterations 1..n exactly once, and `training_iteration` matches the
  trainable's own counter (an interrupted trial continued from its checkpoint, it did not start over);
- every restart of a trial began at its latest acknowledged checkpoint, never earlier, and the
  iterations it re-ran after that checkpoint were not recorded twice;
- trial ids are unique and numbered without gaps, and there are exactly `num_samples` trials;
- every trial that ended has exactly one `end` entry in the replay log;
- with one trial at a time, every trial's config, final iteration, status and stop reason equal
  those of an uninterrupted reference run with the same seed (so the searcher and the ASHA
  scheduler, rebuilt by replay, made the same decisions);
- no checkpoint folder exists that the store does not hold, and no worker process is left alive.

Exit status 0 when every check holds; otherwise each broken one is printed.
"""

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEARCH = {"random": 'algorithm = "random"', "tpe": 'algorithm = "tpe"\noptions = { n_startup_trials = 4 }'}
SCHEDULERS = {
    "asha": 'kind = "asha"\nmax_t = {iters}\ngrace_period = 2\nreduction_factor = 2',
    # Adaptive ASHA: its bracket choices depend on every earlier trial's scores at every level.
    "asha_adaptive": 'kind = "asha_adaptive"\nmax_t = {iters}\nreduction_factor = 2\ncalibration_trials = 3\nmin_pairs = 3',
    # Synchronous PBT: trials wait for each other at every third iteration (where they checkpoint),
    # and paused trials are told to exploit through the controller.
    "pbt_synch": 'kind = "pbt"\ntime_attr = "training_iteration"\nperturbation_interval = 3\nsynch = true\n'
                 'hyperparam_mutations = {{ x = {{ uniform = [0.0, 1.0] }} }}',
}
FAILPOINTS = ["store_before_commit", "store_after_commit", "checkpoint_copied", "checkpoint_renamed"]

SPEC = """
[experiment]
name = "{name}"
storage = "{storage}"
metric = "score"
mode = "max"
num_samples = {samples}
max_concurrent_trials = {concurrent}
verbose = 0
python_path = ["{here}"]

[trainable]
python = "trainable:train"

[space]
x = {{ uniform = [0.0, 1.0] }}
iters = {iters}
sleep = {sleep}
ckpt_every = 3

[search]
seed = {seed}
{search}

[scheduler]
{scheduler}

[checkpoint]
num_to_keep = 2
"""


def tune_cmd():
    return [os.path.join(os.path.dirname(sys.executable), "tune")]


def write_spec(work, name, args):
    p = work / f"{name}.toml"
    p.write_text(SPEC.format(name=name, storage=work / "results", samples=args.samples, concurrent=args.concurrent,
                             here=HERE, iters=args.iters, sleep=args.sleep, seed=args.seed,
                             search=SEARCH[args.searcher],
                             scheduler=SCHEDULERS[args.scheduler].format(iters=args.iters)))
    return p


def run_to_end(spec, side, resume, env_extra=None):
    env = dict(os.environ, CRASH_SIDE_LOG=str(side), **(env_extra or {}))
    cmd = tune_cmd() + ["run", str(spec)] + (["--resume"] if resume else [])
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def run_and_kill(spec, side, resume, rng):
    """One cycle: returns how the driver was killed."""
    env = dict(os.environ, CRASH_SIDE_LOG=str(side))
    how = "timer"
    if rng.random() < 0.5:
        fp = rng.choice(FAILPOINTS)
        n = rng.randint(1, 30 if fp.startswith("store") else 8)
        env["HYPERFLEET_FAILPOINT"] = f"{fp}:{n}"
        how = f"{fp}:{n}"
    cmd = tune_cmd() + ["run", str(spec)] + (["--resume"] if resume else [])
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + rng.uniform(0.3, 2.0)
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.01)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    else:
        how += " (exited by itself)"
    out, err = p.communicate()
    if p.returncode not in (-signal.SIGKILL, 0):
        raise SystemExit(f"driver exited with {p.returncode} during {how}:\n{err[-3000:]}")
    return how if p.returncode == -signal.SIGKILL else "finished"


def side_log(side):
    """trial id -> list of entries, in the order the trainable wrote them."""
    out = {}
    for f in side.glob("*.jsonl"):
        out[f.stem] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


def stored(exp_dir):
    with sqlite3.connect(f"file:{exp_dir / 'experiment.db'}?mode=ro", uri=True) as c:
        trials = c.execute(
            "SELECT seq, trial_id, config, status, stop_reason, logdir FROM trials ORDER BY seq").fetchall()
        results = c.execute("SELECT trial_seq, training_iteration, metrics FROM results ORDER BY id").fetchall()
        ckpts = {r[0] for r in c.execute("SELECT path FROM checkpoints WHERE deleted_at IS NULL")}
    return trials, results, ckpts


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def check(work, name, args, reference):
    problems = []
    exp_dir = work / "results" / name
    trials, results, live = stored(exp_dir)
    side = side_log(work / f"side-{name}")
    ids = [t[1] for t in trials]
    if [t[0] for t in trials] != list(range(len(trials))):
        problems.append(f"trial numbers have gaps: {[t[0] for t in trials]}")
    if len(set(ids)) != len(ids):
        problems.append("a trial id was used twice")
    if len(trials) != args.samples:
        problems.append(f"{len(trials)} trials, expected {args.samples}")
    by_seq = {t[0]: t for t in trials}
    per_trial = {}
    for seq, it, m in results:
        per_trial.setdefault(seq, []).append((it, json.loads(m)))
    for seq, rows in per_trial.items():
        its = [it for it, _ in rows]
        if its != list(range(1, len(its) + 1)):
            problems.append(f"trial {seq}: iterations {its}, expected 1..{len(its)} once each")
        for it, m in rows:
            if m.get("i") != it:
                problems.append(f"trial {seq}: training_iteration {it} but the trainable counted {m.get('i')}")
    for t in trials:
        if t[3] not in ("TERMINATED", "ERROR"):
            problems.append(f"trial {t[1]} ended {t[3]}")
        if t[3] == "ERROR":
            problems.append(f"trial {t[1]} errored")
    # The replay log tells the searcher and scheduler of every trial's end exactly once: a trial
    # final in the store without its `end` entry would stay "running" for them after a resume.
    with sqlite3.connect(f"file:{exp_dir / 'experiment.db'}?mode=ro", uri=True) as c:
        ends = [r[0] for r in c.execute("SELECT trial_seq FROM log WHERE kind = 'end'")]
    for t in trials:
        if t[3] in ("TERMINATED", "ERROR") and ends.count(t[0]) != 1:
            problems.append(f"trial {t[0]} is {t[3]} but the replay log has {ends.count(t[0])} end entries for it")
    # Acknowledged results are in the store with the acknowledged value; restarts begin at the latest ack.
    by_id = {t[1]: t[0] for t in trials}
    pids = set()
    for tid, entries in side.items():
        seq = by_id.get(tid)
        if seq is None:
            problems.append(f"the side log names trial {tid}, which the store does not have")
            continue
        recorded = {it: m["score"] for it, m in per_trial.get(seq, [])}
        latest_ckpt = 0
        for e in entries:
            if "pid" in e:
                pids.add(e["pid"])
            if "start" in e:
                if e["start"] < latest_ckpt:
                    problems.append(f"trial {tid} restarted at {e['start']} after its checkpoint at {latest_ckpt} "
                                    "was acknowledged")
            if "acked" in e:
                if e["ckpt"]:
                    latest_ckpt = max(latest_ckpt, e["acked"])
                if recorded.get(e["acked"]) != e["score"]:
                    problems.append(f"trial {tid}: acknowledged iteration {e['acked']} ({e['score']}) is stored as "
                                    f"{recorded.get(e['acked'])}")
    # Checkpoint folders on disk are exactly the live ones.
    on_disk = {str(p.relative_to(exp_dir)) for p in exp_dir.glob("trials/*/checkpoint_*")}
    if on_disk - live:
        problems.append(f"checkpoint folders the store does not hold: {sorted(on_disk - live)[:5]}")
    if live - on_disk:
        problems.append(f"checkpoints the store holds but the disk lacks: {sorted(live - on_disk)[:5]}")
    for pid in pids:
        if pid_alive(pid):
            problems.append(f"worker process {pid} is still alive")
    if reference is not None:
        ref_trials, ref_results, _ = reference
        last = lambda res: {s: it for s, it, _ in res}  # noqa: E731
        got_last, ref_last = last(results), last(ref_results)
        for (rt, t) in zip(ref_trials, trials):
            if json.loads(rt[2]) != json.loads(t[2]):
                problems.append(f"trial {t[0]}: config {t[2]} differs from the uninterrupted run's {rt[2]}")
            if (rt[3], rt[4], ref_last.get(rt[0])) != (t[3], t[4], got_last.get(t[0])):
                problems.append(f"trial {t[0]}: ended {t[3]} at {got_last.get(t[0])} ({t[4]}); the uninterrupted "
                                f"run ended it {rt[3]} at {ref_last.get(rt[0])} ({rt[4]})")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=100, help="driver kills before the final resume")
    ap.add_argument("--seed", type=int, default=0, help="seed for kill timing and the experiment")
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--sleep", type=float, default=0.03, help="seconds per iteration")
    ap.add_argument("--concurrent", type=int, default=1,
                    help="trials at once; with 1 the run is also compared with an uninterrupted reference")
    ap.add_argument("--searcher", choices=sorted(SEARCH), default="random")
    ap.add_argument("--scheduler", choices=sorted(SCHEDULERS), default="asha")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="hyperfleet-crash-"))
    try:
        reference = None
        if args.concurrent == 1:
            (work / "ref-side").mkdir()
            r = run_to_end(write_spec(work, "reference", args), work / "ref-side", False)
            if r.returncode != 0:
                raise SystemExit(f"reference run failed ({r.returncode}):\n{r.stderr[-3000:]}")
            reference = stored(work / "results" / "reference")
        kills = []
        problems = []
        rounds = 0
        # Rounds of fresh experiments, each killed until it finishes, until enough kills have landed.
        while len(kills) < args.kills:
            name = f"crash{rounds}"
            rounds += 1
            side = work / f"side-{name}"
            side.mkdir()
            spec = write_spec(work, name, args)
            resume = False
            while len(kills) < args.kills:
                how = run_and_kill(spec, side, resume, rng)
                resume = resume or (work / "results" / name / "experiment.db").exists()
                if how == "finished":
                    break
                kills.append(how)
            r = run_to_end(spec, side, resume)
            if r.returncode != 0:
                print(r.stderr[-3000:], file=sys.stderr)
                return 1
            problems += [f"{name}: {p}" for p in check(work, name, args, reference)]
        print(f"{len(kills)} kills ({sum(1 for k in kills if k != 'timer')} at failpoints) over {rounds} experiments "
              f"of {args.samples} trials x {args.iters} iterations")
        for p in problems:
            print("BROKEN:", p)
        if not problems:
            print("every invariant holds")
        return 1 if problems else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
