"""The Python API's own pieces: search-space specs, config validation, checkpoints, result grids."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from hyperfleet import _native, tune
from hyperfleet.exceptions import ConfigError
from hyperfleet.tune.tuner import _space_to_spec


def test_space_functions_build_ray_compatible_specs():
    funcs = []
    spec = _space_to_spec(
        {
            "lr": tune.loguniform(1e-4, 1e-1),
            "n": tune.randint(1, 10),
            "q": tune.qrandint(0, 10, 5),
            "act": tune.choice(["relu", "tanh"]),
            "g": tune.grid_search([1, 2]),
            "nested": {"m": tune.uniform(0.8, 0.99), "const": "x"},
            "f": tune.sample_from(lambda spec: 1),
        },
        funcs,
    )
    assert spec["lr"] == {"$domain": {"kind": "loguniform", "low": 1e-4, "high": 0.1, "base": 10.0}}
    assert spec["n"] == {"$domain": {"kind": "randint", "low": 1, "high": 10}}
    assert spec["q"] == {"$domain": {"kind": "qrandint", "low": 0, "high": 10, "q": 5}}
    assert spec["g"] == {"$domain": {"kind": "grid_search", "values": [1, 2]}}
    assert spec["nested"]["const"] == "x"
    assert spec["f"] == {"$domain": {"kind": "sample_from", "id": 0}} and len(funcs) == 1
    assert tune.grid_search([1]) == {"grid_search": [1]}
    assert repr(tune.uniform(0, 1)) == "uniform(low=0.0, high=1.0)"


def test_space_function_argument_errors_name_the_argument():
    with pytest.raises(TypeError, match=r"randint\(lower=...\): expected an integer"):
        tune.randint(0.5, 3)
    with pytest.raises(TypeError, match=r"uniform\(upper=...\): expected a finite number"):
        tune.uniform(0, float("inf"))
    with pytest.raises(TypeError, match="choice: expected a list"):
        tune.choice("abc")
    with pytest.raises(TypeError, match="sample_from: expected a callable"):
        tune.sample_from(3)


def _spec(space):
    return json.dumps({"experiment": {"name": "x", "storage": "/tmp"}, "trainable": {"python": "m:f"}, "space": space})


@pytest.mark.parametrize(
    "space, message",
    [
        ({"a": {"$domain": {"kind": "uniform", "low": 1, "high": 1}}}, r"space\.a: uniform needs low < high"),
        ({"o": {"lr": {"$domain": {"kind": "loguniform", "low": 0, "high": 1}}}}, r"space\.o\.lr: loguniform needs low > 0"),
        ({"q": {"$domain": {"kind": "quniform", "low": 0, "high": 1, "q": -1}}}, r"space\.q: "),
        ({"c": {"$domain": {"kind": "choice", "values": []}}}, r"space\.c: choice needs at least one"),
        ({"r": {"$domain": {"kind": "randint", "low": 3, "high": 3}}}, r"space\.r: randint"),
    ],
)
def test_invalid_spaces_are_refused_naming_the_parameter(space, message):
    with pytest.raises(ConfigError, match=message):
        _native.validate_spec(_spec(space))


def test_spec_errors_name_the_field():
    with pytest.raises(ConfigError, match="unknown field `bogus`"):
        _native.validate_spec(json.dumps({"experiment": {"bogus": 1}, "trainable": {"python": "m:f"}}))
    with pytest.raises(ConfigError, match="experiment.num_samples"):
        _native.validate_spec(json.dumps({"experiment": {"num_samples": -5}, "trainable": {"python": "m:f"}}))


def test_config_objects_validate_their_arguments():
    with pytest.raises(ValueError, match=r"CheckpointConfig\(num_to_keep=...\)"):
        tune.CheckpointConfig(num_to_keep=0)
    with pytest.raises(ValueError, match=r"FailureConfig\(max_failures=...\)"):
        tune.FailureConfig(max_failures=-2)
    with pytest.raises(ValueError, match=r"RunConfig\(stop=\{'loss': ...\}\)"):
        tune.RunConfig(stop={"loss": "low"})
    with pytest.raises(ValueError, match="metric and mode"):
        tune.TuneConfig(metric="loss")
    with pytest.raises(ValueError, match=r"with_resources: resource 'gpu'"):
        tune.with_resources(lambda c: None, {"gpu": -1})
    with pytest.raises(TypeError, match=r"Tuner\(trainable=...\)"):
        tune.Tuner(42)


def test_checkpoint_round_trip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "w.txt").write_text("weights")
    ck = tune.Checkpoint.from_directory(src)
    with ck.as_directory() as d:
        with open(os.path.join(d, "w.txt")) as f:
            assert f.read() == "weights"
    out = ck.to_directory(tmp_path / "out")
    with open(os.path.join(out, "w.txt")) as f:
        assert f.read() == "weights"
    assert os.fspath(ck) == str(src)
    with pytest.raises(ValueError, match="not a directory"):
        tune.Checkpoint.from_directory(tmp_path / "missing")


def test_report_outside_a_trial_is_a_clear_error():
    with pytest.raises(RuntimeError, match="inside a trial"):
        tune.report({"x": 1})


SCRIPT = """
import os, sys, time
from hyperfleet import tune

def slow(config):
    for i in range(200):
        time.sleep(0.05)
        tune.report({"i": i})

if __name__ == "__main__":
    try:
        tune.Tuner(slow, param_space={"k": tune.grid_search([1, 2])},
                   run_config=tune.RunConfig(name="e", storage_path=sys.argv[1], verbose=0)).fit()
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
        sys.exit(7)
"""


def test_ctrl_c_in_fit_stops_trials_and_hints_how_to_resume(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(textwrap.dedent(SCRIPT))
    p = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = tmp_path / "e" / "experiment.db"
    deadline = time.time() + 30
    while time.time() < deadline and not (db.exists() and (tmp_path / "e" / "trials").exists() and any((tmp_path / "e" / "trials").iterdir())):
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 7, err
    assert "INTERRUPTED" in out
    assert "Tuner.restore(" in err
    assert tune.Tuner.can_restore(str(tmp_path / "e"))
