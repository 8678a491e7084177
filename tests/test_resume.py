"""Resume and extend: the store is the truth, a second driver is refused, and kill -9 loses nothing."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import REPO, query, tune_cli

import trainables
from hyperfleet import tune

sys.path.insert(0, str(REPO / "tests" / "crash"))
import harness  # noqa: E402


def cli(*args, cwd, timeout=120):
    return subprocess.run([*tune_cli(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


SLOW_SH = """#!/bin/sh
i=0
while [ $i -lt $2 ]; do
  sleep 0.1
  i=$((i+1))
  echo "@hyperfleet report {\\"v\\": $1}"
  read r
  [ "$r" = stop ] && exit 0
done
exit 0
"""

SLOW_TOML = """
    [experiment]
    name = "exp"
    storage = "results"
    metric = "v"
    mode = "max"
    num_samples = {n}
    verbose = 0
    [trainable]
    command = ["./t.sh", "{{x}}", "{{iters}}"]
    [space]
    x = {{ uniform = [0, 1] }}
    iters = {iters}
    [search]
    seed = 11
    """


def write(path, text):
    path.write_text(textwrap.dedent(text))
    if not (path.parent / "t.sh").exists():
        (path.parent / "t.sh").write_text(SLOW_SH)
        (path.parent / "t.sh").chmod(0o755)
    return path


def test_a_second_driver_is_refused_while_the_first_runs(tmp_path):
    write(tmp_path / "e.toml", SLOW_TOML.format(n=2, iters=100))
    first = subprocess.Popen([*tune_cli(), "run", "e.toml"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    exp = tmp_path / "results" / "exp"
    deadline = time.time() + 30
    while time.time() < deadline and not (exp / "experiment.db").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    try:
        second = cli("run", "e.toml", "--resume", cwd=tmp_path)
        assert second.returncode == 2
        assert "being run by another driver" in second.stderr and f"pid {first.pid}" in second.stderr, second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert first.returncode == 130
    # The lock went with the first driver: now the resume is allowed (and finishes).
    write(tmp_path / "e.toml", SLOW_TOML.format(n=2, iters=100))
    again = cli("run", "e.toml", "--resume", "--stop", "training_iteration=3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert query(str(exp), "SELECT status FROM trials") == [("TERMINATED",), ("TERMINATED",)]


def test_a_resume_that_changes_the_space_or_objective_is_refused(tmp_path):
    write(tmp_path / "e.toml", SLOW_TOML.format(n=1, iters=2))
    assert cli("run", "e.toml", cwd=tmp_path).returncode == 0
    text = (tmp_path / "e.toml").read_text()
    write(tmp_path / "e.toml", text.replace("uniform = [0, 1]", "uniform = [0, 2]"))
    r = cli("run", "e.toml", "--resume", cwd=tmp_path)
    assert r.returncode == 2 and "space: differs from the stored experiment's" in r.stderr, r.stderr
    write(tmp_path / "e.toml", text.replace('mode = "max"', 'mode = "min"'))
    r = cli("run", "e.toml", "--resume", cwd=tmp_path)
    assert r.returncode == 2 and "experiment.mode" in r.stderr, r.stderr
    # Budgets may change: that is how an experiment is extended.
    write(tmp_path / "e.toml", text)
    r = cli("run", "e.toml", "--resume", "--num-samples", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert query(str(tmp_path / "results/exp"), "SELECT count(*) FROM trials") == [(3,)]


def _configs(exp):
    return [json.loads(c) for (c,) in query(exp, "SELECT config FROM trials ORDER BY seq")]


def test_extending_a_finished_experiment_continues_the_searcher(storage):
    def fit(name, n):
        return tune.Tuner(
            trainables.quadratic,
            param_space={"x": tune.uniform(0, 6), "iters": 2},
            tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=n,
                                        search_alg=tune.search.BasicVariantGenerator(random_state=5)),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
        ).fit()

    small = fit("small", 4)
    first = query(small.experiment_path, "SELECT trial_id, ended_at FROM trials ORDER BY seq")
    grid = tune.Tuner.restore(small.experiment_path, trainables.quadratic, num_samples=8).fit()
    assert len(grid) == 8 and grid.num_terminated == 8
    assert query(small.experiment_path, "SELECT trial_id, ended_at FROM trials ORDER BY seq LIMIT 4") == first, \
        "finished trials are kept as they were"
    assert _configs(small.experiment_path) == _configs(fit("big", 8).experiment_path), \
        "the extended experiment runs exactly the trials an 8-trial experiment would have"
    assert query(small.experiment_path, "SELECT count(*) FROM results") == [(16,)]


def test_errored_trials_are_kept_resumed_or_restarted_as_asked(storage, tmp_path):
    space = {"iters": 4, "fail_at": 2, "log": str(tmp_path), "k": tune.grid_search([1, 2])}
    grid = tune.Tuner(trainables.checkpointing, param_space=space,
                      run_config=tune.RunConfig(name="e", storage_path=storage, verbose=0)).fit()
    exp = grid.experiment_path
    assert grid.num_errors == 2
    before = query(exp, "SELECT count(*) FROM results")[0][0]

    kept = tune.Tuner.restore(exp, trainables.checkpointing).fit()
    assert kept.num_errors == 2 and query(exp, "SELECT count(*) FROM results")[0][0] == before, \
        "by default an ERROR trial stays as it is"

    # The planned failure happens once per trial (a marker file), so the resumed attempt succeeds.
    resumed = tune.Tuner.restore(exp, trainables.checkpointing, resume_errored=True).fit()
    assert resumed.num_errors == 0 and resumed.num_terminated == 2
    for r in resumed:
        assert r.metrics["resumed_from"] == 2 and r.metrics["training_iteration"] == 4
        its = [m["training_iteration"] for m in r.metrics_dataframe.to_dict("records")]
        assert its == [1, 2, 3, 4], "continued from the checkpoint, nothing recorded twice"

    # Make one trial fail again, then restart it from scratch.
    for f in tmp_path.glob("failed_*"):
        f.unlink()
    space2 = {"iters": 3, "fail_at": 1, "log": str(tmp_path / "b"), "k": tune.grid_search([1])}
    (tmp_path / "b").mkdir()
    g2 = tune.Tuner(trainables.checkpointing, param_space=space2,
                    run_config=tune.RunConfig(name="r", storage_path=storage, verbose=0)).fit()
    assert g2.num_errors == 1
    restarted = tune.Tuner.restore(g2.experiment_path, trainables.checkpointing, restart_errored=True).fit()
    r = restarted[0]
    assert r.status == "TERMINATED" and r.metrics["resumed_from"] == 0, "restarted from scratch, not the checkpoint"


def test_unfinished_trials_can_be_ended_instead_of_resumed(tmp_path):
    write(tmp_path / "e.toml", SLOW_TOML.format(n=2, iters=100))
    p = subprocess.Popen([*tune_cli(), "run", "e.toml"], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    exp = str(tmp_path / "results" / "exp")
    deadline = time.time() + 30
    while time.time() < deadline:
        time.sleep(0.1)
        if os.path.exists(os.path.join(exp, "experiment.db")) and query(exp, "SELECT count(*) FROM results")[0][0] >= 2:
            break
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    assert p.returncode == 130
    r = cli("run", "e.toml", "--resume", "--no-resume-unfinished", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = query(exp, "SELECT status, stop_reason FROM trials")
    assert all(s == "TERMINATED" and "resume_unfinished" in why for s, why in rows), rows


def test_time_budget_counts_the_whole_experiment_across_resumes(tmp_path):
    write(tmp_path / "e.toml", SLOW_TOML.format(n=-1, iters=5).replace("verbose = 0", "verbose = 0\n    time_budget_s = 1.5"))
    assert cli("run", "e.toml", cwd=tmp_path).returncode == 0
    exp = str(tmp_path / "results/exp")
    n1 = query(exp, "SELECT count(*) FROM trials")[0][0]
    # The budget is spent: a plain resume starts nothing new.
    assert cli("run", "e.toml", "--resume", cwd=tmp_path).returncode == 0
    assert query(exp, "SELECT count(*) FROM trials")[0][0] <= n1 + 1
    # A longer budget extends it.
    assert cli("run", "e.toml", "--resume", "--time-budget-s", "4", cwd=tmp_path).returncode == 0
    assert query(exp, "SELECT count(*) FROM trials")[0][0] > n1 + 1
    elapsed = float(query(exp, "SELECT value FROM experiment WHERE key = 'elapsed_s'")[0][0])
    assert 3.5 < elapsed < 8


def test_kill_minus_nine_anywhere_loses_nothing():
    """The short crash harness: 20 SIGKILLs of the driver, about half at failpoints, with TPE and ASHA
    rebuilt by replay each time, compared with an uninterrupted run."""
    assert harness.main(["--kills", "20", "--seed", "1", "--searcher", "tpe"]) == 0


def test_kill_minus_nine_with_concurrent_trials():
    assert harness.main(["--kills", "10", "--seed", "2", "--concurrent", "2"]) == 0


def test_kill_minus_nine_with_synchronous_pbt():
    """Synchronous PBT (paused trials exploited through the controller) rebuilt by replay after
    each kill makes the same exploits, with the same configs, as an uninterrupted run."""
    assert harness.main(["--kills", "10", "--seed", "3", "--scheduler", "pbt_synch", "--samples", "6"]) == 0


def test_kill_minus_nine_with_adaptive_asha():
    """Adaptive ASHA's bracket choices depend on every earlier trial's scores at every rung level;
    rebuilt by replay after each kill, it places and stops trials as an uninterrupted run does."""
    assert harness.main(["--kills", "8", "--seed", "5", "--scheduler", "asha_adaptive", "--samples", "12"]) == 0


STUBBORN = """
import os, signal, time
from hyperfleet import tune

def stubborn(config):
    # Ignores SIGTERM, so a clean stop has to wait for its grace period; a second Ctrl-C must not.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(os.path.join(config["log"], f"pid_{os.getpid()}"), "w"):
        pass
    for i in range(10000):
        time.sleep(0.05)
        if i == 2:
            tune.report({"i": i})
"""


def test_a_second_ctrl_c_forces_the_stop_and_leaves_it_resumable(tmp_path):
    (tmp_path / "stub.py").write_text(STUBBORN)
    (tmp_path / "log").mkdir()
    write(tmp_path / "s.toml", f"""
        [experiment]
        name = "s"
        storage = "results"
        num_samples = 2
        verbose = 0
        [trainable]
        python = "stub:stubborn"
        [space]
        log = "{tmp_path / 'log'}"
        """)
    p = subprocess.Popen([*tune_cli(), "run", "s.toml"], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and len(list((tmp_path / "log").glob("pid_*"))) < 2:
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert p.poll() is None, "the first Ctrl-C waits for the trials to stop (they ignore SIGTERM)"
    t = time.time()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert time.time() - t < 3, "the second Ctrl-C does not wait out the grace period"
    assert p.returncode == 130 and "--resume" in err, err
    pids = [int(f.name.split("_")[1]) for f in (tmp_path / "log").glob("pid_*")]
    time.sleep(0.3)
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                assert f.read().split(") ", 1)[1][0] == "Z", f"worker {pid} outlived a forced stop"
        except FileNotFoundError:
            pass
    exp = str(tmp_path / "results/s")
    assert {s for (s,) in query(exp, "SELECT status FROM trials")} == {"PENDING"}, "interrupted trials resume later"
