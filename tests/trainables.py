"""Trainables shared by the end-to-end tests (importable by worker processes)."""

import json
import os
import tempfile
import time

from hyperfleet import tune


def quadratic(config):
    """Reports (x - 3)^2 for a few iterations."""
    for i in range(config.get("iters", 3)):
        tune.report({"loss": (config["x"] - 3) ** 2 + 0.1 / (i + 1), "it": i})


def record_span(config):
    """Sleeps while recording its span, pid and visible GPUs in the folder config['log']."""
    start = time.time()
    time.sleep(config.get("sleep", 0.3))
    end = time.time()
    ctx = tune.get_context()
    line = {"start": start, "end": end, "pid": os.getpid(), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "trial": ctx.get_trial_id(), "rank": ctx.get_world_rank(), "world": ctx.get_world_size()}
    with open(os.path.join(config["log"], f"{os.getpid()}.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")
    tune.report({"score": 1.0})


def checkpointing(config):
    """Counts iterations in a checkpoint; fails once at iteration config['fail_at'] on its first attempt."""
    start = 0
    ck = tune.get_checkpoint()
    if ck is not None:
        with open(os.path.join(ck.path, "state.json")) as f:
            start = json.load(f)["i"]
    marker = os.path.join(config["log"], f"failed_{tune.get_context().get_trial_id()}")
    for i in range(start, config["iters"]):
        if i == config.get("fail_at") and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError(f"planned failure at {i}")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"i": i + 1}, f)
            tune.report({"i": i + 1, "resumed_from": start}, checkpoint=tune.Checkpoint.from_directory(d))


def failing(config):
    """Raises after one report."""
    tune.report({"loss": 1.0})
    raise ValueError("boom: " + str(config.get("x")))


class Counter(tune.Trainable):
    """A class trainable: counts up by config['step'] and checkpoints its count."""

    def setup(self, config):
        self.count = 0
        self.step_size = config["step"]

    def step(self):
        self.count += self.step_size
        return {"count": self.count, "done": self.count >= 10 * self.step_size}

    def save_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "count"), "w") as f:
            f.write(str(self.count))

    def load_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "count")) as f:
            self.count = int(f.read())


def chatty(config):
    """Prints to stdout and stderr, then reports its pid."""
    import sys

    print(f"hello from {config['k']}")
    print(f"warning {config['k']}", file=sys.stderr)
    tune.report({"pid": os.getpid()})


def slow_steps(config):
    """Reports every 0.1 s, forever."""
    i = 0
    while True:
        time.sleep(0.1)
        i += 1
        tune.report({"i": i})


def series(config):
    """Reports the values in config['values'] as `v`, one per iteration."""
    for v in config["values"]:
        tune.report({"v": float(v)})


def checks_durability(config):
    """After each report() returns, reads the store itself: the result must already be committed."""
    import sqlite3

    ctx = tune.get_context()
    db = os.path.join(os.path.dirname(os.path.dirname(ctx.get_trial_dir())), "experiment.db")
    for i in range(1, 6):
        tune.report({"i": i})
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            n = c.execute(
                "SELECT count(*) FROM results r JOIN trials t ON t.seq = r.trial_seq WHERE t.trial_id = ?",
                (ctx.get_trial_id(),),
            ).fetchone()[0]
        if n != i:
            raise AssertionError(f"report() returned before its result was committed: {n} != {i}")


def learning_curve(config):
    """A synthetic learning curve: loss falls towards a floor set by `q` (rank-consistent curves).

    loss(t) = floor + (1 - floor) * t^-0.7 with floor = 0.1 + 0.9 * q (lower q is better).
    Checkpoints at every step so paused trials resume where they stopped.
    """
    start = 0
    ck = tune.get_checkpoint()
    if ck is not None:
        with open(os.path.join(ck.path, "t")) as f:
            start = int(f.read())
    floor = 0.1 + 0.9 * config["q"]
    for t in range(start + 1, config.get("max_t", 27) + 1):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "t"), "w") as f:
                f.write(str(t))
            tune.report({"loss": floor + (1 - floor) * t ** -0.7}, checkpoint=tune.Checkpoint.from_directory(d))


def crossing_curve(config):
    """Learning curves that cross: the final loss is `q` (lower is better), but until t = 9 the
    order is reversed (loss 2 - q), as when the best configs learn slowly."""
    for t in range(1, config.get("max_t", 27) + 1):
        tune.report({"loss": config["q"] if t >= 9 else 2 - config["q"]})


def pbt_toy(config):
    """Ray's PBT toy problem: accuracy grows fastest when lr tracks an optimum that moves with accuracy.

    Noise is seeded by config['seed'], the trial and the step, so runs repeat exactly while each
    trial (a clone included) draws its own noise, as with Ray's unseeded generator.
    """
    import random

    lr = config["lr"]
    accuracy, step = 0.0, 1
    ck = tune.get_checkpoint()
    if ck is not None:
        with open(os.path.join(ck.path, "state.json")) as f:
            state = json.load(f)
        accuracy, step = state["acc"], state["step"] + 1
    midpoint, q_tolerance, noise_level = 100, 3, 2
    while True:
        trial = int(tune.get_context().get_trial_id().rsplit("_", 1)[1])  # the trial's index: stable across runs
        rng = random.Random(config["seed"] * 1_000_003 + step * 7919 + trial * 104_729)
        if accuracy < midpoint:
            optimal_lr = 0.01 * accuracy / midpoint
        else:
            optimal_lr = 0.01 - 0.01 * (accuracy - midpoint) / midpoint
        optimal_lr = min(0.01, max(0.001, optimal_lr))
        q_err = max(lr, optimal_lr) / min(lr, optimal_lr)
        if q_err < q_tolerance:
            accuracy += (1.0 / q_err) * rng.random()
        elif lr > optimal_lr:
            accuracy -= (q_err - q_tolerance) * rng.random()
        accuracy += noise_level * rng.gauss(0, 1)
        accuracy = max(0.0, accuracy)
        metrics = {"mean_accuracy": accuracy, "cur_lr": lr, "done": accuracy > midpoint * 2}
        if step % config.get("checkpoint_interval", 5) == 0:
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "state.json"), "w") as f:
                    json.dump({"acc": accuracy, "step": step}, f)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report(metrics)
        step += 1


def faulty(config):
    """Checkpoints every iteration; on its first attempt, at iteration config['fail_at'], fails the way
    config['fault'] names. It first starts a background child and writes both pids to the folder
    config['log'], so tests can check that nothing is left behind."""
    import ctypes
    import subprocess
    import sys

    trial = tune.get_context().get_trial_id()
    log = config["log"]
    child = subprocess.Popen(["sleep", "300"])
    with open(os.path.join(log, f"pids_{trial}"), "a") as f:
        f.write(f"{os.getpid()} {child.pid}\n")
    start = 0
    ck = tune.get_checkpoint()
    if ck is not None:
        with open(os.path.join(ck.path, "state.json")) as f:
            start = json.load(f)["i"]
    marker = os.path.join(log, f"failed_{trial}")
    for i in range(start, config["iters"]):
        if i == config["fail_at"] and not os.path.exists(marker):
            open(marker, "w").close()
            fault = config["fault"]
            sys.stderr.write(f"about to fail with {fault}\n")
            sys.stderr.flush()
            if fault == "exception":
                raise RuntimeError("planned exception")
            if fault == "exit":
                os._exit(3)
            if fault == "segfault":
                ctypes.string_at(0)
            if fault == "sigkill":
                subprocess.run(["kill", "-9", str(os.getpid())])
            if fault == "oom":
                with open(os.path.join(config["cgroup"], "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
                hog = []
                while True:
                    hog.append(bytearray(b"x" * (16 << 20)))
            if fault == "hang":
                time.sleep(600)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"i": i + 1}, f)
            tune.report({"i": i + 1, "resumed_from": start}, checkpoint=tune.Checkpoint.from_directory(d))


def ddp_loop(config):
    """Trains a small linear model with DDP on a fixed synthetic regression; checkpoints every epoch;
    each rank writes its final parameters and its losses to the folder config['log']."""
    import torch

    from hyperfleet import train
    from hyperfleet.train import torch as ht

    torch.manual_seed(0)
    x = torch.randn(256, 8)
    w_true = torch.arange(8, dtype=torch.float32) / 4
    y = x @ w_true + 0.01 * torch.randn(256)
    ds = torch.utils.data.TensorDataset(x, y)
    loader = ht.prepare_data_loader(torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True))
    model = ht.prepare_model(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    ctx = train.get_context()
    rank = ctx.get_world_rank()
    start = 0
    ck = train.get_checkpoint()
    if ck is not None:
        state = torch.load(os.path.join(ck.path, "model.pt"))
        model.module.load_state_dict(state["model"]) if hasattr(model, "module") else model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["epoch"]
    losses = []
    for epoch in range(start, config["epochs"]):
        total = 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xb).squeeze(-1), yb)
            loss.backward()
            opt.step()
            total += loss.item()
        losses.append(total / len(loader))
        if config.get("kill_rank") == rank and epoch == config.get("kill_epoch") \
                and not os.path.exists(os.path.join(config["log"], "killed")):
            open(os.path.join(config["log"], "killed"), "w").close()
            os.kill(os.getpid(), 9)
        with tempfile.TemporaryDirectory() as d:
            if rank == 0:
                inner = model.module if hasattr(model, "module") else model
                torch.save({"model": inner.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1},
                           os.path.join(d, "model.pt"))
            with open(os.path.join(d, f"rank{rank}.txt"), "w") as f:
                f.write(str(epoch + 1))
            train.report({"loss": losses[-1], "epoch": epoch + 1, "start": start},
                         checkpoint=train.Checkpoint.from_directory(d))
    inner = model.module if hasattr(model, "module") else model
    params = [p.detach().flatten().tolist() for p in inner.parameters()]
    with open(os.path.join(config["log"], f"final_rank{rank}_{ctx.get_trial_id()}_{os.getpid()}.json"), "w") as f:
        json.dump({"params": params, "losses": losses, "world": ctx.get_world_size(), "start": start}, f)


def rank_env(config):
    """Writes this worker's rank bookkeeping (environment and context) to the folder config['log']."""
    from hyperfleet import train

    ctx = train.get_context()
    keys = ["MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK"]
    out = {k: os.environ.get(k) for k in keys}
    out.update(world_rank=ctx.get_world_rank(), local_rank=ctx.get_local_rank(), world_size=ctx.get_world_size(),
               local_world_size=ctx.get_local_world_size(), node_rank=ctx.get_node_rank(),
               trial=ctx.get_trial_id(), pid=os.getpid())
    with open(os.path.join(config["log"], f"env_{ctx.get_trial_id()}_{ctx.get_world_rank()}.json"), "w") as f:
        json.dump(out, f)
    train.report({"ok": 1})


def uneven_reports(config):
    """Rank 1 reports once; the others three times: a bug the group must detect."""
    from hyperfleet import train

    n = 1 if train.get_context().get_world_rank() == 1 else 3
    for i in range(n):
        train.report({"i": i})


def two_objectives(config):
    """Reports f1 = x^2 and f2 = (x - 2)^2: every x in [0, 2] is Pareto-optimal."""
    x = config["x"]
    tune.report({"f1": x * x, "f2": (x - 2) ** 2})
