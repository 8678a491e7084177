"""Ray Train's names for what a training function uses: ``from hyperfleet import train``."""

from __future__ import annotations

from hyperfleet._checkpoint import Checkpoint
from hyperfleet._config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from hyperfleet._session import TrainContext, get_checkpoint, get_context, report

__all__ = [
    "Checkpoint",
    "CheckpointConfig",
    "FailureConfig",
    "RunConfig",
    "ScalingConfig",
    "TrainContext",
    "get_checkpoint",
    "get_context",
    "report",
]
