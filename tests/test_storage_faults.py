"""Storage faults: a full disk, a read-only storage path, a foreign or incompatible database.

Each ends with a clear error naming the path, leaves what was recorded intact, and (for the
first two) the experiment resumes once the fault is gone. The full and read-only file systems
are real: a small tmpfs mounted in a private mount namespace (``unshare``), so no root is needed
where unprivileged user namespaces are allowed.
"""

import shutil
import sqlite3
import subprocess
import textwrap

import pytest
from conftest import query, tune_cli

TRAINABLE = """#!/bin/sh
# Reports 30 results carrying 2 KB of text each, with a checkpoint of $CK_KB KB every 5th; a resumed
# trial continues from its checkpoint's iteration.
i=${HYPERFLEET_ITERATION:-0}
pad=$(head -c 2000 /dev/zero | tr '\\0' x)
while [ $i -lt 30 ]; do
  i=$((i+1))
  if [ $((i % 5)) -eq 0 ]; then
    d=$(mktemp -d)
    head -c $((CK_KB * 1024)) /dev/urandom > "$d/w.bin"
    echo "@hyperfleet checkpoint $d"
  fi
  echo "@hyperfleet report {\\"v\\": $i, \\"pad\\": \\"$pad\\"}"
  read r
  [ -n "$d" ] && rm -rf "$d" && d=
  [ "$r" = stop ] && exit 0
done
exit 0
"""

SPEC = """
[experiment]
name = "exp"
storage = "{storage}"
metric = "v"
mode = "max"
num_samples = {n}
verbose = 0
[trainable]
command = ["{here}/t.sh"]
env = {{ CK_KB = "{ck_kb}" }}
[space]
x = {{ uniform = [0, 1] }}
[search]
seed = 3
"""


def _userns_mount_works():
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                        "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d && umount $d && rmdir $d"],
                       capture_output=True)
    return r.returncode == 0


needs_mount = pytest.mark.skipif(not _userns_mount_works(),
                                 reason="this machine allows no private mount namespace (unshare --user --mount)")


def _in_namespace(tmp_path, script):
    """Runs ``script`` (bash) in a private mount namespace with ``$ST`` a tmpfs mount point; returns its output."""
    (tmp_path / "t.sh").write_text(TRAINABLE)
    (tmp_path / "t.sh").chmod(0o755)
    (tmp_path / "st").mkdir()
    full = "set -u\nST=" + str(tmp_path / "st") + "\nTUNE=" + tune_cli()[0] + "\ncd " + str(tmp_path) + "\n" + \
        textwrap.dedent(script)
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", full],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _spec(tmp_path, n, storage, ck_kb=64):
    (tmp_path / "e.toml").write_text(SPEC.format(storage=storage, n=n, here=tmp_path, ck_kb=ck_kb))


@needs_mount
@pytest.mark.parametrize("what_fills_it", ["results", "checkpoint"])
def test_disk_full_stops_cleanly_and_the_experiment_resumes_when_space_returns(tmp_path, what_fills_it):
    _spec(tmp_path, 6, tmp_path / "st", ck_kb=64 if what_fills_it == "results" else 400)
    out = _in_namespace(tmp_path, """
        mount -t tmpfs -o size=600k tmpfs $ST
        $TUNE run e.toml > first.out 2> first.err; echo "first=$?"
        # What was recorded before the disk filled up, read while the disk is still full.
        sqlite3 $ST/exp/experiment.db 'PRAGMA integrity_check' > integrity.txt 2>&1 || true
        sqlite3 $ST/exp/experiment.db 'SELECT count(*) FROM results' > before.txt 2>&1 || true
        mount -o remount,size=64m $ST
        $TUNE run e.toml --resume > second.out 2> second.err; echo "second=$?"
        cp -r $ST/exp saved
    """)
    first_err = (tmp_path / "first.err").read_text()
    assert "first=1" in out, out + first_err
    if what_fills_it == "checkpoint":
        assert "could not write a checkpoint" in first_err, first_err
    else:
        # Results fill the disk, but a checkpoint copy may be the write that meets it first.
        assert "database or disk is full" in first_err or "could not write a checkpoint" in first_err, first_err
    assert "No space left on device" in first_err or "disk is full" in first_err, first_err
    assert str(tmp_path / "st" / "exp") in first_err, "the error names the experiment's path"
    assert (tmp_path / "integrity.txt").read_text().strip() == "ok"
    before = int((tmp_path / "before.txt").read_text())
    assert before > 0, "results recorded before the fault are kept"
    assert "second=0" in out, (tmp_path / "second.err").read_text()
    exp = str(tmp_path / "saved")
    assert query(exp, "SELECT status FROM trials") == [("TERMINATED",)] * 6
    for (seq,) in query(exp, "SELECT seq FROM trials"):
        its = [i for (i,) in query(exp, "SELECT training_iteration FROM results WHERE trial_seq = ? ORDER BY id", seq)]
        assert its == list(range(1, 31)), f"trial {seq}: {its}"
    assert query(exp, "SELECT count(*) FROM results")[0][0] >= before


@needs_mount
def test_read_only_storage_is_refused_clearly_and_resumes_once_writable(tmp_path):
    _spec(tmp_path, 2, tmp_path / "st")
    out = _in_namespace(tmp_path, """
        mount -t tmpfs -o size=64m tmpfs $ST
        $TUNE run e.toml > first.out 2> first.err; echo "first=$?"
        mount -o remount,ro $ST
        $TUNE run e.toml --resume --num-samples 4 > ro.out 2> ro.err; echo "ro=$?"
        mount -o remount,rw $ST
        $TUNE run e.toml --resume --num-samples 4 > rw.out 2> rw.err; echo "rw=$?"
        cp -r $ST/exp saved
    """)
    assert "first=0" in out
    ro_err = (tmp_path / "ro.err").read_text()
    assert "ro=1" in out, out + ro_err
    assert "Read-only file system" in ro_err and str(tmp_path / "st" / "exp") in ro_err, ro_err
    assert "rw=0" in out, (tmp_path / "rw.err").read_text()
    exp = str(tmp_path / "saved")
    assert query(exp, "SELECT status FROM trials") == [("TERMINATED",)] * 4


def test_a_file_that_is_not_a_database_or_from_another_version_is_refused(tmp_path):
    (tmp_path / "t.sh").write_text(TRAINABLE)
    (tmp_path / "t.sh").chmod(0o755)
    _spec(tmp_path, 1, tmp_path / "st")
    exp = tmp_path / "st" / "exp"
    exp.mkdir(parents=True)
    junk = b"not a database, but a file someone put here by mistake" * 20
    (exp / "experiment.db").write_bytes(junk)
    r = subprocess.run([*tune_cli(), "run", "e.toml", "--resume"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "not an SQLite database" in r.stderr and str(exp) in r.stderr, r.stderr
    assert (exp / "experiment.db").read_bytes() == junk, "the file is left as it was"
    (exp / "experiment.db").unlink()
    with sqlite3.connect(exp / "experiment.db") as c:
        c.execute("CREATE TABLE trials (seq INTEGER)")
        c.execute("PRAGMA user_version = 7")
    r = subprocess.run([*tune_cli(), "run", "e.toml", "--resume"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "schema version 7" in r.stderr, r.stderr
    with sqlite3.connect(exp / "experiment.db") as c:
        assert c.execute("PRAGMA user_version").fetchone() == (7,)
