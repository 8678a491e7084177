//! Building a controller: a fresh experiment, or one rebuilt from its store.

use super::{Controller, Ev, Hooks, Shutdown, Status, Trial};
use crate::spec::{Spec, SpecError, Validated};
use crate::store::{self, Store};
use hyperfleet_searchers::{ConcurrencyLimiter, Searcher, TrialId};
use hyperfleet_train::{LocalCluster, NodeCapacity};
use rand::Rng as _;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How to run, beyond the spec: things that belong to this machine and this invocation.
#[derive(Clone)]
pub struct RunOptions {
    /// Interpreter for Python workers.
    pub python: String,
    /// Continue the experiment found in the store instead of starting one.
    pub resume: bool,
    /// On resume, continue unfinished trials (else they end, TERMINATED, with a reason).
    pub resume_unfinished: bool,
    /// On resume, continue ERROR trials from their latest checkpoint.
    pub resume_errored: bool,
    /// On resume, start ERROR trials over from scratch (wins over `resume_errored`).
    pub restart_errored: bool,
    /// Turn SIGINT/SIGTERM into a clean stop (the CLI); the Python driver checks signals itself.
    pub handle_signals: bool,
    /// Working directory for workers and relative paths.
    pub cwd: PathBuf,
    /// Handle to stop the run from another thread.
    pub shutdown: Shutdown,
}

impl RunOptions {
    /// Defaults for this process: `$HYPERFLEET_PYTHON` or `python3`, the current directory.
    pub fn new() -> Self {
        RunOptions {
            python: std::env::var("HYPERFLEET_PYTHON").unwrap_or_else(|_| "python3".into()),
            resume: false,
            resume_unfinished: true,
            resume_errored: false,
            restart_errored: false,
            handle_signals: false,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            shutdown: Shutdown::default(),
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Why an experiment could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The spec is invalid.
    #[error("invalid experiment: {0}")]
    Spec(#[from] SpecError),
    /// The experiment exists and resume was not asked for.
    #[error("experiment already exists at {0} (it has trials); resume it with `tune run --resume` / `Tuner.restore(path)`, or choose another name")]
    Exists(PathBuf),
    /// Resume was asked for but there is nothing to resume.
    #[error("no experiment to resume at {0}")]
    NotFound(PathBuf),
    /// Another driver holds the experiment's lock.
    #[error(
        "experiment at {dir} is being run by another driver ({holder}); wait for it to end or stop it, then resume"
    )]
    Locked {
        /// The experiment folder.
        dir: PathBuf,
        /// Who holds it, as the lock file says.
        holder: String,
    },
    /// A trial's gang can never be placed on this cluster.
    #[error(
        "a trial needs {need} but the cluster has {have}; lower `resources_per_worker`/`workers` or raise `resources`"
    )]
    Unplaceable {
        /// What one trial needs.
        need: String,
        /// What the cluster has.
        have: String,
    },
    /// The experiment database failed.
    #[error("{0}")]
    Store(String),
    /// A file or process operation failed.
    #[error("{0}")]
    Io(String),
}

impl RunError {
    pub(crate) fn io(e: std::io::Error) -> RunError {
        RunError::Io(e.to_string())
    }
}

/// A controller ready to run, and where its experiment lives.
pub struct Prepared {
    /// The controller; `run().await` it on the controller thread.
    pub controller: Controller,
    /// The experiment folder.
    pub experiment_dir: PathBuf,
}

/// Takes the experiment's driver lock (`<dir>/driver.lock`, an `flock` released when the process
/// ends, however it ends) and writes who holds it into the file.
fn lock_experiment(dir: &std::path::Path) -> Result<std::fs::File, RunError> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    let path = dir.join("driver.lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| RunError::Io(format!("cannot write to the experiment folder ({}): {e}", path.display())))?;
    // SAFETY: flock on a file descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = holder.trim();
        let holder = if holder.is_empty() { "unknown process".to_string() } else { holder.to_string() };
        return Err(RunError::Locked { dir: dir.to_path_buf(), holder });
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let _ = f
        .set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| write!(f, "pid {} on {} since {:.0}", std::process::id(), host.trim(), store::now()));
    Ok(f)
}

/// This machine as one node, or split into the virtual nodes `[cluster] virtual_nodes` describes:
/// each gets the resources it names (memory: an equal share unless named), and GPU device
/// indices are dealt out in node order.
fn virtual_nodes(
    machine: &NodeCapacity,
    spec: &[serde_json::Map<String, serde_json::Value>],
) -> Result<Vec<NodeCapacity>, RunError> {
    if spec.is_empty() {
        return Ok(vec![machine.clone()]);
    }
    let mut next_gpu = 0u32;
    let mut out = Vec::new();
    for (i, n) in spec.iter().enumerate() {
        let field = format!("cluster.virtual_nodes[{i}]");
        let base = NodeCapacity {
            cpu: 1.0,
            memory: machine.memory / spec.len() as f64,
            gpus: Vec::new(),
            custom: BTreeMap::new(),
        };
        let mut node =
            base.with_overrides(n).map_err(|e| SpecError { field: field.clone(), message: e.to_string() })?;
        let k = node.gpus.len() as u32;
        node.gpus = (next_gpu..next_gpu + k).collect();
        next_gpu += k;
        out.push(node);
    }
    Ok(out)
}

pub(crate) fn fmt_res(cpu: f64, gpu: f64, custom: &BTreeMap<String, f64>) -> String {
    let mut s = format!("{cpu} cpu, {gpu} gpu");
    for (k, v) in custom {
        s.push_str(&format!(", {v} {k}"));
    }
    s
}

/// Opens or creates the experiment's store and builds its controller. Must run inside the tokio runtime.
pub fn prepare(mut spec: Spec, v: Validated, opts: RunOptions, hooks: Box<dyn Hooks>) -> Result<Prepared, RunError> {
    let exp_dir = spec.experiment_dir();
    let db_path = exp_dir.join("experiment.db");
    let exists = db_path.exists();
    // Lock before looking: what a second driver would see is not read while the first one writes.
    let early_lock = if exp_dir.is_dir() { Some(lock_experiment(&exp_dir)?) } else { None };
    let has_trials = exists && {
        let c = store::open(&db_path, false).map_err(|e| RunError::Store(e.to_string()))?;
        c.query_row("SELECT count(*) FROM trials", [], |r| r.get::<_, i64>(0))
            .map_err(|e| RunError::Store(e.to_string()))?
            > 0
    };
    if opts.resume && !exists {
        return Err(RunError::NotFound(exp_dir));
    }
    if !opts.resume && has_trials {
        return Err(RunError::Exists(exp_dir));
    }
    let capacity = NodeCapacity::detect()
        .0
        .with_overrides(&spec.resources)
        .map_err(|e| SpecError { field: "resources".into(), message: e.to_string() })?;
    let nodes = virtual_nodes(&capacity, &spec.cluster.virtual_nodes)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Ev>();
    let (wtx, wrx) = tokio::sync::mpsc::unbounded_channel();
    let freed = tx.clone();
    let cluster = LocalCluster::new(
        nodes,
        Some(Box::new(move || {
            let _ = freed.send(Ev::CapacityFreed);
        })),
    );
    // With per-trial gangs, each trial's own is checked when it is to start.
    if !spec.space.contains_key(crate::spec::SCALING_KEY) && !cluster.could_ever_fit(&v.gang) {
        let mut need = hyperfleet_train::Resources::default();
        for b in &v.gang.bundles {
            need.add(b);
        }
        let have = cluster.total();
        return Err(RunError::Unplaceable {
            need: fmt_res(need.cpu, need.gpu, &need.custom),
            have: fmt_res(have.cpu, have.gpu, &have.custom),
        });
    }

    // A scheduler without its own metric uses the experiment's, and says so in its stop reasons.
    if let (Some(metric), Some(mode)) = (spec.experiment.metric.clone(), spec.experiment.mode) {
        spec.scheduler = spec.scheduler.clone().with_objective(&metric, mode == crate::spec::Mode::Max);
    }
    std::fs::create_dir_all(exp_dir.join("trials")).map_err(|e| RunError::Io(format!("{}: {e}", exp_dir.display())))?;
    let lock = match early_lock {
        Some(l) => l,
        None => lock_experiment(&exp_dir)?,
    };
    let conn = store::open(&db_path, true).map_err(|e| RunError::Store(e.to_string()))?;
    let stored = |k: &str| store::meta(&conn, k).map_err(|e| RunError::Store(e.to_string()));
    let seed = match (spec.search.seed, stored("seed")?) {
        (_, Some(s)) if opts.resume => s.parse().unwrap_or(0),
        (Some(s), _) => s,
        (None, _) => rand::rng().random::<u32>() as u64,
    };
    spec.search.seed = Some(seed);
    let id_prefix = match stored("id_prefix")? {
        Some(p) => p,
        None => format!("{:05x}", rand::rng().random::<u32>() & 0xfffff),
    };
    if opts.resume {
        if let Some(old) = stored("spec")? {
            check_compatible(&old, &spec)?;
        }
    }
    let elapsed_before: f64 =
        if opts.resume { stored("elapsed_s")?.and_then(|s| s.parse().ok()).unwrap_or(0.0) } else { 0.0 };
    let had_created = stored("created_at")?.is_some();
    let stored_status = stored("status")?;
    let rows =
        if opts.resume { store::load_trials(&conn).map_err(|e| RunError::Store(e.to_string()))? } else { Vec::new() };

    let store_err = tx.clone();
    let (store, store_thread) = Store::start(
        conn,
        db_path.clone(),
        Box::new(move |e| {
            let _ = store_err.send(Ev::StoreFailed(e));
        }),
        // Durable reports commit on the controller thread when the writer is idle; relaxed ones
        // are acknowledged at once anyway, so they are left to the writer's grouped commits.
        spec.experiment.durability == crate::spec::Durability::Durable,
    );
    let spec_json = serde_json::to_string(&spec).map_err(|e| RunError::Io(e.to_string()))?;
    store.set_meta("name", spec.experiment.name.clone().unwrap_or_default());
    store.set_meta("spec", spec_json);
    store.set_meta("seed", seed.to_string());
    store.set_meta("id_prefix", id_prefix.clone());
    store.set_meta("status", "running".into());
    store.set_meta("hyperfleet_version", env!("CARGO_PKG_VERSION").into());
    if !had_created {
        store.set_meta("created_at", store::now().to_string());
    }
    store.event(None, if opts.resume { "experiment_resume" } else { "experiment_start" }, String::new());

    let base = spec.build_searcher(v.space.clone())?;
    let searcher: Box<dyn Searcher> = if spec.search.max_concurrent > 0 {
        Box::new(
            ConcurrencyLimiter::new(base, spec.search.max_concurrent, spec.search.batch)
                .map_err(|e| SpecError { field: "search.max_concurrent".into(), message: e.to_string() })?,
        )
    } else {
        Box::new(base)
    };
    let scheduler = spec
        .scheduler
        .build()
        .map_err(|e| SpecError { field: format!("scheduler.{}", e.field), message: e.message })?;

    // Rebuild state: the algorithms by replaying the log in order, then the trials.
    let sched_rng = {
        use rand::SeedableRng;
        let mut r = hyperfleet_scheduler::Rng::seed_from_u64(seed);
        r.set_stream(u64::MAX); // apart from every trial's suggestion stream
        r
    };
    let mut algo = super::algo::Algorithms::new(searcher, scheduler, sched_rng);
    let mut trials = BTreeMap::new();
    let mut waiting = VecDeque::new();
    let conn_ck = store::open(&db_path, false).map_err(|e| RunError::Store(e.to_string()))?;
    // The scheduler's last decision on each trial, as replay recomputes it.
    let mut last_stop: BTreeMap<u64, String> = BTreeMap::new();
    let mut unapplied: BTreeMap<u64, (u64, Map<String, Value>, String)> = BTreeMap::new();
    if opts.resume {
        store::for_each_log(&conn_ck, |trial, kind, detail| {
            // Any later entry of a trial settles an exploit decided for it: carried out (its
            // `exploit` entry) or overtaken (the donor had no checkpoint and the trial went on).
            unapplied.remove(&trial);
            match algo.replay_raw(trial, kind, detail) {
                Some(hyperfleet_scheduler::Decision::Stop { reason }) => {
                    last_stop.insert(trial, reason);
                }
                Some(hyperfleet_scheduler::Decision::Exploit { donor, config, note }) => {
                    // The driver may have died before the donor's checkpoint was cloned.
                    last_stop.remove(&trial);
                    unapplied.insert(trial, (donor.0, config, note));
                }
                _ => {
                    last_stop.remove(&trial);
                }
            }
            // Exploits decided for paused trials (synchronous PBT's barrier), the same way.
            for (TrialId(t), TrialId(d), c, n) in algo.scheduler.take_exploits() {
                unapplied.insert(t, (d, c, n));
            }
        })
        .map_err(|e| RunError::Store(e.to_string()))?;
        // Decisions replay already made and the store already holds, and notes it already recorded.
        let _ = algo.scheduler.take_stopped();
        let _ = algo.scheduler.take_notes();
        // Only a run that crashed or failed can leave checkpoint folders half-made or due for
        // deletion: a run that finished or was interrupted carried out every deletion it committed.
        if !matches!(stored_status.as_deref(), Some("finished" | "interrupted")) {
            remove_unrecorded_checkpoints(&conn_ck, &exp_dir)?;
        }
    }
    // What to do with each stored trial that has not finished, once the controller exists.
    let mut end_now: Vec<(u64, String, bool)> = Vec::new();
    let mut readd: Vec<u64> = Vec::new();
    let mut policies = if rows.is_empty() {
        Default::default()
    } else {
        store::policy_histories(&conn_ck).map_err(|e| RunError::Store(e.to_string()))?
    };
    for r in rows {
        let stored_status = Status::parse(&r.status).unwrap_or(Status::Pending);
        let again = stored_status == Status::Error && (opts.resume_errored || opts.restart_errored);
        let restart = again && opts.restart_errored;
        let status = if again { Status::Pending } else { stored_status };
        let recorded = r.last_result.as_ref().and_then(|m| m.get("training_iteration")?.as_u64()).unwrap_or(0);
        if again {
            readd.push(r.seq);
            waiting.push_back(r.seq);
        } else if !status.is_final() {
            if let Some(why) = last_stop.get(&r.seq) {
                // The driver died between recording the result that stopped it and ending it.
                end_now.push((r.seq, format!("scheduler: {why}"), true));
            } else if !opts.resume_unfinished {
                end_now.push((r.seq, "not resumed (resume_unfinished is off)".into(), false));
            } else {
                waiting.push_back(r.seq);
            }
        }
        let cks = store::load_checkpoints(&conn_ck, r.seq).map_err(|e| RunError::Store(e.to_string()))?;
        let ck_metric = spec.checkpoint.score_attribute.clone();
        let ck_order = spec.checkpoint.score_order.unwrap_or(crate::spec::Mode::Max);
        let checkpoints: Vec<super::Ckpt> = cks
            .into_iter()
            .map(|(iteration, rel, m)| super::Ckpt {
                iteration,
                score: ck_metric.as_ref().and_then(|k| m.get(k)?.as_f64()).map(|x| ck_order.score(x)),
                rel,
            })
            .collect();
        let latest = if restart { None } else { r.latest_checkpoint.as_ref() };
        let (iteration, time_total) = match (latest, status.is_final()) {
            // A resumed trial continues from its checkpoint's iteration and time.
            (Some((it, path)), false) => (
                *it,
                store::checkpoint_metrics(&conn_ck, r.seq, path)
                    .ok()
                    .flatten()
                    .and_then(|m| m.get("time_total_s")?.as_f64())
                    .unwrap_or(0.0),
            ),
            (None, false) => (0, 0.0),
            (_, true) => {
                (recorded, r.last_result.as_ref().and_then(|m| m.get("time_total_s")?.as_f64()).unwrap_or(0.0))
            }
        };
        let restore = if status.is_final() { None } else { latest.map(|(_, p)| p.clone()) };
        let config_for_gang = r.config.clone();
        trials.insert(
            r.seq,
            Trial {
                seq: r.seq,
                id: r.trial_id,
                name: r.name,
                config: r.config,
                status: if status.is_final() { status } else { Status::Pending },
                dir: exp_dir.join(&r.logdir),
                iteration,
                iterations_since_restore: 0,
                time_total,
                time_since_restore: 0.0,
                last_result: r.last_result,
                checkpoints,
                num_failures: if again { 0 } else { r.num_failures },
                group: None,
                last_report: Instant::now(),
                ending: false,
                restore,
                last_sched: if status.is_final() { None } else { algo.last_sched(r.seq) },
                cloning: false,
                exploits: policies.get(&r.seq).map_or(0, |v| v.len() as u64 - 1),
                policy: policies.remove(&r.seq).and_then(|mut v| v.pop()).unwrap_or_default(),
                // A restarted trial starts over, so its iterations are new ones.
                recorded: if restart { 0 } else { recorded },
                gang: crate::spec::trial_gang(&v.gang, &config_for_gang),
            },
        );
    }
    let next_seq = trials.keys().next_back().map(|s| s + 1).unwrap_or(0);
    let reuse = spec.experiment.reuse_workers;
    let varying_gangs = spec.space.contains_key(crate::spec::SCALING_KEY);
    let reserve_after = Duration::from_secs_f64(spec.scaling.reserve_after_s);
    let max_concurrent = spec.experiment.max_concurrent_trials.unwrap_or(usize::MAX);
    // The time budget covers the experiment's whole running time, across resumes.
    let deadline =
        spec.experiment.time_budget_s.map(|s| Instant::now() + Duration::from_secs_f64((s - elapsed_before).max(0.0)));
    let exp_name = spec.experiment.name.clone().unwrap_or_default();
    let mut controller = Controller {
        gang: v.gang,
        space: v.space,
        exp_dir: exp_dir.clone(),
        exp_name,
        id_prefix,
        seed,
        algo,
        store,
        store_thread: Some(store_thread),
        _lock: lock,
        cluster,
        hooks,
        trials,
        waiting,
        resume_exploits: unapplied.into_iter().map(|(t, (d, c, n))| (t, d, c, n)).collect(),
        blocked: VecDeque::new(),
        varying_gangs,
        reserve_after,
        groups: BTreeMap::new(),
        next_group: 0,
        next_seq,
        tx,
        rx,
        wtx,
        wrx,
        searcher_done: false,
        stop_new: false,
        interrupted: false,
        failure: None,
        started: Instant::now(),
        deadline,
        results: 0,
        shutdown: opts.shutdown.clone(),
        shutdown_seen: 0,
        last_progress: None,
        reuse,
        log_results: spec.replays_results(),
        max_concurrent,
        elapsed_before,
        elapsed_saved: Instant::now(),
        opts,
        spec,
    };
    for seq in readd {
        controller.readd_errored(seq);
    }
    for (seq, why, pruned) in end_now {
        controller.end_with_reason(seq, why, pruned);
    }
    Ok(Prepared { experiment_dir: exp_dir, controller })
}

/// Refuses a resume whose spec changes what the stored experiment's results mean.
fn check_compatible(stored: &str, spec: &Spec) -> Result<(), RunError> {
    let old: serde_json::Value =
        serde_json::from_str(stored).map_err(|e| RunError::Store(format!("stored spec: {e}")))?;
    let new = serde_json::to_value(spec).map_err(|e| RunError::Io(e.to_string()))?;
    // Fields that may change on resume: budgets, stop criteria, concurrency, failure handling, display.
    let strip = |v: &serde_json::Value, section: &str, keep_out: &[&str]| {
        let mut v = v[section].clone();
        if let Some(m) = v.as_object_mut() {
            for k in keep_out {
                m.remove(*k);
            }
        }
        v
    };
    let checks: [(&str, &[&str]); 4] =
        [("space", &[]), ("search", &["seed", "max_concurrent", "batch"]), ("scheduler", &[]), ("trainable", &[])];
    for (section, free) in checks {
        if strip(&old, section, free) != strip(&new, section, free) {
            return Err(RunError::Spec(SpecError {
                field: section.into(),
                message: format!(
                    "differs from the stored experiment's ({} now, {} stored); a resumed experiment keeps its {section} — start a new experiment (another name) to change it",
                    strip(&new, section, free),
                    strip(&old, section, free)
                ),
            }));
        }
    }
    for key in ["metric", "mode"] {
        if old["experiment"][key] != new["experiment"][key] {
            return Err(RunError::Spec(SpecError {
                field: format!("experiment.{key}"),
                message: format!(
                    "is {} but the stored experiment's is {}; a resumed experiment keeps its objective",
                    new["experiment"][key], old["experiment"][key]
                ),
            }));
        }
    }
    Ok(())
}

/// Deletes checkpoint folders the store does not hold as live: copies a crash cut short,
/// and folders whose deletion was committed but not yet carried out.
fn remove_unrecorded_checkpoints(conn: &rusqlite::Connection, exp_dir: &std::path::Path) -> Result<(), RunError> {
    let live = store::live_checkpoint_paths(conn).map_err(|e| RunError::Store(e.to_string()))?;
    let trials = exp_dir.join("trials");
    let Ok(dirs) = std::fs::read_dir(&trials) else { return Ok(()) };
    for d in dirs.flatten() {
        let Ok(entries) = std::fs::read_dir(d.path()) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            // Only our own folders: `checkpoint_NNNNNN`, its `.tmp`, and PBT's `_from_<donor>` clones.
            let ours = name.len() >= 17
                && name.starts_with("checkpoint_")
                && name.as_bytes()[11..17].iter().all(u8::is_ascii_digit)
                && (name.len() == 17 || name[17..].starts_with(".tmp") || name[17..].starts_with("_from_"));
            if !ours {
                continue;
            }
            let rel = format!("trials/{}/{name}", d.file_name().to_string_lossy());
            if !live.contains(&rel) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}
