"""Several objectives: `metric=[...]`, `mode=[...]`, the Pareto front of the results, and
multi-objective TPE learning it."""

import json

import pytest
from conftest import query

import hyperfleet
import trainables
from hyperfleet import tune
from hyperfleet.tune.schedulers import ASHAScheduler

XS = [-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0]


def _grid(storage, name, **tc):
    return tune.Tuner(
        trainables.two_objectives,
        param_space={"x": tune.grid_search(XS)},
        tune_config=tune.TuneConfig(metric=["f1", "f2"], mode=["min", "min"], **tc),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
    ).fit()


def test_the_pareto_front_is_the_non_dominated_trials(storage):
    grid = _grid(storage, "front")
    front = grid.get_pareto_front()
    # x = -1 is dominated by x = 0 (1 > 0 and 9 > 4), x = 3 by x = 2; the rest trade off.
    assert [r.config["x"] for r in front] == [0.0, 0.5, 1.0, 1.5, 2.0]
    # Other modes can be asked for: maximising f1 while minimising f2, x = 2 (4, 0) and x = 3 (9, 1)
    # dominate every other point and trade off against each other.
    mixed = grid.get_pareto_front(metric=["f1", "f2"], mode=["max", "min"])
    assert [r.config["x"] for r in mixed] == [3.0, 2.0]
    with pytest.raises(ValueError, match="several objectives"):
        grid.get_best_result()
    assert grid.get_best_result(metric="f2", mode="min").config["x"] == 2.0


def test_bad_objective_lists_are_refused(storage):
    with pytest.raises(ValueError, match="same length"):
        tune.TuneConfig(metric=["f1", "f2"], mode=["min"])
    with pytest.raises(hyperfleet.exceptions.ConfigError, match="scheduler.kind"):
        _grid(storage, "asha", scheduler=ASHAScheduler(max_t=3))
    with pytest.raises(hyperfleet.exceptions.ConfigError, match="search.algorithm"):
        _grid(storage, "cma", search_alg=tune.search.CMAESSearch())


def test_multi_objective_tpe_finds_the_front_and_records_each_objective(storage):
    grid = tune.Tuner(
        trainables.two_objectives,
        param_space={"x": tune.uniform(-5, 5)},
        tune_config=tune.TuneConfig(metric=["f1", "f2"], mode=["min", "min"], num_samples=50,
                                    max_concurrent_trials=1, search_alg=tune.search.TPESearch(seed=3)),
        run_config=tune.RunConfig(name="motpe", storage_path=storage, verbose=0),
    ).fit()
    xs = [r.config["x"] for r in sorted(grid, key=lambda r: r.trial_id)]
    late = xs[25:]
    # Random search puts 20% in the Pareto set [0, 2]; Optuna 5.0's MOTPE about 57% on this toy
    # (20 seeds, last 30 of 60); ours with this seed: 14 of 25.
    assert sum(0 <= x <= 2 for x in late) / len(late) >= 0.4, late
    assert len(grid.get_pareto_front()) >= 5
    # Each end is logged with both objectives (higher is better), so a resume replays them.
    ends = [json.loads(d) for (d,) in query(grid.experiment_path, "SELECT detail FROM log WHERE kind = 'end'")]
    assert all(len(e["objectives"]) == 2 for e in ends)
    first = sorted(grid, key=lambda r: r.trial_id)[0].metrics
    assert ends[0]["objectives"] == pytest.approx([-first["f1"], -first["f2"]])


def test_a_file_experiment_takes_metric_lists(tmp_path):
    import subprocess
    import textwrap

    from conftest import REPO, tune_cli

    (tmp_path / "m.toml").write_text(textwrap.dedent(f"""
        [experiment]
        name = "m"
        storage = "results"
        metric = ["f1", "f2"]
        mode = ["min", "max"]
        verbose = 0
        python_path = ["{REPO / 'tests'}"]
        [trainable]
        python = "trainables:two_objectives"
        [space]
        x = {{ grid_search = [0.0, 1.0] }}
        """))
    p = subprocess.run([*tune_cli(), "run", "m.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    spec = json.loads(query(tmp_path / "results" / "m", "SELECT value FROM experiment WHERE key = 'spec'")[0][0])
    assert spec["experiment"]["metric"] == ["f1", "f2"] and spec["experiment"]["mode"] == ["min", "max"]
    bad = (tmp_path / "m.toml").read_text().replace('mode = ["min", "max"]', 'mode = ["min"]')
    (tmp_path / "b.toml").write_text(bad)
    p = subprocess.run([*tune_cli(), "run", "b.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "same length" in p.stderr, p.stderr
