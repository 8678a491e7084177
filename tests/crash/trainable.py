"""The crash harness's trainable: deterministic scores, a checkpoint every `ckpt_every` iterations, and a side
log of what it saw acknowledged, written by the trainable itself so the harness can hold the
store to it."""

import json
import os
import tempfile
import time

from hyperfleet import tune


def score(x: float, i: int) -> float:
    """The result at iteration ``i``: a deterministic learning curve whose level depends on ``x``."""
    return round(x * (1.0 - 0.9 ** i), 12)


def train(config):
    trial = tune.get_context().get_trial_id()
    side = os.path.join(os.environ["CRASH_SIDE_LOG"], f"{trial}.jsonl")
    start = 0
    ck = tune.get_checkpoint()
    if ck is not None:
        with open(os.path.join(ck.path, "state.json")) as f:
            start = json.load(f)["i"]
    with open(side, "a") as log:
        log.write(json.dumps({"start": start, "pid": os.getpid()}) + "\n")
        log.flush()
        for i in range(start, config["iters"]):
            time.sleep(config["sleep"])
            s = score(config["x"], i + 1)
            if (i + 1) % config["ckpt_every"]:
                tune.report({"score": s, "i": i + 1})
                ckpt = False
            else:
                with tempfile.TemporaryDirectory() as d:
                    with open(os.path.join(d, "state.json"), "w") as f:
                        json.dump({"i": i + 1}, f)
                    # A little weight, so a kill can land inside the copy.
                    with open(os.path.join(d, "weights.bin"), "wb") as f:
                        f.write(os.urandom(64 * 1024))
                    tune.report({"score": s, "i": i + 1}, checkpoint=tune.Checkpoint.from_directory(d))
                ckpt = True
            # report() returned: the result is durable. Say so.
            log.write(json.dumps({"acked": i + 1, "score": s, "ckpt": ckpt}) + "\n")
            log.flush()
