"""Time per suggestion of Optuna's samplers with N completed trials on a 5-D continuous space.

    bench/.venv-peers/bin/python bench/peers/suggest_optuna.py --sizes 100,1000,3000 --asks 21

The same protocol as searchers/examples/suggest_latency.rs: a fresh in-memory study is pre-filled
with N COMPLETE trials at uniform random points of x0..x4 ~ U(-5, 5) with value sum(x_i^2)
(study.add_trials: the same state as having run them). Then `asks` times, timed together:
study.ask(distributions) (which samples all 5 parameters) and study.tell(trial, value). The
first ask is reported apart (it builds the sampler's caches); the median is over the rest.
Samplers: TPESampler() (Optuna 5.0's default: multivariate for one objective), TPESampler
(multivariate=False), RandomSampler(). Prints `RESULT_JSON {...}`.
"""

import argparse
import json
import random
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,3000")
    ap.add_argument("--asks", type=int, default=21)
    args = ap.parse_args()
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {f"x{i}": FloatDistribution(-5.0, 5.0) for i in range(5)}

    def f(p):
        return sum(v * v for v in p.values())

    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=0),
        "tpe_independent": lambda: optuna.samplers.TPESampler(seed=0, multivariate=False),
        "random": lambda: optuna.samplers.RandomSampler(seed=0),
    }
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        rng = random.Random(n)
        prefill = []
        for _ in range(n):
            p = {k: rng.uniform(-5.0, 5.0) for k in dists}
            prefill.append(create_trial(params=p, distributions=dists, value=f(p)))
        for name, make in samplers.items():
            study = optuna.create_study(sampler=make())
            study.add_trials(prefill)
            times = []
            for _ in range(args.asks):
                t = time.perf_counter()
                trial = study.ask(dists)
                study.tell(trial, f(trial.params))
                times.append((time.perf_counter() - t) * 1000)
            rest = times[1:]
            print(f"{name:16} N={n:5} first={times[0]:8.3f} ms  median={statistics.median(rest):8.3f} ms", flush=True)
            results.append({"method": name, "n_completed": n, "first_ask_ms": times[0],
                            "median_ask_ms": statistics.median(rest), "min_ask_ms": min(rest), "max_ask_ms": max(rest)})
    print("RESULT_JSON " + json.dumps({"optuna_version": optuna.__version__, "dim": 5, "results": results}), flush=True)


if __name__ == "__main__":
    main()
