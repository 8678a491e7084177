"""Stoppers (Ray's ``ray.tune.stopper``): decide per result whether a trial, or everything, stops."""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["Stopper", "MaximumIterationStopper"]


class Stopper:
    """Subclass and implement ``__call__(trial_id, result)`` and optionally ``stop_all()``."""

    def __call__(self, trial_id: str, result: Dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        """Whether the whole experiment should stop now."""
        return False


class MaximumIterationStopper(Stopper):
    """Stops each trial after ``max_iter`` iterations."""

    def __init__(self, max_iter: int) -> None:
        self._max_iter = max_iter

    def __call__(self, trial_id: str, result: Dict[str, Any]) -> bool:
        return int(result.get("training_iteration", 0)) >= self._max_iter
