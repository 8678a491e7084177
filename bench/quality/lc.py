"""Scheduler quality on synthetic learning curves: hyperfleet's ASHA, ASHA promotion and
HyperBand against Ray Tune 2.60's ASHAScheduler and HyperBandScheduler and against random
search, at equal consumed epochs, on the very same curves.

    bench/.venv-peers/bin/python bench/quality/lc.py                 # 30 seeds (~15 s on 2 cores)
    bench/.venv-peers/bin/python bench/quality/lc.py --seeds 3       # a smoke test
    .venv/bin/python bench/quality/lc.py --no-ray                    # ours and random only
    bench/.venv-peers/bin/python bench/quality/lc.py --ray-cost      # Ray ASHA's decision cost

Needs numpy; Ray 2.60 unless --no-ray; scipy for the Wilcoxon test (a normal approximation
with tie correction stands in without it). Ours run in `target/release/examples/lc_sim`
(`cargo build --release -p hyperfleet-scheduler --example lc_sim`).

The curves. A config is x ~ U[0,1]^6; its final loss is f(x) = hartmann6(x) - hartmann6(x*) >= 0
(0 at the known optimum). Its loss after t epochs is

    L(x, t) = f(x) + 4 exp(-t / tau(x)) + noise * z(x, t) / sqrt(t),   z ~ N(0, 1) i.i.d.
    tau(x)  = 1 + 40 * cross * (1 - q)^2,   q = clip(f(x) / 3.32, 0, 1)

so with cross = 0 every config converges within a few epochs (early ranks are final ranks);
with cross > 0 the good configs converge slowly and early losses favour bad ones (cross = 1:
the best configs need ~40 epochs, the worst ~1). Each seed draws its configs and noise once
(numpy default_rng([seed, 0]) and ([seed, 1])) and they are shared by the three cross values;
L is computed in advance for t = 1..max_t, rounded to 1e-6, and the same numbers go to every
method (to lc_sim as JSON).

The budget: max_t = 81 and budget_evals * max_t epochs (30 * 81 = 2430), W = 4 workers, each
epoch one time unit. Configs are offered in the same order to every method (the first
--configs of the seed's list). Methods:

- random: the first budget_evals configs trained to max_t (what FIFO does with that budget;
  checked against lc_sim's FIFO run).
- ray_asha / ray_hyperband: Ray's ASHAScheduler(max_t=81, grace_period=1, reduction_factor=3)
  and HyperBandScheduler(max_t=81, reduction_factor=3) objects driven by the event simulation
  below (stand-in trials and controller; no cluster), which follows Ray's TuneController:
  up to 200 PENDING trials are created ahead (its default for random search), every free
  worker takes the trial choose_trial_to_run returns, else the first PENDING one; STOP ends a
  trial with on_trial_complete, PAUSE frees the worker, trials the scheduler stops while paused
  go through the controller's stop_trial (on_trial_remove).
- asha / asha_promotion / asha_adaptive / hyperband: ours, the same settings, simulated by lc_sim, which
  drives them exactly as hyperfleet's controller does (trials created when a worker asks).

Both simulations: an epoch counts when it starts and none starts once the budget is spent;
workers freed at the same time are served in worker order. Simple regret: f(x) of the config
with the lowest observed loss at t = max_t among those that reached it (none reached it:
missing). Pairs are by seed; the Wilcoxon signed-rank test is two-sided.

Output: a summary on stdout and, with --out-jsonl, one JSON line appended with the
parameters, per-seed regrets, the summary and the tests (bench/report.py renders it).
"""

from __future__ import annotations

import argparse
import datetime
import heapq
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LC_SIM = os.path.join("target", "release", "examples", "lc_sim")

# Hartmann-6 (Dixon & Szegö), minimum -3.32237 at a known point in [0,1]^6.
H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                 [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]], dtype=float)
H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]], dtype=float)
H6_MIN = -3.32236801141551

METHODS = ["random", "ray_asha", "asha", "asha_promotion", "asha_adaptive", "ray_hyperband", "hyperband"]
LABELS = {
    "random": "random search (no early stopping)",
    "ray_asha": "Ray ASHAScheduler",
    "asha": "hyperfleet asha",
    "asha_promotion": "hyperfleet asha_promotion",
    "asha_adaptive": "hyperfleet asha_adaptive",
    "ray_hyperband": "Ray HyperBandScheduler",
    "hyperband": "hyperfleet hyperband",
}
# Paired tests: (ours, theirs).
PAIRS = [("asha", "ray_asha"), ("asha_promotion", "ray_asha"), ("asha_adaptive", "ray_asha"),
         ("hyperband", "ray_hyperband"), ("asha", "random"), ("asha_promotion", "random"),
         ("asha_adaptive", "random"), ("hyperband", "random"),
         ("ray_asha", "random"), ("ray_hyperband", "random")]
CHECKPOINTS = (0.125, 0.25, 0.5, 0.75, 1.0)  # fractions of the budget for anytime regret


def hartmann6(x: np.ndarray) -> np.ndarray:
    """Hartmann-6 of each row of x (n, 6)."""
    d = ((x[:, None, :] - H6_P[None, :, :]) ** 2 * H6_A[None, :, :]).sum(axis=2)
    return -(H6_ALPHA[None, :] * np.exp(-d)).sum(axis=1)


def make_curves(seed: int, cross: float, n: int, max_t: int, noise: float):
    """Loss curves (n, max_t) for t = 1..max_t and the final losses f (n,)."""
    x = np.random.default_rng([seed, 0]).random((n, 6))
    z = np.random.default_rng([seed, 1]).standard_normal((n, max_t))
    f = np.maximum(hartmann6(x) - H6_MIN, 0.0)
    q = np.clip(f / 3.32, 0.0, 1.0)
    tau = 1.0 + 40.0 * cross * (1.0 - q) ** 2
    t = np.arange(1, max_t + 1, dtype=float)
    loss = f[:, None] + 4.0 * np.exp(-t[None, :] / tau[:, None]) + noise * z / np.sqrt(t)[None, :]
    return np.round(loss, 6), f


# ---------------------------------------------------------------- Ray's schedulers, simulated

class MockTrial:
    """What Ray's schedulers read of a trial."""

    __slots__ = ("idx", "trial_id", "status", "is_saving", "done", "last")

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.trial_id = f"t{idx:05d}"
        self.status = "PENDING"
        self.is_saving = False
        self.done = 0
        self.last: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        return self.trial_id


class MockController:
    """The TuneController methods Ray's schedulers call (get_trials, stop_trial)."""

    def __init__(self, sched: Any) -> None:
        self.sched = sched
        self.live: Dict[int, MockTrial] = {}  # creation order; ended trials leave
        self.pending: Dict[int, MockTrial] = {}
        self.stopped_while_paused = 0

    def get_trials(self) -> List[MockTrial]:
        # Ray returns ended trials too; the schedulers here only look for PENDING/PAUSED ones.
        return list(self.live.values())

    get_live_trials = get_trials

    def end(self, t: MockTrial) -> None:
        t.status = "TERMINATED"
        self.live.pop(t.idx, None)
        self.pending.pop(t.idx, None)

    def stop_trial(self, t: MockTrial) -> None:
        # TuneController.stop_trial for a trial that is not running.
        if t.status in ("TERMINATED", "ERROR"):
            return
        assert t.status in ("PENDING", "PAUSED"), t.status
        self.sched.on_trial_remove(self, t)
        self.stopped_while_paused += 1
        self.end(t)


def ray_sim(sched: Any, curves: np.ndarray, max_t: int, workers: int, budget: int, n_configs: int,
            max_pending: int = 200, timed: bool = False) -> Dict[str, Any]:
    """Drives one Ray scheduler object over the curves; returns what lc_sim returns."""
    curves_l = curves.tolist()
    ctrl = MockController(sched)
    created: List[MockTrial] = []
    slots: List[Optional[MockTrial]] = [None] * workers
    events: List[tuple] = []
    now = used = 0
    out: Dict[str, Any] = {"best_final_loss": None, "best_final_config": None, "best_any_loss": None,
                           "incumbents": [], "results": 0, "stops": 0, "pauses": 0, "resumes": 0,
                           "resumed_at_max_t": 0, "reached_max_t": 0}
    decision_ns = 0

    def top_up() -> None:
        while len(ctrl.pending) < max_pending and len(created) < n_configs:
            t = MockTrial(len(created))
            created.append(t)
            ctrl.live[t.idx] = t
            ctrl.pending[t.idx] = t
            sched.on_trial_add(ctrl, t)

    def start(t: MockTrial, w: int) -> None:
        nonlocal used
        slots[w] = t
        heapq.heappush(events, (now + 1, w))
        used += 1

    def fill() -> None:
        top_up()
        while used < budget:
            free = [w for w in range(workers) if slots[w] is None]
            if not free:
                return
            t = sched.choose_trial_to_run(ctrl)
            if t is None and ctrl.pending:
                t = next(iter(ctrl.pending.values()))
            if t is None:
                return
            assert t.status in ("PENDING", "PAUSED"), (t, t.status)
            ctrl.pending.pop(t.idx, None)
            if t.done >= max_t:  # resumed with nothing left: the trainable returns at once
                out["resumed_at_max_t"] += 1
                sched.on_trial_complete(ctrl, t, t.last)
                ctrl.end(t)
                continue
            if t.done > 0:
                out["resumes"] += 1
            t.status = "RUNNING"
            start(t, free[0])
            top_up()

    fill()
    while events:
        now, w = heapq.heappop(events)
        t = slots[w]
        slots[w] = None
        if t.status != "RUNNING":  # ended meanwhile
            continue
        t.done += 1
        step = t.done
        y = curves_l[t.idx][step - 1]
        if out["best_any_loss"] is None or y < out["best_any_loss"]:
            out["best_any_loss"] = y
        if step == max_t:
            out["reached_max_t"] += 1
        if step == max_t and (out["best_final_loss"] is None or y < out["best_final_loss"]):
            out["best_final_loss"], out["best_final_config"] = y, t.idx
            out["incumbents"].append([used, now, t.idx, y])
        result = {"training_iteration": step, "loss": y}
        if timed:
            t0 = time.perf_counter_ns()
            d = sched.on_trial_result(ctrl, t, result)
            decision_ns += time.perf_counter_ns() - t0
        else:
            d = sched.on_trial_result(ctrl, t, result)
        out["results"] += 1
        t.last = result
        if d == "CONTINUE":
            if step >= max_t:
                sched.on_trial_complete(ctrl, t, result)
                ctrl.end(t)
            elif used < budget:
                start(t, w)
        elif d == "STOP":
            out["stops"] += 1
            sched.on_trial_complete(ctrl, t, result)
            ctrl.end(t)
        elif d == "PAUSE":
            out["pauses"] += 1
            t.status = "PAUSED"
        else:
            raise RuntimeError(f"unexpected decision {d!r}")
        fill()
    paused = sum(1 for t in ctrl.live.values() if t.status == "PAUSED")
    # Budget left, nothing running and nothing Ray would start: the paused trials wait forever
    # (Ray's controller would hang; hyperfleet's ends them as "stranded").
    stalled = used < budget
    out.update(epochs=used, sim_time=now, configs_started=sum(1 for t in created if t.done > 0),
               configs_created=len(created), stopped_while_paused=ctrl.stopped_while_paused,
               paused_at_end=paused, stranded=paused if stalled else 0,
               configs_exhausted=len(created) >= n_configs and not ctrl.pending,
               decision_ns=decision_ns)
    return out


def ray_asha(max_t: int):
    from ray.tune.schedulers import ASHAScheduler
    return ASHAScheduler(metric="loss", mode="min", time_attr="training_iteration", max_t=max_t,
                         grace_period=1, reduction_factor=3)


def ray_hyperband(max_t: int):
    from ray.tune.schedulers import HyperBandScheduler
    return HyperBandScheduler(metric="loss", mode="min", time_attr="training_iteration", max_t=max_t,
                              reduction_factor=3)


# ---------------------------------------------------------------- ours

def our_runs(max_t: int, evals: int) -> List[Dict[str, Any]]:
    asha = {"max_t": max_t, "grace_period": 1, "reduction_factor": 3}
    return [
        {"name": "fifo", "scheduler": {"kind": "fifo"}, "max_configs": evals},
        {"name": "asha", "scheduler": {"kind": "asha", **asha}},
        {"name": "asha_promotion", "scheduler": {"kind": "asha_promotion", **asha}},
        {"name": "asha_adaptive", "scheduler": {"kind": "asha_adaptive", **asha}},
        {"name": "hyperband", "scheduler": {"kind": "hyperband", "max_t": max_t, "reduction_factor": 3}},
    ]


def start_lc_sim(lc_sim: str, job: Dict[str, Any], tmp: str) -> subprocess.Popen:
    path = os.path.join(tmp, "job.json")
    with open(path, "w") as f:
        json.dump(job, f)
    return subprocess.Popen([lc_sim, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_lc_sim(p: subprocess.Popen) -> Dict[str, Any]:
    out, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"lc_sim failed (exit {p.returncode}): {err.strip()}")
    return json.loads(out)["runs"]


# ---------------------------------------------------------------- statistics

def regret_at(run: Dict[str, Any], f: np.ndarray, epochs: float) -> float:
    """Regret of the incumbent once `epochs` epochs had been consumed (NaN before any)."""
    best = None
    for used, _time, cfg, _loss in run["incumbents"]:
        if used <= epochs:
            best = cfg
    return float(f[best]) if best is not None else float("nan")


def wilcoxon(ours: List[float], theirs: List[float]) -> Dict[str, Any]:
    """Two-sided paired Wilcoxon signed-rank test (zero differences dropped)."""
    a, b = np.asarray(ours, float), np.asarray(theirs, float)
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    nz = d[d != 0]
    res: Dict[str, Any] = {"n": int(len(d)), "nonzero": int(len(nz)), "ours_better": int((d < 0).sum()),
                           "ours_worse": int((d > 0).sum()),
                           "median_diff": float(np.median(d)) if len(d) else None, "p": None}
    if len(nz) == 0:
        res["test"] = "identical on every seed"
        return res
    try:
        from scipy.stats import wilcoxon as sp_wilcoxon
        r = sp_wilcoxon(a[keep], b[keep], zero_method="wilcox", alternative="two-sided")
        res["p"], res["test"] = float(r.pvalue), "scipy.stats.wilcoxon"
    except ImportError:
        absd = np.abs(nz)
        order = np.argsort(absd, kind="mergesort")
        ranks = np.empty(len(nz))
        sorted_abs = absd[order]
        i = 0
        ties = 0.0
        while i < len(nz):
            j = i
            while j + 1 < len(nz) and sorted_abs[j + 1] == sorted_abs[i]:
                j += 1
            ranks[order[i:j + 1]] = (i + j) / 2 + 1
            c = j - i + 1
            ties += c ** 3 - c
            i = j + 1
        n = len(nz)
        w = ranks[nz > 0].sum()
        var = n * (n + 1) * (2 * n + 1) / 24 - ties / 48
        z = (w - n * (n + 1) / 4) / math.sqrt(var) if var > 0 else 0.0
        res["p"], res["test"] = math.erfc(abs(z) / math.sqrt(2)), "normal approximation (scipy missing)"
    return res


def describe(v: List[float]) -> Dict[str, Any]:
    a = np.asarray(v, float)
    ok = a[~np.isnan(a)]
    if not len(ok):
        return {"median": None, "q25": None, "q75": None, "n": 0, "missing": int(len(a))}
    return {"median": float(np.median(ok)), "q25": float(np.percentile(ok, 25)),
            "q75": float(np.percentile(ok, 75)), "n": int(len(ok)), "missing": int(len(a) - len(ok))}


# ---------------------------------------------------------------- the benchmark

def run_quality(args: argparse.Namespace) -> Dict[str, Any]:
    max_t, w, evals = args.max_t, args.workers, args.budget_evals
    budget = max_t * evals
    n_configs = args.configs or budget // 2
    lc_sim = args.lc_sim
    if not os.path.isabs(lc_sim):
        lc_sim = os.path.join(ROOT, lc_sim)
    if not os.access(lc_sim, os.X_OK):
        sys.exit(f"lc.py: {lc_sim} not found: build it with "
                 "`cargo build --release -p hyperfleet-scheduler --example lc_sim`")
    methods = [m for m in METHODS if args.ray or not m.startswith("ray_")]
    crosses = [float(c) for c in args.cross.split(",")]
    per_seed: Dict[str, Dict[str, List[float]]] = {}
    anytime: Dict[str, Dict[str, List[List[float]]]] = {}
    extras: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    fifo_mismatch: List[str] = []
    t_ray = t_ours = 0.0
    with tempfile.TemporaryDirectory(prefix="lc_") as tmp:
        for cross in crosses:
            key = f"{cross:g}"
            per_seed[key] = {m: [] for m in methods}
            anytime[key] = {m: [] for m in methods}
            extras[key] = {m: {"epochs": [], "sim_time": [], "configs": [], "stranded": [], "exhausted": [],
                               "paused_at_end": [], "reached_max_t": []} for m in methods}
            for seed in range(args.seeds):
                curves, f = make_curves(seed, cross, n_configs, max_t, args.noise)
                job = {"max_t": max_t, "n_workers": w, "budget_epochs": budget, "seed": seed,
                       "max_configs": n_configs, "curves": curves.tolist(), "f_inf": f.tolist(),
                       "runs": our_runs(max_t, evals)}
                t0 = time.perf_counter()
                proc = start_lc_sim(lc_sim, job, tmp)  # runs beside Ray's simulations
                runs: Dict[str, Dict[str, Any]] = {}
                if args.ray:
                    np.random.seed(seed)  # Ray's ASHA draws a bracket from numpy's global generator
                    t1 = time.perf_counter()
                    runs["ray_asha"] = ray_sim(ray_asha(max_t), curves, max_t, w, budget, n_configs)
                    runs["ray_hyperband"] = ray_sim(ray_hyperband(max_t), curves, max_t, w, budget, n_configs)
                    t_ray += time.perf_counter() - t1
                ours = finish_lc_sim(proc)
                t_ours += time.perf_counter() - t0
                runs.update(ours)
                for r in runs.values():
                    if "configs_exhausted" not in r:
                        r["configs_exhausted"] = r.get("no_more_trials_at") is not None
                # Random search: the first `evals` configs trained to max_t.
                final = curves[:evals, max_t - 1]
                best = int(np.argmin(final))
                runs["random"] = {"best_final_config": best, "epochs": evals * max_t, "reached_max_t": evals,
                                  "sim_time": math.ceil(evals / w) * max_t, "configs_started": evals, "stranded": 0,
                                  "configs_exhausted": False,
                                  "incumbents": [[evals * max_t, 0, best, float(final[best])]]}
                fifo = ours["fifo"]
                if fifo["best_final_config"] != best or fifo["epochs"] != evals * max_t:
                    fifo_mismatch.append(f"cross {key} seed {seed}: lc_sim fifo chose {fifo['best_final_config']} "
                                         f"after {fifo['epochs']} epochs, random {best}")
                else:
                    runs["random"]["incumbents"] = fifo["incumbents"]  # the same trainings, as they completed
                runs["random"]["sim_time"] = fifo["sim_time"]
                for m in methods:
                    r = runs[m]
                    cfg = r.get("best_final_config")
                    per_seed[key][m].append(float(f[cfg]) if cfg is not None else float("nan"))
                    anytime[key][m].append([regret_at(r, f, c * budget) for c in CHECKPOINTS])
                    ex = extras[key][m]
                    ex["epochs"].append(r["epochs"])
                    ex["sim_time"].append(r["sim_time"])
                    ex["configs"].append(r.get("configs_started", 0))
                    ex["stranded"].append(r.get("stranded", 0))
                    ex["exhausted"].append(bool(r.get("configs_exhausted")))
                    ex["paused_at_end"].append(r.get("paused_at_end", 0))
                    ex["reached_max_t"].append(r.get("reached_max_t", 0))
                msg = "  ".join(f"{m}={per_seed[key][m][-1]:.3f}" for m in methods)
                print(f"cross={key} seed={seed:2d} ({time.perf_counter() - t0:.1f} s): {msg}", flush=True)

    summary: Dict[str, Any] = {}
    tests: Dict[str, Any] = {}
    for key in per_seed:
        summary[key] = {}
        for m in methods:
            d = describe(per_seed[key][m])
            ex = extras[key][m]
            at = np.asarray(anytime[key][m], float)
            d.update(epochs_median=float(np.median(ex["epochs"])), sim_time_median=float(np.median(ex["sim_time"])),
                     configs_median=float(np.median(ex["configs"])), stranded_total=int(np.sum(ex["stranded"])),
                     exhausted=int(np.sum(ex["exhausted"])),
                     paused_at_end_median=float(np.median(ex["paused_at_end"])),
                     reached_max_t_median=float(np.median(ex["reached_max_t"])),
                     anytime_median=[None if np.all(np.isnan(col)) else float(np.nanmedian(col)) for col in at.T])
            summary[key][m] = d
        tests[key] = {f"{a} vs {b}": wilcoxon(per_seed[key][a], per_seed[key][b])
                      for a, b in PAIRS if a in methods and b in methods}
    return {"params": {"seeds": args.seeds, "cross": crosses, "max_t": max_t, "workers": w, "budget_evals": evals,
                       "budget_epochs": budget, "configs_offered": n_configs, "noise": args.noise,
                       "ray_max_pending": 200, "checkpoints": list(CHECKPOINTS),
                       "schedulers": {"asha": "max_t=81, grace_period=1, reduction_factor=3, 1 bracket",
                                      "hyperband": "max_t=81, reduction_factor=3"}},
            "methods": methods, "labels": {m: LABELS[m] for m in methods}, "summary": summary, "wilcoxon": tests,
            "per_seed": per_seed, "fifo_check": fifo_mismatch or "lc_sim's FIFO chose the random-search config "
            "on every seed", "sim_seconds": {"ray": round(t_ray, 1), "ours_incl_json": round(t_ours, 1)}}


def ray_cost(args: argparse.Namespace) -> Dict[str, Any]:
    """Ray ASHA's on_trial_result cost in the "waves" setting of lc_sim --cost."""
    milestones = [1, 3, 9, 27, 81]
    rng = np.random.default_rng(7)
    n = args.trials
    q = rng.random(n) * 3.3
    tau = 1.0 + 20.0 * (1.0 - q / 3.3) ** 2
    per_rep = []
    for _ in range(args.reps):
        np.random.seed(0)
        sched = ray_asha(81)
        ctrl = MockController(sched)
        trials = [MockTrial(i) for i in range(n)]
        for t in trials:
            sched.on_trial_add(ctrl, t)
        total = 0
        for m in milestones:
            losses = (q + 4.0 * np.exp(-m / tau)).tolist()
            results = [{"training_iteration": m, "loss": y} for y in losses]
            t0 = time.perf_counter_ns()
            for t, r in zip(trials, results):
                sched.on_trial_result(ctrl, t, r)
            total += time.perf_counter_ns() - t0
        per_rep.append(total / (n * len(milestones)))
    import ray
    return {"trials": n, "reps": args.reps, "ray": ray.__version__,
            "ray_asha_waves": {"ns_per_result": float(np.median(per_rep)), "ns_min": min(per_rep),
                               "ns_max": max(per_rep), "results": n * len(milestones)}}


def _machine() -> Dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu_model": cpu, "cores": os.cpu_count(), "kernel": platform.release()}


def _versions() -> Dict[str, Any]:
    out: Dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("ray", "scipy"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                           timeout=10)
        out["git_commit"] = r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


def print_summary(res: Dict[str, Any]) -> None:
    methods = res["methods"]
    print(f"\nsimple regret, median [IQR] over {res['params']['seeds']} seeds; budget "
          f"{res['params']['budget_epochs']} epochs, {res['params']['workers']} workers")
    for key, s in res["summary"].items():
        print(f"cross={key}")
        for m in methods:
            d = s[m]
            med = "—" if d["median"] is None else f"{d['median']:.3f} [{d['q25']:.3f}, {d['q75']:.3f}]"
            print(f"  {m:<15} {med:<26} epochs {d['epochs_median']:.0f}  sim time {d['sim_time_median']:.0f}  "
                  f"configs {d['configs_median']:.0f}  at max_t {d['reached_max_t_median']:.0f}  "
                  f"paused at end {d['paused_at_end_median']:.0f}  missing {d['missing']}  "
                  f"stranded {d['stranded_total']}  exhausted {d['exhausted']}")
        for pair, t in res["wilcoxon"][key].items():
            p = "—" if t["p"] is None else f"{t['p']:.3g}"
            print(f"  {pair:<30} p={p:<8} better/worse {t['ours_better']}/{t['ours_worse']} "
                  f"of {t['n']}  ({t['test']})")
    print(f"check: {res['fifo_check']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--cross", default="0,0.5,1")
    ap.add_argument("--max-t", type=int, default=81)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--budget-evals", type=int, default=30, help="budget in full trainings (x max_t epochs)")
    ap.add_argument("--configs", type=int, default=0, help="configs on offer (default: budget epochs / 2)")
    ap.add_argument("--noise", type=float, default=0.02)
    ap.add_argument("--no-ray", dest="ray", action="store_false", help="ours and random search only")
    ap.add_argument("--lc-sim", default=LC_SIM)
    ap.add_argument("--out-jsonl", default=None, help="append the results as one JSON line")
    ap.add_argument("--run-id", default=None)
    ap.add_argument("--invocation", default="")
    ap.add_argument("--ray-cost", action="store_true", help="only time Ray ASHA's decisions (RESULT_JSON line)")
    ap.add_argument("--trials", type=int, default=10000, help="--ray-cost: trials")
    ap.add_argument("--reps", type=int, default=3, help="--ray-cost: repetitions")
    args = ap.parse_args()
    if args.ray_cost:
        print("RESULT_JSON " + json.dumps(ray_cost(args)), flush=True)
        return
    if args.ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            sys.exit("lc.py: Ray is not importable here: run it with the peers' python "
                     "(bench/.venv-peers/bin/python) or pass --no-ray")
    start = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    res = run_quality(args)
    elapsed = time.perf_counter() - t0
    print_summary(res)
    print(f"done in {elapsed:.0f} s")
    if args.out_jsonl:
        argv = [os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else
                os.path.basename(sys.executable), os.path.relpath(os.path.abspath(__file__), ROOT), *sys.argv[1:]]
        rec = {"type": "schedulers_quality", "run_id": args.run_id or start.strftime("%Y%m%dT%H%M%SZ"),
               "invocation": args.invocation, "cmd": shlex.join(argv),
               "start_utc": start.isoformat(timespec="seconds"), "elapsed_s": round(elapsed, 1),
               "machine": _machine(), "versions": _versions(), **res}
        os.makedirs(os.path.dirname(os.path.abspath(args.out_jsonl)), exist_ok=True)
        with open(args.out_jsonl, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"appended to {args.out_jsonl}")


if __name__ == "__main__":
    main()
