"""A 1-GPU TorchTrainer over nccl: the process group, the device and DDP on a real GPU.

Run by tests/gpu/check.sh on a GPU machine. Prints the device the worker trained on, the
backend, the final loss and how long fit() took.
"""

import os
import tempfile
import time

import torch

from hyperfleet import train
from hyperfleet.train.torch import TorchConfig, TorchTrainer, get_device, prepare_model


def loop(config):
    import torch.distributed as dist

    device = get_device()
    model = prepare_model(torch.nn.Linear(256, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(4096, 256, device=device)
    y = x.sum(1, keepdim=True) / 16
    for step in range(config["steps"]):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        train.report({"loss": loss.item(), "device": str(device), "backend": dist.get_backend()})


if __name__ == "__main__":
    t = time.time()
    result = TorchTrainer(
        loop,
        train_loop_config={"steps": 50},
        scaling_config=train.ScalingConfig(num_workers=1, use_gpu=True),
        torch_config=TorchConfig(backend="nccl"),
        run_config=train.RunConfig(name="nccl", storage_path=tempfile.mkdtemp(), verbose=0),
    ).fit()
    m = result.metrics
    print(f"TorchTrainer nccl: device {m['device']}, backend {m['backend']}, final loss {m['loss']:.4f}, "
          f"fit {time.time() - t:.1f} s, CUDA_VISIBLE_DEVICES in the driver: {os.environ.get('CUDA_VISIBLE_DEVICES')}")
