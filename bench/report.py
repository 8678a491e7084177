"""Writes bench/RESULTS.md (and plots) from the harness's raw JSON lines.

    python bench/report.py --raw bench/results/raw.jsonl --out bench/RESULTS.md --plots bench/results

Every figure comes from raw.jsonl: for each workload the report takes the latest run
(`bench/run` invocation) that measured it, and from that run the timed repetitions that
exited 0 and were not contaminated by other work on the machine (warm-ups are dropped).
It shows the median and, in brackets, min–max. Ratios compare hyperfleet with a peer only
when both figures come from the same run. Beneath the table, each figure's source: the
`bench/run` command, the date and the exact command line the harness ran.

Plots (PNG, in --plots) are drawn when matplotlib is importable; otherwise skipped.

The `schedulers` section (bench/report_schedulers.py) also reads `schedulers.jsonl` beside the
raw file: the scheduler-quality results of bench/quality/lc.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
from typing import Any, Callable, Dict, List, Optional, Tuple

import report_schedulers  # the `schedulers` section (bench/report_schedulers.py)
import report_searchers  # the `searchers` section (bench/report_searchers.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("hyperfleet", "ray", "optuna")
TOOL_TITLES = {"hyperfleet": "hyperfleet", "ray": "Ray Tune", "optuna": "Optuna"}


# ---------------------------------------------------------------- metrics

def _wall(r: Dict[str, Any]) -> Optional[float]:
    return r.get("wall_s")


def _tps(r: Dict[str, Any]) -> Optional[float]:
    return (r.get("result") or {}).get("trials_per_s")


def _pss(r: Dict[str, Any]) -> Optional[float]:
    return r.get("peak_pss_mb")


def _nproc(r: Dict[str, Any]) -> Optional[float]:
    return r.get("peak_nproc")


def _rps(r: Dict[str, Any]) -> Optional[float]:
    return (r.get("result") or {}).get("results_per_s")


def _overhead(r: Dict[str, Any]) -> Optional[float]:
    return (r.get("result") or {}).get("overhead_pct")


def _first_trial(r: Dict[str, Any]) -> Optional[float]:
    return (r.get("result") or {}).get("to_first_new_trial_s")


def _first_started(r: Dict[str, Any]) -> Optional[float]:
    return (r.get("result") or {}).get("to_first_new_trial_started_s")


# metric id -> (getter, unit, higher_is_better, format)
METRICS: Dict[str, Tuple[Callable[[Dict[str, Any]], Optional[float]], str, bool]] = {
    "wall": (_wall, "s", False),
    "tps": (_tps, "trials/s", True),
    "pss": (_pss, "MB", False),
    "nproc": (_nproc, "processes", False),
    "rps": (_rps, "results/s", True),
    "overhead_pct": (_overhead, "%", False),
    "first_trial_s": (_first_trial, "s", False),
    "first_started_s": (_first_started, "s", False),
}

# The table: each row pairs one workload per tool (a regex on the workload name; the one
# with the smallest N when several match, or the largest with "pick": "largest"; for names
# ending in _TxR, N is T) and one metric. The ratio column is hyperfleet against each peer
# ("ratio": False: none; "points": the peer's figure minus hyperfleet's, for percentages).
# "vs": {"hyperfleet": regex, "title": ..., "target": x}: also the ratio of that other
# hyperfleet workload's figure (same pick, same run) to this row's, e.g. durable / relaxed.
ROWS: List[Dict[str, Any]] = [
    {"section": "startup", "label": "Startup: whole process, import + 1-trial experiment (Python API)", "metric": "wall",
     "hyperfleet": r"startup_hyperfleet", "ray": r"startup_ray", "optuna": r"startup_optuna"},
    {"section": "startup", "label": "Startup: the same 1-trial experiment through the CLI (`tune run file.toml`)",
     "metric": "wall", "hyperfleet": r"startup_hyperfleet_cli"},
    {"section": "startup", "label": "Startup: peak PSS, all processes", "metric": "pss",
     "hyperfleet": r"startup_hyperfleet", "ray": r"startup_ray", "optuna": r"startup_optuna"},
    {"section": "tiny", "label": "Tiny trials, 2 at a time, reused workers (Ray: `reuse_actors=True`); "
     "Optuna: SQLite storage, random sampler", "metric": "tps",
     "hyperfleet": r"tiny_hyperfleet_(\d+)", "ray": r"tiny_ray_reuse_(\d+)", "optuna": r"tiny_optuna_sqlite_random_(\d+)"},
    {"section": "tiny", "label": "Tiny trials; Optuna: SQLite storage, TPE sampler (its default)", "metric": "tps",
     "hyperfleet": r"tiny_hyperfleet_(\d+)", "optuna": r"tiny_optuna_sqlite_tpe_(\d+)"},
    {"section": "tiny", "label": "Tiny trials; Optuna: in memory (nothing durable), random sampler", "metric": "tps",
     "hyperfleet": r"tiny_hyperfleet_(\d+)", "optuna": r"tiny_optuna_memory_random_(\d+)"},
    {"section": "tiny", "label": "Tiny trials; Optuna: in memory (nothing durable), TPE sampler", "metric": "tps",
     "hyperfleet": r"tiny_hyperfleet_(\d+)", "optuna": r"tiny_optuna_memory_tpe_(\d+)"},
    {"section": "tiny", "label": "Tiny trials, a fresh worker process per trial (`reuse_actors=False`; Ray's default)",
     "metric": "tps", "hyperfleet": r"tiny_hyperfleet_noreuse_(\d+)", "ray": r"tiny_ray_noreuse_(\d+)"},
    {"section": "tiny", "label": "Tiny trials, hyperfleet with more trials", "metric": "tps",
     "hyperfleet": r"tiny_hyperfleet_(\d+)", "pick": "largest"},
    {"section": "tiny", "label": "Memory during the tiny-trial run: peak PSS summed over all processes; "
     "Optuna: SQLite, random", "metric": "pss",
     "hyperfleet": r"tiny_hyperfleet_(\d+)", "ray": r"tiny_ray_reuse_(\d+)", "optuna": r"tiny_optuna_sqlite_random_(\d+)"},
    {"section": "tiny", "label": "Memory during the tiny-trial run; Optuna: in memory, TPE", "metric": "pss",
     "hyperfleet": r"tiny_hyperfleet_(\d+)", "optuna": r"tiny_optuna_memory_tpe_(\d+)"},
    {"section": "tiny", "label": "Processes during the tiny-trial run (most at once)", "metric": "nproc", "ratio": False,
     "hyperfleet": r"tiny_hyperfleet_(\d+)", "ray": r"tiny_ray_reuse_(\d+)", "optuna": r"tiny_optuna_sqlite_random_(\d+)"},
]
_TP_HF = r"throughput_hyperfleet_durable_(\d+)x(\d+)"
_TP_HF_RELAXED = r"throughput_hyperfleet_relaxed_(\d+)x(\d+)"
_TP_FULL = ("Result throughput, few trials (T×R: T trials reporting R results each, all at once, 2/T CPU each), "
            "end to end; hyperfleet: every result durable before report() returns; Ray Tune: `tune.report` in a "
            "loop, nothing fsynced; Optuna: `trial.report` only (no pruning decision), n_jobs=T threads, SQLite storage "
            "(durable)")
for _pick, _what in (("smallest", "few trials"), ("largest", "more trials")):
    ROWS += [
        {"section": "throughput", "pick": _pick, "metric": "rps",
         "label": _TP_FULL if _pick == "smallest" else "Result throughput, more trials (the same settings)",
         "hyperfleet": _TP_HF, "ray": r"throughput_ray_(\d+)x(\d+)", "optuna": r"throughput_optuna_sqlite_(\d+)x(\d+)"},
        {"section": "throughput", "pick": _pick, "metric": "rps",
         "label": f"Result throughput, {_what}; Optuna: in memory (nothing durable)",
         "hyperfleet": _TP_HF, "optuna": r"throughput_optuna_memory_(\d+)x(\d+)"},
        {"section": "throughput", "pick": _pick, "metric": "rps",
         "label": f"Result throughput, {_what}, hyperfleet with `durability=\"relaxed\"` (report() returns once "
                  "the result is queued for the store); ratio: the cost of durability, durable ÷ relaxed "
                  "(target ≥ 0.80)",
         "hyperfleet": _TP_HF_RELAXED,
         "vs": {"hyperfleet": _TP_HF, "title": "durable ÷ relaxed", "target": 0.80}},
    ]
ROWS += [
    {"section": "overhead", "metric": "overhead_pct", "ratio": "points",
     "label": "Scheduling overhead: N trials that each sleep 0.5 s (quick: 0.2 s) and report once, 2 at a time "
              "(1 CPU each on 2 cores); 100 × (fit time − ideal) ÷ ideal, ideal = N/2 × sleep; Ray Tune with "
              "`reuse_actors=True`, `ray.init()` not counted; ratio column: Ray's overhead minus hyperfleet's, in "
              "percentage points",
     "hyperfleet": r"overhead_hyperfleet_(\d+)", "ray": r"overhead_ray_reuse_(\d+)"},
    {"section": "resume", "metric": "first_trial_s",
     "label": "Resume a finished experiment of N trials × 100 results (full: 10,000 trials, 1,000,000 results) "
              "with `tune run --resume --num-samples N+1`: seconds from launching it to the creation of the "
              "first new trial (target < 2 s). No peer: Ray Tune's `Tuner.restore` continues unfinished "
              "trials but cannot extend a finished experiment with more trials",
     "hyperfleet": r"resume_hyperfleet_(\d+)"},
    {"section": "resume", "metric": "first_started_s",
     "label": "Resume, the same: seconds from launching it to the start of the first new trial",
     "hyperfleet": r"resume_hyperfleet_(\d+)"},
]


# ---------------------------------------------------------------- data

class Data:
    def __init__(self, path: str) -> None:
        self.runs: Dict[str, Dict[str, Any]] = {}
        self.ends: Dict[str, Dict[str, Any]] = {}
        self.records: List[Dict[str, Any]] = []
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                rec = json.loads(line)
                t = rec.get("type")
                if t == "run_start":
                    self.runs[rec["run_id"]] = rec
                elif t == "run_end":
                    self.ends[rec["run_id"]] = rec
                elif t == "run":
                    self.records.append(rec)
        # workload name -> records of the latest run that measured it
        self.latest: Dict[str, List[Dict[str, Any]]] = {}
        for rec in self.records:
            cur = self.latest.get(rec["name"])
            if cur is None or rec["run_id"] > cur[0]["run_id"]:
                self.latest[rec["name"]] = [rec]
            elif rec["run_id"] == cur[0]["run_id"]:
                cur.append(rec)

    def names(self) -> List[str]:
        return list(self.latest)

    def timed(self, name: str) -> Tuple[List[Dict[str, Any]], bool]:
        """The records the figures use, and whether they are clean (else contaminated ones stand in)."""
        recs = [r for r in self.latest.get(name, [])
                if not r["warmup"] and r["rc"] == 0 and r.get("result") is not None]
        clean = [r for r in recs if not r["contaminated"]]
        if clean:
            return clean, True
        # No clean attempt: the last attempt of each repetition, flagged.
        last: Dict[int, Dict[str, Any]] = {}
        for r in recs:
            if r["rep"] not in last or r["attempt"] > last[r["rep"]]["attempt"]:
                last[r["rep"]] = r
        return list(last.values()), False

    def run_of(self, name: str) -> Optional[str]:
        recs = self.latest.get(name)
        return recs[0]["run_id"] if recs else None


def stats(values: List[float]) -> Optional[Tuple[float, float, float, int]]:
    v = [x for x in values if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v), len(v)


def fmt(x: float, metric: str) -> str:
    if metric == "nproc":
        return f"{x:.0f}"
    if metric == "overhead_pct":
        return f"{x:+.1f}"
    if metric in ("tps", "rps"):
        return f"{x:,.0f}" if x >= 100 else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")
    if metric == "pss":
        return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"
    return f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def size_of(name: str) -> Optional[int]:
    """N in a name ending in _N (trials per run), or T in one ending in _TxR (T trials × R results)."""
    m = re.search(r"_(\d+)(?:x\d+)?$", name)
    return int(m.group(1)) if m else None


def size_text(name: str) -> Optional[str]:
    m = re.search(r"_(\d+)x(\d+)$", name)
    if m:
        return f"T×R={int(m.group(1)):,}×{int(m.group(2)):,}"
    sz = size_of(name)
    return None if sz is None else f"N={sz:,}"


def pick(data: Data, pattern: str, how: str = "smallest") -> Optional[str]:
    found = [n for n in data.names() if re.fullmatch(pattern, n)]
    if not found:
        return None
    found.sort(key=lambda n: (size_of(n) or 0))
    return found[-1] if how == "largest" else found[0]


# ---------------------------------------------------------------- report

def machine_lines(data: Data, run_ids: List[str]) -> List[str]:
    out = []
    for rid in run_ids:
        rs = data.runs.get(rid, {})
        end = data.ends.get(rid, {})
        m = rs.get("machine", {})
        hf = rs.get("hyperfleet_env") or {}
        pe = rs.get("peers_env") or {}
        el = end.get("elapsed_s")
        took = "" if el is None else (f", took {el / 60:.1f} min" if el >= 120 else f", took {el:.0f} s")
        commit = rs.get("git_commit") or "?"
        if rs.get("git_dirty"):
            commit += " + uncommitted changes"
        out.append(f"- **Run {rid}**: `{rs.get('invocation', '?')}`, started {rs.get('start_utc', '?')}{took}; "
                   f"commit {commit}.")
        out.append(f"  - Machine: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, "
                   f"{m.get('ram_gib', '?')} GiB RAM, Linux {m.get('kernel', '?')}.")
        vers = [f"hyperfleet {hf.get('hyperfleet')} (Python {hf.get('python')})"]
        if pe:
            vers.append(f"Ray {pe.get('ray')}, Optuna {pe.get('optuna')} (Python {pe.get('python')}; "
                        f"pandas {pe.get('pandas')}, numpy {pe.get('numpy')})")
        out.append(f"  - Versions: {'; '.join(vers)}. Memory sampler: {rs.get('sampler', '?')}.")
    return out


def cell(data: Data, name: Optional[str], metric: str, notes: Dict[str, int]) -> Tuple[str, Optional[float]]:
    if name is None:
        return "—", None
    recs, clean = data.timed(name)
    getter, unit, _ = METRICS[metric]
    st = stats([getter(r) for r in recs])
    if name not in notes:
        notes[name] = len(notes) + 1
    ref = f"<sup>[{notes[name]}]</sup>"
    if st is None:
        return f"no result {ref}", None
    med, lo, hi, n = st
    txt = f"{fmt(med, metric)} {unit}"
    if n > 1:
        txt += f" ({fmt(lo, metric)}–{fmt(hi, metric)})"
    sz = size_text(name)
    if sz is not None:
        txt += f", {sz}"
    if not clean:
        txt += " ⚠ contaminated"
    return txt + " " + ref, med


def ratio_text(metric: str, hf: Optional[float], peer: Optional[float], same_run: bool, title: str) -> Optional[str]:
    if hf is None or peer is None or hf == 0 or peer == 0:
        return None
    if not same_run:
        return f"{title}: n/a (different runs)"
    higher = METRICS[metric][2]
    r = hf / peer if higher else peer / hf
    return f"{title}: {r:,.1f}×" if r >= 1.95 else f"{title}: {r:.2f}×"


def points_text(hf: Optional[float], peer: Optional[float], same_run: bool, title: str) -> Optional[str]:
    """For percentages (lower is better): the peer's figure minus hyperfleet's, in percentage points."""
    if hf is None or peer is None:
        return None
    if not same_run:
        return f"{title}: n/a (different runs)"
    return f"{title}: {peer - hf:+.1f} points"


def vs_text(data: Data, row: Dict[str, Any], name: str, med: Optional[float]) -> Optional[str]:
    """The row's "vs" ratio: another hyperfleet workload's median over this row's (same run only)."""
    vs = row["vs"]
    other = pick(data, vs["hyperfleet"], row.get("pick", "smallest"))
    if other is None or med is None or med == 0:
        return None
    if data.run_of(other) != data.run_of(name):
        return f"{vs['title']}: n/a (different runs)"
    recs, _ = data.timed(other)
    st = stats([METRICS[row["metric"]][0](r) for r in recs])
    if st is None:
        return None
    r = st[0] / med
    met = "met" if r >= vs["target"] else "missed"
    return f"{vs['title']}: {r:.2f} (target ≥ {vs['target']:.2f}: {met})"


def detail_rows(data: Data, name: str) -> List[str]:
    recs = [r for r in data.latest.get(name, [])]
    timed, clean = data.timed(name)
    n_warm = sum(1 for r in recs if r["warmup"])
    n_cont = sum(1 for r in recs if r["contaminated"] and not r["warmup"])
    n_fail = sum(1 for r in recs if r["rc"] != 0 or r.get("result") is None)
    fields: Dict[str, List[float]] = {}
    for r in timed:
        for k, v in (r.get("result") or {}).items():
            items = [(f"{k}.{k2}", v2) for k2, v2 in v.items()] if isinstance(v, dict) else [(k, v)]
            for k2, v2 in items:
                if isinstance(v2, (int, float)) and not isinstance(v2, bool):
                    fields.setdefault(k2, []).append(float(v2))
    res = ", ".join(f"{k} {fmt_plain(statistics.median(v))}" for k, v in fields.items())
    st_w = stats([r["wall_s"] for r in timed])
    st_p = stats([r["peak_pss_mb"] for r in timed])
    st_d = stats([r.get("driver_maxrss_mb") for r in timed])
    st_rss = stats([r.get("peak_rss_sum_mb") for r in timed])
    nproc = max((r["peak_nproc"] for r in timed), default=0)
    foreign = max((r["foreign_cpu_s"] for r in timed), default=0.0)
    left = sorted({p for r in recs for p in r.get("leftover_pids", [])})
    gave_up = sum(1 for r in recs if (r.get("idle") or {}).get("gave_up"))
    extra = []
    if n_cont:
        extra.append(f"{n_cont} contaminated attempt(s) {'re-run' if clean else 'kept: no clean one'}")
    if n_fail:
        extra.append(f"{n_fail} failed (exit code ≠ 0 or no result line; see the logs)")
    if left:
        extra.append(f"processes outlived the command: {len(left)}")
    if gave_up:
        extra.append(f"{gave_up} run(s) started on a busy machine")
    return [f"| `{name}` | {len(timed)} (+{n_warm} warm-up) | "
            f"{fmt_plain(st_w[0]) if st_w else '—'} | {fmt_plain(st_p[0]) if st_p else '—'} | "
            f"{fmt_plain(st_rss[0]) if st_rss else '—'} | {fmt_plain(st_d[0]) if st_d else '—'} | {nproc} | "
            f"{foreign:.2f} | {res or '—'} | {'; '.join(extra) or 'ok'} |"]


def fmt_plain(x: float) -> str:
    if float(x).is_integer():
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def write_report(data: Data, out: str, plots: List[str], plots_dir: str,
                 sched: Optional[Dict[str, Any]] = None, raw_path: str = "") -> None:
    notes: Dict[str, int] = {}
    lines: List[str] = []
    used_runs = sorted({data.run_of(n) for n in data.names() if data.run_of(n)})
    quick = any(data.runs.get(r, {}).get("quick") for r in used_runs)
    lines.append("# hyperfleet benchmarks: results")
    lines.append("")
    lines.append("Generated by `bench/report.py` from `raw.jsonl`; do not edit by hand. "
                 "What each workload measures and how to run it: [README.md](README.md)." if not quick else
                 "Generated by `bench/report.py` from a `--quick` smoke run (small sizes, one repetition, no warm-up): "
                 "not a measurement to quote.")
    lines.append("")
    lines.append("Each cell: median of the timed repetitions (min–max), N = trials per run (T×R: trials × "
                 "results per trial), and a reference to its source below. Ratios are how many times better "
                 "hyperfleet is than the peer (faster, higher throughput or less memory; below 1 the peer is "
                 "better), from figures of the same run only; rows whose label names another comparison "
                 "(percentage points, durable ÷ relaxed) give that instead.")
    lines.append("")
    lines.extend(machine_lines(data, used_runs))
    lines.append("")
    sections = []
    for row in ROWS:
        if row["section"] not in sections:
            sections.append(row["section"])
    for section in sections:
        rows = [r for r in ROWS if r["section"] == section]
        body = []
        for row in rows:
            names = {t: (pick(data, row[t], row.get("pick", "smallest")) if t in row else None) for t in TOOLS}
            if not any(names.values()) or names["hyperfleet"] is None and not any(names[t] for t in ("ray", "optuna")):
                continue
            if row.get("pick") == "largest" and names["hyperfleet"] == pick(data, row["hyperfleet"]):
                continue  # only one size was run
            cells, meds = [], {}
            for t in TOOLS:
                c, m = cell(data, names[t], row["metric"], notes)
                cells.append(c)
                meds[t] = m
            ratios = []
            for t in ("ray", "optuna"):
                if names[t] and names["hyperfleet"] and row.get("ratio", True):
                    same_run = data.run_of(names[t]) == data.run_of(names["hyperfleet"])
                    if row.get("ratio") == "points":
                        rt = points_text(meds["hyperfleet"], meds[t], same_run, TOOL_TITLES[t])
                    else:
                        rt = ratio_text(row["metric"], meds["hyperfleet"], meds[t], same_run, TOOL_TITLES[t])
                    if rt:
                        ratios.append(rt)
            if "vs" in row and names["hyperfleet"]:
                rt = vs_text(data, row, names["hyperfleet"], meds["hyperfleet"])
                if rt:
                    ratios.append(rt)
            body.append(f"| {row['label']} | " + " | ".join(cells) + f" | {'; '.join(ratios) or '—'} |")
        if not body:
            continue
        lines.append(f"## {section}")
        lines.append("")
        lines.append("| workload | hyperfleet | Ray Tune | Optuna | ratios (hyperfleet better by) |")
        lines.append("|---|---|---|---|---|")
        lines.extend(body)
        lines.append("")
        img = f"{section}.png"
        if img in plots:
            rel = os.path.relpath(os.path.join(plots_dir, img), os.path.dirname(os.path.abspath(out)))
            lines.append(f"![{section}]({rel})")
            lines.append("")
        for extra in (f"{section}_pss.png",):
            if extra in plots:
                rel = os.path.relpath(os.path.join(plots_dir, extra), os.path.dirname(os.path.abspath(out)))
                lines.append(f"![{section}: memory over time]({rel})")
                lines.append("")

    lines.extend(report_schedulers.section(data, sched, notes,
                                           report_schedulers.plot_line(plots, plots_dir, out)))
    lines.extend(report_searchers.section(data, raw_path, notes, plots, plots_dir, out))

    lines.append("## Where each figure comes from")
    lines.append("")
    lines.append("`{tmp}` is a fresh empty folder per run (also given as `$BENCH_TMP`); commands run from the "
                 "repository root unless a folder is named.")
    lines.append("")
    for name, num in sorted(notes.items(), key=lambda kv: kv[1]):
        recs = data.latest.get(name, [])
        if not recs:
            continue
        r0 = recs[0]
        rs = data.runs.get(r0["run_id"], {})
        timed, _ = data.timed(name)
        where = f" (in `{r0['cwd']}`)" if r0.get("cwd") not in (None, "", ".") else ""
        lines.append(f"{num}. `{name}`: produced by `{r0['invocation'] or rs.get('invocation', '?')}` on "
                     f"{rs.get('start_utc', r0['start_utc'])[:10]} (run {r0['run_id']}), {len(timed)} timed "
                     f"repetition(s); the harness ran{where}:  \n   `{r0['cmd']}`")
    lines.append("")
    lines.append("## Details per workload")
    lines.append("")
    lines.append("Medians over the timed repetitions. PSS: peak of the sum over the command's process tree; "
                 "RSS sum: the same with RSS (double counts shared pages); main maxRSS: the main process alone "
                 "(kernel). Foreign CPU: the most CPU time other processes used during one repetition. Result "
                 "fields: what the workload printed (seconds unless named otherwise).")
    lines.append("")
    lines.append("| workload | runs | wall s | PSS MB | RSS sum MB | main maxRSS MB | processes | foreign CPU s | "
                 "result fields (medians) | notes |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for name in sorted(data.names(), key=lambda n: (n.split("_")[0], n)):
        lines.extend(detail_rows(data, name))
    lines.append("")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(lines))


# ---------------------------------------------------------------- plots


def make_plots(data: Data, plots_dir: str) -> List[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except Exception:  # noqa: BLE001
        print("report: matplotlib not available, no plots")
        return []
    os.makedirs(plots_dir, exist_ok=True)
    made: List[str] = []
    colours = {"hyperfleet": "#1b9e77", "ray": "#d95f02", "optuna": "#7570b3"}

    def tool_of(name: str) -> str:
        for t in TOOLS:
            if f"_{t}" in name:
                return t
        return "hyperfleet"

    panels = {
        "startup": [("wall", "whole-process wall time, s (log scale; lower is better)"),
                    ("pss", "peak PSS, all processes, MB (log scale)")],
        "tiny": [("tps", "trials/s of fit() (log scale; higher is better)"),
                 ("pss", "peak PSS, all processes, MB (log scale)")],
        "throughput": [("rps", "results/s, end to end (log scale; higher is better)"),
                       ("pss", "peak PSS, all processes, MB (log scale)")],
    }
    for section, metrics in panels.items():
        names = [n for n in data.names() if data.latest[n][0]["section"] == section]
        if not names:
            continue
        names.sort(key=lambda n: (TOOLS.index(tool_of(n)), n))
        fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 0.45 * len(names) + 1.6))
        for ax, (metric, title) in zip(axes, metrics):
            getter = METRICS[metric][0]
            ys, meds, los, his, cols = [], [], [], [], []
            for n in names:
                recs, _ = data.timed(n)
                st = stats([getter(r) for r in recs])
                if st is None:
                    continue
                ys.append(n)
                meds.append(st[0])
                los.append(st[0] - st[1])
                his.append(st[2] - st[0])
                cols.append(colours[tool_of(n)])
            if not ys:
                ax.set_visible(False)
                continue
            ax.barh(range(len(ys)), meds, xerr=[los, his], color=cols, capsize=3)
            ax.set_yticks(range(len(ys)))
            ax.set_yticklabels(ys, fontsize=8)
            ax.invert_yaxis()
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlim(min(meds) / 3, max(m + h for m, h in zip(meds, his)) * 4)
            ax.set_title(title, fontsize=9)
            for i, m in enumerate(meds):
                ax.text(m, i, " " + fmt(m, metric), va="center", fontsize=7)
        rid = max(data.run_of(n) or "" for n in names)
        fig.suptitle(f"{section}: median, whiskers min–max (latest run {rid})", fontsize=10)
        fig.tight_layout()
        fn = f"{section}.png"
        fig.savefig(os.path.join(plots_dir, fn), dpi=110)
        plt.close(fig)
        made.append(fn)

    # Memory over time of the tiny-trial runs (from the per-run sample files in the logs).
    series = []
    for n in data.names():
        if data.latest[n][0]["section"] != "tiny":
            continue
        recs, _ = data.timed(n)
        if not recs:
            continue
        log = os.path.join(ROOT, recs[0]["log"])
        path = log[: -len(".log")] + ".pss.json"
        if os.path.exists(path):
            with open(path) as f:
                series.append((n, json.load(f)["t_pss_nproc"]))
    if series:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        styles = {"hyperfleet": "-", "ray": "--", "optuna": ":"}
        cmap = plt.get_cmap("tab10")
        for i, (n, s) in enumerate(sorted(series, key=lambda x: (TOOLS.index(tool_of(x[0])), x[0]))):
            s = [p for p in s if p[2] > 0]
            if not s:
                continue
            ax.plot([p[0] for p in s], [p[1] for p in s], label=n, color=cmap(i % 10),
                    linestyle=styles[tool_of(n)], linewidth=1.2)
        ax.set_xlabel("seconds since the process started")
        ax.set_ylabel("PSS summed over the process tree, MB")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.legend(fontsize=7, ncol=2, loc="lower right")
        ax.set_title("tiny trials: memory over time (first timed repetition of each workload)", fontsize=10)
        fig.tight_layout()
        fig.savefig(os.path.join(plots_dir, "tiny_pss.png"), dpi=110)
        plt.close(fig)
        made.append("tiny_pss.png")
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--plots", default=None, help="folder for PNG plots (none if not given)")
    args = ap.parse_args()
    data = Data(args.raw)
    sched = report_schedulers.load(args.raw, data.runs)
    plots: List[str] = []
    if args.plots:
        plots = make_plots(data, args.plots)
        plots += report_schedulers.make_plot(sched, args.plots)
        plots += sorted(f for f in os.listdir(args.plots) if f.startswith("searchers_") and f.endswith(".png"))
    write_report(data, args.out, plots, args.plots or ".", sched, args.raw)
    print(f"report: wrote {args.out}" + (f" and {', '.join(plots)} in {args.plots}" if plots else ""))


if __name__ == "__main__":
    main()
