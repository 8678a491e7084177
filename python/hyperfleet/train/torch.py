"""Ray Train's PyTorch names: ``TorchTrainer`` and the helpers a training loop calls on each worker.

Each worker of a trial starts with torchrun's environment (``MASTER_ADDR``, ``MASTER_PORT``,
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``NODE_RANK``) and the
``torch.distributed`` process group already initialised (``nccl`` with GPUs, else ``gloo``,
unless ``TorchConfig(backend=...)`` says otherwise); it is destroyed when the loop returns.
Every rank must call ``report`` the same number of times: the k-th reports of all ranks meet,
rank 0's metrics become the trial's result, and the checkpoint folders the ranks pass merge
into one checkpoint.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from hyperfleet._config import RunConfig, ScalingConfig


@dataclass(frozen=True)
class TorchConfig:
    """The process group's backend (None: nccl with GPUs, else gloo) and collective timeout."""

    backend: Optional[str] = None
    timeout_s: int = 1800

    def __post_init__(self) -> None:
        if self.backend not in (None, "gloo", "nccl"):
            raise ValueError(f"TorchConfig(backend=...): expected None, 'gloo' or 'nccl', got {self.backend!r}")
        if not isinstance(self.timeout_s, (int, float)) or self.timeout_s <= 0:
            raise ValueError(f"TorchConfig(timeout_s=...): expected seconds > 0, got {self.timeout_s!r}")


class _TrainLoop:
    """The per-worker trainable: calls the user's loop with ``config["train_loop_config"]``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "train_loop_per_worker")

    def __call__(self, config: Dict[str, Any]) -> None:
        loop_config = config.get("train_loop_config", {})
        try:
            takes_config = len(inspect.signature(self.fn).parameters) > 0
        except (TypeError, ValueError):
            takes_config = True
        if takes_config:
            self.fn(loop_config)
        else:
            self.fn()


class TorchTrainer:
    """Trains one model with ``scaling_config.num_workers`` workers running ``train_loop_per_worker``.

    ``fit()`` runs it as a one-trial experiment and returns its ``Result``; ``Tuner(trainer,
    param_space={"train_loop_config": {...}})`` tunes it, each trial a gang of workers.
    """

    _hyperfleet_trainer = True

    def __init__(
        self,
        train_loop_per_worker: Callable[..., Any],
        *,
        train_loop_config: Optional[Dict[str, Any]] = None,
        torch_config: Optional[TorchConfig] = None,
        scaling_config: Optional[ScalingConfig] = None,
        run_config: Optional[RunConfig] = None,
        **_unused: Any,
    ) -> None:
        if not callable(train_loop_per_worker):
            raise TypeError(f"TorchTrainer(train_loop_per_worker=...): expected a function, got {train_loop_per_worker!r}")
        if train_loop_config is not None and not isinstance(train_loop_config, dict):
            raise TypeError(f"TorchTrainer(train_loop_config=...): expected a dict, got {type(train_loop_config).__name__}")
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = dict(train_loop_config or {})
        self.torch_config = torch_config or TorchConfig()
        self.scaling_config = scaling_config or ScalingConfig()
        self.run_config = run_config or RunConfig()

    def _as_trainable(self) -> _TrainLoop:
        return _TrainLoop(self.train_loop_per_worker)

    def _scaling_spec(self) -> Dict[str, Any]:
        spec = self.scaling_config.to_spec()
        spec["backend"] = self.torch_config.backend or "auto"
        spec["timeout_s"] = float(self.torch_config.timeout_s)
        return spec

    def fit(self) -> Any:
        """Runs the training and returns its ``Result``; raises ``TrainingFailedError`` if it failed."""
        from hyperfleet.exceptions import TrainingFailedError
        from hyperfleet.tune.tuner import Tuner

        grid = Tuner(self).fit()
        result = grid[0]
        if result.error is not None:
            raise TrainingFailedError(f"training failed: {result.error}") from result.error
        return result


def get_device() -> Any:
    """This worker's device: its GPU when it has one, else the CPU."""
    import torch

    if torch.cuda.is_available():
        from hyperfleet._session import get_context

        n = torch.cuda.device_count()
        return torch.device("cuda", 0 if n == 1 else get_context().get_local_rank() % n)
    return torch.device("cpu")


def prepare_model(model: Any, move_to_device: bool = True, parallel_strategy: Optional[str] = "ddp") -> Any:
    """Moves ``model`` to this worker's device and, with several workers, wraps it in DistributedDataParallel."""
    import torch.distributed as dist

    device = get_device()
    if move_to_device:
        model = model.to(device)
    if parallel_strategy == "ddp" and dist.is_initialized() and dist.get_world_size() > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    elif parallel_strategy not in (None, "ddp"):
        raise ValueError(f"prepare_model(parallel_strategy=...): expected 'ddp' or None, got {parallel_strategy!r}")
    return model


class _DeviceLoader:
    """Iterates a DataLoader, moving each batch to the device and advancing the sampler's epoch."""

    def __init__(self, loader: Any, device: Any, move: bool) -> None:
        self.loader, self.device, self.move = loader, device, move
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def _to(self, batch: Any) -> Any:
        if hasattr(batch, "to"):
            return batch.to(self.device)
        if isinstance(batch, (list, tuple)):
            return type(batch)(self._to(b) for b in batch)
        if isinstance(batch, dict):
            return {k: self._to(v) for k, v in batch.items()}
        return batch

    def __iter__(self) -> Any:
        set_epoch = getattr(getattr(self.loader, "sampler", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        self.epoch += 1
        for batch in self.loader:
            yield self._to(batch) if self.move else batch


def prepare_data_loader(data_loader: Any, add_dist_sampler: bool = True, move_to_device: bool = True) -> Any:
    """Gives each worker its own shard (DistributedSampler) and moves batches to its device."""
    import torch.distributed as dist
    from torch.utils.data import DataLoader, RandomSampler
    from torch.utils.data.distributed import DistributedSampler

    loader = data_loader
    if add_dist_sampler and dist.is_initialized() and dist.get_world_size() > 1 \
            and not isinstance(data_loader.sampler, DistributedSampler):
        shuffle = isinstance(data_loader.sampler, RandomSampler)
        sampler: Any = DistributedSampler(data_loader.dataset, shuffle=shuffle)
        loader = DataLoader(
            data_loader.dataset,
            batch_size=data_loader.batch_size,
            sampler=sampler,
            num_workers=data_loader.num_workers,
            collate_fn=data_loader.collate_fn,
            pin_memory=data_loader.pin_memory,
            drop_last=data_loader.drop_last,
        )
    return _DeviceLoader(loader, get_device(), move_to_device)


__all__ = ["TorchTrainer", "TorchConfig", "get_device", "prepare_model", "prepare_data_loader"]
