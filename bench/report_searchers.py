"""The `searchers` section of RESULTS.md (called by bench/report.py).

Quality: the table bench/quality/bbo_report.py wrote to `searchers.md` beside the raw file (from
`searchers.jsonl`: searchers/examples/bbo.rs and bench/peers/bbo_optuna.py, paired by seed).
Suggestion latency: the harness records of the `suggest_hyperfleet` and `suggest_optuna`
workloads (searchers/examples/suggest_latency.rs, bench/peers/suggest_optuna.py), whose
RESULT_JSON holds the median time of a whole ask/tell per method and N.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional

TITLES = {"tpe": "TPE (multivariate; Optuna 5.0's default)", "tpe_independent": "TPE, independent",
          "random": "random"}


def _latest(data: Any, pattern: str) -> Optional[str]:
    found = [n for n in data.names() if re.fullmatch(pattern, n)]
    return max(found, key=lambda n: (data.run_of(n) or "", n)) if found else None


def _medians(data: Any, name: Optional[str]) -> Dict[Any, float]:
    """(method, N) -> median ask time in ms, from the latest clean records of a workload."""
    if name is None:
        return {}
    recs, _ = data.timed(name)
    out: Dict[Any, List[float]] = {}
    for r in recs:
        for row in (r.get("result") or {}).get("results", []):
            out.setdefault((row["method"], row["n_completed"]), []).append(row["median_ask_ms"])
    return {k: sorted(v)[len(v) // 2] for k, v in out.items()}


def section(data: Any, raw_path: str, notes: Dict[str, int], plots: List[str], plots_dir: str,
            out: str) -> List[str]:
    lines: List[str] = []
    md = os.path.join(os.path.dirname(os.path.abspath(raw_path)), "searchers.md")
    hf_name, op_name = _latest(data, r"suggest_hyperfleet"), _latest(data, r"suggest_optuna")
    if not os.path.exists(md) and hf_name is None:
        return lines
    lines.append("## searchers")
    lines.append("")
    if hf_name or op_name:
        hf, op = _medians(data, hf_name), _medians(data, op_name)
        for name in (hf_name, op_name):
            if name and name not in notes:
                notes[name] = len(notes) + 1
        refs = " ".join(f"<sup>[{notes[n]}]</sup>" for n in (hf_name, op_name) if n)
        lines.append(f"Time per suggestion (a whole ask and tell), 5-D continuous space, N completed trials, "
                     f"median of 20 asks after the first {refs}:")
        lines.append("")
        lines.append("| searcher | N | hyperfleet | Optuna 5.0 | Optuna / hyperfleet |")
        lines.append("|---|---|---|---|---|")
        for key in sorted(set(hf) | set(op), key=lambda k: (list(TITLES).index(k[0]) if k[0] in TITLES else 9, k[1])):
            a, b = hf.get(key), op.get(key)
            ratio = f"{b / a:,.0f}×" if a and b else "—"
            fa = f"{a:.3f} ms" if a is not None else "—"
            fb = f"{b:.3f} ms" if b is not None else "—"
            lines.append(f"| {TITLES.get(key[0], key[0])} | {key[1]:,} | {fa} | {fb} | {ratio} |")
        lines.append("")
    if os.path.exists(md):
        lines.append("Optimisation quality: median simple regret (IQR) over seeds paired across methods (n in the "
                     "test columns), "
                     "sequential trials; Wilcoxon signed-rank test against Optuna 5.0's TPE "
                     "(`bench/quality/bbo_report.py searchers.jsonl`):")
        lines.append("")
        with open(md) as f:
            lines.extend(f.read().rstrip("\n").split("\n"))
        lines.append("")
        imgs = sorted(p for p in plots if p.startswith("searchers_"))
        for img in imgs:
            rel = os.path.relpath(os.path.join(plots_dir, img), os.path.dirname(os.path.abspath(out)))
            lines.append(f"![{img[10:-4]}]({rel})")
        if imgs:
            lines.append("")
    return lines
