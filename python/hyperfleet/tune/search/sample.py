"""Search-space functions with Ray Tune's names and bounds; each builds a domain spec for the Rust core."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Sequence

__all__ = [
    "Domain",
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


class Domain:
    """A search-space leaf; ``spec`` is its canonical form (``{"kind": ..., ...}``)."""

    def __init__(self, spec: Dict[str, Any]) -> None:
        self.spec = spec

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.spec.items() if k != "kind")
        return f"{self.spec['kind']}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Domain) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(repr(self))


class SampleFrom(Domain):
    """A leaf computed by a Python function of the (partially resolved) config."""

    def __init__(self, func: Callable[..., Any]) -> None:
        if not callable(func):
            raise TypeError(f"sample_from: expected a callable, got {type(func).__name__}")
        super().__init__({"kind": "sample_from"})
        self.func = func

    def __repr__(self) -> str:
        return f"sample_from({self.func!r})"


def _num(name: str, **kw: Any) -> None:
    for k, v in kw.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TypeError(f"{name}({k}=...): expected a finite number, got {v!r}")


def _int(name: str, **kw: Any) -> None:
    for k, v in kw.items():
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                continue
            raise TypeError(f"{name}({k}=...): expected an integer, got {v!r}")


def uniform(lower: float, upper: float) -> Domain:
    """A float uniformly in [lower, upper)."""
    _num("uniform", lower=lower, upper=upper)
    return Domain({"kind": "uniform", "low": float(lower), "high": float(upper)})


def quniform(lower: float, upper: float, q: float) -> Domain:
    """A float uniformly in [lower, upper], rounded to a multiple of q."""
    _num("quniform", lower=lower, upper=upper, q=q)
    return Domain({"kind": "quniform", "low": float(lower), "high": float(upper), "q": float(q)})


def loguniform(lower: float, upper: float, base: float = 10) -> Domain:
    """A float in [lower, upper), uniform in log space."""
    _num("loguniform", lower=lower, upper=upper, base=base)
    return Domain({"kind": "loguniform", "low": float(lower), "high": float(upper), "base": float(base)})


def qloguniform(lower: float, upper: float, q: float, base: float = 10) -> Domain:
    """A log-uniform float rounded to a multiple of q."""
    _num("qloguniform", lower=lower, upper=upper, q=q, base=base)
    return Domain({"kind": "qloguniform", "low": float(lower), "high": float(upper), "q": float(q), "base": float(base)})


def randn(mean: float = 0.0, sd: float = 1.0) -> Domain:
    """A normally distributed float."""
    _num("randn", mean=mean, sd=sd)
    return Domain({"kind": "randn", "mean": float(mean), "sd": float(sd)})


def qrandn(mean: float, sd: float, q: float) -> Domain:
    """A normal float rounded to a multiple of q."""
    _num("qrandn", mean=mean, sd=sd, q=q)
    return Domain({"kind": "qrandn", "mean": float(mean), "sd": float(sd), "q": float(q)})


def randint(lower: int, upper: int) -> Domain:
    """An integer in [lower, upper): the upper bound is exclusive."""
    _int("randint", lower=lower, upper=upper)
    return Domain({"kind": "randint", "low": int(lower), "high": int(upper)})


def qrandint(lower: int, upper: int, q: int = 1) -> Domain:
    """An integer in [lower, upper] rounded to a multiple of q (upper reachable when q > 1, as in Ray)."""
    _int("qrandint", lower=lower, upper=upper, q=q)
    return Domain({"kind": "qrandint", "low": int(lower), "high": int(upper), "q": int(q)})


def lograndint(lower: int, upper: int, base: float = 10) -> Domain:
    """An integer in [lower, upper), uniform in log space."""
    _int("lograndint", lower=lower, upper=upper)
    _num("lograndint", base=base)
    return Domain({"kind": "lograndint", "low": int(lower), "high": int(upper), "base": float(base)})


def qlograndint(lower: int, upper: int, q: int, base: float = 10) -> Domain:
    """A log-uniform integer rounded to a multiple of q."""
    _int("qlograndint", lower=lower, upper=upper, q=q)
    _num("qlograndint", base=base)
    return Domain({"kind": "qlograndint", "low": int(lower), "high": int(upper), "q": int(q), "base": float(base)})


def choice(categories: Sequence[Any]) -> Domain:
    """One of the categories, uniformly."""
    if isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence):
        raise TypeError(f"choice: expected a list of categories, got {type(categories).__name__}")
    return Domain({"kind": "choice", "values": list(categories)})


def grid_search(values: Sequence[Any]) -> Dict[str, List[Any]]:
    """Every value, each in its own trial (the grid is the product of all grid_search leaves)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"grid_search: expected a list of values, got {type(values).__name__}")
    return {"grid_search": list(values)}


def sample_from(func: Callable[..., Any]) -> SampleFrom:
    """A value computed by ``func(config)`` from the other resolved values."""
    return SampleFrom(func)
