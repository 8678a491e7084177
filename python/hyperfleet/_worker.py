"""A worker process: runs trials sent by the driver over the socket on fd 3, one after another.

Started as ``python -m hyperfleet._worker``. Kept light: it imports only what a trial needs.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import tempfile
import traceback
from typing import Any, Dict, Optional

from hyperfleet import _session
from hyperfleet._checkpoint import Checkpoint

_TRAINABLES: Dict[str, Any] = {}


def _load_trainable(spec: Dict[str, Any]) -> Any:
    key = json.dumps(spec, sort_keys=True)
    t = _TRAINABLES.get(key)
    if t is None:
        if "pickle" in spec:
            import cloudpickle

            with open(spec["pickle"], "rb") as f:
                t = cloudpickle.load(f)
        else:
            mod, _, name = spec["python"].partition(":")
            t = importlib.import_module(mod)
            for part in name.split("."):
                t = getattr(t, part)
        _TRAINABLES[key] = t
    return t


def _redirect(trial_dir: str, rank: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    suffix = f".rank{rank}" if rank else ""
    for fd, name in ((1, f"stdout{suffix}.log"), (2, f"stderr{suffix}.log")):
        f = os.open(os.path.join(trial_dir, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(f, fd)
        os.close(f)


def _run_function(fn: Any, config: Dict[str, Any], params: Dict[str, Any]) -> None:
    out = fn(config, **params)
    if isinstance(out, dict):
        _session.report(out)


def _run_class(cls: Any, config: Dict[str, Any], params: Dict[str, Any], msg: Dict[str, Any], sess: Any) -> None:
    obj = cls(config, **params)
    freq = int(msg.get("checkpoint_frequency") or 0)
    at_end = bool(msg.get("checkpoint_at_end"))
    obj.iteration = sess.iteration
    ck = sess.checkpoint
    if ck is not None:
        obj.load_checkpoint(ck.path)
    try:
        while True:
            result = obj.step()
            if not isinstance(result, dict):
                raise TypeError(f"{cls.__name__}.step() must return a dict of metrics, got {type(result).__name__}")
            done = bool(result.get("done"))
            it = sess.iteration + 1
            save = (freq > 0 and it % freq == 0) or (done and at_end)
            checkpoint: Optional[Checkpoint] = None
            if save:
                d = tempfile.mkdtemp(prefix="hyperfleet_ckpt_")
                obj.save_checkpoint(d)
                checkpoint = Checkpoint(d)
            try:
                _session.report(result, checkpoint=checkpoint)
            finally:
                obj.iteration = sess.iteration
                if checkpoint is not None:
                    import shutil

                    shutil.rmtree(checkpoint.path, ignore_errors=True)
            if done:
                break
    finally:
        obj.cleanup()


def _dist_env(msg: Dict[str, Any]) -> None:
    """Sets torchrun's variables for this rank of its group."""
    env = {
        "MASTER_ADDR": msg.get("master_addr", "127.0.0.1"),
        "MASTER_PORT": msg.get("master_port", 0),
        "RANK": msg.get("rank", 0),
        "WORLD_SIZE": msg.get("world_size", 1),
        "LOCAL_RANK": msg.get("local_rank", 0),
        "LOCAL_WORLD_SIZE": msg.get("local_world_size", 1),
        "NODE_RANK": msg.get("node_rank", 0),
        "GROUP_RANK": msg.get("node_rank", 0),
    }
    for k, v in env.items():
        os.environ[k] = str(v)


def _init_process_group(msg: Dict[str, Any]) -> bool:
    """Initialises torch.distributed for the trial when the experiment asks for a backend."""
    backend = msg.get("backend")
    if not backend:
        return False
    import datetime

    import torch
    import torch.distributed as dist

    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" and torch.cuda.is_available():
        torch.cuda.set_device(0 if torch.cuda.device_count() == 1 else int(msg.get("local_rank", 0)))
    timeout = datetime.timedelta(seconds=float(msg.get("timeout_s") or 1800))
    dist.init_process_group(backend=backend, init_method="env://", rank=int(msg.get("rank", 0)),
                            world_size=int(msg.get("world_size", 1)), timeout=timeout)
    return True


def _run_trial(msg: Dict[str, Any], wfile: Any, rfile: Any, saved_fds: Any) -> None:
    for p in reversed(msg.get("sys_path") or []):
        if p not in sys.path:
            sys.path.insert(0, p)
    trial_dir = msg["trial_dir"]
    _redirect(trial_dir, int(msg.get("rank", 0)))
    sess = _session._Session(msg, wfile, rfile)
    _session._current = sess
    os.environ["HYPERFLEET_TRIAL_ID"] = str(msg["trial_id"])
    os.environ["HYPERFLEET_TRIAL_DIR"] = trial_dir
    _dist_env(msg)
    group = False
    try:
        group = _init_process_group(msg)
        from hyperfleet._trainable import _WithParameters, is_class_trainable

        t = _load_trainable(msg["trainable"])
        params: Dict[str, Any] = {}
        if isinstance(t, _WithParameters):
            params = t.load_params()
            t = t.trainable
        config = msg["config"]
        if is_class_trainable(t):
            _run_class(t, config, params, msg, sess)
        else:
            _run_function(t, config, params)
        reply = {"t": "done"}
    except _session._StopTrial:
        reply = {"t": "done"}
    except BaseException as e:  # noqa: BLE001 - everything a trainable raises is recorded
        if isinstance(e, KeyboardInterrupt):
            raise
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        reply = {"t": "error", "error": f"{type(e).__name__}: {e}", "traceback": tb}
    finally:
        if group:
            import torch.distributed as dist

            if dist.is_initialized():
                try:
                    dist.destroy_process_group()
                except Exception:  # noqa: BLE001 - the trial's outcome is already decided
                    pass
        _session._current = None
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
    sess.send(reply)


def main() -> None:
    """Serves trials until told to exit or the driver goes away."""
    sock = socket.socket(fileno=3)
    rfile = sock.makefile("rb")
    wfile = sock.makefile("wb")
    saved = (os.dup(1), os.dup(2))
    wfile.write(json.dumps({"t": "ready", "pid": os.getpid()}).encode() + b"\n")
    wfile.flush()
    for line in rfile:
        msg = json.loads(line)
        kind = msg.get("t")
        if kind == "run":
            _run_trial(msg, wfile, rfile, saved)
        elif kind == "exit":
            break


if __name__ == "__main__":
    main()
