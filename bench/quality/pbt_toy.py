"""PBT on Ray's toy problem, hyperfleet or Ray Tune 2.60, same trainable and noise: iterations to target.

    .venv/bin/python bench/quality/pbt_toy.py --tool hyperfleet --population 8 --interval 4 --seeds 5
    bench/.venv-peers/bin/python bench/quality/pbt_toy.py --tool ray --population 8 --interval 4 --seeds 5

The toy (Ray's `pbt_function` example): accuracy grows fastest when `lr` tracks an optimum that
moves with accuracy; every trial starts at lr = 0.0001 and PBT mutates lr within
uniform(0.0001, 0.02), perturbing every `interval` iterations (checkpoints at the same interval).
The noise of each step is seeded by the seed, the step and the trial's index, so both tools see
the same noise for the same trial and step. For each seed it prints one JSON line: the first
`training_iteration` at which any trial's accuracy exceeded 200 (null when none did within
300 iterations), and the median over seeds at the end. `--concurrent N` runs N trials at a time
(the rest take turns).
"""

import argparse
import json
import os
import random
import statistics
import tempfile


def step_accuracy(accuracy, lr, rng):
    midpoint, q_tolerance, noise_level = 100, 3, 2
    if accuracy < midpoint:
        optimal_lr = 0.01 * accuracy / midpoint
    else:
        optimal_lr = 0.01 - 0.01 * (accuracy - midpoint) / midpoint
    optimal_lr = min(0.01, max(0.001, optimal_lr))
    q_err = max(lr, optimal_lr) / min(lr, optimal_lr)
    if q_err < q_tolerance:
        accuracy += (1.0 / q_err) * rng.random()
    elif lr > optimal_lr:
        accuracy -= (q_err - q_tolerance) * rng.random()
    accuracy += noise_level * rng.gauss(0, 1)
    return max(0.0, accuracy)


def make_trainable(tune, interval):
    def toy(config):
        accuracy, step = 0.0, 1
        ck = tune.get_checkpoint()
        if ck is not None:
            with ck.as_directory() as d, open(os.path.join(d, "state.json")) as f:
                state = json.load(f)
            accuracy, step = state["acc"], state["step"] + 1
        trial = int(tune.get_context().get_trial_id().rsplit("_", 1)[1])
        while True:
            rng = random.Random(config["seed"] * 1_000_003 + step * 7919 + trial * 104_729)
            accuracy = step_accuracy(accuracy, config["lr"], rng)
            metrics = {"mean_accuracy": accuracy, "cur_lr": config["lr"], "step": step}
            if step % interval == 0:
                with tempfile.TemporaryDirectory() as d:
                    with open(os.path.join(d, "state.json"), "w") as f:
                        json.dump({"acc": accuracy, "step": step}, f)
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            else:
                tune.report(metrics)
            step += 1

    return toy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", choices=["hyperfleet", "ray"], required=True)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--interval", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--concurrent", type=int, default=1)
    args = ap.parse_args()
    if args.tool == "ray":
        import ray
        from ray import tune
        from ray.tune.schedulers import PopulationBasedTraining

        ray.init(num_cpus=args.concurrent, include_dashboard=False, log_to_driver=False)
    else:
        from hyperfleet import tune
        from hyperfleet.tune.schedulers import PopulationBasedTraining
    reached = []
    for seed in range(args.seeds):
        # Each tool's PBT draws from its own generator: Ray's from Python's `random`, ours from the
        # experiment seed (given through the searcher), so both are seeded per run.
        random.seed(seed)
        extra = {} if args.tool == "ray" else {"search_alg": tune.search.BasicVariantGenerator(random_state=seed)}
        pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=args.interval,
                                      hyperparam_mutations={"lr": tune.uniform(0.0001, 0.02)})
        storage = tempfile.mkdtemp(prefix="pbt-toy-")
        grid = tune.Tuner(
            make_trainable(tune, args.interval),
            param_space={"lr": 0.0001, "seed": seed},
            tune_config=tune.TuneConfig(metric="mean_accuracy", mode="max", num_samples=args.population,
                                        max_concurrent_trials=args.concurrent, scheduler=pbt, **extra),
            run_config=tune.RunConfig(name="pbt_toy", storage_path=storage, verbose=0,
                                      stop={"training_iteration": 300}),
        ).fit()
        hits = []
        for r in grid:
            df = r.metrics_dataframe
            if df is None or len(df) == 0:
                continue
            for it, acc in zip(df["training_iteration"], df["mean_accuracy"]):
                if acc > 200:
                    hits.append(int(it))
        first = min(hits) if hits else None
        reached.append(first if first is not None else 10_000)
        print(json.dumps({"tool": args.tool, "population": args.population, "interval": args.interval,
                          "concurrent": args.concurrent, "seed": seed, "iterations_to_200": first}), flush=True)
    print(json.dumps({"tool": args.tool, "median_iterations_to_200": statistics.median(reached),
                      "reached": sum(r < 10_000 for r in reached), "seeds": args.seeds}), flush=True)


if __name__ == "__main__":
    main()
