"""Tune a small PyTorch model trained with 2 workers (DistributedDataParallel over gloo on CPU).

    python experiments/torch_ddp.py                 # 4 trials, each a gang of 2 workers
    python experiments/torch_ddp.py --samples 2 --epochs 3

Each trial trains an MLP on scikit-learn's digits with TorchTrainer: the process group is set up
before `train_loop` runs, `prepare_model` wraps the model in DDP, `prepare_data_loader` gives each
worker its shard, and every rank reports each epoch (rank 0's metrics are the trial's). ASHA stops
weak learning rates early; each epoch is checkpointed, so a stopped or crashed trial can resume.
Needs `pip install '.[torch,examples]'`.
"""

import argparse
import os
import tempfile

from hyperfleet import train, tune
from hyperfleet.train.torch import TorchTrainer, prepare_data_loader, prepare_model
from hyperfleet.tune.schedulers import ASHAScheduler


def train_loop(config):
    import torch
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    n_val = 300
    train_ds = torch.utils.data.TensorDataset(x[n_val:], y[n_val:])
    loader = prepare_data_loader(torch.utils.data.DataLoader(train_ds, batch_size=64, shuffle=True))
    model = prepare_model(torch.nn.Sequential(
        torch.nn.Linear(64, config["hidden"]), torch.nn.ReLU(), torch.nn.Linear(config["hidden"], 10)))
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    start = 0
    ck = train.get_checkpoint()
    if ck is not None:
        state = torch.load(os.path.join(ck.path, "state.pt"))
        model.module.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["epoch"]
    for epoch in range(start, config["epochs"]):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(x[:n_val])
            val_loss = torch.nn.functional.cross_entropy(logits, y[:n_val]).item()
            acc = (logits.argmax(1) == y[:n_val]).float().mean().item()
        with tempfile.TemporaryDirectory() as d:
            if train.get_context().get_world_rank() == 0:
                torch.save({"model": model.module.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1},
                           os.path.join(d, "state.pt"))
            train.report({"val_loss": val_loss, "accuracy": acc}, checkpoint=train.Checkpoint.from_directory(d))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--storage", default="./results")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"epochs": args.epochs},
        # Two workers of one CPU each: a 2-core machine runs one trial at a time.
        scaling_config=train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
    )
    tuner = tune.Tuner(
        trainer,
        param_space={"train_loop_config": {"lr": tune.loguniform(1e-3, 0.3), "hidden": tune.choice([32, 64])}},
        tune_config=tune.TuneConfig(
            metric="val_loss", mode="min", num_samples=args.samples,
            search_alg=tune.search.BasicVariantGenerator(random_state=args.seed),
            scheduler=ASHAScheduler(max_t=args.epochs, grace_period=2)),
        run_config=tune.RunConfig(name="torch_ddp", storage_path=os.path.abspath(args.storage),
                                  checkpoint_config=train.CheckpointConfig(num_to_keep=2)),
    )
    best = tuner.fit().get_best_result()
    print(f"best: lr={best.config['train_loop_config']['lr']:.4g} hidden={best.config['train_loop_config']['hidden']} "
          f"val_loss={best.metrics['val_loss']:.4f} accuracy={best.metrics['accuracy']:.3f}")
    return best


if __name__ == "__main__":
    main()
