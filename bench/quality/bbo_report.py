"""Tabulates searcher quality runs (searchers/examples/bbo.rs and bench/peers/bbo_optuna.py output).

    python bench/quality/bbo_report.py runs.jsonl [--md out.md] [--plots DIR] [--budgets 50,100,200]

Each input line is one run: tool, func, method, seed, regret (simple regret after each trial).
For every function and budget it prints the median simple regret (and IQR) of each
tool/method, and two-sided Wilcoxon signed-rank tests pairing hyperfleet's TPE with Optuna's
TPE by seed, and hyperfleet's CMA-ES with Optuna's where Optuna's ran (scipy when installed,
else the normal approximation with tie correction). Each verdict column says which is better at
p < 0.05, or "tie"; the last column does the same for the hyperfleet searcher with the lowest
median at that budget against Optuna's TPE. With --plots it draws anytime
regret (median, log scale) per function.
"""

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict


def wilcoxon(a, b):
    """Two-sided p-value of the Wilcoxon signed-rank test on paired samples (zero differences dropped)."""
    d = [x - y for x, y in zip(a, b) if x != y]
    if not d:
        return 1.0
    try:
        from scipy.stats import wilcoxon as w

        return float(w(a, b).pvalue)
    except Exception:
        pass
    n = len(d)
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks = [0.0] * n
    i = 0
    ties = 0.0
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        r = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = r
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    w_plus = sum(r for r, x in zip(ranks, d) if x > 0)
    mean = n * (n + 1) / 4
    var = n * (n + 1) * (2 * n + 1) / 24 - ties / 48
    if var <= 0:
        return 1.0
    z = (w_plus - mean) / math.sqrt(var)
    return math.erfc(abs(z) / math.sqrt(2))


def fmt(x):
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--md", help="write the markdown table here (default: stdout)")
    ap.add_argument("--plots", help="folder for anytime-regret PNGs")
    ap.add_argument("--budgets", default="50,100,200")
    args = ap.parse_args(argv)
    runs = defaultdict(dict)  # (func, tool/method) -> seed -> regret list
    for line in open(args.runs):
        if line.strip():
            r = json.loads(line)
            runs[(r["func"], f"{r['tool']}/{r['method']}")][r["seed"]] = r["regret"]
    funcs = list(dict.fromkeys(f for f, _ in runs))
    columns = sorted({c for _, c in runs}, key=lambda c: (not c.startswith("hyperfleet"), c))
    budgets = [int(b) for b in args.budgets.split(",")]
    # Like against like (hyperfleet's TPE and CMA-ES against Optuna's), where Optuna's ran.
    pairs = [m for m in ("tpe", "cmaes") if any(c == f"optuna/{m}" for _, c in runs)]
    out = ["| function | trials | " + " | ".join(columns) + " | "
           + " | ".join(f"hyperfleet/{m} vs optuna/{m} (Wilcoxon)" for m in pairs)
           + " | best hyperfleet searcher vs optuna/tpe |",
           "|---|---|" + "---|" * len(columns) + "---|" * len(pairs) + "---|"]

    def paired(ours, theirs, b):
        """Wilcoxon verdict of two methods' regrets at budget b, paired by seed (None: too few)."""
        common = sorted(s for s in ours if s in theirs and len(ours[s]) >= b and len(theirs[s]) >= b)
        if len(common) < 5:
            return None
        a = [ours[s][b - 1] for s in common]
        o = [theirs[s][b - 1] for s in common]
        p = wilcoxon(a, o)
        better = statistics.median(x - y for x, y in zip(a, o))
        who = "tie" if p >= 0.05 else ("hyperfleet better" if better < 0 else "Optuna better")
        return p, who, len(common)

    summary = []
    for f in funcs:
        for b in budgets:
            cells = []
            meds = {}
            for c in columns:
                seeds = runs.get((f, c), {})
                vals = [v[b - 1] for v in seeds.values() if len(v) >= b]
                if not vals:
                    cells.append("—")
                    continue
                q = statistics.quantiles(vals, n=4) if len(vals) > 1 else [vals[0]] * 3
                meds[c] = statistics.median(vals)
                cells.append(f"{fmt(meds[c])} ({fmt(q[0])}–{fmt(q[2])})")
            verdicts = []
            for m in pairs:
                v = paired(runs.get((f, f"hyperfleet/{m}"), {}), runs.get((f, f"optuna/{m}"), {}), b)
                verdicts.append("—" if v is None else f"p = {v[0]:.2g}, {v[1]} (n = {v[2]})")
                if v is not None and m == "tpe":
                    summary.append((f, b, v[1]))
            # The best of hyperfleet's searchers (lowest median) against Optuna's TPE.
            best_verdict = "—"
            ours_cols = [c for c in meds if c.startswith("hyperfleet/") and c != "hyperfleet/random"]
            if ours_cols and "optuna/tpe" in meds:
                bc = min(ours_cols, key=lambda c: meds[c])
                v = paired(runs[(f, bc)], runs.get((f, "optuna/tpe"), {}), b)
                if v is not None:
                    best_verdict = f"{bc.split('/')[1]}: p = {v[0]:.2g}, {v[1]}"
            out.append(f"| {f} | {b} | " + " | ".join(cells + verdicts) + f" | {best_verdict} |")
    text = "\n".join(out) + "\n"
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    if args.plots:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("note: no matplotlib, no plots", file=sys.stderr)
            return 0
        import os

        os.makedirs(args.plots, exist_ok=True)
        for f in funcs:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            for c in columns:
                seeds = runs.get((f, c))
                if not seeds:
                    continue
                n = min(len(v) for v in seeds.values())
                med = [statistics.median(v[i] for v in seeds.values()) for i in range(n)]
                ax.plot(range(1, n + 1), [max(m, 1e-12) for m in med], label=c)
            ax.set_yscale("log")
            ax.set_xlabel("trials")
            ax.set_ylabel("median simple regret")
            ax.set_title(f)
            ax.legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(os.path.join(args.plots, f"searchers_{f}.png"), dpi=90)
            plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
