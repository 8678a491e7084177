"""``Tuner``: runs an experiment from Python on the Rust controller (Ray's ``tune.Tuner``)."""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from hyperfleet._config import RunConfig, TuneConfig
from hyperfleet._trainable import _WithParameters, is_class_trainable
from hyperfleet.tune.result_grid import ResultGrid
from hyperfleet.tune.search.sample import Domain, SampleFrom


def _space_to_spec(space: Dict[str, Any], funcs: List[Callable[..., Any]], path: str = "") -> Dict[str, Any]:
    """The canonical JSON of a param_space; ``sample_from`` callables are collected into ``funcs``."""
    if not isinstance(space, dict):
        raise TypeError(f"param_space{('.' + path) if path else ''}: expected a dict, got {type(space).__name__}")
    out: Dict[str, Any] = {}
    for k, v in space.items():
        if not isinstance(k, str):
            raise TypeError(f"param_space: keys must be strings, got {k!r} at {path or '(root)'}")
        p = f"{path}.{k}" if path else k
        if isinstance(v, SampleFrom):
            out[k] = {"$domain": {"kind": "sample_from", "id": len(funcs)}}
            funcs.append(v.func)
        elif isinstance(v, Domain):
            out[k] = {"$domain": dict(v.spec)}
        elif isinstance(v, dict) and set(v) == {"grid_search"}:
            out[k] = {"$domain": {"kind": "grid_search", "values": _json_value(v["grid_search"], p)}}
        elif isinstance(v, dict):
            out[k] = _space_to_spec(v, funcs, p)
        else:
            out[k] = _json_value(v, p)
    return out


def _json_value(v: Any, path: str) -> Any:
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"param_space.{path}: {v!r} is not a plain value (numbers, strings, bools, lists, dicts): {e}; "
            "pass large objects with tune.with_parameters"
        ) from None
    return v


class _AttrDict(dict):  # type: ignore[type-arg]
    def __getattr__(self, k: str) -> Any:
        try:
            v = self[k]
        except KeyError:
            raise AttributeError(k) from None
        return _AttrDict(v) if isinstance(v, dict) else v


class _SpecView:
    """What a ``sample_from`` function receives: ``spec.config`` is the config resolved so far."""

    def __init__(self, config: Dict[str, Any]) -> None:
        self.config = _AttrDict(config)

    def __getitem__(self, k: str) -> Any:
        return getattr(self, k)


class _TrialView:
    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id
        self.config: Dict[str, Any] = {}
        self.status = "RUNNING"
        self.last_result: Dict[str, Any] = {}

    def __repr__(self) -> str:
        return self.trial_id


class _Hooks:
    """Python objects the Rust controller calls back into (only the attributes that are set)."""

    def __init__(self, tuner: "Tuner", funcs: List[Callable[..., Any]], verbose: int) -> None:
        rc = tuner._run_config
        tc = tuner._tune_config
        stop = rc.stop
        self._stopper: Any = stop if (stop is not None and not isinstance(stop, dict)) else None
        self._funcs = funcs
        self._callbacks = list(rc.callbacks or [])
        self._trials: Dict[str, _TrialView] = {}
        self._iteration = 0
        sched = tc.scheduler
        self._mutation_funcs = sched._callables() if hasattr(sched, "_callables") else []
        self._custom_explore = sched._explore_fn() if hasattr(sched, "_explore_fn") else None
        self._name_creator = tc.trial_name_creator
        self._dirname_creator = tc.trial_dirname_creator
        self._display: Any = None
        self._verbose = verbose
        self._drawn = 0
        self._last_line = time.monotonic()
        if self._stopper is None:
            self.stop_trial = None  # type: ignore[assignment]
        if not hasattr(self._stopper, "stop_all"):
            self.stop_all = None  # type: ignore[assignment]
        if not funcs:
            self.resolve = None  # type: ignore[assignment]
        if not self._callbacks and verbose < 3:
            self.on_result = None  # type: ignore[assignment]
        if not self._callbacks:
            self.on_trial_end = None  # type: ignore[assignment]
        if not self._mutation_funcs and self._custom_explore is None:
            self.explore = None  # type: ignore[assignment]
        if self._dirname_creator is None:
            self.trial_dirname = None  # type: ignore[assignment]
        if self._name_creator is None:
            self.trial_name = None  # type: ignore[assignment]
        if verbose == 0:
            self.progress = None  # type: ignore[assignment]

    def stop_trial(self, trial_id: str, result_json: str) -> bool:
        return bool(self._stopper(trial_id, json.loads(result_json)))

    def stop_all(self) -> bool:
        return bool(self._stopper.stop_all())

    def resolve(self, config_json: str, leaves_json: str) -> str:
        config = json.loads(config_json)
        for path, fid in json.loads(leaves_json):
            value = self._funcs[fid](_SpecView(config))
            node = config
            for p in path[:-1]:
                node = node.setdefault(p, {})
            node[path[-1]] = _json_value(value, ".".join(path))
        return json.dumps(config)

    def trial_name(self, trial_id: str, config_json: str) -> Optional[str]:
        view = _TrialView(trial_id)
        view.config = json.loads(config_json)
        assert self._name_creator is not None
        return str(self._name_creator(view))

    def explore(self, config_json: str, custom: bool) -> str:
        funcs = self._mutation_funcs

        def fill(v: Any, path: str) -> Any:
            if isinstance(v, dict) and set(v) == {"$call"}:
                return _json_value(funcs[v["$call"]](), path)
            if isinstance(v, dict):
                return {k: fill(x, f"{path}.{k}" if path else k) for k, x in v.items()}
            return v

        config = fill(json.loads(config_json), "")
        if custom and self._custom_explore is not None:
            out = self._custom_explore(config)
            if out is not None:
                config = out
            if not isinstance(config, dict):
                raise TypeError(f"custom_explore_fn must return the config dict, got {type(config).__name__}")
        return json.dumps(config, allow_nan=False)

    def trial_dirname(self, trial_id: str, config_json: str) -> Optional[str]:
        view = _TrialView(trial_id)
        view.config = json.loads(config_json)
        assert self._dirname_creator is not None
        return str(self._dirname_creator(view))

    def _view(self, trial_id: str) -> _TrialView:
        v = self._trials.get(trial_id)
        if v is None:
            v = self._trials[trial_id] = _TrialView(trial_id)
        return v

    def on_result(self, trial_id: str, result_json: str) -> None:
        self._iteration += 1
        view = self._view(trial_id)
        view.last_result = json.loads(result_json)
        if self._verbose >= 3:
            sys.stdout.write(f"{trial_id} {result_json}\n")
        for cb in self._callbacks:
            cb.on_trial_result(iteration=self._iteration, trials=list(self._trials.values()), trial=view, result=view.last_result)

    def on_trial_end(self, trial_id: str, status: str) -> None:
        view = self._view(trial_id)
        view.status = status
        for cb in self._callbacks:
            if status == "ERROR":
                cb.on_trial_error(iteration=self._iteration, trials=list(self._trials.values()), trial=view)
            else:
                cb.on_trial_complete(iteration=self._iteration, trials=list(self._trials.values()), trial=view)

    def progress(self, text: str, status: str, last: bool) -> None:
        body = text if self._verbose >= 2 else status + "\n"
        if _in_notebook():
            import html

            from IPython.display import HTML, display  # type: ignore[import-not-found]

            view = HTML(f"<pre>{html.escape(body)}</pre>")
            if self._display is None:
                self._display = display(view, display_id=True)
            else:
                self._display.update(view)
            return
        now = time.monotonic()
        if sys.stdout.isatty():
            # Redraw in place, a few times a second at most.
            if self._drawn:
                sys.stdout.write(f"\x1b[{self._drawn}A\x1b[J")
            sys.stdout.write(body)
            self._drawn = 0 if last else body.count("\n")
        elif last:
            sys.stdout.write(body)
        elif now - self._last_line >= 10.0:
            self._last_line = now
            sys.stdout.write(status + "\n")
        sys.stdout.flush()

    def end(self) -> None:
        for cb in self._callbacks:
            cb.on_experiment_end(trials=list(self._trials.values()))


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except AttributeError:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _trainable_name(t: Any) -> str:
    if isinstance(t, _WithParameters):
        t = t.trainable
    return str(getattr(t, "__name__", type(t).__name__))


class Tuner:
    """Runs ``trainable`` over ``param_space``: ``Tuner(...).fit()`` returns a ``ResultGrid``."""

    def __init__(
        self,
        trainable: Any = None,
        *,
        param_space: Optional[Dict[str, Any]] = None,
        tune_config: Optional[TuneConfig] = None,
        run_config: Optional[RunConfig] = None,
        _restore_path: Optional[str] = None,
    ) -> None:
        trainer = getattr(trainable, "_hyperfleet_trainer", False)
        if trainable is None or not (trainer or callable(trainable) or is_class_trainable(trainable)
                                     or isinstance(trainable, _WithParameters)):
            raise TypeError(f"Tuner(trainable=...): expected a function, a Trainable class or a trainer, got {trainable!r}")
        self._trainer = trainable if trainer else None
        self._trainable = trainable._as_trainable() if trainer else trainable
        space = dict(param_space or {})
        if trainer:
            # A trainer's own train_loop_config is the default; the param_space's keys override it (Ray's merge).
            loop = dict(trainable.train_loop_config or {})
            loop.update(space.get("train_loop_config") or {})
            space["train_loop_config"] = loop
            if run_config is None:
                run_config = trainable.run_config
        sc = space.get("scaling_config")
        if sc is not None:
            from hyperfleet._config import ScalingConfig

            if isinstance(sc, ScalingConfig):
                space["scaling_config"] = sc.to_space()
            elif not isinstance(sc, dict):
                raise TypeError("param_space['scaling_config']: expected a ScalingConfig or a dict of its fields "
                                f"(num_workers, use_gpu, resources_per_worker, placement_strategy), got {sc!r}")
        self._param_space = space
        self._tune_config = tune_config or TuneConfig()
        self._run_config = run_config or RunConfig()
        self._restore_path = _restore_path
        self._experiment_path: Optional[str] = _restore_path
        self._restore_flags: Dict[str, bool] = {}
        self._extend: Dict[str, Any] = {}

    def _spec(self) -> Tuple[Dict[str, Any], List[Callable[..., Any]]]:
        tc, rc = self._tune_config, self._run_config
        funcs: List[Callable[..., Any]] = []
        space = _space_to_spec(self._param_space, funcs)
        name = rc.name or f"{_trainable_name(self._trainable)}_{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}"
        import hyperfleet

        resources = getattr(self._trainable, "_hyperfleet_resources", None) or {"cpu": 1}
        scaling: Dict[str, Any] = {"workers": 1, "resources_per_worker": resources, "placement": "pack"}
        if self._trainer is not None:
            scaling = self._trainer._scaling_spec()
        scaling["reserve_after_s"] = float(tc.reserve_after_s)
        search: Dict[str, Any] = {"algorithm": "random"}
        if tc.search_alg is not None:
            to_spec = getattr(tc.search_alg, "to_spec", None)
            if to_spec is None:
                raise TypeError(f"TuneConfig(search_alg=...): {type(tc.search_alg).__name__} is not a hyperfleet searcher")
            search = to_spec()
        # A searcher's own metric/mode (Ray lets either carry them) fill in the experiment's.
        metric, mode = tc.metric, tc.mode
        s_metric, s_mode = search.pop("metric", None), search.pop("mode", None)
        if s_metric is not None:
            if metric is not None and (metric, mode) != (s_metric, s_mode):
                raise ValueError(f"TuneConfig(metric={metric!r}, mode={mode!r}) and the searcher's "
                                 f"(metric={s_metric!r}, mode={s_mode!r}) differ: set them in one place")
            metric, mode = s_metric, s_mode
        scheduler: Dict[str, Any] = {"kind": "fifo"}
        if tc.scheduler is not None:
            to_spec = getattr(tc.scheduler, "to_spec", None)
            if to_spec is None:
                raise TypeError(f"TuneConfig(scheduler=...): {type(tc.scheduler).__name__} is not a hyperfleet scheduler")
            scheduler = to_spec()
        spec: Dict[str, Any] = {
            "experiment": {
                "name": name,
                "storage": os.path.abspath(os.path.expanduser(rc.storage_path or "~/hyperfleet_results")),
                "metric": metric,
                "mode": mode,
                "num_samples": tc.num_samples,
                "max_concurrent_trials": tc.max_concurrent_trials,
                "time_budget_s": float(tc.time_budget_s) if tc.time_budget_s is not None else None,
                "reuse_workers": tc.reuse_actors,
                "verbose": 2 if rc.verbose is None else rc.verbose,
                "python_path": [p for p in sys.path if p],
                "durability": rc.durability,
            },
            "trainable": {"pickle": "", "name": _trainable_name(self._trainable)},
            "scaling": scaling,
            "space": space,
            "search": search,
            "scheduler": scheduler,
            "stop": {k: float(v) for k, v in rc.stop.items()} if isinstance(rc.stop, dict) else {},
            "resources": dict(hyperfleet._cluster_resources),
            "cluster": {"virtual_nodes": [dict(n) for n in hyperfleet._virtual_nodes]},
            "checkpoint": (rc.checkpoint_config.to_spec() if rc.checkpoint_config else {}),
            "failure": (rc.failure_config.to_spec() if rc.failure_config else {}),
        }
        return spec, funcs

    def fit(self) -> ResultGrid:
        """Runs the experiment (or continues it, after ``restore``) and returns its results."""
        from hyperfleet import _native

        if self._restore_path is not None:
            with sqlite3.connect(os.path.join(self._restore_path, "experiment.db")) as c:
                row = c.execute("SELECT value FROM experiment WHERE key = 'spec'").fetchone()
            spec = json.loads(row[0])
            for key in ("num_samples", "time_budget_s"):
                if self._extend.get(key) is not None:
                    spec["experiment"][key] = self._extend[key]
            if self._extend.get("stop"):
                spec["stop"] = {**spec.get("stop", {}), **{k: float(v) for k, v in self._extend["stop"].items()}}
            funcs: List[Callable[..., Any]] = []
            if self._param_space:
                _space_to_spec(self._param_space, funcs)
            exp_dir = self._restore_path
        else:
            spec, funcs = self._spec()
            exp_dir = os.path.join(spec["experiment"]["storage"], spec["experiment"]["name"])
            _native.validate_spec(json.dumps(spec))
            if os.path.exists(os.path.join(exp_dir, "experiment.db")):
                from hyperfleet.exceptions import ExperimentExistsError

                raise ExperimentExistsError(
                    f"experiment already exists at {exp_dir}; continue it with Tuner.restore({exp_dir!r}, trainable) "
                    "or choose another RunConfig(name=...)"
                )
        fresh = not os.path.exists(exp_dir)
        os.makedirs(exp_dir, exist_ok=True)
        if not (spec["trainable"].get("python") or spec["trainable"].get("command")):
            spec["trainable"]["pickle"] = self._write_trainable(exp_dir)
        hooks = _Hooks(self, funcs, int(spec["experiment"].get("verbose", 2)))
        try:
            summary = _native.fit(
                json.dumps(spec), hooks, self._restore_path is not None, sys.executable, os.getcwd(), **self._restore_flags
            )
        except Exception:
            if fresh and not os.path.exists(os.path.join(exp_dir, "experiment.db")):
                import shutil

                shutil.rmtree(exp_dir, ignore_errors=True)  # refused before it started: leave nothing behind
            raise
        hooks.end()
        self._experiment_path = summary["experiment_dir"]
        if summary["interrupted"]:
            sys.stderr.write(f"Interrupted. Resume with: Tuner.restore({self._experiment_path!r}, trainable=...).fit()\n")
            raise KeyboardInterrupt
        if summary["status"] == "failed":
            from hyperfleet.exceptions import TuneError

            raise TuneError(summary["error"] or "the experiment failed")
        return ResultGrid(self._experiment_path)

    def _write_trainable(self, exp_dir: str) -> str:
        import cloudpickle

        t = self._trainable
        if isinstance(t, _WithParameters):
            t.write_params(exp_dir)
        path = os.path.join(exp_dir, "trainable.pkl")
        with open(path + ".tmp", "wb") as f:
            cloudpickle.dump(t, f)
        os.replace(path + ".tmp", path)
        return path

    def get_results(self) -> ResultGrid:
        """The results of the experiment this Tuner ran or restored."""
        if self._experiment_path is None:
            raise RuntimeError("Tuner.get_results(): call fit() first, or use Tuner.restore(path, trainable)")
        return ResultGrid(self._experiment_path)

    @classmethod
    def restore(
        cls,
        path: str,
        trainable: Any,
        *,
        resume_unfinished: bool = True,
        resume_errored: bool = False,
        restart_errored: bool = False,
        param_space: Optional[Dict[str, Any]] = None,
        num_samples: Optional[int] = None,
        time_budget_s: Optional[float] = None,
        stop: Optional[Dict[str, float]] = None,
        **_unused: Any,
    ) -> "Tuner":
        """A Tuner that continues the experiment at ``path``: finished trials are kept, unfinished ones resume.

        ``resume_errored`` continues ERROR trials from their latest checkpoint, ``restart_errored``
        starts them over. ``num_samples``, ``time_budget_s`` (counted over the experiment's whole
        running time) and ``stop`` extend a finished or interrupted experiment; the searcher
        continues from everything it has seen.
        """
        path = os.path.abspath(os.path.expanduser(path))
        if not cls.can_restore(path):
            raise FileNotFoundError(f"Tuner.restore: {path} holds no experiment (no experiment.db with a spec)")
        if stop is not None and not isinstance(stop, dict):
            raise TypeError(f"Tuner.restore(stop=...): expected a dict of metric -> threshold, got {stop!r}")
        t = cls(trainable, param_space=param_space, _restore_path=path)
        t._restore_flags = {
            "resume_unfinished": bool(resume_unfinished),
            "resume_errored": bool(resume_errored),
            "restart_errored": bool(restart_errored),
        }
        t._extend = {"num_samples": num_samples, "time_budget_s": time_budget_s, "stop": stop}
        return t

    @classmethod
    def can_restore(cls, path: str) -> bool:
        """Whether ``path`` holds an experiment that ``restore`` can continue."""
        db = os.path.join(os.path.expanduser(path), "experiment.db")
        if not os.path.isfile(db):
            return False
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                return c.execute("SELECT 1 FROM experiment WHERE key = 'spec'").fetchone() is not None
        except sqlite3.Error:
            return False
