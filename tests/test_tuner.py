"""End-to-end: Tuner.fit() on real worker processes with a real SQLite store."""

import json
import os

import pytest
from conftest import intervals, max_overlap, query

import hyperfleet
import trainables
from hyperfleet import tune
from hyperfleet.exceptions import ConfigError, ExperimentExistsError, TrialError


def run(storage, trainable, space, name="exp", **tc):
    rc_keys = {"stop", "failure_config", "checkpoint_config", "callbacks"}
    rc = {k: tc.pop(k) for k in list(tc) if k in rc_keys}
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(**tc),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0, **rc),
    ).fit()


def test_function_trainable_records_every_result_and_file(storage):
    grid = run(storage, trainables.quadratic, {"x": tune.uniform(0, 6), "iters": 4}, metric="loss", mode="min", num_samples=5)
    assert len(grid) == 5
    assert grid.num_terminated == 5 and grid.num_errors == 0
    exp = grid.experiment_path
    assert query(exp, "SELECT count(*) FROM results") == [(20,)]
    best = grid.get_best_result()
    assert best.metrics["loss"] == min(r.metrics["loss"] for r in grid)
    for r in grid:
        assert r.metrics["training_iteration"] == 4
        assert r.metrics["done"] is True
        assert set(["time_this_iter_s", "time_total_s", "timestamp", "trial_id"]) <= set(r.metrics)
        assert 0 <= r.config["x"] < 6
        files = set(os.listdir(r.path))
        assert {"params.json", "result.json", "progress.csv", "stdout.log", "stderr.log"} <= files
        with open(os.path.join(r.path, "result.json")) as f:
            assert [json.loads(line)["training_iteration"] for line in f] == [1, 2, 3, 4]
        assert len(r.metrics_dataframe) == 4
    df = grid.get_dataframe()
    assert len(df) == 5 and "config/x" in df.columns and "loss" in df.columns


def test_same_seed_same_configs(storage):
    search = tune.search.BasicVariantGenerator(random_state=7)
    a = run(storage, trainables.quadratic, {"x": tune.uniform(0, 6), "iters": 1}, name="a", num_samples=4, search_alg=search)
    b = run(storage, trainables.quadratic, {"x": tune.uniform(0, 6), "iters": 1}, name="b", num_samples=4, search_alg=search)
    assert [r.config for r in a] == [r.config for r in b]


def test_grid_times_num_samples(storage):
    space = {"a": tune.grid_search([1, 2, 3]), "b": tune.grid_search(["x", "y"]), "x": tune.uniform(0, 1), "iters": 1}
    grid = run(storage, trainables.quadratic, space, num_samples=2)
    assert len(grid) == 12
    combos = sorted((r.config["a"], r.config["b"]) for r in grid)
    assert combos == sorted([(a, b) for a in (1, 2, 3) for b in "xy"] * 2)


def test_points_to_evaluate_run_first(storage):
    search = tune.search.BasicVariantGenerator(points_to_evaluate=[{"x": 3.0}, {"x": 5.0}])
    grid = run(storage, trainables.quadratic, {"x": tune.uniform(0, 6), "iters": 1}, num_samples=3, search_alg=search,
               metric="loss", mode="min")
    xs = [r.config["x"] for r in grid]
    assert xs[:2] == [3.0, 5.0] and len(xs) == 3
    assert grid.get_best_result().config["x"] == 3.0


def test_class_trainable_with_checkpoints(storage):
    grid = run(storage, trainables.Counter, {"step": tune.grid_search([1, 2])},
               checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=3, num_to_keep=2))
    assert grid.num_terminated == 2
    for r in grid:
        assert r.metrics["count"] == 10 * r.config["step"]
        assert r.metrics["training_iteration"] == 10
        assert [c.path.rsplit("_", 1)[1] for c, _ in r.best_checkpoints] == ["000006", "000009"]
        with open(os.path.join(r.checkpoint.path, "count")) as f:
            assert int(f.read()) == 9 * r.config["step"]
        assert not os.path.exists(os.path.join(r.path, "checkpoint_000003"))


def test_error_is_recorded_with_traceback_and_experiment_continues(storage):
    grid = run(storage, trainables.failing, {"x": tune.grid_search([1, 2])})
    assert grid.num_errors == 2
    err = grid.errors[0]
    assert isinstance(err, TrialError)
    assert "ValueError: boom" in str(err)
    assert "Traceback" in err.traceback and "trainables.py" in err.traceback
    r = grid[0]
    assert r.metrics["training_iteration"] == 1
    with open(os.path.join(r.path, "error.txt")) as f:
        assert "boom" in f.read()


def test_retry_resumes_from_latest_checkpoint(storage, tmp_path):
    grid = run(storage, trainables.checkpointing, {"iters": 5, "fail_at": 3, "log": str(tmp_path)},
               failure_config=tune.FailureConfig(max_failures=1))
    r = grid[0]
    assert r.error is None and r.status == "TERMINATED"
    assert r.metrics["i"] == 5
    assert r.metrics["resumed_from"] == 3
    assert r.metrics["training_iteration"] == 5, "iteration continues from the checkpoint"
    assert query(grid.experiment_path, "SELECT num_failures FROM trials") == [(1,)]
    iters = [m["training_iteration"] for m in r.metrics_dataframe.to_dict("records")]
    assert iters == [1, 2, 3, 4, 5]


def test_without_retries_the_failure_is_final(storage, tmp_path):
    grid = run(storage, trainables.checkpointing, {"iters": 5, "fail_at": 1, "log": str(tmp_path)})
    assert grid.num_errors == 1
    assert "planned failure at 1" in str(grid.errors[0])


def test_fail_fast_stops_the_experiment(storage):
    with pytest.raises(hyperfleet.exceptions.TuneError, match="fail_fast"):
        run(storage, trainables.failing, {"x": tune.grid_search(list(range(6)))}, max_concurrent_trials=1,
            failure_config=tune.FailureConfig(fail_fast=True))


def test_stop_criteria_and_stopper(storage):
    def forever(config):
        i = 0
        while True:
            i += 1
            tune.report({"acc": i / 10})

    grid = run(storage, forever, {}, name="dict", stop={"training_iteration": 7})
    assert grid[0].metrics["training_iteration"] == 7
    grid = run(storage, forever, {}, name="dict2", stop={"acc": 0.5})
    assert grid[0].metrics["acc"] == 0.5

    class Stop(tune.Stopper):
        def __call__(self, trial_id, result):
            return result["training_iteration"] >= 3

    grid = run(storage, forever, {}, name="stopper", stop=Stop())
    assert grid[0].metrics["training_iteration"] == 3
    assert grid[0].status == "TERMINATED"


def test_missing_metric_is_an_error_naming_it(storage):
    def wrong(config):
        tune.report({"los": 1.0, "acc": 2})

    grid = run(storage, wrong, {}, metric="loss", mode="min")
    msg = str(grid.errors[0])
    assert "`loss`" in msg and "los" in msg and "acc" in msg


def test_with_parameters_loads_once_per_worker(storage, tmp_path):
    big = list(range(100_000))

    def uses_data(config, data):
        with open(os.path.join(config["log"], f"{os.getpid()}.ids"), "a") as f:
            f.write(f"{id(data)}\n")
        tune.report({"n": len(data)})

    grid = run(storage, tune.with_parameters(uses_data, data=big), {"log": str(tmp_path), "k": tune.grid_search(list(range(6)))},
               max_concurrent_trials=1)
    assert all(r.metrics["n"] == 100_000 for r in grid)
    files = list(tmp_path.glob("*.ids"))
    for f in files:
        assert len(set(f.read_text().split())) == 1, "one load per worker process"
    assert os.path.exists(os.path.join(grid.experiment_path, "parameters.pkl"))


def test_concurrency_never_above_what_fits(storage, tmp_path):
    hyperfleet.init(num_cpus=3)
    run(storage, tune.with_resources(trainables.record_span, {"cpu": 1}),
        {"log": str(tmp_path), "k": tune.grid_search(list(range(8))), "sleep": 0.4})
    spans = intervals(tmp_path)
    assert len(spans) == 8
    assert max_overlap(spans) <= 3
    (tmp_path / "b").mkdir()
    run(storage, trainables.record_span, {"log": str(tmp_path / "b"), "k": tune.grid_search(list(range(6)))},
        name="capped", max_concurrent_trials=1)
    assert max_overlap(intervals(tmp_path / "b")) == 1


def test_gpus_are_disjoint_and_fractions_pack(storage, tmp_path):
    hyperfleet.init(num_cpus=8, num_gpus=2)
    (tmp_path / "whole").mkdir()
    run(storage, tune.with_resources(trainables.record_span, {"cpu": 1, "gpu": 1}),
        {"log": str(tmp_path / "whole"), "k": tune.grid_search(list(range(6)))}, name="whole")
    spans = intervals(tmp_path / "whole")
    assert {s["cuda"] for s in spans} <= {"0", "1"}
    assert max_overlap(spans) <= 2
    for a in spans:
        for b in spans:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert a["cuda"] != b["cuda"], "concurrent trials share a GPU"
    (tmp_path / "frac").mkdir()
    run(storage, tune.with_resources(trainables.record_span, {"cpu": 1, "gpu": 0.25}),
        {"log": str(tmp_path / "frac"), "k": tune.grid_search(list(range(8))), "sleep": 1.0}, name="frac")
    spans = intervals(tmp_path / "frac")
    assert max_overlap(spans) == 8, "8 quarter-GPU trials fit on 2 GPUs at once"
    first4 = sorted(spans, key=lambda s: s["start"])
    assert {s["cuda"] for s in first4} == {"0", "1"}
    (tmp_path / "none").mkdir()
    run(storage, trainables.record_span, {"log": str(tmp_path / "none")}, name="nogpu")
    assert intervals(tmp_path / "none")[0]["cuda"] == ""


def test_sample_from_and_nested_spaces(storage):
    space = {"opt": {"lr": tune.loguniform(1e-4, 1e-1), "double": tune.sample_from(lambda spec: spec.config.opt.lr * 2)},
             "x": 3, "iters": 1}
    grid = run(storage, trainables.quadratic, space, num_samples=3)
    for r in grid:
        assert r.config["opt"]["double"] == pytest.approx(2 * r.config["opt"]["lr"])


def test_callbacks_see_results_and_ends(storage):
    seen = []

    class CB(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            seen.append(("result", trial.trial_id, result["training_iteration"]))

        def on_trial_complete(self, iteration, trials, trial, **info):
            seen.append(("complete", trial.trial_id))

    run(storage, trainables.quadratic, {"x": 1, "iters": 2}, callbacks=[CB()])
    assert [s[0] for s in seen] == ["result", "result", "complete"]


def test_bad_python_input_is_refused_before_anything_runs(storage):
    with pytest.raises(ConfigError, match=r"space\.opt\.lr: loguniform needs low > 0"):
        run(storage, trainables.quadratic, {"opt": {"lr": tune.loguniform(0, 1)}})
    with pytest.raises(ConfigError, match=r"space\.a: uniform needs low < high"):
        run(storage, trainables.quadratic, {"a": tune.uniform(2, 1)})
    with pytest.raises(ConfigError, match=r"space\.c: choice needs at least one"):
        run(storage, trainables.quadratic, {"c": tune.choice([])})
    with pytest.raises(ConfigError, match="q > 0|q must be"):
        run(storage, trainables.quadratic, {"q": tune.quniform(0, 1, 0)})
    with pytest.raises(TypeError, match=r"param_space\.obj"):
        run(storage, trainables.quadratic, {"obj": object()})
    with pytest.raises(ValueError, match="TuneConfig\\(mode=...\\)"):
        tune.TuneConfig(metric="loss", mode="best")
    with pytest.raises(ValueError, match="num_samples"):
        tune.TuneConfig(num_samples=0)
    with pytest.raises(ConfigError, match="a trial needs 64 cpu"):
        hyperfleet.init(num_cpus=2)
        run(storage, tune.with_resources(trainables.quadratic, {"cpu": 64}), {"x": 1})
    assert os.listdir(storage) == [], "nothing half-written"


def test_existing_experiment_is_not_overwritten_and_restore_continues(storage, tmp_path):
    space = {"iters": 3, "fail_at": 10, "log": str(tmp_path), "k": tune.grid_search([1, 2])}
    grid = run(storage, trainables.checkpointing, space)
    with pytest.raises(ExperimentExistsError, match="Tuner.restore"):
        run(storage, trainables.checkpointing, space)
    assert tune.Tuner.can_restore(grid.experiment_path)
    assert not tune.Tuner.can_restore(storage)
    again = tune.Tuner.restore(grid.experiment_path, trainables.checkpointing).fit()
    assert len(again) == 2 and again.num_terminated == 2
    assert query(grid.experiment_path, "SELECT count(*) FROM results") == [(6,)], "finished trials are not rerun"


def test_warm_workers_are_reused_and_output_is_captured_per_trial(storage):
    grid = run(storage, trainables.chatty, {"k": tune.grid_search(list(range(10)))}, name="warm", max_concurrent_trials=2)
    pids = {r.metrics["pid"] for r in grid}
    assert len(pids) <= 2, "ten trials ran in at most two warm worker processes"
    for r in grid:
        with open(os.path.join(r.path, "stdout.log")) as f:
            assert f.read() == f"hello from {r.config['k']}\n"
        with open(os.path.join(r.path, "stderr.log")) as f:
            assert f.read() == f"warning {r.config['k']}\n"
    cold = run(storage, trainables.chatty, {"k": tune.grid_search(list(range(4)))}, name="cold", reuse_actors=False)
    assert len({r.metrics["pid"] for r in cold}) == 4


def test_time_budget_ends_the_experiment(storage):
    import time

    t = time.time()
    grid = run(storage, trainables.slow_steps, {}, num_samples=-1, time_budget_s=1.5, max_concurrent_trials=2)
    assert time.time() - t < 10
    assert len(grid) == 2 and grid.num_terminated == 2
    assert all(r.metrics["training_iteration"] >= 5 for r in grid)
    reasons = {row[0] for row in query(grid.experiment_path, "SELECT stop_reason FROM trials")}
    assert reasons == {"time budget reached"}


def test_infinite_samples_until_the_stopper_says_stop_all(storage):
    class UpTo(tune.Stopper):
        def __init__(self):
            self.done = set()

        def __call__(self, trial_id, result):
            self.done.add(trial_id)
            return True

        def stop_all(self):
            return len(self.done) >= 7

    grid = run(storage, trainables.quadratic, {"x": tune.uniform(0, 1), "iters": 3}, num_samples=-1, stop=UpTo(),
               max_concurrent_trials=1)
    assert 7 <= len(grid) <= 8
    assert all(r.metrics["training_iteration"] == 1 for r in grid)


def test_best_result_scopes_and_nan_filtering(storage):
    space = {"values": tune.grid_search([[5, 1, 1], [2, 2, 2], [0, 9, 9], ["nan"]])}
    grid = run(storage, trainables.series, space, metric="v", mode="min")
    by = lambda r: r.config["values"]  # noqa: E731
    assert by(grid.get_best_result(scope="last")) == [5, 1, 1]
    assert by(grid.get_best_result(scope="all")) == [0, 9, 9]
    assert by(grid.get_best_result(scope="avg")) == [2, 2, 2]
    assert by(grid.get_best_result(scope="last-5-avg")) == [2, 2, 2]
    assert by(grid.get_best_result(metric="v", mode="max", scope="last")) == [0, 9, 9]
    with pytest.raises(ValueError, match="scope"):
        grid.get_best_result(scope="median")
    nan_trial = [r for r in grid if r.config["values"] == ["nan"]]
    assert nan_trial and nan_trial[0].metrics["v"] is None, "NaN is recorded as a missing value"
    df = grid.get_dataframe(filter_metric="v", filter_mode="min")
    assert sorted(df["v"].dropna().tolist()) == [0, 1, 2]


def test_trial_names_and_folders_can_be_chosen(storage):
    grid = run(storage, trainables.quadratic, {"x": tune.grid_search([1, 2]), "iters": 1},
               trial_name_creator=lambda t: f"q_x{t.config['x']}", trial_dirname_creator=lambda t: f"x={t.config['x']}")
    assert sorted(os.path.basename(r.path) for r in grid) == ["x=1", "x=2"]
    names = sorted(n for (n,) in query(grid.experiment_path, "SELECT name FROM trials"))
    assert names == ["q_x1", "q_x2"]


def test_quickstart_script_runs(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    r = subprocess.run([sys.executable, str(REPO / "experiments/quickstart.py")], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "best loss" in r.stdout and "checkpoint_" in r.stdout


def test_report_returns_only_once_the_result_is_committed(storage):
    grid = run(storage, trainables.checks_durability, {"k": tune.grid_search(list(range(4)))})
    assert grid.num_errors == 0, grid.errors
    assert all(r.metrics["i"] == 5 for r in grid)


def test_config_values_round_trip_exactly(storage):
    awkward = [0.1 + 0.2, 0.00011999999999999999, 1e-300, 123456789.12345679]
    search = tune.search.BasicVariantGenerator(points_to_evaluate=[{"x": v} for v in awkward])
    grid = run(storage, trainables.quadratic, {"x": tune.uniform(0, 1), "iters": 1}, num_samples=4, search_alg=search)
    assert [r.config["x"] for r in grid] == awkward
