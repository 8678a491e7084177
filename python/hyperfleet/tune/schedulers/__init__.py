"""Trial schedulers (Ray's ``ray.tune.schedulers``)."""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["TrialScheduler", "FIFOScheduler"]


class TrialScheduler:
    """Base of the schedulers; each is configured here and runs in the Rust core."""

    def to_spec(self) -> Dict[str, Any]:
        """The `[scheduler]` table."""
        raise TypeError(f"{type(self).__name__} cannot run in hyperfleet: use one of hyperfleet.tune.schedulers")


class FIFOScheduler(TrialScheduler):
    """Runs every trial to completion, in creation order."""

    def to_spec(self) -> Dict[str, Any]:
        return {"kind": "fifo"}
