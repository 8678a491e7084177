"""Search algorithms (Ray's ``ray.tune.search``)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from hyperfleet.tune.search.sample import Domain, grid_search, sample_from  # noqa: F401

__all__ = ["Searcher", "BasicVariantGenerator", "ConcurrencyLimiter"]


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
