//! The `tune` command line: `run`, `ls`, `show`, `best`.

use crate::controller::{RunError, RunOptions};
use crate::query::{self, ExperimentInfo};
use crate::spec::{self, expand_home, Mode};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;

/// Exit code for bad input (a bad file, argument or experiment name).
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code for a run that failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code for a run stopped by Ctrl-C (resumable).
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Parser, Debug)]
#[command(name = "tune", version, about = "Run and inspect hyperparameter-tuning experiments.")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// `tune run`'s arguments.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The experiment file.
    file: PathBuf,
    /// Override `[experiment] name`.
    #[arg(long)]
    name: Option<String>,
    /// Override `[experiment] storage`.
    #[arg(long)]
    storage: Option<String>,
    /// Continue the experiment already in storage (unfinished trials resume from their latest checkpoint).
    #[arg(long)]
    resume: bool,
    /// With --resume: also continue ERROR trials from their latest checkpoint.
    #[arg(long, requires = "resume")]
    resume_errored: bool,
    /// With --resume: start ERROR trials over from scratch.
    #[arg(long, requires = "resume", conflicts_with = "resume_errored")]
    restart_errored: bool,
    /// With --resume: end unfinished trials instead of continuing them.
    #[arg(long, requires = "resume")]
    no_resume_unfinished: bool,
    /// Override `[experiment] num_samples` (with --resume: extend the experiment to this many trials).
    #[arg(long, allow_negative_numbers = true)]
    num_samples: Option<i64>,
    /// Override `[experiment] time_budget_s` (counted over the experiment's whole running time).
    #[arg(long)]
    time_budget_s: Option<f64>,
    /// Add or replace a stop criterion, KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_stop)]
    stop: Vec<(String, f64)>,
    /// Override `[failure] max_failures`.
    #[arg(long, allow_negative_numbers = true)]
    max_failures: Option<i64>,
    /// Override `[experiment] verbose` (0 silent .. 3 every result).
    #[arg(long)]
    verbose: Option<u8>,
    /// Python interpreter for Python trainables (default: the one running `tune`, else python3).
    #[arg(long)]
    python: Option<String>,
    /// Print a JSON summary at the end instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_stop(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))?;
    let v: f64 = v.trim().parse().map_err(|_| format!("`{v}` is not a number (in `{s}`)"))?;
    if k.trim().is_empty() {
        return Err(format!("expected KEY=VALUE, got `{s}`"));
    }
    Ok((k.trim().to_string(), v))
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the experiment described by a TOML file.
    Run(RunArgs),
    /// List experiments in a storage folder.
    Ls {
        /// Storage folder (default ~/hyperfleet_results).
        storage: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show an experiment's trials.
    Show {
        /// Experiment folder, or a name under --storage.
        experiment: String,
        /// Storage folder for a bare name.
        #[arg(long)]
        storage: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print the best trial of an experiment.
    Best {
        /// Experiment folder, or a name under --storage.
        experiment: String,
        /// Storage folder for a bare name.
        #[arg(long)]
        storage: Option<String>,
        /// Metric (default: the experiment's).
        #[arg(long)]
        metric: Option<String>,
        /// min or max (default: the experiment's).
        #[arg(long, value_parser = ["min", "max"])]
        mode: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the CLI on `args` (program name first); returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    main_with(args, None)
}

/// Like [`main`], with the Python interpreter to use for workers when the caller knows it.
pub fn main_with(args: Vec<String>, python: Option<String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_BAD_INPUT } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match cli.cmd {
        Cmd::Run(mut a) => {
            a.python = a.python.or(python);
            run(a)
        }
        Cmd::Ls { storage, json } => ls(storage, json),
        Cmd::Show { experiment, storage, json } => with_experiment(&experiment, storage, |i| show(i, json)),
        Cmd::Best { experiment, storage, metric, mode, json } => {
            with_experiment(&experiment, storage, |i| best(i, metric, mode, json))
        }
    }
}

fn default_storage(s: Option<String>) -> PathBuf {
    expand_home(&s.unwrap_or_else(|| "~/hyperfleet_results".into()))
}

fn run(a: RunArgs) -> i32 {
    let RunArgs { file, name, storage, resume, verbose, python, json: json_out, .. } = a;
    let file = file.as_path();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return EXIT_BAD_INPUT;
        }
    };
    let (mut spec, checked) = match spec::parse_file(file, &text) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    if let Some(n) = name {
        spec.experiment.name = Some(n);
    }
    if let Some(s) = storage {
        spec.experiment.storage = s;
    }
    // Record storage as an absolute path, so a resume from another directory finds the same experiment.
    let abs = expand_home(&spec.experiment.storage);
    if abs.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            // `./results` becomes `<cwd>/results`, not `<cwd>/./results`.
            let joined: PathBuf =
                cwd.join(abs).components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect();
            spec.experiment.storage = joined.display().to_string();
        }
    }
    if let Some(v) = verbose {
        spec.experiment.verbose = v;
    }
    if let Some(n) = a.num_samples {
        spec.experiment.num_samples = n;
    }
    if let Some(t) = a.time_budget_s {
        spec.experiment.time_budget_s = Some(t);
    }
    if let Some(m) = a.max_failures {
        spec.failure.max_failures = m;
    }
    for (k, v) in a.stop {
        spec.stop.insert(k, v);
    }
    if let Err(e) = spec.validate() {
        eprintln!("error: {e}");
        return EXIT_BAD_INPUT;
    }
    if spec.scheduler.needs_python() {
        eprintln!(
            "error: {}: [scheduler] custom_explore_fn and function-valued hyperparam_mutations need the Python API (Tuner)",
            file.display()
        );
        return EXIT_BAD_INPUT;
    }
    let mut opts = RunOptions::new();
    opts.resume = resume;
    opts.resume_errored = a.resume_errored;
    opts.restart_errored = a.restart_errored;
    opts.resume_unfinished = !a.no_resume_unfinished;
    opts.handle_signals = true;
    if let Some(p) = python {
        opts.python = p;
    }
    // Relative storage and imports are relative to where `tune` runs, like every other path argument.
    let exp_dir = spec.experiment_dir();
    match crate::run_blocking(spec, checked, opts, None) {
        Ok(s) => {
            if json_out {
                println!(
                    "{}",
                    json!({"status": s.status, "experiment_dir": s.experiment_dir, "trials": s.counts, "error": s.error})
                );
            } else {
                println!("Results: {} (`tune show {}`)", s.experiment_dir.display(), s.experiment_dir.display());
            }
            let errored = s.counts.get("ERROR").copied().unwrap_or(0);
            match s.status.as_str() {
                "finished" if errored > 0 => {
                    eprintln!("error: {errored} trial(s) ended in ERROR (`tune show {}`)", s.experiment_dir.display());
                    EXIT_FAILED
                }
                "finished" => 0,
                "interrupted" => {
                    eprintln!("Interrupted. Resume with: tune run {} --resume", file.display());
                    EXIT_INTERRUPTED
                }
                _ => {
                    eprintln!("error: {}", s.error.unwrap_or_else(|| "the experiment failed".into()));
                    EXIT_FAILED
                }
            }
        }
        Err(
            e @ (RunError::Spec(_)
            | RunError::Exists(_)
            | RunError::NotFound(_)
            | RunError::Unplaceable { .. }
            | RunError::Locked { .. }),
        ) => {
            eprintln!("error: {e}");
            if matches!(e, RunError::Exists(_)) {
                eprintln!("hint: tune run {} --resume", file.display());
            }
            EXIT_BAD_INPUT
        }
        Err(e) => {
            eprintln!("error: {}: {e}", exp_dir.display());
            EXIT_FAILED
        }
    }
}

fn ls(storage: Option<String>, json_out: bool) -> i32 {
    let root = default_storage(storage);
    let all = query::list(&root);
    if json_out {
        let v: Vec<_> = all
            .iter()
            .map(|r| match r {
                Ok(i) => json!({"name": i.name, "path": i.path, "status": i.status, "created_at": i.created_at, "trials": query::counts(i)}),
                Err(e) => json!({"error": e.to_string()}),
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return 0;
    }
    if all.is_empty() {
        println!("no experiments in {}", root.display());
    }
    for r in all {
        match r {
            Ok(i) => {
                let c: Vec<String> = query::counts(&i).iter().map(|(s, n)| format!("{n} {s}")).collect();
                let best = match (&i.metric, i.mode) {
                    (Some(m), Some(mode)) => query::best(&i, m, mode)
                        .and_then(|t| query::last_metric(t, m))
                        .map(|v| format!("  best {m}={v}"))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                println!("{:<24} {:<11} {}{}", i.name, i.status, c.join(", "), best);
            }
            Err(e) => println!("{e}"),
        }
    }
    0
}

fn with_experiment(exp: &str, storage: Option<String>, f: impl FnOnce(&ExperimentInfo) -> i32) -> i32 {
    let direct = expand_home(exp);
    let dir = if direct.join("experiment.db").is_file() { direct } else { default_storage(storage).join(exp) };
    match query::load(&dir) {
        Ok(i) => f(&i),
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_BAD_INPUT
        }
    }
}

fn show(i: &ExperimentInfo, json_out: bool) -> i32 {
    if json_out {
        let trials: Vec<_> = i.trials.iter().map(|t| query::trial_json(i, t)).collect();
        println!(
            "{}",
            json!({"name": i.name, "path": i.path, "status": i.status, "metric": i.metric, "mode": i.mode, "trials": trials,
                   "scheduler_notes": i.scheduler_notes})
        );
        return 0;
    }
    let c: Vec<String> = query::counts(i).iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!("{} ({}) at {}: {}", i.name, i.status, i.path.display(), c.join(", "));
    let metric = i.metric.clone().unwrap_or_default();
    println!("  {:<13} {:<10} {:>5} {:>12}  config / note", "trial", "status", "iter", metric);
    for t in &i.trials {
        let it = t.last_result.as_ref().and_then(|r| r.get("training_iteration")?.as_u64()).unwrap_or(0);
        let m = query::last_metric(t, &metric).map(|v| format!("{v:.6}")).unwrap_or_default();
        let mut note = crate::controller::summarize(&t.config);
        if let Some(e) = &t.error {
            note = format!("{note}  error: {}", e.lines().next().unwrap_or(""));
        } else if let Some(r) = &t.stop_reason {
            note = format!("{note}  ({r})");
        }
        if let Some(steps) = i.lineage.get(&t.seq) {
            let last = steps.last().and_then(|s| s["donor"].as_str()).unwrap_or("?");
            note = format!("{note}  [exploited {}x, last from {last}]", steps.len());
        }
        println!("  {:<13} {:<10} {:>5} {:>12}  {}", t.trial_id, t.status, it, m, note);
    }
    for n in &i.scheduler_notes {
        println!("  {n}");
    }
    0
}

fn best(i: &ExperimentInfo, metric: Option<String>, mode: Option<String>, json_out: bool) -> i32 {
    let Some(metric) = metric.or_else(|| i.metric.clone()) else {
        eprintln!("error: the experiment has no metric; pass --metric and --mode");
        return EXIT_BAD_INPUT;
    };
    let mode = match mode.as_deref() {
        Some("min") => Mode::Min,
        Some("max") => Mode::Max,
        _ => match i.mode {
            Some(m) => m,
            None => {
                eprintln!("error: the experiment has no mode; pass --mode min|max");
                return EXIT_BAD_INPUT;
            }
        },
    };
    let Some(t) = query::best(i, &metric, mode) else {
        eprintln!("error: no trial of {} reported `{metric}`", i.name);
        return EXIT_FAILED;
    };
    if json_out {
        println!("{}", query::trial_json(i, t));
    } else {
        let v = query::last_metric(t, &metric).unwrap_or(f64::NAN);
        println!("best trial {} ({}): {metric} = {v}", t.trial_id, t.status);
        println!("config: {}", serde_json::Value::Object(t.config.clone()));
        println!("path: {}", i.path.join(&t.logdir).display());
        if let Some((_, p)) = &t.latest_checkpoint {
            println!("checkpoint: {}", i.path.join(p).display());
        }
    }
    0
}
