"""Search algorithms (Ray's ``ray.tune.search``)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from hyperfleet.tune.search.sample import Domain, grid_search, sample_from  # noqa: F401

__all__ = ["Searcher", "BasicVariantGenerator", "ConcurrencyLimiter", "Repeater", "TPESearch", "OptunaSearch",
           "GPSearch", "BayesOptSearch", "BOHBSearch", "TuneBOHB", "QMCSearch", "CMAESSearch"]


class Searcher:
    """Base of the search algorithms; each is configured here and runs in the Rust core."""

    def to_spec(self) -> Dict[str, Any]:
        """The `[search]` table."""
        raise TypeError(f"{type(self).__name__} cannot run in hyperfleet: use one of hyperfleet.tune.search")


class BasicVariantGenerator(Searcher):
    """Random sampling and grid expansion (Ray's default searcher)."""

    def __init__(
        self,
        points_to_evaluate: Optional[List[Dict[str, Any]]] = None,
        max_concurrent: int = 0,
        constant_grid_search: bool = False,
        random_state: Optional[int] = None,
    ) -> None:
        if points_to_evaluate is not None and not (
            isinstance(points_to_evaluate, list) and all(isinstance(p, dict) for p in points_to_evaluate)
        ):
            raise TypeError("BasicVariantGenerator(points_to_evaluate=...): expected a list of dicts")
        if not isinstance(max_concurrent, int) or max_concurrent < 0:
            raise ValueError(f"BasicVariantGenerator(max_concurrent=...): expected an integer >= 0, got {max_concurrent!r}")
        if random_state is not None and (not isinstance(random_state, int) or random_state < 0):
            raise ValueError(f"BasicVariantGenerator(random_state=...): expected a non-negative integer seed, got {random_state!r}")
        self.points_to_evaluate = list(points_to_evaluate or [])
        self.max_concurrent = max_concurrent
        self.constant_grid_search = constant_grid_search
        self.random_state = random_state

    def to_spec(self) -> Dict[str, Any]:
        return {
            "algorithm": "random",
            "seed": self.random_state,
            "points_to_evaluate": self.points_to_evaluate,
            "max_concurrent": self.max_concurrent,
            "batch": False,
        }


class ConcurrencyLimiter(Searcher):
    """Caps how many of a searcher's trials run at once; with ``batch``, waits for the whole batch."""

    def __init__(self, searcher: Searcher, max_concurrent: int, batch: bool = False) -> None:
        if not isinstance(searcher, Searcher):
            raise TypeError(f"ConcurrencyLimiter(searcher=...): expected a hyperfleet searcher, got {type(searcher).__name__}")
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"ConcurrencyLimiter(max_concurrent=...): expected an integer >= 1, got {max_concurrent!r}")
        self.searcher = searcher
        self.max_concurrent = max_concurrent
        self.batch = batch

    def to_spec(self) -> Dict[str, Any]:
        s = dict(self.searcher.to_spec())
        s["max_concurrent"] = self.max_concurrent
        s["batch"] = self.batch
        return s


class TPESearch(Searcher):
    """Tree-structured Parzen estimator with the arithmetic of Optuna 5.0's ``TPESampler``.

    Multivariate by default (one joint density over all parameters, as Optuna 5.0 does for a
    single objective), constant liar on (running trials count as bad, so parallel suggestions
    spread out). Random until ``n_startup_trials`` trials have finished. ``metric``/``mode``
    may be given here instead of in ``TuneConfig``; lists (``metric=["loss", "latency"],
    mode=["min", "min"]``) make it Optuna's multi-objective TPE. Runs in the Rust core.
    """

    def __init__(
        self,
        metric: Optional[Union[str, List[str]]] = None,
        mode: Optional[Union[str, List[str]]] = None,
        points_to_evaluate: Optional[List[Dict[str, Any]]] = None,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        multivariate: bool = True,
        prior_weight: float = 1.0,
        consider_magic_clip: bool = True,
        consider_endpoints: bool = False,
        constant_liar: bool = True,
        seed: Optional[int] = None,
    ) -> None:
        _objectives("TPESearch", metric, mode)
        if points_to_evaluate is not None and not (
            isinstance(points_to_evaluate, list) and all(isinstance(p, dict) for p in points_to_evaluate)
        ):
            raise TypeError("TPESearch(points_to_evaluate=...): expected a list of dicts")
        for name, v, lo in (("n_startup_trials", n_startup_trials, 0), ("n_ei_candidates", n_ei_candidates, 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"TPESearch({name}=...): expected an integer >= {lo}, got {v!r}")
        if not isinstance(prior_weight, (int, float)) or prior_weight < 0:
            raise ValueError(f"TPESearch(prior_weight=...): expected a number >= 0, got {prior_weight!r}")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ValueError(f"TPESearch(seed=...): expected a non-negative integer, got {seed!r}")
        self.metric, self.mode, self.seed = metric, mode, seed
        self.points_to_evaluate = list(points_to_evaluate or [])
        self.options: Dict[str, Any] = {
            "n_startup_trials": n_startup_trials,
            "n_ei_candidates": n_ei_candidates,
            "multivariate": bool(multivariate),
            "prior_weight": float(prior_weight),
            "consider_magic_clip": bool(consider_magic_clip),
            "consider_endpoints": bool(consider_endpoints),
            "constant_liar": bool(constant_liar),
        }

    def to_spec(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "algorithm": "tpe",
            "options": dict(self.options),
            "seed": self.seed,
            "points_to_evaluate": self.points_to_evaluate,
            "max_concurrent": 0,
            "batch": False,
        }
        if self.metric is not None:
            out["metric"], out["mode"] = self.metric, self.mode
        return out


class OptunaSearch(TPESearch):
    """Ray's ``OptunaSearch`` name for porting scripts: TPE as Optuna 5.0 runs it, in the Rust core.

    Only Optuna's default sampler is available (``sampler=None``); ``space`` must be None (use
    ``param_space``).
    """

    def __init__(
        self,
        space: Any = None,
        metric: Optional[Union[str, List[str]]] = None,
        mode: Optional[Union[str, List[str]]] = None,
        points_to_evaluate: Optional[List[Dict[str, Any]]] = None,
        sampler: Any = None,
        seed: Optional[int] = None,
        **_unused: Any,
    ) -> None:
        if space is not None:
            raise ValueError("OptunaSearch(space=...): pass the search space as Tuner(param_space=...)")
        if sampler is not None:
            raise ValueError("OptunaSearch(sampler=...): only the default TPE sampler runs in hyperfleet; "
                             "use TPESearch(...) for its options")
        super().__init__(metric=metric, mode=mode, points_to_evaluate=points_to_evaluate, seed=seed)


def _objectives(name: str, metric: Any, mode: Any) -> None:
    """Checks one metric and mode, several (lists of the same length), or neither."""
    if isinstance(metric, list) or isinstance(mode, list):
        ok = (isinstance(metric, list) and isinstance(mode, list) and len(metric) == len(mode) >= 1
              and all(isinstance(m, str) for m in metric) and all(m in ("min", "max") for m in mode))
    else:
        ok = (metric is None) == (mode is None) and mode in (None, "min", "max")
    if not ok:
        raise ValueError(f"{name}(metric=..., mode=...): expected both (mode 'min' or 'max'; or lists of the same "
                         f"length for several objectives) or neither, got metric={metric!r}, mode={mode!r}")


def _points(name: str, points: Optional[List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    if points is not None and not (isinstance(points, list) and all(isinstance(p, dict) for p in points)):
        raise TypeError(f"{name}(points_to_evaluate=...): expected a list of dicts")
    return list(points or [])


def _seed(name: str, seed: Optional[int]) -> Optional[int]:
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"{name}(seed=...): expected a non-negative integer, got {seed!r}")
    return seed


class QMCSearch(Searcher):
    """Quasi-random search: scrambled Sobol' (default) or Halton points through each domain's inverse CDF.

    Covers the space more evenly than random draws; the i-th trial's point depends only on the
    seed and i. Distinct seeds give distinct scrambles. Runs in the Rust core.
    """

    def __init__(self, kind: str = "sobol", scramble: bool = True, seed: Optional[int] = None,
                 points_to_evaluate: Optional[List[Dict[str, Any]]] = None) -> None:
        if kind not in ("sobol", "halton"):
            raise ValueError(f"QMCSearch(kind=...): expected 'sobol' or 'halton', got {kind!r}")
        self.options: Dict[str, Any] = {"kind": kind, "scramble": bool(scramble)}
        self.seed = _seed("QMCSearch", seed)
        self.points_to_evaluate = _points("QMCSearch", points_to_evaluate)

    def to_spec(self) -> Dict[str, Any]:
        return {"algorithm": "qmc", "options": dict(self.options), "seed": self.seed,
                "points_to_evaluate": self.points_to_evaluate, "max_concurrent": 0, "batch": False}


class CMAESSearch(Searcher):
    """CMA-ES with IPOP restarts over the numeric parameters (integers rounded, log domains in log space).

    Active covariance update (the worse half of each generation gets negative weights); the first
    generation is centred on the best scored ``points_to_evaluate`` point, else on the middle of
    the space. On a fully discrete space a config already tried is not suggested again until every
    config has been. Categorical parameters are sampled independently at random (CMA-ES has no
    model for them).
    A generation is ``popsize`` trials; the next starts when all of them have ended.
    ``metric``/``mode`` may be given here instead of in ``TuneConfig``. Runs in the Rust core.
    """

    def __init__(self, metric: Optional[str] = None, mode: Optional[str] = None, sigma0: Optional[float] = None,
                 popsize: Optional[int] = None, restart: str = "ipop", n_startup_trials: int = 1,
                 seed: Optional[int] = None, points_to_evaluate: Optional[List[Dict[str, Any]]] = None) -> None:
        if (metric is None) != (mode is None) or mode not in (None, "min", "max"):
            raise ValueError(f"CMAESSearch(metric=..., mode=...): expected both (mode 'min' or 'max') or neither, "
                             f"got metric={metric!r}, mode={mode!r}")
        if sigma0 is not None and not (isinstance(sigma0, (int, float)) and 0 < sigma0 <= 1):
            raise ValueError(f"CMAESSearch(sigma0=...): expected a number in (0, 1] (of each range), got {sigma0!r}")
        if popsize is not None and (not isinstance(popsize, int) or popsize < 2):
            raise ValueError(f"CMAESSearch(popsize=...): expected an integer >= 2, got {popsize!r}")
        if restart not in ("ipop", "none"):
            raise ValueError(f"CMAESSearch(restart=...): expected 'ipop' or 'none', got {restart!r}")
        self.metric, self.mode = metric, mode
        self.options: Dict[str, Any] = {"restart": restart, "n_startup_trials": int(n_startup_trials)}
        if sigma0 is not None:
            self.options["sigma0"] = float(sigma0)
        if popsize is not None:
            self.options["popsize"] = popsize
        self.seed = _seed("CMAESSearch", seed)
        self.points_to_evaluate = _points("CMAESSearch", points_to_evaluate)

    def to_spec(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"algorithm": "cmaes", "options": dict(self.options), "seed": self.seed,
                               "points_to_evaluate": self.points_to_evaluate, "max_concurrent": 0, "batch": False}
        if self.metric is not None:
            out["metric"], out["mode"] = self.metric, self.mode
        return out


class GPSearch(Searcher):
    """Gaussian-process Bayesian optimisation: Matérn-5/2 kernel with a length scale per parameter,
    scores warped towards a Gaussian (Yeo-Johnson, exponent by maximum likelihood) so that a long
    tail of bad results does not flatten the model, hyperparameters fitted by MAP with L-BFGS,
    log expected improvement maximised from random
    starts; integer and categorical parameters searched value by value; running trials count as
    the worst score seen (constant liar). Quasi-random until ``n_startup_trials`` have a score.
    ``metric``/``mode`` may be given here instead of in ``TuneConfig``. Runs in the Rust core.
    """

    def __init__(self, metric: Optional[str] = None, mode: Optional[str] = None, n_startup_trials: int = 10,
                 n_candidates: int = 2048, n_local_search: int = 10, deterministic_objective: bool = False,
                 seed: Optional[int] = None, points_to_evaluate: Optional[List[Dict[str, Any]]] = None) -> None:
        if isinstance(metric, list) or isinstance(mode, list):
            raise ValueError("GPSearch(metric=..., mode=...): optimises one metric; use TPESearch for several")
        _objectives("GPSearch", metric, mode)
        for name, v, lo in (("n_startup_trials", n_startup_trials, 1), ("n_candidates", n_candidates, 1),
                            ("n_local_search", n_local_search, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"GPSearch({name}=...): expected an integer >= {lo}, got {v!r}")
        self.metric, self.mode = metric, mode
        self.options: Dict[str, Any] = {"n_startup_trials": n_startup_trials, "n_candidates": n_candidates,
                                        "n_local_search": n_local_search,
                                        "deterministic_objective": bool(deterministic_objective)}
        self.seed = _seed("GPSearch", seed)
        self.points_to_evaluate = _points("GPSearch", points_to_evaluate)

    def to_spec(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"algorithm": "gp", "options": dict(self.options), "seed": self.seed,
                               "points_to_evaluate": self.points_to_evaluate, "max_concurrent": 0, "batch": False}
        if self.metric is not None:
            out["metric"], out["mode"] = self.metric, self.mode
        return out


class BayesOptSearch(GPSearch):
    """Ray's ``BayesOptSearch`` name for porting scripts: GP Bayesian optimisation (``GPSearch``).

    ``random_search_steps`` is the number of quasi-random trials before the GP is used; ``space``
    must be None (use ``param_space``); the ``utility_kwargs`` of bayes_opt do not apply (log-EI).
    """

    def __init__(self, space: Any = None, metric: Optional[str] = None, mode: Optional[str] = None,
                 points_to_evaluate: Optional[List[Dict[str, Any]]] = None, random_search_steps: int = 10,
                 random_state: Optional[int] = None, **_unused: Any) -> None:
        if space is not None:
            raise ValueError("BayesOptSearch(space=...): pass the search space as Tuner(param_space=...)")
        super().__init__(metric=metric, mode=mode, n_startup_trials=max(1, random_search_steps),
                         seed=random_state, points_to_evaluate=points_to_evaluate)


class BOHBSearch(Searcher):
    """BOHB's model (Falkner et al. 2018): a kernel density estimate per budget, built from the
    largest budget with enough results, good (top ``top_n_percent``) over bad; ``random_fraction``
    of configs random. Pair it with ``tune.schedulers.HyperBandForBOHB``: the results trials report
    at each rung budget feed that budget's model. ``metric``/``mode`` may be given here instead of
    in ``TuneConfig``. Runs in the Rust core.
    """

    def __init__(self, metric: Optional[str] = None, mode: Optional[str] = None,
                 min_points_in_model: Optional[int] = None, top_n_percent: int = 15, num_samples: int = 64,
                 random_fraction: float = 1 / 3, bandwidth_factor: float = 3.0, min_bandwidth: float = 1e-3,
                 seed: Optional[int] = None, points_to_evaluate: Optional[List[Dict[str, Any]]] = None) -> None:
        if isinstance(metric, list) or isinstance(mode, list):
            raise ValueError("BOHBSearch(metric=..., mode=...): optimises one metric; use TPESearch for several")
        _objectives("BOHBSearch", metric, mode)
        if not (isinstance(top_n_percent, int) and 1 <= top_n_percent <= 99):
            raise ValueError(f"BOHBSearch(top_n_percent=...): expected an integer in 1..99, got {top_n_percent!r}")
        if not (isinstance(num_samples, int) and num_samples >= 1):
            raise ValueError(f"BOHBSearch(num_samples=...): expected an integer >= 1, got {num_samples!r}")
        if not (isinstance(random_fraction, (int, float)) and 0 <= random_fraction <= 1):
            raise ValueError(f"BOHBSearch(random_fraction=...): expected a number in [0, 1], got {random_fraction!r}")
        for name, v in (("bandwidth_factor", bandwidth_factor), ("min_bandwidth", min_bandwidth)):
            if not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"BOHBSearch({name}=...): expected a number > 0, got {v!r}")
        self.metric, self.mode = metric, mode
        self.options: Dict[str, Any] = {"top_n_percent": top_n_percent, "num_samples": num_samples,
                                        "random_fraction": float(random_fraction),
                                        "bandwidth_factor": float(bandwidth_factor),
                                        "min_bandwidth": float(min_bandwidth)}
        if min_points_in_model is not None:
            self.options["min_points_in_model"] = int(min_points_in_model)
        self.seed = _seed("BOHBSearch", seed)
        self.points_to_evaluate = _points("BOHBSearch", points_to_evaluate)

    def to_spec(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"algorithm": "bohb", "options": dict(self.options), "seed": self.seed,
                               "points_to_evaluate": self.points_to_evaluate, "max_concurrent": 0, "batch": False}
        if self.metric is not None:
            out["metric"], out["mode"] = self.metric, self.mode
        return out


class TuneBOHB(BOHBSearch):
    """Ray's ``TuneBOHB`` name for porting scripts (``space`` must be None: use ``param_space``)."""

    def __init__(self, space: Any = None, metric: Optional[str] = None, mode: Optional[str] = None,
                 points_to_evaluate: Optional[List[Dict[str, Any]]] = None, seed: Optional[int] = None,
                 **_unused: Any) -> None:
        if space is not None:
            raise ValueError("TuneBOHB(space=...): pass the search space as Tuner(param_space=...)")
        super().__init__(metric=metric, mode=mode, seed=seed, points_to_evaluate=points_to_evaluate)


class Repeater(Searcher):
    """Runs each config of ``searcher`` ``repeat`` times and tells it the mean score (Ray's ``Repeater``).

    With ``set_index``, each trial's config gets ``__trial_index__`` (0 .. repeat-1), e.g. to seed
    a noisy evaluation differently. ``num_samples`` counts trials: use a multiple of ``repeat``.
    """

    def __init__(self, searcher: Searcher, repeat: int = 1, set_index: bool = True) -> None:
        if not isinstance(searcher, Searcher):
            raise TypeError(f"Repeater(searcher=...): expected a hyperfleet searcher, got {type(searcher).__name__}")
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise ValueError(f"Repeater(repeat=...): expected an integer >= 1, got {repeat!r}")
        self.searcher, self.repeat, self.set_index = searcher, repeat, bool(set_index)

    def to_spec(self) -> Dict[str, Any]:
        s = dict(self.searcher.to_spec())
        s["repeat"] = self.repeat
        s["set_index"] = self.set_index
        return s
