"""Optimisation quality of Optuna's samplers on the test functions of searchers/examples/bbo.rs.

    bench/.venv-peers/bin/python bench/peers/bbo_optuna.py --funcs branin --samplers tpe --seeds 20 --trials 200

For each function, sampler and seed, runs `trials` trials sequentially (study.optimize, in
memory) and prints one JSON line per run with the simple regret (best value so far minus the
known optimum) after each trial. Samplers: `tpe` = TPESampler(seed=seed) (Optuna 5.0's
default: multivariate for one objective, constant liar), `random`, `cmaes` =
CmaEsSampler(seed=seed) when the `cmaes` package is installed (its warning about parameters it
samples independently, the categorical ones, silenced), `qmc` = QMCSampler(seed=seed).
Same functions and domains as the Rust example (including its four variants with integer,
log-scale, categorical and ignored coordinates), so runs pair by seed.
"""

import argparse
import json
import math


def branin(x):
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s


A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
     [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(x):
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6))) for i in range(4))


def rosenbrock(x):
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


def levy(x):
    w = [1 + (v - 1) / 4 for v in x]
    mid = sum((wi - 1) ** 2 * (1 + 10 * math.sin(math.pi * wi + 1) ** 2) for wi in w[:-1])
    return math.sin(math.pi * w[0]) ** 2 + mid + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)


def styblinski_tang(x):
    return sum(v ** 4 - 16 * v * v + 5 * v for v in x) / 2


def ackley(x):
    d = len(x)
    s1 = sum(v * v for v in x) / d
    s2 = sum(math.cos(2 * math.pi * v) for v in x) / d
    return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e


def _u(bounds):
    return [("float", lo, hi) for lo, hi in bounds]


_INTS = list(range(-5, 6))
_ST_INT_BEST = min((v ** 4 - 16 * v * v + 5 * v) / 2 for v in _INTS)

# name: (domains, the best value over them, function, coordinates the function reads)
FUNCS = {
    "branin": (_u([(-5.0, 10.0), (0.0, 15.0)]), 0.397887357729738, branin, 2),
    "hartmann6": (_u([(0.0, 1.0)] * 6), -3.32236801141551, hartmann6, 6),
    "rosenbrock5": (_u([(-5.0, 10.0)] * 5), 0.0, rosenbrock, 5),
    "levy10": (_u([(-10.0, 10.0)] * 10), 0.0, levy, 10),
    "styblinski_tang10": (_u([(-5.0, 5.0)] * 10), -39.16616570377142 * 10, styblinski_tang, 10),
    "ackley10": (_u([(-32.768, 32.768)] * 10), 0.0, ackley, 10),
    "branin_int": ([("int", -5, 10), ("int", 0, 15)],
                   min(branin([a, b]) for a in range(-5, 11) for b in range(0, 16)), branin, 2),
    "hartmann6_log": ([("log", 1e-3, 1.0)] * 6, -3.32236801141551, hartmann6, 6),
    "styblinski_tang10_cat": ([("cat", _INTS)] * 5 + _u([(-5.0, 5.0)] * 5),
                              5 * _ST_INT_BEST - 39.16616570377142 * 5, styblinski_tang, 10),
    "ackley10_dummy": (_u([(-32.768, 32.768)] * 10 + [(0.0, 1.0)] * 10), 0.0, ackley, 10),
}


def _suggest(trial, i, d):
    kind = d[0]
    if kind == "float":
        return trial.suggest_float(f"x{i}", d[1], d[2])
    if kind == "int":
        return trial.suggest_int(f"x{i}", d[1], d[2])
    if kind == "log":
        return trial.suggest_float(f"x{i}", d[1], d[2], log=True)
    return trial.suggest_categorical(f"x{i}", d[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--funcs", default=",".join(FUNCS))
    ap.add_argument("--samplers", default="tpe")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=200)
    args = ap.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    make = {
        "tpe": lambda s: optuna.samplers.TPESampler(seed=s),
        "random": lambda s: optuna.samplers.RandomSampler(seed=s),
        "cmaes": lambda s: optuna.samplers.CmaEsSampler(seed=s, warn_independent_sampling=False),
        "qmc": lambda s: optuna.samplers.QMCSampler(seed=s),
    }
    for name in args.funcs.split(","):
        dims, opt, f, used = FUNCS[name]
        for sampler in args.samplers.split(","):
            for seed in range(args.seeds):
                study = optuna.create_study(sampler=make[sampler](seed))
                best = math.inf
                regret = []

                def objective(trial):
                    return f([_suggest(trial, i, d) for i, d in enumerate(dims)][:used])

                def track(study, trial):
                    nonlocal best
                    best = min(best, trial.value)
                    regret.append(best - opt)

                study.optimize(objective, n_trials=args.trials, callbacks=[track])
                print(json.dumps({"tool": "optuna", "func": name, "method": sampler, "seed": seed, "regret": regret}),
                      flush=True)


if __name__ == "__main__":
    main()
