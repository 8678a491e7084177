//! The native module `hyperfleet._native`: runs experiments and the CLI from Python.
//! Every Rust error becomes a `hyperfleet.exceptions` class here, and nowhere else.

use hyperfleet_tune::controller::{Hooks, RunError, RunOptions};
use hyperfleet_tune::progress::Progress;
use hyperfleet_tune::spec::Spec;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

create_exception!(_native, HyperfleetError, PyException, "Base class of every hyperfleet error.");
create_exception!(_native, ConfigError, HyperfleetError, "An invalid experiment spec, search space or argument.");
create_exception!(
    _native,
    ExperimentExistsError,
    HyperfleetError,
    "The experiment already exists and resume was not asked for."
);
create_exception!(_native, StoreError, HyperfleetError, "The experiment database could not be read or written.");
create_exception!(_native, TuneError, HyperfleetError, "The experiment could not run.");

fn to_py(e: RunError) -> PyErr {
    match e {
        RunError::Spec(s) => ConfigError::new_err(s.to_string()),
        RunError::Unplaceable { .. } => ConfigError::new_err(e.to_string()),
        RunError::Exists(_) => ExperimentExistsError::new_err(e.to_string()),
        RunError::NotFound(_) | RunError::Locked { .. } => TuneError::new_err(e.to_string()),
        RunError::Store(s) => StoreError::new_err(s),
        RunError::Io(s) => TuneError::new_err(s),
    }
}

/// Calls into the Python driver's objects; each method takes the GIL only when a hook is set.
struct PyHooks {
    obj: Py<PyAny>,
    has: [bool; 9],
    /// Dropped when the controller ends, which wakes the waiting Python thread.
    _done: mpsc::Sender<()>,
}

const HOOKS: [&str; 9] = [
    "stop_trial",
    "stop_all",
    "resolve",
    "trial_name",
    "on_result",
    "on_trial_end",
    "progress",
    "trial_dirname",
    "explore",
];

impl PyHooks {
    fn call(
        &self,
        i: usize,
        args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>>,
    ) -> Option<PyObject> {
        if !self.has[i] {
            return None;
        }
        Python::with_gil(|py| {
            let r = args(py).and_then(|a| self.obj.bind(py).call_method1(HOOKS[i], a));
            match r {
                Ok(v) => Some(v.unbind()),
                Err(e) => {
                    e.print(py);
                    None
                }
            }
        })
    }
}

fn js(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Hooks for PyHooks {
    fn stop_trial(&mut self, trial_id: &str, result: &Map<String, Value>) -> bool {
        let r = self.call(0, |py| pyo3::types::PyTuple::new(py, [trial_id.to_string(), js(result)]));
        r.is_some_and(|v| Python::with_gil(|py| v.bind(py).is_truthy().unwrap_or(false)))
    }
    fn stop_all(&mut self) -> bool {
        let r = self.call(1, |py| Ok(pyo3::types::PyTuple::empty(py)));
        r.is_some_and(|v| Python::with_gil(|py| v.bind(py).is_truthy().unwrap_or(false)))
    }
    fn resolve(&mut self, config: &mut Map<String, Value>, leaves: &[(Vec<String>, u64)]) -> Result<(), String> {
        if leaves.is_empty() {
            return Ok(());
        }
        if !self.has[2] {
            return Err("sample_from leaves need the Python API".into());
        }
        let out = Python::with_gil(|py| -> PyResult<String> {
            let r = self.obj.bind(py).call_method1("resolve", (js(config), js(&leaves.to_vec())))?;
            r.extract::<String>()
        });
        match out {
            Ok(s) => {
                *config = serde_json::from_str(&s).map_err(|e| e.to_string())?;
                Ok(())
            }
            Err(e) => Err(Python::with_gil(|py| e.value(py).to_string())),
        }
    }
    fn trial_name(&mut self, trial_id: &str, config: &Map<String, Value>) -> Option<String> {
        let r = self.call(3, |py| pyo3::types::PyTuple::new(py, [trial_id.to_string(), js(config)]))?;
        Python::with_gil(|py| r.bind(py).extract::<Option<String>>().ok().flatten())
    }
    fn explore(&mut self, config: &mut Map<String, Value>, custom: bool) -> Result<(), String> {
        if !self.has[8] {
            return if hyperfleet_tune::controller::has_call(&Value::Object(config.clone())) {
                Err("a mutation function is missing".into())
            } else {
                Ok(())
            };
        }
        let out = Python::with_gil(|py| -> PyResult<String> {
            self.obj.bind(py).call_method1("explore", (js(config), custom))?.extract::<String>()
        });
        match out {
            Ok(s) => {
                *config = serde_json::from_str(&s).map_err(|e| e.to_string())?;
                Ok(())
            }
            Err(e) => Err(Python::with_gil(|py| {
                let tb = e.traceback(py).and_then(|t| t.format().ok()).unwrap_or_default();
                format!("{}\n{tb}", e.value(py))
            })),
        }
    }
    fn trial_dirname(&mut self, trial_id: &str, config: &Map<String, Value>) -> Option<String> {
        let r = self.call(7, |py| pyo3::types::PyTuple::new(py, [trial_id.to_string(), js(config)]))?;
        Python::with_gil(|py| r.bind(py).extract::<Option<String>>().ok().flatten())
    }
    fn on_result(&mut self, trial_id: &str, result: &Map<String, Value>) {
        self.call(4, |py| pyo3::types::PyTuple::new(py, [trial_id.to_string(), js(result)]));
    }
    fn on_trial_end(&mut self, trial_id: &str, status: &str) {
        self.call(5, |py| pyo3::types::PyTuple::new(py, [trial_id.to_string(), status.to_string()]));
    }
    fn progress(&mut self, p: &Progress, last: bool) {
        let text = p.render(true);
        let status = p.status_line();
        self.call(6, |py| {
            let t = (text, status, last).into_pyobject(py)?;
            Ok(t)
        });
    }
}

/// Runs an experiment from its JSON spec with the GIL released; Ctrl-C stops it cleanly.
#[pyfunction]
#[pyo3(signature = (spec_json, hooks, resume, python, cwd, resume_unfinished=true, resume_errored=false, restart_errored=false))]
#[allow(clippy::too_many_arguments)]
fn fit(
    py: Python<'_>,
    spec_json: &str,
    hooks: PyObject,
    resume: bool,
    python: String,
    cwd: String,
    resume_unfinished: bool,
    resume_errored: bool,
    restart_errored: bool,
) -> PyResult<PyObject> {
    let spec = Spec::from_json(spec_json).map_err(|e| ConfigError::new_err(e.to_string()))?;
    let checked = spec.validate().map_err(|e| ConfigError::new_err(e.to_string()))?;
    let b = hooks.bind(py);
    let has = HOOKS.map(|n| b.hasattr(n).unwrap_or(false) && !b.getattr(n).map(|a| a.is_none()).unwrap_or(true));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let done_rx = std::sync::Mutex::new(done_rx);
    let h = PyHooks { obj: hooks, has, _done: done_tx };
    let mut opts = RunOptions::new();
    opts.resume = resume;
    opts.resume_unfinished = resume_unfinished;
    opts.resume_errored = resume_errored;
    opts.restart_errored = restart_errored;
    opts.python = python;
    opts.cwd = PathBuf::from(cwd);
    let shutdown = opts.shutdown.clone();
    let handle = hyperfleet_tune::spawn_run(spec, checked, opts, Some(Box::new(h)))
        .map_err(|e| TuneError::new_err(e.to_string()))?;
    let mut interrupts = 0;
    loop {
        let r = py.allow_threads(|| {
            let rx = done_rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv_timeout(Duration::from_millis(100))
        });
        if !matches!(r, Err(mpsc::RecvTimeoutError::Timeout)) {
            break;
        }
        if py.check_signals().is_err() {
            interrupts += 1;
            shutdown.request();
            if interrupts == 1 {
                eprintln!("Stopping trials (press Ctrl-C again to force)...");
            }
        }
    }
    let summary = py
        .allow_threads(|| handle.join())
        .map_err(|_| TuneError::new_err("the controller thread panicked"))?
        .map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("status", &summary.status)?;
    d.set_item("experiment_dir", summary.experiment_dir.display().to_string())?;
    d.set_item("error", summary.error.clone())?;
    let counts = PyDict::new(py);
    for (k, v) in &summary.counts {
        counts.set_item(*k, *v)?;
    }
    d.set_item("counts", counts)?;
    d.set_item("interrupted", interrupts > 0 || summary.status == "interrupted")?;
    Ok(d.into_any().unbind())
}

/// Checks a JSON spec without running it; raises `ConfigError` naming the field.
#[pyfunction]
fn validate_spec(spec_json: &str) -> PyResult<()> {
    let spec = Spec::from_json(spec_json).map_err(|e| ConfigError::new_err(e.to_string()))?;
    spec.validate().map_err(|e| ConfigError::new_err(e.to_string()))?;
    Ok(())
}

/// Runs the `tune` command line with `argv` (program name first); returns its exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>, python: String) -> i32 {
    py.allow_threads(|| hyperfleet_tune::cli::main_with(argv, Some(python)))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(validate_spec, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let py = m.py();
    m.add("HyperfleetError", py.get_type::<HyperfleetError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("ExperimentExistsError", py.get_type::<ExperimentExistsError>())?;
    m.add("StoreError", py.get_type::<StoreError>())?;
    m.add("TuneError", py.get_type::<TuneError>())?;
    Ok(())
}
