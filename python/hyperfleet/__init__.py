"""hyperfleet: hyperparameter tuning and distributed training with a Rust core.

Use it as you would Ray Tune: ``from hyperfleet import tune, train``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

__version__ = "0.1.0"
__all__ = ["init", "tune", "train", "__version__"]

_cluster_resources: Dict[str, float] = {}
_virtual_nodes: List[Dict[str, float]] = []


def init(
    num_cpus: Optional[float] = None,
    num_gpus: Optional[int] = None,
    resources: Optional[Dict[str, float]] = None,
    virtual_nodes: Optional[List[Dict[str, float]]] = None,
    **_ignored: Any,
) -> None:
    """Sets the resources of the local cluster (like ``ray.init``); detected from the machine when not given.

    ``virtual_nodes=[{"cpu": 2}, {"cpu": 2, "gpu": 1}]`` (hyperfleet's own) splits this machine into
    nodes as a cluster would have, so placement strategies act across them.
    """
    _cluster_resources.clear()
    _virtual_nodes.clear()
    for i, n in enumerate(virtual_nodes or []):
        if not isinstance(n, dict):
            raise TypeError(f"init(virtual_nodes=[...]): entry {i}: expected a dict of resources, got {n!r}")
        _virtual_nodes.append({str(k): float(v) for k, v in n.items()})
    if num_cpus is not None:
        _cluster_resources["cpu"] = float(num_cpus)
    if num_gpus is not None:
        if int(num_gpus) != num_gpus or num_gpus < 0:
            raise ValueError(f"init(num_gpus=...): expected a whole number >= 0, got {num_gpus!r}")
        _cluster_resources["gpu"] = int(num_gpus)
    for k, v in (resources or {}).items():
        _cluster_resources[k] = float(v)


def __getattr__(name: str) -> Any:
    # Submodules load on first use, so a worker process imports only what it needs.
    if name in ("tune", "train"):
        import importlib

        return importlib.import_module(f"hyperfleet.{name}")
    raise AttributeError(name)
