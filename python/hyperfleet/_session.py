"""The worker-side runtime: ``report``, ``get_checkpoint`` and ``get_context`` inside a trial."""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Optional

from hyperfleet._checkpoint import Checkpoint


class _StopTrial(BaseException):
    """Raised inside ``report()`` when the trial is told to stop; the worker catches it."""


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    item = getattr(x, "item", None)  # numpy scalars, 0-d tensors
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(x, "tolist", None)
    if callable(tolist):
        return _jsonable(tolist())
    return str(x)


class TrainContext:
    """What a running trial knows about itself (Ray's ``get_context()``)."""

    def __init__(self, msg: Dict[str, Any]) -> None:
        self._m = msg

    def get_trial_id(self) -> str:
        """The trial's id."""
        return str(self._m["trial_id"])

    def get_trial_name(self) -> str:
        """The trial's name."""
        return str(self._m["trial_name"])

    def get_trial_dir(self) -> str:
        """The trial's folder."""
        return str(self._m["trial_dir"])

    def get_experiment_name(self) -> str:
        """The experiment's name."""
        return str(self._m["experiment_name"])

    def get_world_rank(self) -> int:
        """This worker's rank in its group."""
        return int(self._m.get("rank", 0))

    def get_world_size(self) -> int:
        """Workers in the group."""
        return int(self._m.get("world_size", 1))

    def get_local_rank(self) -> int:
        """Rank among the group's workers on this node."""
        return int(self._m.get("local_rank", self._m.get("rank", 0)))

    def get_local_world_size(self) -> int:
        """The group's workers on this node."""
        return int(self._m.get("local_world_size", self._m.get("world_size", 1)))

    def get_node_rank(self) -> int:
        """This node's rank among the group's nodes."""
        return int(self._m.get("node_rank", 0))

    def get_trial_resources(self) -> Dict[str, Any]:
        """The visible GPU devices of this worker."""
        return {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}


class _Session:
    def __init__(self, msg: Dict[str, Any], wfile: Any, rfile: Any) -> None:
        self.msg = msg
        self.wfile = wfile
        self.rfile = rfile
        self.context = TrainContext(msg)
        ck = msg.get("checkpoint")
        self.checkpoint: Optional[Checkpoint] = Checkpoint(ck) if ck else None
        self.iteration = int(msg.get("iteration", 0))
        self.stopped = False

    def send(self, obj: Dict[str, Any]) -> None:
        self.wfile.write(json.dumps(obj, allow_nan=False).encode() + b"\n")
        self.wfile.flush()

    def report(self, metrics: Dict[str, Any], checkpoint: Optional[Checkpoint]) -> None:
        if self.stopped:
            raise _StopTrial()
        if not isinstance(metrics, dict):
            raise TypeError(f"report(metrics): expected a dict of metrics, got {type(metrics).__name__}")
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        self.send({"t": "report", "metrics": _jsonable(metrics), "checkpoint": checkpoint.path if checkpoint else None})
        line = self.rfile.readline()
        if not line:
            raise SystemExit("hyperfleet: the driver went away")
        reply = json.loads(line)
        self.iteration += 1
        if reply.get("stop"):
            self.stopped = True
            raise _StopTrial()


_current: Optional[_Session] = None


def _require() -> _Session:
    if _current is None:
        raise RuntimeError("hyperfleet: report()/get_checkpoint() can only be called inside a trial run by Tuner.fit()")
    return _current


def report(metrics: Dict[str, Any], *, checkpoint: Optional[Checkpoint] = None) -> None:
    """Records a result (durably) and, with ``checkpoint``, persists that directory; returns when recorded.

    If the trial is told to stop (a stop criterion or the scheduler), this raises an internal
    exception that ends the trainable; do not catch ``BaseException`` around it.
    """
    _require().report(metrics, checkpoint)


def get_checkpoint() -> Optional[Checkpoint]:
    """The latest checkpoint of this trial when it is retried or resumed, else ``None``."""
    return _require().checkpoint


def get_context() -> TrainContext:
    """The running trial's context (ids, names, ranks)."""
    return _require().context
