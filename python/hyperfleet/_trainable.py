"""Trainable forms: functions, ``Trainable`` classes, and the ``with_parameters``/``with_resources`` wrappers."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Union


class Trainable:
    """A class trainable (Ray's ``tune.Trainable``): ``setup``, ``step``, ``save_checkpoint``, ``load_checkpoint``.

    Each ``step()`` returns a dict of metrics and counts as one iteration. Return ``{"done": True, ...}``
    to finish. ``save_checkpoint(dir)`` writes state into ``dir``; ``load_checkpoint(dir)`` reads it.
    """

    _hyperfleet_trainable_class = True

    def __init__(self, config: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        self.config: Dict[str, Any] = dict(config or {})
        self.iteration = 0
        self.setup(self.config, **kwargs)

    def setup(self, config: Dict[str, Any], **kwargs: Any) -> None:
        """Builds state from the config (and ``with_parameters`` objects)."""

    def step(self) -> Dict[str, Any]:
        """Runs one iteration and returns its metrics."""
        raise NotImplementedError(f"{type(self).__name__}.step() must be defined")

    def save_checkpoint(self, checkpoint_dir: str) -> Optional[Union[str, Dict[str, Any]]]:
        """Writes state into ``checkpoint_dir``."""
        return None

    def load_checkpoint(self, checkpoint: Union[str, Dict[str, Any]]) -> None:
        """Restores state from a checkpoint directory."""

    def cleanup(self) -> None:
        """Releases resources at the end of the trial."""

    @property
    def trial_id(self) -> str:
        """The running trial's id."""
        from hyperfleet._session import get_context

        return get_context().get_trial_id()

    @property
    def logdir(self) -> str:
        """The running trial's folder."""
        from hyperfleet._session import get_context

        return get_context().get_trial_dir()


def is_class_trainable(obj: Any) -> bool:
    """Whether ``obj`` is a ``Trainable`` subclass."""
    return isinstance(obj, type) and bool(getattr(obj, "_hyperfleet_trainable_class", False))


class _WithParameters:
    """A trainable plus large objects that are written once and loaded once per worker process."""

    def __init__(self, trainable: Any, params: Dict[str, Any]) -> None:
        self.trainable = trainable
        self.params = params
        self.params_path: Optional[str] = None
        self.__name__ = getattr(trainable, "__name__", "trainable")

    def __getstate__(self) -> Dict[str, Any]:
        if self.params_path is None:
            raise RuntimeError("with_parameters objects are written by Tuner.fit(); pickle the Tuner's trainable only")
        return {"trainable": self.trainable, "params_path": self.params_path, "__name__": self.__name__}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.params = None  # type: ignore[assignment]

    def write_params(self, folder: str) -> None:
        """Pickles the parameters into ``folder`` once (called by the driver)."""
        import cloudpickle

        path = os.path.join(folder, "parameters.pkl")
        with open(path + ".tmp", "wb") as f:
            cloudpickle.dump(self.params, f)
        os.replace(path + ".tmp", path)
        self.params_path = path

    def load_params(self) -> Dict[str, Any]:
        """Loads the parameters (cached per process)."""
        if self.params is not None:
            return self.params
        cached = _PARAMS_CACHE.get(self.params_path or "")
        if cached is None:
            import cloudpickle

            with open(self.params_path or "", "rb") as f:
                cached = cloudpickle.load(f)
            _PARAMS_CACHE[self.params_path or ""] = cached
        return cached


_PARAMS_CACHE: Dict[str, Dict[str, Any]] = {}


def with_parameters(trainable: Any, **kwargs: Any) -> Any:
    """Passes large objects to a trainable: written once, loaded once per worker, as keyword arguments.

    A function trainable gets ``trainable(config, **kwargs)``; a class gets ``setup(config, **kwargs)``.
    """
    if not (callable(trainable) or is_class_trainable(trainable)):
        raise TypeError(f"with_parameters: expected a function or Trainable class, got {type(trainable).__name__}")
    wrapped = _WithParameters(trainable, kwargs)
    res = getattr(trainable, "_hyperfleet_resources", None)
    if res is not None:
        wrapped._hyperfleet_resources = res  # type: ignore[attr-defined]
    return wrapped


_RESOURCE_KEYS = {"cpu": "cpu", "CPU": "cpu", "gpu": "gpu", "GPU": "gpu", "memory": "memory"}


def with_resources(trainable: Any, resources: Union[Dict[str, float], Callable[..., Any]]) -> Any:
    """Sets the resources of one trial's worker: ``{"cpu": 2, "gpu": 0.5, "custom": 1}``."""
    if callable(resources) and not isinstance(resources, dict):
        raise TypeError("with_resources: a function of the config is not supported yet; pass a dict like {'cpu': 2, 'gpu': 1}")
    if not isinstance(resources, dict):
        raise TypeError(f"with_resources: expected a dict like {{'cpu': 2, 'gpu': 1}}, got {type(resources).__name__}")
    norm: Dict[str, float] = {}
    for k, v in resources.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"with_resources: resource {k!r} must be a number >= 0, got {v!r}")
        norm[_RESOURCE_KEYS.get(k, k)] = float(v)
    if isinstance(trainable, _WithParameters):
        wrapped = _WithParameters(trainable.trainable, trainable.params)
    else:
        wrapped = _WithParameters(trainable, {})
    wrapped._hyperfleet_resources = norm  # type: ignore[attr-defined]
    return wrapped
