"""Trials of different gang shapes sharing one cluster: each trial's `scaling_config` is its own
gang, and a large gang is not starved by a stream of small trials (backfill, then reservation)."""

import json

import pytest
from conftest import intervals, query

import hyperfleet
import trainables
from hyperfleet import train, tune

SMALL, BIG = 1, 4


def _run(storage, tmp_path, name, shapes, reserve_after_s, sleep=0.4):
    """Runs one trial per entry of `shapes` (workers per trial, in order) on 4 CPUs; returns
    each trial's worker count and the first start / last end of its ranks, in trial order."""
    hyperfleet.init(num_cpus=4)
    log = tmp_path / name
    log.mkdir()
    grid = tune.Tuner(
        trainables.record_span,
        param_space={"scaling_config": train.ScalingConfig(num_workers=tune.grid_search(shapes)),
                     "sleep": sleep, "log": str(log)},
        tune_config=tune.TuneConfig(reserve_after_s=reserve_after_s),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
    ).fit()
    assert grid.num_errors == 0 and len(grid) == len(shapes)
    spans = intervals(log)
    rows = query(grid.experiment_path, "SELECT trial_id, config, resources FROM trials ORDER BY seq")
    out = []
    for trial_id, config, resources in rows:
        mine = [s for s in spans if s["trial"] == trial_id]
        workers = json.loads(config)["scaling_config"]["num_workers"]
        # Every rank ran, knew its world, and the stored reservation is the trial's own gang.
        assert sorted(s["rank"] for s in mine) == list(range(workers))
        assert {s["world"] for s in mine} == {workers}
        assert len(json.loads(resources)["bundles"]) == workers
        out.append((workers, min(s["start"] for s in mine), max(s["end"] for s in mine)))
    return out


def test_each_trial_gets_a_gang_of_its_own_shape(storage, tmp_path):
    runs = _run(storage, tmp_path, "shapes", [1, 2, 3, 4, 2], reserve_after_s=0, sleep=0.2)
    assert [w for w, _, _ in runs] == [1, 2, 3, 4, 2]
    # Never more than the cluster's 4 CPUs' worth of workers at once.
    for _, s, _ in runs:
        assert sum(w for w, a, b in runs if a <= s < b) <= 4


def test_a_large_gang_reserves_capacity_at_once_with_reserve_after_0(storage, tmp_path):
    shapes = [SMALL] * 3 + [BIG] + [SMALL] * 12
    runs = _run(storage, tmp_path, "strict", shapes, reserve_after_s=0)
    _, big_start, big_end = runs[3]
    # Nothing created after it starts before it; nothing runs beside it.
    assert all(s >= big_start for _, s, _ in runs[4:])
    assert not [i for i, (_, s, e) in enumerate(runs) if i != 3 and s < big_end and e > big_start]


def test_without_reservation_small_trials_starve_the_large_gang(storage, tmp_path):
    # The contrast that makes the policy necessary: with backfill only, some small trial always
    # holds a CPU, so the 4-worker gang runs only after the whole stream has started.
    shapes = [SMALL] * 3 + [BIG] + [SMALL] * 12
    runs = _run(storage, tmp_path, "backfill", shapes, reserve_after_s=1e6)
    _, big_start, _ = runs[3]
    assert all(s < big_start for i, (_, s, _) in enumerate(runs) if i != 3)


def test_backfill_then_reservation_bounds_the_large_gangs_wait(storage, tmp_path):
    shapes = [SMALL] * 3 + [BIG] + [SMALL] * 24
    runs = _run(storage, tmp_path, "aging", shapes, reserve_after_s=1.0)
    _, big_start, _ = runs[3]
    first = min(s for _, s, _ in runs)
    later = [s for _, s, _ in runs[4:]]
    # Small trials started beside it while it waited (backfill) ...
    assert any(s < big_start for s in later)
    # ... until it reserved: it started within its 1 s plus one small trial's 0.4 s (and slack),
    # long before the stream of 24 small trials (about 2.4 s of 4 CPUs) had drained.
    assert big_start - first < 1.0 + 0.4 + 1.5
    assert sum(s > big_start for s in later) >= 5


def test_a_trial_whose_gang_can_never_fit_errors_alone(storage, tmp_path):
    hyperfleet.init(num_cpus=2)
    log = tmp_path / "never"
    log.mkdir()
    grid = tune.Tuner(
        trainables.record_span,
        param_space={"scaling_config": {"num_workers": tune.grid_search([1, 3])}, "sleep": 0.05, "log": str(log)},
        run_config=tune.RunConfig(name="never", storage_path=storage, verbose=0),
    ).fit()
    assert grid.num_errors == 1 and len(grid) == 2
    (err,) = [r.error for r in grid if r.error is not None]
    assert "3 worker(s)" in str(err) and "can never be placed" in str(err), err
    ok = [r for r in grid if r.error is None]
    assert ok[0].config["scaling_config"]["num_workers"] == 1


def test_a_bad_scaling_config_field_is_named(storage):
    with pytest.raises(hyperfleet.exceptions.ConfigError, match=r"space\.scaling_config\.num_gpus"):
        tune.Tuner(trainables.quadratic, param_space={"scaling_config": {"num_gpus": 1}, "x": 1},
                   run_config=tune.RunConfig(name="bad", storage_path=storage, verbose=0)).fit()


def test_a_file_experiment_tunes_the_gang_shape(tmp_path):
    import subprocess
    import textwrap

    from conftest import tune_cli

    (tmp_path / "t.sh").write_text('#!/bin/sh\necho "@hyperfleet report {\\"w\\": $HYPERFLEET_WORLD_SIZE}"\nread r\n')
    (tmp_path / "t.sh").chmod(0o755)
    (tmp_path / "g.toml").write_text(textwrap.dedent("""
        resources = { cpu = 2 }
        [experiment]
        name = "g"
        storage = "results"
        verbose = 0
        [trainable]
        command = ["./t.sh"]
        [space.scaling_config]
        num_workers = { grid_search = [1, 2] }
        [scaling]
        reserve_after_s = 0
        """))
    p = subprocess.run([*tune_cli(), "run", "g.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = query(tmp_path / "results" / "g", "SELECT t.config, r.metrics FROM trials t JOIN results r "
                 "ON r.trial_seq = t.seq ORDER BY t.seq")
    assert [(json.loads(c)["scaling_config"]["num_workers"], json.loads(m)["w"]) for c, m in rows] == [(1, 1), (2, 2)]
