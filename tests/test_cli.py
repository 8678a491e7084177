"""End-to-end: the `tune` command, as a user runs it in a shell."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import REPO, intervals, max_overlap, query, tune_cli

BACKTEST = """#!/bin/sh
# A command trainable: arguments from the config, results on stdout, decisions on stdin.
echo "window=$1 fee=$2 trial=$HYPERFLEET_TRIAL_ID"
i=1
while [ $i -le 4 ]; do
  echo "@hyperfleet report {\\"pnl\\": $(( $1 * i )), \\"fee\\": $2}"
  read reply
  [ "$reply" = "stop" ] && exit 0
  i=$(( i + 1 ))
done
"""


def write(tmp_path, name, text, mode=0o644):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    p.chmod(mode)
    return p


def tune(*args, cwd, timeout=120):
    return subprocess.run([*tune_cli(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def backtest(tmp_path):
    write(tmp_path, "bt.sh", BACKTEST, 0o755)
    return write(tmp_path, "bt.toml", """
        [experiment]
        name = "bt"
        storage = "results"
        metric = "pnl"
        mode = "max"

        [trainable]
        command = ["./bt.sh", "{window}", "{costs.fee}"]

        [space]
        window = { grid_search = [5, 10, 20] }
        costs = { fee = { uniform = [0.0, 0.01] } }

        [stop]
        training_iteration = 3
        """)


def test_run_a_command_trainable_and_inspect_it(tmp_path, backtest):
    r = tune("run", "bt.toml", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["trials"] == {"TERMINATED": 3}
    exp = summary["experiment_dir"]
    assert os.path.isabs(exp)
    rows = query(exp, "SELECT t.config, r.metrics FROM trials t JOIN results r ON r.trial_seq = t.seq")
    assert len(rows) == 9, "stopped at training_iteration 3 by the [stop] table"
    for cfg, m in rows:
        cfg, m = json.loads(cfg), json.loads(m)
        assert m["pnl"] % cfg["window"] == 0 and m["fee"] == pytest.approx(cfg["costs"]["fee"])
    show = json.loads(tune("show", exp, "--json", cwd=tmp_path).stdout)
    assert [t["status"] for t in show["trials"]] == ["TERMINATED"] * 3
    assert all("stop criterion training_iteration" in t["stop_reason"] for t in show["trials"])
    best = json.loads(tune("best", "bt", "--storage", "results", "--json", cwd=tmp_path).stdout)
    assert best["config"]["window"] == 20 and best["last_result"]["pnl"] == 60
    ls = json.loads(tune("ls", "results", "--json", cwd=tmp_path).stdout)
    assert ls[0]["name"] == "bt" and ls[0]["status"] == "finished"
    text = tune("show", exp, cwd=tmp_path).stdout
    assert "TERMINATED" in text and "window=20" in text
    log = next((tmp_path / "results/bt/trials").glob("*_00000")) / "stdout.log"
    assert log.read_text().startswith("window=5 fee=")


def test_existing_experiment_needs_resume(tmp_path, backtest):
    assert tune("run", "bt.toml", cwd=tmp_path).returncode == 0
    r = tune("run", "bt.toml", cwd=tmp_path)
    assert r.returncode == 2 and "--resume" in r.stderr
    r = tune("run", "bt.toml", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert query(str(tmp_path / "results/bt"), "SELECT count(*) FROM results") == [(9,)]
    r = tune("run", "bt.toml", "--resume", "--name", "other", cwd=tmp_path)
    assert r.returncode == 2 and "no experiment to resume" in r.stderr


@pytest.mark.parametrize(
    "edit, where, says",
    [
        (("mode = \"max\"", "mode = \"best\""), ":6:8:", "unknown variant `best`"),
        (("metric = \"pnl\"", "metrik = \"pnl\""), ":5:1:", "unknown field `metrik`"),
        (("[stop]", "[stopp]"), ":15:2:", "unknown field `stopp`"),
        (("window = { grid_search = [5, 10, 20] }", "window = { uniform = [5, 1] }"), ":12:1:", "space.window: uniform needs low < high"),
        (("fee = { uniform = [0.0, 0.01] }", "fee = { loguniform = [0.0, 0.01] }"), ":13:", "space.costs.fee: loguniform needs low > 0"),
        (("window = { grid_search = [5, 10, 20] }", "window = { choice = [] }"), ":12:1:", "space.window: choice needs at least one"),
        (("command = [", "python = \"x\"\ncommand = ["), ":8:2:", "exactly one of"),
        (("training_iteration = 3", "training_iteration = \"3\""), ":16:22:", "invalid type"),
        (("[space]", "[space"), ":11:7:", "unclosed table, expected `]`"),
    ],
)
def test_bad_experiment_files_name_file_line_column(tmp_path, backtest, edit, where, says):
    text = backtest.read_text().replace(*edit)
    backtest.write_text(text)
    r = tune("run", "bt.toml", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: bt.toml" + where), r.stderr
    assert says in r.stderr, r.stderr
    assert not (tmp_path / "results").exists(), "nothing written for bad input"


def test_unknown_config_key_in_command_is_an_error(tmp_path, backtest):
    backtest.write_text(backtest.read_text().replace("{costs.fee}", "{cost.fee}"))
    r = tune("run", "bt.toml", "--json", cwd=tmp_path)
    assert r.returncode == 1 and "3 trial(s) ended in ERROR" in r.stderr
    show = json.loads(tune("show", "results/bt", "--json", cwd=tmp_path).stdout)
    assert all("`{cost.fee}` is not a config key" in t["error"] for t in show["trials"])


def test_bad_arguments_exit_2_and_help_is_complete(tmp_path):
    r = tune("run", cwd=tmp_path)
    assert r.returncode == 2
    r = tune("run", "missing.toml", cwd=tmp_path)
    assert r.returncode == 2 and "missing.toml" in r.stderr
    r = tune("show", "nowhere", cwd=tmp_path)
    assert r.returncode == 2 and "no experiment here" in r.stderr
    h = tune("--help", cwd=tmp_path).stdout
    for verb in ("run", "ls", "show", "best"):
        assert verb in h
    h = tune("run", "--help", cwd=tmp_path).stdout
    for flag in ("--name", "--storage", "--resume", "--json", "--python"):
        assert flag in h


def test_gang_of_two_workers_is_all_or_nothing(tmp_path):
    write(tmp_path, "rank.sh", """#!/bin/sh
        python3 -c 'import json,os,time; s=time.time(); time.sleep(0.3); print(json.dumps({"start": s, "end": time.time(), "rank": os.environ["HYPERFLEET_WORLD_RANK"], "size": os.environ["HYPERFLEET_WORLD_SIZE"], "trial": os.environ["HYPERFLEET_TRIAL_ID"]}))' >> "spans/$HYPERFLEET_TRIAL_ID-$HYPERFLEET_WORLD_RANK.jsonl"
        echo '@hyperfleet report {"ok": 1}'
        """, 0o755)
    (tmp_path / "spans").mkdir()
    write(tmp_path, "gang.toml", """
        [experiment]
        storage = "results"
        num_samples = 4
        [trainable]
        command = ["./rank.sh"]
        [scaling]
        workers = 2
        resources_per_worker = { cpu = 1 }
        [resources]
        cpu = 3
        """)
    r = tune("run", "gang.toml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    spans = intervals(tmp_path / "spans")
    assert len(spans) == 8 and {s["size"] for s in spans} == {"2"}
    by_trial = {}
    for s in spans:
        by_trial.setdefault(s["trial"], set()).add(s["rank"])
    assert all(ranks == {"0", "1"} for ranks in by_trial.values())
    assert max_overlap(spans) == 2, "one gang of 2 at a time on 3 CPUs: never a third worker"


SLOW = """
import json, os, tempfile, time
from hyperfleet import tune

def slow(config):
    start = 0
    ck = tune.get_checkpoint()
    if ck:
        start = json.load(open(os.path.join(ck.path, "s.json")))["i"]
    with open(os.path.join(config["log"], "pids"), "a") as f:
        f.write(f"{os.getpid()}\\n")
    for i in range(start, 12):
        time.sleep(0.15)
        with tempfile.TemporaryDirectory() as d:
            json.dump({"i": i + 1}, open(os.path.join(d, "s.json"), "w"))
            tune.report({"i": i + 1, "start": start}, checkpoint=tune.Checkpoint.from_directory(d))
"""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_ctrl_c_stops_cleanly_and_resume_continues(tmp_path):
    write(tmp_path, "slowmod.py", SLOW)
    (tmp_path / "log").mkdir()
    write(tmp_path, "slow.toml", f"""
        [experiment]
        name = "slow"
        storage = "results"
        num_samples = 2
        verbose = 0
        [trainable]
        python = "slowmod:slow"
        [space]
        log = "{tmp_path / 'log'}"
        """)
    p = subprocess.Popen([*tune_cli(), "run", "slow.toml"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    exp = str(tmp_path / "results/slow")
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.1)
        if os.path.exists(os.path.join(exp, "experiment.db")) and query(exp, "SELECT count(*) FROM results")[0][0] >= 4:
            break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "tune run slow.toml --resume" in err
    pids = [int(x) for x in (tmp_path / "log/pids").read_text().split()]
    time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids), "no orphan worker processes"
    statuses = query(exp, "SELECT status FROM trials")
    assert {s for (s,) in statuses} <= {"PENDING", "TERMINATED"}
    before = query(exp, "SELECT count(*) FROM results")[0][0]
    r = tune("run", "slow.toml", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(m) for (m,) in query(exp, "SELECT metrics FROM results ORDER BY id")]
    assert len(rows) >= 24 and len(rows) - before <= 24
    finals = query(exp, "SELECT status FROM trials")
    assert finals == [("TERMINATED",), ("TERMINATED",)]
    resumed = [m for m in rows[before:] if m["start"] > 0]
    assert resumed, "interrupted trials continued from their checkpoints"
    for m in resumed:
        assert m["training_iteration"] == m["i"], "training_iteration continues, it does not start over"


def test_python_trainable_from_toml_and_quickstart_files_parse(tmp_path):
    r = subprocess.run([*tune_cli(), "run", str(REPO / "experiments/quickstart.toml"), "--storage", str(tmp_path),
                        "--verbose", "0", "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["trials"] == {"TERMINATED": 8}
    best = json.loads(tune("best", os.path.join(str(tmp_path), "quickstart"), "--json", cwd=tmp_path).stdout)
    assert best["last_result"]["accuracy"] > 0.9
    assert os.path.isdir(best["checkpoint"])
    assert sys.executable


def test_a_worker_that_cannot_start_reports_its_own_output(tmp_path):
    write(tmp_path, "fakepy", "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'hyperfleet'\" >&2\nexit 1\n", 0o755)
    write(tmp_path, "p.toml", """
        [experiment]
        storage = "results"
        verbose = 0
        [trainable]
        python = "mod:fn"
        """)
    r = tune("run", "p.toml", "--python", str(tmp_path / "fakepy"), cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    show = json.loads(tune("show", "results/p", "--json", cwd=tmp_path).stdout)
    (t,) = show["trials"]
    assert t["status"] == "ERROR" and "exited with code 1" in t["error"]
    tb = query(str(tmp_path / "results/p"), "SELECT traceback FROM trials")[0][0]
    assert "No module named 'hyperfleet'" in tb


def test_schedulers_from_the_experiment_file(tmp_path):
    write(tmp_path, "curve.sh", """#!/bin/sh
        # loss falls towards a floor set by q; one report per step; honours stop.
        t=0
        while [ $t -lt 27 ]; do
          t=$((t + 1))
          echo "@hyperfleet report {\\"loss\\": $(python3 -c "print(0.1 + 0.9 * $1 + (1 - 0.1 - 0.9 * $1) * $t ** -0.7)")}"
          read reply
          [ "$reply" = "stop" ] && exit 0
        done
        """, 0o755)
    toml = write(tmp_path, "asha.toml", """
        [experiment]
        storage = "results"
        metric = "loss"
        mode = "min"
        verbose = 0
        [trainable]
        command = ["./curve.sh", "{q}"]
        [space]
        q = { grid_search = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] }
        [scheduler]
        kind = "asha"
        max_t = 27
        grace_period = 1
        reduction_factor = 3
        """)
    r = tune("run", "asha.toml", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    show = json.loads(tune("show", "results/asha", "--json", cwd=tmp_path).stdout)
    iters = {t["config"]["q"]: t["last_result"]["training_iteration"] for t in show["trials"]}
    assert iters[0.0] == 27 and sum(iters.values()) < 6 * 27
    assert any((t["stop_reason"] or "").startswith("scheduler: rung") for t in show["trials"])
    toml.write_text(toml.read_text().replace("reduction_factor = 3", "reduction_factor = 1"))
    r = tune("run", "asha.toml", "--name", "bad", cwd=tmp_path)
    assert r.returncode == 2 and "reduction_factor" in r.stderr, r.stderr
    toml.write_text(toml.read_text().replace("reduction_factor = 1", "reduction_factr = 3"))
    r = tune("run", "asha.toml", "--name", "bad2", cwd=tmp_path)
    assert r.returncode == 2 and "reduction_factr" in r.stderr and "asha.toml:" in r.stderr, r.stderr
