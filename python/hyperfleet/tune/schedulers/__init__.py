"""Trial schedulers with Ray Tune's names and parameters (``ray.tune.schedulers``).

Each class only collects and checks its arguments; the algorithm runs in the Rust core, so the
same scheduler can be written in an experiment file's ``[scheduler]`` table.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from hyperfleet.tune.search.sample import Domain, SampleFrom

__all__ = [
    "TrialScheduler",
    "FIFOScheduler",
    "AsyncHyperBandScheduler",
    "ASHAScheduler",
    "ASHAPromotionScheduler",
    "AdaptiveASHAScheduler",
    "HyperBandScheduler",
    "HyperBandForBOHB",
    "MedianStoppingRule",
    "PopulationBasedTraining",
    "PopulationBasedTrainingReplay",
    "PB2",
]


class TrialScheduler:
    """Base of the schedulers."""

    def to_spec(self) -> Dict[str, Any]:
        """The `[scheduler]` table."""
        raise TypeError(f"{type(self).__name__} cannot run in hyperfleet: use one of hyperfleet.tune.schedulers")

    def _callables(self) -> List[Callable[..., Any]]:
        return []

    def _explore_fn(self) -> Optional[Callable[[Dict[str, Any]], Dict[str, Any]]]:
        return None


def _objective(metric: Optional[str], mode: Optional[str], name: str) -> Dict[str, Any]:
    if mode not in (None, "min", "max"):
        raise ValueError(f"{name}(mode=...): expected 'min' or 'max', got {mode!r}")
    if (metric is None) != (mode is None):
        raise ValueError(f"{name}(metric=..., mode=...): give both or neither (the Tuner's are used when neither)")
    out: Dict[str, Any] = {}
    if metric is not None:
        out["metric"] = metric
        out["mode"] = mode
    return out


class FIFOScheduler(TrialScheduler):
    """Runs every trial to completion, in creation order."""

    def to_spec(self) -> Dict[str, Any]:
        return {"kind": "fifo"}


class AsyncHyperBandScheduler(TrialScheduler):
    """Asynchronous successive halving with Ray's stopping rule: a trial below its rung's cut-off stops."""

    _kind = "asha"

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: Optional[str] = None,
        mode: Optional[str] = None,
        max_t: float = 100,
        grace_period: float = 1,
        reduction_factor: float = 4,
        brackets: int = 1,
        stop_last_trials: bool = True,
    ) -> None:
        self._spec = {
            "kind": self._kind,
            "time_attr": time_attr,
            **_objective(metric, mode, type(self).__name__),
            "max_t": max_t,
            "grace_period": grace_period,
            "reduction_factor": reduction_factor,
            "brackets": brackets,
            "stop_last_trials": stop_last_trials,
        }

    def to_spec(self) -> Dict[str, Any]:
        return dict(self._spec)


class ASHAScheduler(AsyncHyperBandScheduler):
    """Ray's name for ``AsyncHyperBandScheduler``."""


class ASHAPromotionScheduler(TrialScheduler):
    """The ASHA paper's promotion algorithm: trials pause at rungs; the top 1/η of a rung is promoted
    and resumed from its checkpoint; a new trial starts only when nothing is promotable.
    Trainables should checkpoint at least at every rung."""

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: Optional[str] = None,
        mode: Optional[str] = None,
        max_t: float = 100,
        grace_period: float = 1,
        reduction_factor: float = 4,
    ) -> None:
        self._spec = {
            "kind": "asha_promotion",
            "time_attr": time_attr,
            **_objective(metric, mode, "ASHAPromotionScheduler"),
            "max_t": max_t,
            "grace_period": grace_period,
            "reduction_factor": reduction_factor,
        }

    def to_spec(self) -> Dict[str, Any]:
        return dict(self._spec)


class AdaptiveASHAScheduler(TrialScheduler):
    """ASHA that measures, while it runs, how well each rung predicts the final result, and stops
    trials only at rungs that do (hyperfleet's own; Ray has no equivalent).

    Every other trial, until ``calibration_trials`` have, trains to ``max_t`` without early
    stopping. From those, and from the scores trials report below their first rung, Kendall's tau
    between each rung's scores and every later level's is measured (once ``min_pairs`` trials have
    both; against ``max_t``, from the calibration trials only). New trials go to the lowest
    bracket whose rungs all have tau at least ``min_rank_correlation``: plain ASHA when learning
    curves keep their order, a later first rung when they cross (the best configs learn slowly),
    no early stopping when no rung predicts the end. ``tune show`` says when and why it moved."""

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: Optional[str] = None,
        mode: Optional[str] = None,
        max_t: float = 100,
        grace_period: float = 1,
        reduction_factor: float = 4,
        calibration_trials: int = 6,
        min_pairs: int = 5,
        min_rank_correlation: float = 0.8,
    ) -> None:
        if isinstance(calibration_trials, bool) or not isinstance(calibration_trials, int) or calibration_trials < 0:
            raise ValueError(
                f"AdaptiveASHAScheduler(calibration_trials=...): expected an integer >= 0, got {calibration_trials!r}")
        if isinstance(min_pairs, bool) or not isinstance(min_pairs, int) or min_pairs < 3:
            raise ValueError(f"AdaptiveASHAScheduler(min_pairs=...): expected an integer >= 3, got {min_pairs!r}")
        if isinstance(min_rank_correlation, bool) or not isinstance(min_rank_correlation, (int, float)) \
                or not -1 <= min_rank_correlation <= 1:
            raise ValueError(
                f"AdaptiveASHAScheduler(min_rank_correlation=...): expected a number in [-1, 1], got {min_rank_correlation!r}")
        self._spec = {
            "kind": "asha_adaptive",
            "time_attr": time_attr,
            **_objective(metric, mode, "AdaptiveASHAScheduler"),
            "max_t": max_t,
            "grace_period": grace_period,
            "reduction_factor": reduction_factor,
            "calibration_trials": calibration_trials,
            "min_pairs": min_pairs,
            "min_rank_correlation": float(min_rank_correlation),
        }

    def to_spec(self) -> Dict[str, Any]:
        return dict(self._spec)


class HyperBandScheduler(TrialScheduler):
    """Synchronous HyperBand: brackets of successive halving; paused trials resume from checkpoints."""

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: Optional[str] = None,
        mode: Optional[str] = None,
        max_t: float = 81,
        reduction_factor: float = 3,
        stop_last_trials: bool = True,
    ) -> None:
        self._spec = {
            "kind": "hyperband",
            "time_attr": time_attr,
            **_objective(metric, mode, "HyperBandScheduler"),
            "max_t": max_t,
            "reduction_factor": reduction_factor,
            "stop_last_trials": stop_last_trials,
        }

    def to_spec(self) -> Dict[str, Any]:
        return dict(self._spec)


class HyperBandForBOHB(HyperBandScheduler):
    """HyperBand as BOHB runs it (Ray's name): pair with ``tune.search.BOHBSearch``.

    Brackets fill in order as new trials arrive; a trial pauses at each rung budget, and the
    results it reported at that budget feed BOHB's model for that budget.
    """


class MedianStoppingRule(TrialScheduler):
    """Stops a trial whose best result is worse than the median of other trials' running averages."""

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: Optional[str] = None,
        mode: Optional[str] = None,
        grace_period: float = 60.0,
        min_samples_required: int = 3,
        min_time_slice: float = 0,
        hard_stop: bool = True,
    ) -> None:
        self._spec = {
            "kind": "median",
            "time_attr": time_attr,
            **_objective(metric, mode, "MedianStoppingRule"),
            "grace_period": grace_period,
            "min_samples_required": min_samples_required,
            "min_time_slice": min_time_slice,
            "hard_stop": hard_stop,
        }

    def to_spec(self) -> Dict[str, Any]:
        return dict(self._spec)


def _mutations(m: Any, funcs: List[Callable[..., Any]], path: str) -> Any:
    if isinstance(m, dict):
        return {str(k): _mutations(v, funcs, f"{path}.{k}" if path else str(k)) for k, v in m.items()}
    if isinstance(m, SampleFrom):
        funcs.append(m.func)
        return {"$callable": len(funcs) - 1}
    if isinstance(m, Domain):
        return {"$domain": dict(m.spec)}
    if isinstance(m, (list, tuple)):
        vals = list(m)
        try:
            json.dumps(vals, allow_nan=False)
        except (TypeError, ValueError):
            raise TypeError(f"hyperparam_mutations.{path}: list values must be plain numbers/strings/bools") from None
        return vals
    if callable(m):
        funcs.append(m)
        return {"$callable": len(funcs) - 1}
    raise TypeError(
        f"hyperparam_mutations.{path}: expected a list, a search-space domain, a function or a dict, got {type(m).__name__}"
    )


class PopulationBasedTraining(TrialScheduler):
    """Population-based training: the bottom quantile clones a top trial's checkpoint and explores its config.

    Differences from Ray (on purpose): perturbed values stay inside their domain, integers always move,
    log domains perturb in log space.
    """

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: Optional[str] = None,
        mode: Optional[str] = None,
        perturbation_interval: float = 60.0,
        burn_in_period: float = 0.0,
        hyperparam_mutations: Optional[Dict[str, Any]] = None,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: Sequence[float] = (1.2, 0.8),
        custom_explore_fn: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None,
        log_config: bool = True,
        require_attrs: bool = True,
        synch: bool = False,
    ) -> None:
        if not hyperparam_mutations and custom_explore_fn is None:
            raise ValueError("PopulationBasedTraining: give hyperparam_mutations or custom_explore_fn")
        if custom_explore_fn is not None and not callable(custom_explore_fn):
            raise TypeError("PopulationBasedTraining(custom_explore_fn=...): expected a function of the config")
        self._funcs: List[Callable[..., Any]] = []
        self._custom = custom_explore_fn
        self._spec = {
            "kind": "pbt",
            "time_attr": time_attr,
            **_objective(metric, mode, "PopulationBasedTraining"),
            "perturbation_interval": perturbation_interval,
            "burn_in_period": burn_in_period,
            "hyperparam_mutations": _mutations(hyperparam_mutations or {}, self._funcs, ""),
            "quantile_fraction": quantile_fraction,
            "resample_probability": resample_probability,
            "perturbation_factors": list(perturbation_factors),
            "custom_explore_fn": custom_explore_fn is not None,
            "require_attrs": require_attrs,
            "synch": synch,
        }
        del log_config  # every exploit is always recorded in the store and the policy files

    def to_spec(self) -> Dict[str, Any]:
        return dict(self._spec)

    def _callables(self) -> List[Callable[..., Any]]:
        return self._funcs

    def _explore_fn(self) -> Optional[Callable[[Dict[str, Any]], Dict[str, Any]]]:
        return self._custom


class PB2(TrialScheduler):
    """Population-based bandits: PBT whose explore step picks continuous hyperparameters with a GP-UCB bandit."""

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: Optional[str] = None,
        mode: Optional[str] = None,
        perturbation_interval: float = 60.0,
        hyperparam_bounds: Optional[Dict[str, Sequence[float]]] = None,
        quantile_fraction: float = 0.25,
        log_config: bool = True,
        require_attrs: bool = True,
        synch: bool = False,
    ) -> None:
        if not hyperparam_bounds:
            raise ValueError("PB2(hyperparam_bounds=...): expected {'name': [low, high], ...}")
        bounds: Dict[str, List[float]] = {}

        def walk(d: Dict[str, Any], prefix: str) -> None:
            for k, v in d.items():
                p = f"{prefix}.{k}" if prefix else str(k)
                if isinstance(v, dict):
                    walk(v, p)
                else:
                    vals = list(v)
                    if len(vals) != 2 or not all(isinstance(x, (int, float)) for x in vals) or not vals[0] < vals[1]:
                        raise ValueError(f"PB2(hyperparam_bounds={{{p!r}: ...}}): expected [low, high] with low < high, got {v!r}")
                    bounds[p] = [float(vals[0]), float(vals[1])]

        walk(dict(hyperparam_bounds), "")
        del log_config
        self._spec = {
            "kind": "pb2",
            "time_attr": time_attr,
            **_objective(metric, mode, "PB2"),
            "perturbation_interval": perturbation_interval,
            "hyperparam_bounds": bounds,
            "quantile_fraction": quantile_fraction,
            "require_attrs": require_attrs,
            "synch": synch,
        }

    def to_spec(self) -> Dict[str, Any]:
        return dict(self._spec)


class PopulationBasedTrainingReplay(TrialScheduler):
    """Replays one trial's PBT schedule from its policy file (``pbt_policy_<trial_id>.txt``)."""

    def __init__(self, policy_file: str) -> None:
        path = os.path.expanduser(policy_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"PopulationBasedTrainingReplay: no policy file at {path}")
        steps = []
        initial: Optional[Dict[str, Any]] = None
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    e = json.loads(line)
                    if initial is None:
                        initial = e["old_config"]
                    steps.append({"iteration": e["donor_iteration"], "config": e["new_config"]})
                except (ValueError, KeyError) as err:
                    raise ValueError(f"{path}:{n}: not a policy-log line ({err})") from None
        if initial is None:
            raise ValueError(f"{path}: the policy file is empty: the trial was never exploited")
        self.config = initial
        self._spec = {"kind": "pbt_replay", "initial_config": initial, "schedule": steps}

    def to_spec(self) -> Dict[str, Any]:
        return dict(self._spec)
