"""Worker faults: each way a trial's process can fail is detected, recorded, retried from the
latest checkpoint, and leaves no process behind."""

import os
import time
import uuid
from pathlib import Path

import pytest
from conftest import query

import trainables
from hyperfleet import tune

EXPECT = {
    "exception": "planned exception",
    "exit": "exited with code 3",
    "segfault": "killed by signal 11 (SIGSEGV",
    "sigkill": "killed by signal 9 (SIGKILL",
    "oom": "killed by signal 9 (SIGKILL",
    "hang": "neither reported nor ended",
}


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _memory_cgroup(limit_bytes):
    """A fresh memory cgroup (v2, else v1) limited to ``limit_bytes``, or None when this machine has none to give."""
    candidates = []
    with open("/proc/self/cgroup") as f:
        for line in f.read().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                candidates.append((Path("/sys/fs/cgroup") / path.lstrip("/"), "memory.max"))
                candidates.append((Path("/sys/fs/cgroup/unified") / path.lstrip("/"), "memory.max"))
            elif "memory" in controllers.split(","):
                candidates.append((Path("/sys/fs/cgroup/memory") / path.lstrip("/"), "memory.limit_in_bytes"))
    for base, knob in candidates:
        d = base / f"hyperfleet-test-{uuid.uuid4().hex[:8]}"
        try:
            d.mkdir()
        except OSError:
            continue
        try:
            (d / knob).write_text(str(limit_bytes))
            return d
        except OSError:
            d.rmdir()
    return None


@pytest.mark.parametrize("fault", list(EXPECT))
def test_worker_fault_is_recorded_retried_and_leaves_nothing_behind(storage, tmp_path, fault):
    cgroup = None
    if fault == "oom":
        cgroup = _memory_cgroup(64 << 20)
        if cgroup is None:
            pytest.skip("no memory cgroup can be created here, so the kernel's OOM killer cannot be provoked")
    try:
        grid = tune.Tuner(
            trainables.faulty,
            param_space={"iters": 4, "fail_at": 2, "fault": fault, "log": str(tmp_path), "cgroup": str(cgroup)},
            run_config=tune.RunConfig(
                name=fault, storage_path=storage, verbose=0,
                failure_config=tune.FailureConfig(max_failures=1, hang_timeout_s=2.0)),
        ).fit()
    finally:
        if cgroup is not None:
            for _ in range(50):
                try:
                    cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
    r = grid[0]
    assert r.status == "TERMINATED" and r.error is None
    assert r.metrics["i"] == 4 and r.metrics["resumed_from"] == 2, "the retry continued from the checkpoint"
    its = [m["training_iteration"] for m in r.metrics_dataframe.to_dict("records")]
    assert its == [1, 2, 3, 4]
    assert query(grid.experiment_path, "SELECT num_failures FROM trials") == [(1,)]
    (detail,) = query(grid.experiment_path, "SELECT detail FROM events WHERE kind = 'trial_error'")[0]
    assert EXPECT[fault] in detail, detail
    if fault == "exception":
        assert "Traceback" in detail and "RuntimeError" in detail
    else:
        assert f"about to fail with {fault}" in detail, "the last lines of stderr are recorded"
    pids = [int(p) for f in tmp_path.glob("pids_*") for p in f.read_text().split()]
    assert len(pids) == 4, "two attempts, each a worker and its child"
    time.sleep(0.2)
    assert not [p for p in pids if _alive(p)], "no worker or child process outlives the experiment"


def test_fault_without_retries_is_final_and_fail_fast_ends_cleanly(storage, tmp_path):
    with pytest.raises(Exception, match="fail_fast"):
        tune.Tuner(
            trainables.faulty,
            param_space={"iters": 3, "fail_at": 1, "fault": "segfault", "log": str(tmp_path),
                         "k": tune.grid_search([1, 2, 3])},
            tune_config=tune.TuneConfig(max_concurrent_trials=1),
            run_config=tune.RunConfig(name="ff", storage_path=storage, verbose=0,
                                      failure_config=tune.FailureConfig(fail_fast=True)),
        ).fit()
    exp = os.path.join(storage, "ff")
    statuses = [s for (s,) in query(exp, "SELECT status FROM trials ORDER BY seq")]
    assert statuses[0] == "ERROR" and "RUNNING" not in statuses
    (err,) = query(exp, "SELECT error FROM trials WHERE seq = 0")[0]
    assert "signal 11" in err
    pids = [int(p) for f in tmp_path.glob("pids_*") for p in f.read_text().split()]
    time.sleep(0.2)
    assert pids and not [p for p in pids if _alive(p)]
