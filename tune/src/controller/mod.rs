//! The controller: one event loop that owns the experiment's state.
//!
//! It asks the searcher for configs while capacity is free, consults the scheduler on every
//! result, records each transition in the store before acting on it, and drives worker groups.
//! The `on_*` methods are synchronous; `run` is the only async part.

mod algo;
mod checkpoints;
mod events;
mod hooks;
mod launch;
mod setup;

pub use hooks::{has_call, Hooks, TerminalHooks};
pub use setup::{prepare, Prepared, RunError, RunOptions};

use crate::progress::{Progress, TrialLine, MAX_ROWS};
use crate::spec::Spec;
use crate::store::Store;
use hyperfleet_searchers::Space;
use hyperfleet_train::{GangSpec, GroupId, LocalCluster, Reservation, WorkerEvent, WorkerHandle, WorkerKey};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

/// A trial's lifecycle state (Ray's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Created, waiting for resources.
    Pending,
    /// Its worker group runs it.
    Running,
    /// Stopped for now; resumable from its checkpoint.
    Paused,
    /// Finished (completed or stopped early).
    Terminated,
    /// Failed beyond its retries.
    Error,
}

impl Status {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Paused => "PAUSED",
            Status::Terminated => "TERMINATED",
            Status::Error => "ERROR",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "PENDING" => Status::Pending,
            "RUNNING" => Status::Running,
            "PAUSED" => Status::Paused,
            "TERMINATED" => Status::Terminated,
            "ERROR" => Status::Error,
            _ => return None,
        })
    }

    /// Whether the trial will never run again.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Terminated | Status::Error)
    }
}

/// Asks a running experiment to stop: once cleanly, twice by force.
#[derive(Clone, Default)]
pub struct Shutdown {
    level: Arc<AtomicU8>,
    notify: Arc<Notify>,
}

impl Shutdown {
    /// Requests a clean stop; a second request forces.
    pub fn request(&self) {
        self.level.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
    }
    fn level(&self) -> u8 {
        self.level.load(Ordering::SeqCst)
    }
}

/// How the run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// `finished`, `interrupted` or `failed`.
    pub status: String,
    /// The experiment folder.
    pub experiment_dir: PathBuf,
    /// Trials by final status.
    pub counts: BTreeMap<&'static str, usize>,
    /// Why the run failed (fail_fast, store error), when it did.
    pub error: Option<String>,
}

pub(crate) struct Ckpt {
    iteration: u64,
    rel: String,
    score: Option<f64>,
}

pub(crate) struct Trial {
    seq: u64,
    id: String,
    name: String,
    config: Map<String, Value>,
    status: Status,
    dir: PathBuf,
    iteration: u64,
    iterations_since_restore: u64,
    time_total: f64,
    time_since_restore: f64,
    last_result: Option<Map<String, Value>>,
    checkpoints: Vec<Ckpt>,
    num_failures: u32,
    group: Option<GroupId>,
    last_report: Instant,
    /// The trial was told to stop (or pause) at its last report and should end now.
    ending: bool,
    restore: Option<String>,
    /// The scheduler's view of the last result.
    last_sched: Option<hyperfleet_scheduler::SchedResult>,
    /// A donor's checkpoint is being cloned into this trial's folder.
    cloning: bool,
    /// Its PBT lineage: the policy-file lines of its donors, then its own exploits.
    policy: String,
    /// How many exploits it has made (the version of `policy`: a clone records which one it took).
    exploits: u64,
    /// The highest `training_iteration` already recorded: a trial resumed from an older
    /// checkpoint re-reports iterations up to here, and those are not recorded twice.
    recorded: u64,
    /// The gang this trial reserves (its `scaling_config` over `[scaling]`), or why it has none.
    gang: Result<GangSpec, String>,
}

/// One rank's report: its metrics and the checkpoint folder it passed, if any.
pub(crate) type RankReport = (Map<String, Value>, Option<PathBuf>);

pub(crate) struct Group {
    res: Option<Reservation>,
    workers: Vec<Option<WorkerHandle>>,
    ready: Vec<bool>,
    /// Ranks that finished the current trial cleanly.
    done: Vec<bool>,
    /// Each rank's report waiting at the barrier (a group's k-th result is taken once every
    /// rank has made its k-th report), with its checkpoint folder.
    pending: Vec<Option<RankReport>>,
    /// Reports each rank has made in the current trial.
    reports: Vec<u64>,
    python: bool,
    trial: Option<u64>,
    /// Sent the trial its start message (Python) or started with it (command).
    started: bool,
    retiring: bool,
    kill_at: Option<(Instant, i32)>,
}

/// What the loop reacts to.
pub(crate) enum Ev {
    CheckpointSaved {
        group: GroupId,
        seq: u64,
        metrics: Map<String, Value>,
        saved: Result<String, (String, bool)>,
    },
    Cloned {
        seq: u64,
        donor: u64,
        donor_iteration: u64,
        /// The donor's config when the copy started.
        donor_config: Map<String, Value>,
        /// The donor's lineage when the copy started, and how many exploits the donor had made.
        donor_policy: (String, u64),
        config: Map<String, Value>,
        note: String,
        saved: Result<String, String>,
    },
    CapacityFreed,
    StoreFailed(String),
}

/// The experiment's single owner of state.
pub struct Controller {
    spec: Spec,
    gang: GangSpec,
    space: Space,
    exp_dir: PathBuf,
    exp_name: String,
    id_prefix: String,
    seed: u64,
    opts: RunOptions,
    algo: algo::Algorithms,
    store: Store,
    store_thread: Option<crate::store::StoreThread>,
    /// Running time of earlier runs of this experiment (before a resume).
    elapsed_before: f64,
    /// When `elapsed_s` was last stored.
    elapsed_saved: Instant,
    /// The driver lock, held while this controller lives.
    _lock: std::fs::File,
    cluster: LocalCluster,
    hooks: Box<dyn Hooks>,
    trials: BTreeMap<u64, Trial>,
    waiting: VecDeque<u64>,
    /// Exploits a crashed run decided for paused trials but did not carry out; started on the first fill.
    resume_exploits: Vec<(u64, u64, Map<String, Value>, String)>,
    /// Trials chosen to run whose gang did not fit, oldest first, with when they first waited.
    blocked: VecDeque<(u64, Instant)>,
    /// Whether trials' gangs can differ (the space has `scaling_config`).
    varying_gangs: bool,
    /// How long the oldest blocked trial lets others start ahead of it.
    reserve_after: Duration,
    groups: BTreeMap<GroupId, Group>,
    next_group: u64,
    next_seq: u64,
    tx: UnboundedSender<Ev>,
    rx: UnboundedReceiver<Ev>,
    wtx: UnboundedSender<(WorkerKey, WorkerEvent)>,
    wrx: UnboundedReceiver<(WorkerKey, WorkerEvent)>,
    searcher_done: bool,
    stop_new: bool,
    interrupted: bool,
    failure: Option<String>,
    started: Instant,
    deadline: Option<Instant>,
    results: u64,
    shutdown: Shutdown,
    shutdown_seen: u8,
    last_progress: Option<Instant>,
    /// `[experiment] reuse_workers` when given; otherwise groups without GPUs are kept warm.
    reuse: Option<bool>,
    /// Whether results go into the replay log (`Spec::replays_results`).
    log_results: bool,
    max_concurrent: usize,
}

impl Controller {
    fn running(&self) -> usize {
        self.groups.values().filter(|g| g.trial.is_some()).count()
    }

    /// Runs the experiment to the end; call inside a tokio runtime (the controller's own thread).
    pub async fn run(mut self) -> Result<Summary, RunError> {
        #[cfg(unix)]
        let mut signals = if self.opts.handle_signals {
            use tokio::signal::unix::{signal, SignalKind};
            Some((
                signal(SignalKind::interrupt()).map_err(RunError::io)?,
                signal(SignalKind::terminate()).map_err(RunError::io)?,
            ))
        } else {
            None
        };
        let shutdown = self.shutdown.clone();
        self.on_timers(); // a resumed experiment may have spent its time budget already
        self.fill();
        loop {
            self.check_shutdown();
            if self.finished() {
                break;
            }
            let wake = self.next_wake();
            tokio::select! {
                biased;
                _ = shutdown.notify.notified() => {}
                _ = async {
                    match signals.as_mut() {
                        Some((i, t)) => { tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} } }
                        None => std::future::pending::<()>().await,
                    }
                } => { shutdown.request(); }
                ev = self.wrx.recv() => {
                    if let Some((k, ev)) = ev { self.on_worker(k, ev); }
                    while let Ok((k, ev)) = self.wrx.try_recv() { self.on_worker(k, ev); }
                    while let Ok(ev) = self.rx.try_recv() { self.on_event(ev); }
                }
                ev = self.rx.recv() => {
                    if let Some(ev) = ev { self.on_event(ev); }
                    while let Ok(ev) = self.rx.try_recv() { self.on_event(ev); }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            // The results of every report handled in this pass commit together, then are acknowledged.
            self.store.flush();
            self.on_timers();
            self.fill();
            self.show_progress(false);
        }
        self.finish()
    }

    fn next_wake(&self) -> Instant {
        let mut t = Instant::now() + Duration::from_millis(if self.hooks_want_progress() { 250 } else { 1000 });
        if let Some(d) = self.deadline {
            if !self.stop_new {
                t = t.min(d);
            }
        }
        for g in self.groups.values() {
            if let Some((k, _)) = g.kill_at {
                t = t.min(k);
            }
        }
        t
    }

    fn hooks_want_progress(&self) -> bool {
        self.spec.experiment.verbose > 0
    }

    fn check_shutdown(&mut self) {
        let level = self.shutdown.level();
        if level > self.shutdown_seen {
            self.shutdown_seen = level;
            self.interrupted = true;
            self.stop_everything(level >= 2, "interrupted");
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.elapsed_saved) >= Duration::from_secs(5) {
            self.save_elapsed();
        }
        if let Some(d) = self.deadline {
            if now >= d && !self.stop_new {
                self.store.event(
                    None,
                    "time_budget",
                    format!("time_budget_s = {} reached", self.spec.experiment.time_budget_s.unwrap_or(0.0)),
                );
                self.stop_everything(false, "time budget reached");
            }
        }
        if let Some(limit) = self.spec.failure.hang_timeout_s {
            self.kill_hung(now, limit);
        }
        let due: Vec<GroupId> =
            self.groups.iter().filter(|(_, g)| g.kill_at.is_some_and(|(t, _)| now >= t)).map(|(id, _)| *id).collect();
        for id in due {
            if let Some(g) = self.groups.get_mut(&id) {
                let sig = g.kill_at.map(|(_, s)| s).unwrap_or(libc::SIGKILL);
                for w in g.workers.iter().flatten() {
                    w.signal(sig);
                }
                g.kill_at = (sig != libc::SIGKILL).then(|| (now + Duration::from_secs(5), libc::SIGKILL));
            }
        }
    }

    /// Stops starting trials and ends running ones: gently (SIGTERM, then SIGKILL after a grace period) or by force.
    pub(crate) fn stop_everything(&mut self, force: bool, why: &str) {
        self.stop_new = true;
        let ids: Vec<GroupId> = self.groups.keys().copied().collect();
        for id in ids {
            let trial = self.groups.get(&id).and_then(|g| g.trial);
            if let Some(seq) = trial {
                let interrupted = self.interrupted;
                let t = self.trials.get_mut(&seq).expect("group trial exists");
                if !t.status.is_final() {
                    if interrupted {
                        // Resumable: back to PENDING, continues from its latest checkpoint.
                        t.status = Status::Pending;
                        t.ending = true;
                        self.set_status(seq, Status::Pending, None, Some(why.to_string()));
                    } else {
                        self.end_with_reason(seq, why.to_string(), false);
                    }
                }
            }
            self.retire_group(id, force);
        }
    }

    /// Fails and kills every running trial that has neither reported nor ended for `limit` seconds.
    fn kill_hung(&mut self, now: Instant, limit: f64) {
        let hung: Vec<(GroupId, u64, f64)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.started && !g.retiring)
            .filter_map(|(id, g)| {
                let seq = g.trial?;
                let t = &self.trials[&seq];
                let quiet = now.duration_since(t.last_report).as_secs_f64();
                (t.status == Status::Running && !t.ending && quiet >= limit).then_some((*id, seq, quiet))
            })
            .collect();
        for (gid, seq, quiet) in hung {
            let tail = events::tail_of(&self.trials[&seq].dir.join("stderr.log"), 20);
            let msg = format!(
                "the trial neither reported nor ended for {quiet:.1} s (failure.hang_timeout_s = {limit}); its workers were killed"
            );
            if let Some(g) = self.groups.get_mut(&gid) {
                // The group no longer runs the trial: its exit must not count as a second failure.
                g.trial = None;
            }
            self.trial_failed(seq, msg, tail, true);
            self.retire_group(gid, true);
        }
    }

    /// Stores the experiment's running time so far (what `time_budget_s` counts, across resumes).
    fn save_elapsed(&mut self) {
        self.elapsed_saved = Instant::now();
        let total = self.elapsed_before + self.started.elapsed().as_secs_f64();
        self.store.set_meta("elapsed_s", format!("{total:.3}"));
    }

    fn finished(&self) -> bool {
        if !self.groups.is_empty() {
            return false;
        }
        self.stop_new || (self.searcher_done && self.waiting.is_empty() && self.blocked.is_empty())
    }

    /// Builds a progress snapshot.
    fn progress(&self) -> Progress {
        let metric = self.spec.experiment.metric.clone();
        let mode = self.spec.experiment.mode;
        let mut p = Progress {
            name: self.exp_name.clone(),
            elapsed_s: self.started.elapsed().as_secs_f64(),
            metric: metric.clone(),
            results: self.results,
            ..Default::default()
        };
        let mut best: Option<(f64, &Trial, f64)> = None;
        for t in self.trials.values() {
            *p.counts.entry(t.status.as_str()).or_insert(0) += 1;
            if let (Some(m), Some(mode), Some(r)) = (&metric, mode, &t.last_result) {
                if let Some(v) = r.get(m).and_then(Value::as_f64).filter(|v| v.is_finite()) {
                    let s = mode.score(v);
                    if best.as_ref().is_none_or(|(bs, _, _)| s > *bs) {
                        best = Some((s, t, v));
                    }
                }
            }
        }
        p.best = best.map(|(_, t, v)| (t.id.clone(), v, summarize(&t.config)));
        let mut order: Vec<&Trial> = self.trials.values().collect();
        order.sort_by_key(|t| (t.status != Status::Running, std::cmp::Reverse(t.seq)));
        p.hidden = order.len().saturating_sub(MAX_ROWS);
        p.rows = order
            .into_iter()
            .take(MAX_ROWS)
            .map(|t| TrialLine {
                trial_id: t.id.clone(),
                status: t.status.as_str(),
                iteration: t.iteration,
                metric: metric.as_ref().and_then(|m| t.last_result.as_ref()?.get(m)?.as_f64()),
                config: summarize(&t.config),
            })
            .collect();
        p
    }

    fn show_progress(&mut self, last: bool) {
        if !self.hooks_want_progress() {
            return;
        }
        if !last && self.last_progress.is_some_and(|t| t.elapsed() < Duration::from_millis(250)) {
            return;
        }
        self.last_progress = Some(Instant::now());
        let p = self.progress();
        self.hooks.progress(&p, last);
    }

    fn finish(mut self) -> Result<Summary, RunError> {
        self.show_progress(true);
        let status = if self.failure.is_some() {
            "failed"
        } else if self.interrupted {
            "interrupted"
        } else {
            "finished"
        };
        self.save_elapsed();
        self.store.set_meta("status", status.to_string());
        self.store.event(None, "experiment_end", status.to_string());
        let barrier = self.store.barrier();
        let mut counts = BTreeMap::new();
        for t in self.trials.values() {
            *counts.entry(t.status.as_str()).or_insert(0) += 1;
        }
        let Controller { store, store_thread, .. } = self;
        drop(store);
        let joined = store_thread.map(|t| t.join()).unwrap_or(Ok(()));
        // The writer's own error says what went wrong (disk full, read-only); the barrier only that it stopped.
        if let Err(e) = joined.and(barrier) {
            // The first thing that went wrong is the one to report.
            return Err(RunError::Store(self.failure.unwrap_or_else(|| e.to_string())));
        }
        Ok(Summary { status: status.into(), experiment_dir: self.exp_dir, counts, error: self.failure })
    }
}

/// `key=value` pairs of a config's leaves, shortened for display.
pub fn summarize(config: &Map<String, Value>) -> String {
    fn walk(prefix: &str, m: &Map<String, Value>, out: &mut Vec<String>) {
        for (k, v) in m {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                Value::Object(o) => walk(&key, o, out),
                Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
                    Some(f) => out.push(format!("{key}={}", crate::progress::fmt_num(f))),
                    None => out.push(format!("{key}={n}")),
                },
                Value::String(s) => out.push(format!("{key}={s}")),
                other => out.push(format!("{key}={other}")),
            }
        }
    }
    let mut out = Vec::new();
    walk("", config, &mut out);
    let s = out.join(", ");
    if s.chars().count() > 60 {
        s.chars().take(57).collect::<String>() + "..."
    } else {
        s
    }
}
