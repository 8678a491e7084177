"""The `schedulers` section of RESULTS.md (called by bench/report.py).

Quality figures come from the latest line of `schedulers.jsonl` beside the raw file (written
by bench/quality/lc.py); decision-cost figures from the harness records of the
`sched_cost_*` workloads in raw.jsonl, like every other timing.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Optional

CROSS_TITLES = {"0": "rank-consistent", "0.5": "mild crossing", "1": "strong crossing"}
SHORT = {"random": "random search", "ray_asha": "Ray ASHA", "asha": "hyperfleet asha",
         "asha_promotion": "hyperfleet asha_promotion", "asha_adaptive": "hyperfleet asha_adaptive",
         "ray_hyperband": "Ray HyperBand",
         "hyperband": "hyperfleet hyperband"}


def load(raw_path: str, run_ids: Any) -> Optional[Dict[str, Any]]:
    """The latest quality record beside `raw_path` made by one of `run_ids` (the `bench/run`
    invocations in the raw file), if any."""
    path = os.path.join(os.path.dirname(os.path.abspath(raw_path)), "schedulers.jsonl")
    if not os.path.exists(path):
        return None
    rec = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                if r.get("type") == "schedulers_quality" and r.get("run_id") in run_ids:
                    rec = r
    return rec


def _num(x: Optional[float], digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _p(p: Optional[float]) -> str:
    if p is None:
        return "—"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _cross_head(keys: List[str]) -> str:
    return " | ".join(f"cross = {k} ({CROSS_TITLES.get(k, '')})" for k in keys)


def _latest(data: Any, pattern: str) -> Optional[str]:
    found = [n for n in data.names() if re.fullmatch(pattern, n)]
    return max(found, key=lambda n: (data.run_of(n) or "", n)) if found else None


def _ns(x: Optional[float]) -> str:
    if x is None:
        return "—"
    if x >= 10_000:
        return f"{x / 1000:,.0f} µs"
    if x >= 1000:
        return f"{x / 1000:.1f} µs"
    return f"{x:.0f} ns"


def _cost_rows(data: Any, notes: Dict[str, int]) -> List[str]:
    rows: List[str] = []
    for pattern in (r"sched_cost_lc_sim_(\d+)", r"sched_cost_lc_sim_promotion_(\d+)", r"sched_cost_ray_asha_(\d+)"):
        name = _latest(data, pattern)
        if name is None:
            continue
        recs, clean = data.timed(name)
        if name not in notes:
            notes[name] = len(notes) + 1
        ref = f"<sup>[{notes[name]}]</sup>" + ("" if clean else " ⚠ contaminated")
        res = recs[-1].get("result") if recs else None
        if not res:
            rows.append(f"| `{name}` | — | no result {ref} | — |")
            continue
        n = res.get("trials")
        waves = f"waves: {n:,} trials each report at t = 1, 3, 9, 27, 81"
        for key, who in (("asha_waves", "hyperfleet asha"), ("ray_asha_waves", "Ray ASHAScheduler"),
                         ("median_waves", "hyperfleet median stopping")):
            v = res.get(key)
            if not v:
                continue
            spread = f" ({_ns(v['ns_min'])}–{_ns(v['ns_max'])})" if v["ns_min"] != v["ns_max"] else ""
            by = v.get("by_milestone_ns")
            other = ("per wave: " + ", ".join(_ns(x) for x in by)) if by else "—"
            rows.append(f"| {waves} | {who} | {_ns(v['ns_per_result'])}{spread} {ref} | {other} |")
        for key, who in (("asha_sim", "hyperfleet asha"), ("asha_adaptive_sim", "hyperfleet asha_adaptive"),
                         ("asha_promotion_sim", "hyperfleet asha_promotion"), ("hyperband_sim", "hyperfleet hyperband")):
            v = res.get(key)
            if not v:
                continue
            spread = f" ({_ns(v['ns_min'])}–{_ns(v['ns_max'])})" if v["ns_min"] != v["ns_max"] else ""
            other = f"{v['results']:,} results"
            if v.get("choose_calls"):
                other += (f"; choose_trial_to_run: {_ns(v['choose_ns_per_call'])} per call ({v['choose_calls']:,} "
                          f"calls, {v['choose_mean_waiting']:,.0f} waiting trials shown on average)")
            other += f"; whole simulation {v['wall_s']:.3g} s"
            rows.append(f"| simulation: {v.get('trials', n):,} configs, 4 workers, no budget | {who} | "
                        f"{_ns(v['ns_per_result'])}{spread} {ref} | {other} |")
        if "timer_overhead_ns" in res and any(k.endswith("_sim") for k in res):
            rows.append(f"| (one clock reading, included in each simulation figure above) | — | "
                        f"{_ns(res['timer_overhead_ns'])} {ref} | — |")
    return rows


def section(data: Any, rec: Optional[Dict[str, Any]], notes: Dict[str, int], image: List[str]) -> List[str]:
    """Markdown lines of the section (none when nothing was measured); `image` goes after the quality tables."""
    cost = _cost_rows(data, notes)
    if rec is None and not cost:
        return []
    lines = ["## schedulers", ""]
    if rec is not None:
        p = rec["params"]
        methods: List[str] = rec["methods"]
        keys = list(rec["summary"])
        v = rec.get("versions", {})
        m = rec.get("machine", {})
        lines.append(
            f"Scheduler quality on synthetic learning curves (Hartmann-6 final losses; what, why and how to read "
            f"it: [README.md](README.md#the-schedulers-section)). Simple regret = true final loss of the config with "
            f"the best "
            f"observed loss at t = max_t; lower is better, 0 is the optimum. Median [25th–75th percentile] over "
            f"{p['seeds']} seeds; every method gets the same curves, the same config order and the same budget: "
            f"{p['budget_epochs']:,} epochs ({p['budget_evals']} × max_t = {p['max_t']}), {p['workers']} workers, "
            f"{p['configs_offered']:,} configs on offer, noise {p['noise']}.")
        lines.append("")
        lines.append(f"- Produced by `{rec.get('invocation') or '?'}` (run {rec['run_id']}), started "
                     f"{rec['start_utc']}, took {rec['elapsed_s']:.0f} s; the command: `{rec['cmd']}`.")
        vers = ", ".join(f"{name} {v[key]}" for key, name in (("ray", "Ray"), ("numpy", "numpy"), ("scipy", "scipy"))
                         if v.get(key))
        lines.append(f"- Machine: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, "
                     f"Linux {m.get('kernel', '?')}. "
                     f"Versions: {vers} (Python {v.get('python')}); commit {v.get('git_commit')}.")
        check = rec.get("fifo_check")
        if isinstance(check, list):
            lines.append(f"- ⚠ lc_sim's FIFO run disagreed with random search on {len(check)} seed(s): {check[:3]}")
        lines.append("")
        lines.append("| method | " + _cross_head(keys) + " |")
        lines.append("|---|" + "---|" * len(keys))
        for meth in methods:
            cells = []
            for k in keys:
                d = rec["summary"][k][meth]
                c = "—" if d["median"] is None else f"{_num(d['median'])} [{_num(d['q25'])}–{_num(d['q75'])}]"
                if d.get("missing"):
                    c += f" ({d['missing']} seed(s) with no config at max_t)"
                cells.append(c)
            lines.append(f"| {rec['labels'][meth]} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Paired two-sided Wilcoxon signed-rank tests over the seeds (zero differences dropped): p-value, "
                     "then on how many seeds the first method's regret was lower / higher than the second's.")
        lines.append("")
        lines.append("| comparison | " + _cross_head(keys) + " |")
        lines.append("|---|" + "---|" * len(keys))
        pairs = list(next(iter(rec["wilcoxon"].values())).keys()) if rec["wilcoxon"] else []
        for pair in pairs:
            a, b = pair.split(" vs ")
            cells = []
            for k in keys:
                t = rec["wilcoxon"][k].get(pair)
                if t is None:
                    cells.append("—")
                elif t["p"] is None:
                    cells.append(f"identical on all {t['n']} seeds")
                else:
                    cells.append(f"p = {_p(t['p'])} (lower on {t['ours_better']}, higher on {t['ours_worse']})")
            lines.append(f"| {SHORT.get(a, a)} vs {SHORT.get(b, b)} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("How the budget was spent (medians over seeds): simulated time (epochs of one worker), configs "
                     "that ran at least one epoch, configs that reached max_t, trials left paused when the budget ran "
                     "out. A synchronous method shows idle workers as a longer simulated time for the same epochs.")
        lines.append("")
        lines.append("| method | " + _cross_head(keys) + " |")
        lines.append("|---|" + "---|" * len(keys))
        for meth in methods:
            cells = []
            for k in keys:
                d = rec["summary"][k][meth]
                c = (f"time {d['sim_time_median']:,.0f}, {d['configs_median']:,.0f} configs, "
                     f"{d.get('reached_max_t_median', 0):,.0f} at max_t")
                if d.get("paused_at_end_median"):
                    c += f", {d['paused_at_end_median']:,.0f} paused"
                if d["epochs_median"] != p["budget_epochs"]:
                    c += f", {d['epochs_median']:,.0f} epochs"
                if d.get("stranded_total"):
                    c += f", {d['stranded_total']} stranded in all"
                if d.get("exhausted"):
                    c += f", ran out of configs on {d['exhausted']} seed(s)"
                cells.append(c)
            lines.append(f"| {rec['labels'][meth]} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.extend(image)
    if cost:
        lines.append("Decision cost: wall-clock time per `on_result` call (release build), median over the "
                     "repetitions (min–max). \"Waves\": every trial reports at every milestone whatever the "
                     "decision, "
                     "so each rung ends up holding every trial; \"simulation\": the controller-like loop of lc_sim, "
                     "each call timed on its own.")
        lines.append("")
        lines.append("| setting | scheduler | per result | details |")
        lines.append("|---|---|---|---|")
        lines.extend(cost)
        lines.append("")
    return lines


def make_plot(rec: Optional[Dict[str, Any]], plots_dir: str) -> List[str]:
    """schedulers.png: median regret against consumed epochs, one panel per cross value."""
    if rec is None:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001
        return []
    p = rec["params"]
    keys = list(rec["summary"])
    xs = [c * p["budget_epochs"] for c in p["checkpoints"]]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.8), sharey=True, squeeze=False)
    styles = {"random": ("#666666", ":"), "ray_asha": ("#d95f02", "--"), "asha": ("#1b9e77", "-"),
              "asha_promotion": ("#66a61e", "-"), "asha_adaptive": ("#e6ab02", "-"), "ray_hyperband": ("#e7298a", "--"), "hyperband": ("#7570b3", "-")}
    for ax, k in zip(axes[0], keys):
        for meth in rec["methods"]:
            ys = rec["summary"][k][meth].get("anytime_median") or []
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None and y > 0]
            if not pts:
                continue
            col, ls = styles.get(meth, ("black", "-"))
            # Ray's lines on top, dashed: where they coincide with ours both stay visible.
            ax.plot([a for a, _ in pts], [b for _, b in pts], marker="o", markersize=3, color=col, linestyle=ls,
                    label=SHORT.get(meth, meth), zorder=3 if meth.startswith("ray_") else 2)
        ax.set_yscale("log")
        ax.set_xlabel("epochs consumed")
        ax.set_title(f"cross = {k} ({CROSS_TITLES.get(k, '')})", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("median simple regret (log scale)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"Anytime regret on synthetic learning curves, {p['seeds']} seeds (run {rec['run_id']})",
                 fontsize=10)
    fig.tight_layout()
    os.makedirs(plots_dir, exist_ok=True)
    fig.savefig(os.path.join(plots_dir, "schedulers.png"), dpi=110)
    plt.close(fig)
    return ["schedulers.png"]


def plot_line(plots: List[str], plots_dir: str, out: str) -> List[str]:
    if "schedulers.png" not in plots:
        return []
    rel = os.path.relpath(os.path.join(plots_dir, "schedulers.png"), os.path.dirname(os.path.abspath(out)))
    return [f"![schedulers: anytime regret]({rel})", ""]
