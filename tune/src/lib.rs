//! The experiment: spec, controller loop, durable store, progress display and the `tune` CLI.
//!
//! ```no_run
//! use hyperfleet_tune::{controller::RunOptions, run_blocking, spec::parse_file};
//! let text = std::fs::read_to_string("experiments/quickstart.toml").unwrap();
//! let (spec, checked) = parse_file("experiments/quickstart.toml".as_ref(), &text).unwrap();
//! let summary = run_blocking(spec, checked, RunOptions::new(), None).unwrap();
//! println!("{} trials finished in {}", summary.counts.values().sum::<usize>(), summary.experiment_dir.display());
//! ```

pub mod cli;
pub mod controller;
pub mod progress;
pub mod query;
pub mod spec;
pub mod store;

use controller::{prepare, Hooks, RunError, RunOptions, Summary, TerminalHooks};
use spec::{Spec, Validated};

/// Starts the controller on its own thread (with its own single-threaded runtime) and returns the handle.
pub fn spawn_run(
    spec: Spec,
    checked: Validated,
    opts: RunOptions,
    hooks: Option<Box<dyn Hooks>>,
) -> std::io::Result<std::thread::JoinHandle<Result<Summary, RunError>>> {
    let verbose = spec.experiment.verbose;
    std::thread::Builder::new().name("hyperfleet-controller".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RunError::io)?;
        rt.block_on(async move {
            let hooks = hooks.unwrap_or_else(|| Box::new(TerminalHooks { printer: progress::Printer::new(verbose) }));
            let p = prepare(spec, checked, opts, hooks)?;
            p.controller.run().await
        })
    })
}

/// Runs an experiment to the end on a controller thread and waits for it.
pub fn run_blocking(
    spec: Spec,
    checked: Validated,
    opts: RunOptions,
    hooks: Option<Box<dyn Hooks>>,
) -> Result<Summary, RunError> {
    spawn_run(spec, checked, opts, hooks)
        .map_err(RunError::io)?
        .join()
        .unwrap_or_else(|_| Err(RunError::Io("the controller thread panicked".into())))
}
