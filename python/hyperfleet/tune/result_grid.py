"""Results of an experiment, read from its SQLite store (Ray's ``ResultGrid`` and ``Result``)."""

from __future__ import annotations

import json
import math
import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from hyperfleet._checkpoint import Checkpoint
from hyperfleet.exceptions import TrialError

_SCOPES = ("last", "avg", "last-5-avg", "last-10-avg", "all")


def _connect(experiment_path: str) -> sqlite3.Connection:
    db = os.path.join(experiment_path, "experiment.db")
    if not os.path.isfile(db):
        raise FileNotFoundError(f"{experiment_path}: no experiment here (no experiment.db)")
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def _num(x: Any) -> float:
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class Result:
    """One trial's outcome."""

    metrics: Optional[Dict[str, Any]]
    checkpoint: Optional[Checkpoint]
    error: Optional[BaseException]
    path: str
    config: Dict[str, Any] = field(default_factory=dict)
    best_checkpoints: List[Tuple[Checkpoint, Dict[str, Any]]] = field(default_factory=list)
    trial_id: str = ""
    status: str = ""
    stop_reason: Optional[str] = None
    lineage: List[Dict[str, Any]] = field(default_factory=list)
    _db: str = ""
    _seq: int = -1

    @property
    def metrics_dataframe(self) -> Any:
        """Every result of this trial as a pandas DataFrame, in order."""
        import pandas as pd

        rows = _all_results(self._db, self._seq)
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        m = {k: v for k, v in (self.metrics or {}).items() if k not in ("trial_id", "pid", "timestamp")}
        return f"Result(trial_id={self.trial_id!r}, status={self.status!r}, metrics={m!r}, path={self.path!r}, error={self.error!r})"


def _all_results(experiment_path: str, seq: int) -> List[Dict[str, Any]]:
    with _connect(experiment_path) as c:
        cur = c.execute("SELECT metrics FROM results WHERE trial_seq = ? ORDER BY id", (seq,))
        return [json.loads(r[0]) for r in cur]


class ResultGrid:
    """All trials of an experiment: iterate, index, pick the best, or get a DataFrame."""

    def __init__(self, experiment_path: str, metric: Optional[Union[str, List[str]]] = None,
                 mode: Optional[Union[str, List[str]]] = None) -> None:
        self._path = os.path.abspath(experiment_path)
        with _connect(self._path) as c:
            meta = dict(c.execute("SELECT key, value FROM experiment"))
            spec = json.loads(meta.get("spec", "{}"))
            exp = spec.get("experiment", {})
            self._metric: Optional[Union[str, List[str]]] = metric or exp.get("metric")
            self._mode: Optional[Union[str, List[str]]] = mode or exp.get("mode")
            self._status = meta.get("status", "")
            trials = c.execute(
                "SELECT seq, trial_id, config, status, error, traceback, logdir, stop_reason FROM trials ORDER BY seq"
            ).fetchall()
            lineage: Dict[int, List[Dict[str, Any]]] = {}
            for seq, detail in c.execute("SELECT trial_seq, detail FROM events WHERE kind = 'exploit' ORDER BY id"):
                lineage.setdefault(seq, []).append(json.loads(detail))
            last = dict(
                c.execute(
                    "SELECT trial_seq, metrics FROM results WHERE id IN (SELECT max(id) FROM results GROUP BY trial_seq)"
                ).fetchall()
            )
            cks: Dict[int, List[Tuple[str, Dict[str, Any]]]] = {}
            for seq, path, m in c.execute(
                "SELECT trial_seq, path, metrics FROM checkpoints WHERE deleted_at IS NULL ORDER BY id"
            ):
                cks.setdefault(seq, []).append((path, json.loads(m)))
        self._results: List[Result] = []
        for seq, tid, cfg, status, err, tb, logdir, stop_reason in trials:
            trial_cks = [(Checkpoint(os.path.join(self._path, p)), m) for p, m in cks.get(seq, [])]
            error: Optional[BaseException] = TrialError(err, tb or "") if status == "ERROR" else None
            self._results.append(
                Result(
                    metrics=json.loads(last[seq]) if seq in last else None,
                    checkpoint=trial_cks[-1][0] if trial_cks else None,
                    error=error,
                    path=os.path.join(self._path, logdir),
                    config=json.loads(cfg),
                    best_checkpoints=trial_cks,
                    trial_id=tid,
                    status=status,
                    stop_reason=stop_reason,
                    lineage=lineage.get(seq, []),
                    _db=self._path,
                    _seq=seq,
                )
            )

    @property
    def experiment_path(self) -> str:
        """The experiment folder."""
        return self._path

    @property
    def errors(self) -> List[BaseException]:
        """The errors of trials that ended in ERROR."""
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        """Trials that ended in ERROR."""
        return len(self.errors)

    @property
    def num_terminated(self) -> int:
        """Trials that ended TERMINATED."""
        return sum(1 for r in self._results if r.status == "TERMINATED")

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    def __getitem__(self, i: int) -> Result:
        return self._results[i]

    def __repr__(self) -> str:
        return f"ResultGrid(<{len(self)} trials at {self._path}>)"

    def get_best_result(
        self,
        metric: Optional[str] = None,
        mode: Optional[str] = None,
        scope: str = "last",
        filter_nan_and_inf: bool = True,
    ) -> Result:
        """The trial with the best ``metric`` under ``mode``, judged by ``scope`` (Ray's rules)."""
        if metric is None and isinstance(self._metric, list):
            raise ValueError(f"get_best_result: the experiment has several objectives {self._metric}: no single trial "
                             "is best; use get_pareto_front(), or pass metric='...' and mode='min'|'max'")
        metric = metric or self._metric  # type: ignore[assignment]
        mode = mode or self._mode  # type: ignore[assignment]
        if not metric or not mode:
            raise ValueError(
                "get_best_result: no metric/mode given and the experiment has none; pass metric='...' and mode='min'|'max'"
            )
        if mode not in ("min", "max"):
            raise ValueError(f"get_best_result(mode=...): expected 'min' or 'max', got {mode!r}")
        if scope not in _SCOPES:
            raise ValueError(f"get_best_result(scope=...): expected one of {_SCOPES}, got {scope!r}")
        best: Optional[Result] = None
        best_v = math.nan
        for r in self._results:
            if scope == "last":
                v = _num((r.metrics or {}).get(metric))
            else:
                values = [_num(m.get(metric)) for m in _all_results(self._path, r._seq) if metric in m]
                if not values:
                    continue
                if scope == "all":
                    v = (min if mode == "min" else max)(values)
                else:
                    n = {"avg": len(values), "last-5-avg": 5, "last-10-avg": 10}[scope]
                    tail = values[-n:]
                    v = sum(tail) / len(tail)
            if filter_nan_and_inf and not math.isfinite(v):
                continue
            if math.isnan(v):
                continue
            if best is None or (v < best_v if mode == "min" else v > best_v):
                best, best_v = r, v
        if best is None:
            raise RuntimeError(f"get_best_result: no trial reported a finite `{metric}`")
        return best

    def get_pareto_front(self, metric: Optional[List[str]] = None, mode: Optional[List[str]] = None) -> List[Result]:
        """The trials no other trial dominates on ``metric`` (each under its ``mode``), by their last results.

        A trial dominates another when it is at least as good on every metric and better on one.
        Defaults to the experiment's objectives; trials lacking a finite value of some metric are
        left out. Sorted by the first metric, best first.
        """
        metrics = metric if metric is not None else self._metric
        modes = mode if mode is not None else self._mode
        if isinstance(metrics, str):
            metrics = [metrics]
        if isinstance(modes, str):
            modes = [modes]
        if not metrics or not modes or len(metrics) != len(modes):
            raise ValueError("get_pareto_front: expected metric=[...] and mode=[...] of the same length (or an "
                             f"experiment with several objectives), got metric={metrics!r}, mode={modes!r}")
        for m in modes:
            if m not in ("min", "max"):
                raise ValueError(f"get_pareto_front(mode=...): expected 'min' or 'max' for each metric, got {m!r}")
        points: List[Tuple[List[float], Result]] = []
        for r in self._results:
            vals = [_num((r.metrics or {}).get(k)) for k in metrics]
            if all(math.isfinite(v) for v in vals):
                # Lower is better on every axis.
                points.append(([v if md == "min" else -v for v, md in zip(vals, modes)], r))

        def dominates(a: List[float], b: List[float]) -> bool:
            return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

        front = [(p, r) for p, r in points if not any(dominates(q, p) for q, _ in points)]
        front.sort(key=lambda pr: pr[0])
        return [r for _, r in front]

    def get_dataframe(self, filter_metric: Optional[str] = None, filter_mode: Optional[str] = None) -> Any:
        """One row per trial: its last result, ``config/...`` columns and ``logdir``."""
        import pandas as pd

        rows = []
        for r in self._results:
            metrics = r.metrics
            if filter_metric and filter_mode:
                values = [m for m in _all_results(self._path, r._seq) if math.isfinite(_num(m.get(filter_metric)))]
                if values:
                    pick = min if filter_mode == "min" else max
                    metrics = pick(values, key=lambda m: _num(m.get(filter_metric)))
            row: Dict[str, Any] = dict(metrics or {})
            row.setdefault("trial_id", r.trial_id)
            for k, v in _flatten(r.config).items():
                row[f"config/{k}"] = v
            row["logdir"] = r.path
            row["status"] = r.status
            rows.append(row)
        return pd.DataFrame(rows)


def _flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}/{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out
