"""Callbacks (Ray's ``ray.tune.Callback``), called in the driver process."""

from __future__ import annotations

from typing import Any, Dict, List


class Callback:
    """Override what you need; ``trial`` has ``trial_id``, ``config``, ``status`` and ``last_result``."""

    def on_trial_result(self, iteration: int, trials: List[Any], trial: Any, result: Dict[str, Any], **info: Any) -> None:
        """After each recorded result."""

    def on_trial_complete(self, iteration: int, trials: List[Any], trial: Any, **info: Any) -> None:
        """When a trial ends TERMINATED."""

    def on_trial_error(self, iteration: int, trials: List[Any], trial: Any, **info: Any) -> None:
        """When a trial ends in ERROR."""

    def on_experiment_end(self, trials: List[Any], **info: Any) -> None:
        """After the last trial."""
