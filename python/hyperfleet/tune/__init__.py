"""Hyperparameter tuning with Ray Tune's names: ``from hyperfleet import tune``."""

from __future__ import annotations

from hyperfleet._checkpoint import Checkpoint
from hyperfleet._config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from hyperfleet._session import TrainContext, get_checkpoint, get_context, report
from hyperfleet._trainable import Trainable, with_parameters, with_resources
from hyperfleet.tune.callback import Callback
from hyperfleet.tune.result_grid import Result, ResultGrid
from hyperfleet.tune.search.sample import (
    choice,
    grid_search,
    lograndint,
    loguniform,
    qlograndint,
    qloguniform,
    qrandint,
    qrandn,
    quniform,
    randint,
    randn,
    sample_from,
    uniform,
)
from hyperfleet.tune.stopper import Stopper
from hyperfleet.tune.tuner import Tuner

__all__ = [
    "Tuner",
    "TuneConfig",
    "RunConfig",
    "CheckpointConfig",
    "FailureConfig",
    "Checkpoint",
    "Trainable",
    "TrainContext",
    "Callback",
    "Stopper",
    "Result",
    "ResultGrid",
    "report",
    "get_checkpoint",
    "get_context",
    "with_parameters",
    "with_resources",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "randn",
    "qrandn",
    "randint",
    "qrandint",
    "lograndint",
    "qlograndint",
    "choice",
    "grid_search",
    "sample_from",
]
