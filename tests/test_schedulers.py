"""End-to-end: schedulers driven by the controller on real worker processes."""

import json
import os
import statistics
import subprocess

import pytest
from conftest import query, tune_cli

import trainables
from hyperfleet import tune
from hyperfleet.tune import schedulers


def fit(storage, trainable, space, name, scheduler=None, **kw):
    rc = {k: kw.pop(k) for k in list(kw) if k in ("stop", "checkpoint_config")}
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(scheduler=scheduler, **kw),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0, **rc),
    ).fit()


def total_iterations(grid):
    return sum(r.metrics["training_iteration"] for r in grid)


CURVES = {"q": tune.grid_search([i / 26 for i in range(27)]), "max_t": 27}


def test_asha_uses_a_third_of_fifo_and_finds_the_same_best(storage):
    fifo = fit(storage, trainables.learning_curve, CURVES, "fifo", metric="loss", mode="min")
    asha = fit(storage, trainables.learning_curve, CURVES, "asha", metric="loss", mode="min",
               scheduler=schedulers.ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3))
    assert total_iterations(fifo) == 27 * 27
    assert total_iterations(asha) <= total_iterations(fifo) / 3
    best_fifo = fifo.get_best_result().metrics["loss"]
    best_asha = asha.get_best_result().metrics["loss"]
    assert best_asha <= best_fifo * 1.05
    early = [r for r in asha if r.metrics["training_iteration"] < 27]
    assert early and all(r.stop_reason.startswith("scheduler: rung") and "cut-off" in r.stop_reason for r in early)
    show = query(asha.experiment_path, "SELECT count(*) FROM trials WHERE stop_reason LIKE 'scheduler: rung%'")
    assert show[0][0] == len(early)


def test_adaptive_asha_finds_the_rung_that_predicts_the_end(storage):
    # 27 configs whose early order is the reverse of their final one; the best (q = 0) comes
    # 22nd. ASHA stops it at t = 1; the adaptive scheduler has measured by then that only t >= 9
    # predicts the end, so it judges new trials there.
    space = {"q": tune.grid_search([((i + 6) * 10 % 27) / 26 for i in range(27)]), "max_t": 27}
    asha = fit(storage, trainables.crossing_curve, space, "asha_x", metric="loss", mode="min",
               scheduler=schedulers.ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3),
               max_concurrent_trials=2)
    adaptive = fit(storage, trainables.crossing_curve, space, "adaptive_x", metric="loss", mode="min",
                   scheduler=schedulers.AdaptiveASHAScheduler(max_t=27, grace_period=1, reduction_factor=3),
                   max_concurrent_trials=2)
    assert asha.get_best_result().metrics["loss"] > 0
    best = adaptive.get_best_result()
    assert best.config["q"] == 0 and best.metrics["loss"] == 0
    assert total_iterations(adaptive) <= 0.7 * 27 * 27
    # The calibration trials (every other one of the first twelve) ran to the end whatever their scores.
    assert [adaptive[i].metrics["training_iteration"] for i in (0, 2, 4, 6, 8, 10)] == [27] * 6
    assert adaptive[21].config["q"] == 0 and adaptive[21].metrics["training_iteration"] == 27
    assert asha[21].metrics["training_iteration"] == 1 and "rung 0 (t=1)" in asha[21].stop_reason
    late = [r for r in adaptive if "bracket 2, rung 0 (t=9)" in (r.stop_reason or "")]
    assert late and all(r.metrics["training_iteration"] == 9 for r in late), [r.stop_reason for r in adaptive]
    # The move is recorded with its reason, and `tune show` prints it.
    notes = [d for (d,) in query(adaptive.experiment_path, "SELECT detail FROM events WHERE kind = 'scheduler'")]
    assert notes and notes[-1].startswith("adaptive ASHA: new trials go to bracket 2 (first rung t=9), not bracket 0: "
                                          "the scores at t=3 agree with later ones only with Kendall tau -1.00"), notes
    shown = subprocess.run([*tune_cli(), "show", adaptive.experiment_path], capture_output=True, text=True, check=True).stdout
    assert notes[-1] in shown


def test_asha_promotion_pauses_and_resumes_from_checkpoints(storage):
    grid = fit(storage, trainables.learning_curve, CURVES, "promo", metric="loss", mode="min",
               scheduler=schedulers.ASHAPromotionScheduler(max_t=27, grace_period=1, reduction_factor=3),
               max_concurrent_trials=2)
    assert len(grid) == 27 and grid.num_errors == 0
    iters = sorted(r.metrics["training_iteration"] for r in grid)
    assert iters[-1] == 27, "the best trial was promoted all the way"
    assert sum(iters) <= 27 * 27 / 3
    best = grid.get_best_result()
    assert best.config["q"] == 0.0
    for r in grid:
        its = [m["training_iteration"] for m in r.metrics_dataframe.to_dict("records")]
        assert its == list(range(1, len(its) + 1)), "a promoted trial continues from its checkpoint"


def test_hyperband_runs_its_brackets(storage):
    grid = fit(storage, trainables.learning_curve, {"q": tune.uniform(0, 1), "max_t": 9}, "hb", metric="loss",
               mode="min", num_samples=12, scheduler=schedulers.HyperBandScheduler(max_t=9, reduction_factor=3))
    assert len(grid) == 12 and grid.num_errors == 0
    assert max(r.metrics["training_iteration"] for r in grid) == 9
    assert total_iterations(grid) < 12 * 9


def test_median_stopping_stops_bad_trials(storage):
    grid = fit(storage, trainables.learning_curve, CURVES, "median", metric="loss", mode="min", max_concurrent_trials=2,
               scheduler=schedulers.MedianStoppingRule(time_attr="training_iteration", grace_period=3,
                                                      min_samples_required=2))
    assert total_iterations(grid) < 27 * 27
    assert grid.get_best_result().config["q"] == 0.0


def _iterations_to_target(grid):
    hits = [m["training_iteration"] for r in grid for m in r.metrics_dataframe.to_dict("records") if m["mean_accuracy"] > 200]
    return min(hits) if hits else None


def test_pbt_reaches_the_toy_target_where_random_search_does_not(storage):
    """Ray's PBT toy with the settings of Ray's own example (a population of 8 perturbed every 4
    iterations): the issue asks for accuracy 200 in a median of at most 260 iterations over 5 seeds."""
    reached = []
    for seed in range(5):
        pbt = schedulers.PopulationBasedTraining(
            time_attr="training_iteration", perturbation_interval=4,
            hyperparam_mutations={"lr": tune.uniform(0.0001, 0.02)})
        # One trial at a time: the eight take turns (time-multiplexing), and the run is deterministic.
        grid = fit(storage, trainables.pbt_toy, {"lr": 0.0001, "seed": seed, "checkpoint_interval": 4}, f"pbt{seed}",
                   scheduler=pbt, metric="mean_accuracy", mode="max", num_samples=8, max_concurrent_trials=1,
                   stop={"training_iteration": 300}, search_alg=tune.search.BasicVariantGenerator(random_state=seed))
        reached.append(_iterations_to_target(grid) or 10_000)
        lineage = [step for r in grid for step in r.lineage]
        assert lineage, "PBT exploited"
        for step in lineage:
            assert 0.0001 <= step["new_config"]["lr"] < 0.02, "explored values stay in their domain"
        files = [f for f in os.listdir(grid.experiment_path) if f.startswith("pbt_policy_")]
        assert files
    # Deterministic (noise seeded per trial index and step, one trial at a time): seeds 0-4 give
    # 223, 197, 199, 210, 227. Ray 2.60's PBT on the same toy and settings: bench/quality/pbt_toy.py.
    assert all(r <= 300 for r in reached), reached
    assert statistics.median(reached) <= 260, reached
    plain = fit(storage, trainables.pbt_toy, {"lr": tune.uniform(0.0001, 0.02), "seed": 0}, "random",
                metric="mean_accuracy", mode="max", num_samples=8, stop={"training_iteration": 300})
    assert _iterations_to_target(plain) is None


def assert_exploits_at_complete_boundaries(grid, interval, trials):
    """Synchronous mode: each exploit is at a boundary every trial's result had already reached.

    The replay log is in commit order; an exploit's log entry and its event are written in one
    transaction, in the same order."""
    log = query(grid.experiment_path, "SELECT seq, trial_seq, kind, detail FROM log ORDER BY seq")
    events = [json.loads(d) for (d,) in query(
        grid.experiment_path, "SELECT detail FROM events WHERE kind = 'exploit' ORDER BY id")]
    exploit_rows = [row for row in log if row[2] == "exploit"]
    assert exploit_rows and len(exploit_rows) == len(events), "the barrier perturbed someone"
    for (at, _, _, _), e in zip(exploit_rows, events):
        boundary = e["donor_iteration"]
        assert boundary % interval == 0, e
        for trial in range(trials):
            before = [json.loads(d)["obs_progress"] for s, t, k, d in log if t == trial and k == "result" and s < at]
            assert max(before, default=0) >= boundary, (e, trial, max(before, default=0))
        assert 0.0001 <= e["new_config"]["lr"] <= 0.02


def test_synchronous_pbt_perturbs_only_when_every_trial_has_reached_the_boundary(storage):
    pbt = schedulers.PopulationBasedTraining(
        time_attr="training_iteration", perturbation_interval=4, synch=True,
        hyperparam_mutations={"lr": tune.uniform(0.0001, 0.02)})
    grid = fit(storage, trainables.pbt_toy, {"lr": tune.uniform(0.0001, 0.02), "seed": 2, "checkpoint_interval": 4},
               "synch", scheduler=pbt, metric="mean_accuracy", mode="max", num_samples=4, max_concurrent_trials=2,
               stop={"training_iteration": 40}, search_alg=tune.search.BasicVariantGenerator(random_state=2))
    assert grid.num_errors == 0 and len(grid) == 4
    assert all(r.metrics["training_iteration"] == 40 for r in grid)
    assert_exploits_at_complete_boundaries(grid, interval=4, trials=4)


def test_pbt_policy_file_replays(storage):
    pbt = schedulers.PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=5,
                                             hyperparam_mutations={"lr": tune.uniform(0.0001, 0.02)})
    grid = fit(storage, trainables.pbt_toy, {"lr": 0.0001, "seed": 1}, "pbtsrc", scheduler=pbt,
               metric="mean_accuracy", mode="max", num_samples=4, stop={"training_iteration": 120})
    exploited = [r for r in grid if r.lineage]
    assert exploited
    for r in exploited:
        # Each file is a lineage: every step continues the model the step before it produced,
        # so the donors chain and the change points never go back in time.
        with open(os.path.join(grid.experiment_path, f"pbt_policy_{r.trial_id}.txt")) as f:
            steps = [json.loads(line) for line in f]
        assert steps[-1]["trial_id"] == r.trial_id
        for a, b in zip(steps, steps[1:]):
            assert b["donor"] == a["trial_id"] and b["donor_iteration"] >= a["donor_iteration"], (a, b)
    policy = os.path.join(grid.experiment_path, f"pbt_policy_{exploited[0].trial_id}.txt")
    replay = schedulers.PopulationBasedTrainingReplay(policy)
    again = fit(storage, trainables.pbt_toy, {**replay.config, "seed": 1}, "replay", scheduler=replay,
                stop={"training_iteration": 120})
    (r,) = list(again)
    lrs = [step["new_config"]["lr"] for step in r.lineage]
    with open(policy) as f:
        assert lrs == [json.loads(line)["new_config"]["lr"] for line in f]


def test_bad_scheduler_arguments_are_refused():
    with pytest.raises(ValueError, match="mode"):
        schedulers.ASHAScheduler(metric="loss", mode="best")
    with pytest.raises(ValueError, match="min_rank_correlation"):
        schedulers.AdaptiveASHAScheduler(min_rank_correlation=2)
    with pytest.raises(ValueError, match="hyperparam_bounds"):
        schedulers.PB2(hyperparam_bounds={"lr": [1, 0]})
    with pytest.raises(TypeError, match="hyperparam_mutations.lr"):
        schedulers.PopulationBasedTraining(hyperparam_mutations={"lr": object()})


@pytest.mark.parametrize("synch", [False, True])
def test_pb2_explores_inside_its_bounds(storage, synch):
    pb2 = schedulers.PB2(time_attr="training_iteration", perturbation_interval=5, hyperparam_bounds={"lr": [0.0001, 0.02]},
                         synch=synch)
    grid = fit(storage, trainables.pbt_toy, {"lr": tune.uniform(0.0001, 0.02), "seed": 3}, f"pb2_{synch}", scheduler=pb2,
               metric="mean_accuracy", mode="max", num_samples=4, stop={"training_iteration": 60},
               max_concurrent_trials=2 if synch else None)
    assert grid.num_errors == 0 and len(grid) == 4
    steps = [s for r in grid for s in r.lineage]
    assert steps, "PB2 exploited"
    assert all(0.0001 <= s["new_config"]["lr"] <= 0.02 for s in steps)
    assert all(r.metrics["training_iteration"] == 60 for r in grid)
    if synch:
        assert_exploits_at_complete_boundaries(grid, interval=5, trials=4)
