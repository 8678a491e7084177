"""Shared fixtures for the end-to-end tests: real worker processes, a real SQLite store in a temp folder."""

import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def storage(tmp_path):
    """A fresh storage folder."""
    d = tmp_path / "results"
    d.mkdir()
    return str(d)


@pytest.fixture(autouse=True)
def _reset_cluster():
    """Each test starts with detected resources."""
    import hyperfleet

    hyperfleet.init()
    yield
    hyperfleet.init()


def query(exp_dir, sql, *args):
    """Rows of a read-only query on an experiment's database."""
    with sqlite3.connect(os.path.join(exp_dir, "experiment.db")) as c:
        return c.execute(sql, args).fetchall()


def intervals(log_dir):
    """The (start, end, info) spans that trainables appended to files in ``log_dir``."""
    out = []
    for f in Path(log_dir).glob("*.jsonl"):
        for line in f.read_text().splitlines():
            out.append(json.loads(line))
    return out


def max_overlap(spans):
    """Most spans open at one instant."""
    events = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def tune_cli():
    """The `tune` console script installed with the package."""
    return [os.path.join(os.path.dirname(sys.executable), "tune")]
