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

/// Crash-test hook: `HYPERFLEET_FAILPOINT=<name>:<n>` makes the process SIGKILL itself the n-th
/// time it reaches the point `name` (the crash harness uses it to die inside a transaction or a
/// checkpoint copy); unset, it costs one atomic load.
pub fn failpoint(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let spec = SPEC.get_or_init(|| {
        let v = std::env::var("HYPERFLEET_FAILPOINT").ok()?;
        let (n, k) = v.split_once(':').unwrap_or((v.as_str(), "1"));
        Some((n.to_string(), k.parse().unwrap_or(1)))
    });
    if let Some((n, k)) = spec {
        if n == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *k {
            // SAFETY: kill(2) on this process; nothing after it runs.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}
