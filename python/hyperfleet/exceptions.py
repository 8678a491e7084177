"""Errors raised by hyperfleet: every native error maps to one of these."""

from hyperfleet._native import (
    ConfigError,
    ExperimentExistsError,
    HyperfleetError,
    StoreError,
    TuneError,
)

__all__ = ["HyperfleetError", "ConfigError", "ExperimentExistsError", "StoreError", "TuneError", "TrialError",
           "TrainingFailedError"]


class TrainingFailedError(HyperfleetError):
    """A trainer's ``fit()`` failed (Ray Train's name); the trial's error is its cause."""


class TrialError(HyperfleetError):
    """A trial failed: ``str(err)`` is its error line, ``err.traceback`` the worker's traceback."""

    def __init__(self, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.traceback = traceback

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n{self.traceback}" if self.traceback else base
