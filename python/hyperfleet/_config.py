"""Configuration objects with Ray's names; each becomes part of the same spec as the TOML file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Union


def _check(cond: bool, where: str, expected: str, got: Any) -> None:
    if not cond:
        raise ValueError(f"{where}: expected {expected}, got {got!r}")


@dataclass(frozen=True)
class CheckpointConfig:
    """Checkpoint retention (Ray's ``CheckpointConfig``)."""

    num_to_keep: Optional[int] = None
    checkpoint_score_attribute: Optional[str] = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: Optional[bool] = None

    def __post_init__(self) -> None:
        _check(self.num_to_keep is None or (isinstance(self.num_to_keep, int) and self.num_to_keep >= 1),
               "CheckpointConfig(num_to_keep=...)", "None or an integer >= 1", self.num_to_keep)
        _check(self.checkpoint_score_order in ("max", "min"), "CheckpointConfig(checkpoint_score_order=...)",
               "'max' or 'min'", self.checkpoint_score_order)
        _check(isinstance(self.checkpoint_frequency, int) and self.checkpoint_frequency >= 0,
               "CheckpointConfig(checkpoint_frequency=...)", "an integer >= 0", self.checkpoint_frequency)

    def to_spec(self) -> Dict[str, Any]:
        """The `[checkpoint]` table."""
        return {
            "num_to_keep": self.num_to_keep,
            "score_attribute": self.checkpoint_score_attribute,
            "score_order": self.checkpoint_score_order,
            "frequency": self.checkpoint_frequency,
            "at_end": bool(self.checkpoint_at_end),
        }


@dataclass(frozen=True)
class FailureConfig:
    """Retries from the latest checkpoint, and fail-fast (Ray's ``FailureConfig``)."""

    max_failures: int = 0
    fail_fast: bool = False
    #: hyperfleet's own: a trial that neither reports nor ends for this many seconds is killed and counted as a failure.
    hang_timeout_s: Optional[float] = None

    def __post_init__(self) -> None:
        _check(self.hang_timeout_s is None or (isinstance(self.hang_timeout_s, (int, float))
                                               and not isinstance(self.hang_timeout_s, bool) and self.hang_timeout_s > 0),
               "FailureConfig(hang_timeout_s=...)", "None or a number of seconds > 0", self.hang_timeout_s)
        _check(isinstance(self.max_failures, int) and self.max_failures >= -1, "FailureConfig(max_failures=...)",
               "-1 (retry forever) or an integer >= 0", self.max_failures)
        _check(isinstance(self.fail_fast, bool), "FailureConfig(fail_fast=...)", "a bool", self.fail_fast)

    def to_spec(self) -> Dict[str, Any]:
        """The `[failure]` table."""
        out: Dict[str, Any] = {"max_failures": self.max_failures, "fail_fast": self.fail_fast}
        if self.hang_timeout_s is not None:
            out["hang_timeout_s"] = float(self.hang_timeout_s)
        return out


StopType = Union[Mapping[str, float], Callable[[str, Dict[str, Any]], bool], Any, None]


@dataclass(frozen=True)
class RunConfig:
    """Where and how the experiment runs (Ray's ``RunConfig``)."""

    name: Optional[str] = None
    storage_path: Optional[str] = None
    stop: StopType = None
    failure_config: Optional[FailureConfig] = None
    checkpoint_config: Optional[CheckpointConfig] = None
    callbacks: Optional[List[Any]] = None
    verbose: Optional[int] = None
    #: hyperfleet's own: "durable" (report() returns once its result is committed) or "relaxed"
    #: (once it is queued; a driver crash may lose the last few results).
    durability: str = "durable"

    def __post_init__(self) -> None:
        _check(self.durability in ("durable", "relaxed"), "RunConfig(durability=...)", "'durable' or 'relaxed'",
               self.durability)
        _check(self.name is None or (isinstance(self.name, str) and bool(self.name) and "/" not in self.name),
               "RunConfig(name=...)", "a folder name without '/'", self.name)
        _check(self.verbose is None or self.verbose in (0, 1, 2, 3), "RunConfig(verbose=...)", "0, 1, 2 or 3", self.verbose)
        if isinstance(self.stop, Mapping):
            for k, v in self.stop.items():
                _check(isinstance(v, (int, float)), f"RunConfig(stop={{{k!r}: ...}})",
                       "a number or bool (the trial stops once result[key] >= it)", v)
        elif self.stop is not None and not callable(self.stop):
            raise TypeError(f"RunConfig(stop=...): expected a dict, a Stopper or a function, got {type(self.stop).__name__}")


@dataclass(frozen=True)
class TuneConfig:
    """What to optimise and how many trials (Ray's ``TuneConfig``)."""

    metric: Optional[Union[str, List[str]]] = None
    mode: Optional[Union[str, List[str]]] = None
    num_samples: int = 1
    max_concurrent_trials: Optional[int] = None
    time_budget_s: Optional[float] = None
    search_alg: Any = None
    scheduler: Any = None
    reuse_actors: Optional[bool] = None
    trial_name_creator: Optional[Callable[[Any], str]] = None
    trial_dirname_creator: Optional[Callable[[Any], str]] = None
    #: Seconds a trial whose gang (``param_space["scaling_config"]``) does not fit lets smaller
    #: trials start ahead of it; after that it reserves the capacity and nothing else starts.
    reserve_after_s: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.metric, list) or isinstance(self.mode, list):
            # Several objectives: a list of metrics and one mode for each.
            _check(isinstance(self.metric, list) and isinstance(self.mode, list) and len(self.metric) == len(self.mode)
                   and len(self.metric) >= 1 and all(isinstance(m, str) for m in self.metric),
                   "TuneConfig(metric=[...], mode=[...])", "lists of metric names and modes of the same length",
                   (self.metric, self.mode))
            for m in self.mode or []:
                _check(m in ("min", "max"), "TuneConfig(mode=[...])", "'min' or 'max' for each metric", m)
        else:
            _check(self.mode in (None, "min", "max"), "TuneConfig(mode=...)", "'min' or 'max'", self.mode)
        _check((self.metric is None) == (self.mode is None), "TuneConfig(metric=..., mode=...)",
               "both metric and mode, or neither", (self.metric, self.mode))
        _check(isinstance(self.num_samples, int) and (self.num_samples >= 1 or self.num_samples == -1),
               "TuneConfig(num_samples=...)", "a positive integer or -1", self.num_samples)
        _check(self.max_concurrent_trials is None or (isinstance(self.max_concurrent_trials, int) and self.max_concurrent_trials >= 1),
               "TuneConfig(max_concurrent_trials=...)", "None or an integer >= 1", self.max_concurrent_trials)
        _check(self.time_budget_s is None or (isinstance(self.time_budget_s, (int, float)) and self.time_budget_s > 0),
               "TuneConfig(time_budget_s=...)", "None or a positive number of seconds", self.time_budget_s)
        _check(isinstance(self.reserve_after_s, (int, float)) and not isinstance(self.reserve_after_s, bool)
               and self.reserve_after_s >= 0, "TuneConfig(reserve_after_s=...)", "seconds >= 0", self.reserve_after_s)



_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclass(frozen=True)
class ScalingConfig:
    """How many workers train one model and what each holds (Ray Train's ``ScalingConfig``).

    ``resources_per_worker`` defaults to one CPU, plus one GPU with ``use_gpu``. The workers of a
    trial are placed all together or not at all (a gang), by ``placement_strategy``. In a
    ``Tuner``'s ``param_space["scaling_config"]`` each field may be a search domain
    (``num_workers=tune.choice([1, 4])``): every trial then gets a gang of its own shape.
    """

    num_workers: int = 1
    use_gpu: bool = False
    resources_per_worker: Optional[Dict[str, float]] = None
    placement_strategy: str = "PACK"
    trainer_resources: Optional[Dict[str, float]] = None

    def __post_init__(self) -> None:
        if self.searched():
            return  # checked per trial, once the domains are sampled
        _check(isinstance(self.num_workers, int) and not isinstance(self.num_workers, bool) and self.num_workers >= 1,
               "ScalingConfig(num_workers=...)", "an integer >= 1", self.num_workers)
        _check(isinstance(self.use_gpu, bool), "ScalingConfig(use_gpu=...)", "a bool", self.use_gpu)
        _check(self.placement_strategy in _STRATEGIES, "ScalingConfig(placement_strategy=...)",
               " or ".join(repr(s) for s in _STRATEGIES), self.placement_strategy)
        if self.resources_per_worker is not None:
            _check(isinstance(self.resources_per_worker, dict)
                   and all(isinstance(v, (int, float)) and v >= 0 for v in self.resources_per_worker.values()),
                   "ScalingConfig(resources_per_worker=...)", "a dict of resource name -> amount >= 0",
                   self.resources_per_worker)

    def searched(self) -> bool:
        """Whether any field is a search domain (``tune.choice``, ``tune.grid_search``, ...)."""
        from hyperfleet.tune.search.sample import Domain, SampleFrom

        def dom(v: Any) -> bool:
            return isinstance(v, (Domain, SampleFrom)) or (isinstance(v, dict) and set(v) == {"grid_search"})
        fields = (self.num_workers, self.use_gpu, self.placement_strategy, self.resources_per_worker)
        return any(dom(v) for v in fields) or (
            isinstance(self.resources_per_worker, dict) and any(dom(v) for v in self.resources_per_worker.values()))

    def to_space(self) -> Dict[str, Any]:
        """The ``scaling_config`` entry of a search space: every field, domains kept."""
        out: Dict[str, Any] = {"num_workers": self.num_workers, "use_gpu": self.use_gpu,
                               "placement_strategy": self.placement_strategy}
        if self.resources_per_worker is not None:
            out["resources_per_worker"] = dict(self.resources_per_worker)
        return out

    def worker_resources(self) -> Dict[str, float]:
        """One worker's bundle, with Ray's defaults filled in."""
        res = {str(k).lower() if str(k) in ("CPU", "GPU") else str(k): float(v)
               for k, v in (self.resources_per_worker or {}).items()}
        res.setdefault("cpu", 1.0)
        if self.use_gpu:
            res.setdefault("gpu", 1.0)
        return res

    def to_spec(self) -> Dict[str, Any]:
        """The `[scaling]` table (without a backend)."""
        return {"workers": self.num_workers, "resources_per_worker": self.worker_resources(),
                "placement": self.placement_strategy.lower()}
