"""Searchers end to end: TPE through the Python API and the experiment file."""

import subprocess
import textwrap

import pytest
from conftest import query, tune_cli

from hyperfleet import tune
from hyperfleet.exceptions import ConfigError


def bowl(config):
    """A 2-D bowl with its minimum 0 at (1.5, -2)."""
    tune.report({"loss": (config["x"] - 1.5) ** 2 + (config["y"] + 2) ** 2})


SPACE = {"x": tune.uniform(-5, 5), "y": tune.uniform(-5, 5)}


def _best(storage, name, search_alg):
    grid = tune.Tuner(
        bowl,
        param_space=SPACE,
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=40, max_concurrent_trials=1,
                                    search_alg=search_alg),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
    ).fit()
    return grid.get_best_result().metrics["loss"], [r.config for r in grid]


def test_tpe_finds_better_points_than_random_search_with_the_same_budget(storage):
    """Paired by seed, 40 trials each (10 random startup trials for TPE), one at a time so each run
    is deterministic. Measured: TPE's best is below random search's on 7 of these 8 seeds, with a
    median ratio of about 0.17 (Optuna 5.0's TPE on the same bowl: median best 0.045 over 20 seeds;
    ours 0.069, random 0.45)."""
    ratios = []
    for seed in range(8):
        tpe, tpe_configs = _best(storage, f"tpe{seed}", tune.search.TPESearch(n_startup_trials=10, seed=seed))
        rnd, rnd_configs = _best(storage, f"rnd{seed}", tune.search.BasicVariantGenerator(random_state=seed))
        assert tpe_configs[:10] == rnd_configs[:10], "the startup trials are the random searcher's draws"
        ratios.append(tpe / rnd)
    assert sum(r < 1 for r in ratios) >= 6, ratios
    assert sorted(ratios)[4] < 0.5, ratios
    _, again = _best(storage, "again", tune.search.TPESearch(n_startup_trials=10, seed=7))
    assert again == tpe_configs, "the same seed gives the same suggestions"


def test_optuna_search_takes_metric_and_mode_like_ray(storage):
    grid = tune.Tuner(
        bowl, param_space=SPACE,
        tune_config=tune.TuneConfig(num_samples=12, search_alg=tune.search.OptunaSearch(metric="loss", mode="min")),
        run_config=tune.RunConfig(name="o", storage_path=storage, verbose=0),
    ).fit()
    assert len(grid) == 12 and grid.get_best_result().metrics["loss"] >= 0
    with pytest.raises(ValueError, match="sampler"):
        tune.search.OptunaSearch(sampler=object())


def test_tpe_needs_a_metric(storage):
    with pytest.raises(ConfigError, match="search.algorithm.*metric"):
        tune.Tuner(bowl, param_space=SPACE, tune_config=tune.TuneConfig(search_alg=tune.search.TPESearch()),
                   run_config=tune.RunConfig(name="m", storage_path=storage, verbose=0)).fit()


def test_tpe_from_the_experiment_file_and_its_option_errors(tmp_path):
    (tmp_path / "obj.py").write_text(textwrap.dedent("""
        from hyperfleet import tune
        def f(config):
            tune.report({"loss": (config["x"] - 1) ** 2 + config["n"] / 10})
        """))
    text = textwrap.dedent("""
        [experiment]
        name = "t"
        storage = "results"
        metric = "loss"
        mode = "min"
        num_samples = 15
        max_concurrent_trials = 1
        verbose = 0
        [trainable]
        python = "obj:f"
        [space]
        x = { uniform = [-3, 3] }
        n = { randint = [0, 5] }
        [search]
        algorithm = "tpe"
        seed = 4
        options = { n_startup_trials = 5, n_ei_candidates = 32 }
        """)
    (tmp_path / "t.toml").write_text(text)
    r = subprocess.run([*tune_cli(), "run", "t.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert query(str(tmp_path / "results/t"), "SELECT count(*) FROM trials WHERE status = 'TERMINATED'") == [(15,)]
    (tmp_path / "bad.toml").write_text(text.replace("n_ei_candidates = 32", "n_ei_candidatez = 32"))
    r = subprocess.run([*tune_cli(), "run", "bad.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "search.options" in r.stderr and "n_ei_candidatez" in r.stderr, r.stderr
    (tmp_path / "bad2.toml").write_text(text.replace('algorithm = "tpe"', 'algorithm = "tpee"'))
    r = subprocess.run([*tune_cli(), "run", "bad2.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "bad2.toml:" in r.stderr and "tpe" in r.stderr, r.stderr


def test_qmc_and_cmaes_run_from_python(storage):
    q = tune.Tuner(bowl, param_space=SPACE,
                   tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=16,
                                               search_alg=tune.search.QMCSearch(seed=3)),
                   run_config=tune.RunConfig(name="q", storage_path=storage, verbose=0)).fit()
    xs = sorted(r.config["x"] for r in q)
    # 16 scrambled Sobol' points: one in each sixteenth of x's range.
    assert [int((x + 5) / 10 * 16) for x in xs] == list(range(16))
    c_best, _ = _best(storage, "cma", tune.search.CMAESSearch(seed=0))
    r_best, _ = _best(storage, "rnd_c", tune.search.BasicVariantGenerator(random_state=0))
    assert c_best < r_best, (c_best, r_best)


def noisy(config):
    """A noisy measurement: the trial index shifts it by ±1, so the mean of 2 is exact."""
    tune.report({"loss": (config["x"] - 1) ** 2 + (1 if config["__trial_index__"] else -1)})


def test_repeater_runs_each_config_repeat_times(storage):
    grid = tune.Tuner(
        noisy, param_space={"x": tune.uniform(-3, 3)},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=8, max_concurrent_trials=1,
                                    search_alg=tune.search.Repeater(tune.search.TPESearch(n_startup_trials=2, seed=1),
                                                                    repeat=2)),
        run_config=tune.RunConfig(name="rep", storage_path=storage, verbose=0),
    ).fit()
    configs = [r.config for r in sorted(grid, key=lambda r: r.trial_id)]
    assert len(configs) == 8
    for a, b in zip(configs[::2], configs[1::2]):
        assert a["x"] == b["x"] and (a["__trial_index__"], b["__trial_index__"]) == (0, 1)
    assert len({c["x"] for c in configs}) == 4


def test_gp_search_runs_from_python_and_beats_random_search(storage):
    g_best, configs = _best(storage, "gp", tune.search.GPSearch(seed=0, n_startup_trials=8))
    r_best, _ = _best(storage, "rnd_g", tune.search.BasicVariantGenerator(random_state=0))
    # A GP on a 2-D bowl with 40 trials lands within a hair of the minimum; random search does not.
    assert g_best < 1e-2 and g_best < r_best / 10, (g_best, r_best)
    assert len({(c["x"], c["y"]) for c in configs}) == 40
    with pytest.raises(ValueError, match="one metric"):
        tune.search.GPSearch(metric=["a", "b"], mode=["min", "min"])
    # Ray's name for porting scripts.
    assert tune.search.BayesOptSearch(random_search_steps=5).to_spec()["options"]["n_startup_trials"] == 5


def test_bohb_with_hyperband_for_bohb_learns_from_rung_budgets(storage):
    from hyperfleet.tune.schedulers import HyperBandForBOHB

    import trainables

    def run(name, search_alg):
        return tune.Tuner(
            trainables.learning_curve,
            param_space={"q": tune.uniform(0, 1), "max_t": 9},
            tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=40, max_concurrent_trials=1,
                                        search_alg=search_alg,
                                        scheduler=HyperBandForBOHB(max_t=9, reduction_factor=3)),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
        ).fit()

    grid = run("bohb", tune.search.BOHBSearch(seed=0))
    rnd = run("rnd_b", tune.search.BasicVariantGenerator(random_state=0))
    assert len(grid) == 40 and grid.num_errors == 0
    qs = [r.config["q"] for r in sorted(grid, key=lambda r: r.trial_id)]
    rqs = [r.config["q"] for r in sorted(rnd, key=lambda r: r.trial_id)]
    # Results at rung budget 1 carry no information here (every curve starts at 1); those at 3 and
    # 9 do, and once BOHB's model for them has enough points its suggestions gather near q = 0 (the
    # lowest floor). Measured: the median of the last 20 suggestions is 0.036 (seeds 2, 3: 0.04,
    # 0.019; seed 1 settled on 0.40); random search's is 0.70.
    def late_median(xs):
        return sorted(xs[20:])[10]
    assert late_median(qs) < 0.1 and late_median(rqs) > 0.3, (qs, rqs)
    # Same seed, one trial at a time: the same configs (the model is a pure function of the results).
    again = run("bohb2", tune.search.TuneBOHB(seed=0))
    assert [r.config["q"] for r in sorted(again, key=lambda r: r.trial_id)] == qs
