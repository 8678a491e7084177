//! Reacting to workers: results, completions, errors, exits.

use super::checkpoints::{persist_checkpoint, retention};
use super::{Ckpt, Controller, Ev, Status};
use crate::store::{self, now, TrialFiles};
use hyperfleet_scheduler::{Decision, SchedResult, TrialEnd};
use hyperfleet_searchers::{Observation, Outcome};
use hyperfleet_train::{GroupId, WorkerEvent, WorkerKey};
use rusqlite::params;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What goes to the store with one result.
struct ResultWrite {
    seq: u64,
    iteration: u64,
    /// Its checkpoint, relative to the experiment folder.
    ckpt: Option<String>,
    /// Checkpoints retention lets go of.
    delete: Vec<(u64, String)>,
    /// Sent to the group's workers after the commit.
    ack: Vec<hyperfleet_train::worker::Acker>,
    /// The replay-log entry.
    log: Option<Value>,
}

impl Controller {
    pub(crate) fn on_event(&mut self, ev: Ev) {
        match ev {
            Ev::CheckpointSaved { group, seq, metrics, saved } => match saved {
                Ok(rel) => self.record_result(group, seq, metrics, Some(rel)),
                Err((e, true)) => {
                    // The storage is at fault (full, read-only, failing), not the trial: stop, resumably.
                    self.fail_experiment(format!("could not write a checkpoint: {e}"));
                    self.interrupted = true;
                    self.stop_everything(true, "storage failure");
                }
                Err((e, false)) => {
                    self.trial_failed(seq, format!("could not persist the checkpoint: {e}"), String::new(), true);
                    self.detach(group);
                    self.retire_group(group, true);
                }
            },
            Ev::Cloned { seq, donor, donor_iteration, donor_config, donor_policy, config, note, saved } => {
                self.finish_exploit(seq, donor, donor_iteration, (donor_config, donor_policy), config, note, saved)
            }
            Ev::CapacityFreed => {}
            Ev::StoreFailed(e) => {
                self.fail_experiment(e);
                // Running trials stay unfinished (PENDING) so that a resume continues them.
                self.interrupted = true;
                self.stop_everything(true, "store failure");
            }
        }
    }

    pub(crate) fn on_worker(&mut self, key: WorkerKey, ev: WorkerEvent) {
        let gid = key.group;
        let Some(g) = self.groups.get_mut(&gid) else { return };
        let seq = g.trial;
        match ev {
            WorkerEvent::Ready { .. } => {
                g.ready[key.rank as usize] = true;
                if g.trial.is_some() && !g.started && g.ready.iter().all(|r| *r) {
                    self.send_run(gid);
                }
            }
            WorkerEvent::Report { metrics, checkpoint } => {
                let Some(seq) = seq else { return };
                let r = key.rank as usize;
                if g.workers.len() == 1 {
                    g.reports[0] += 1;
                    self.on_report(gid, seq, metrics, checkpoint.into_iter().collect());
                    return;
                }
                // A group's reports meet at a barrier: the k-th result is taken when every rank
                // has made its k-th report; rank 0's metrics are the trial's, every rank's
                // checkpoint folder goes into the one checkpoint, and every rank gets the decision.
                g.reports[r] += 1;
                g.pending[r] = Some((metrics, checkpoint));
                // A rank that already finished with fewer reports will never make this one.
                let n = g.reports[r];
                if let Some(d) = (0..g.done.len()).find(|&d| g.done[d] && g.reports[d] < n) {
                    let msg = self.report_mismatch(gid, d);
                    self.group_failed(gid, seq, msg);
                    return;
                }
                if g.pending.iter().all(|p| p.is_some()) {
                    let taken: Vec<super::RankReport> =
                        g.pending.iter_mut().map(|p| p.take().expect("all ranks reported")).collect();
                    let mut it = taken.into_iter();
                    let (metrics, first) = it.next().expect("rank 0");
                    let cks: Vec<PathBuf> = first.into_iter().chain(it.filter_map(|(_, c)| c)).collect();
                    self.on_report(gid, seq, metrics, cks);
                }
            }
            WorkerEvent::Done => {
                let r = key.rank as usize;
                if g.workers.len() > 1 && g.reports.iter().any(|n| *n > g.reports[r]) {
                    // Others wait at a report this rank will never make.
                    if let Some(seq) = seq {
                        let msg = self.report_mismatch(gid, r);
                        self.group_failed(gid, seq, msg);
                    }
                    return;
                }
                g.done[key.rank as usize] = true;
                // A gang's trial ends when every rank has finished; rank 0's results are the trial's.
                if g.done.iter().all(|d| *d) {
                    if let Some(seq) = seq {
                        self.trial_done(seq);
                    }
                    self.release_trial(gid);
                }
            }
            WorkerEvent::Error { error, traceback } => {
                let multi = g.workers.len() > 1;
                if let Some(seq) = seq {
                    let error = if multi { format!("rank {}: {error}", key.rank) } else { error };
                    self.trial_failed(seq, error, traceback, true);
                }
                if multi {
                    // The other ranks would wait on the failed one forever: tear the group down.
                    self.detach(gid);
                    self.retire_group(gid, true);
                } else {
                    self.release_trial(gid);
                }
            }
            WorkerEvent::Protocol(msg) => {
                if let Some(seq) = seq {
                    self.trial_failed(seq, msg, String::new(), false);
                }
                self.detach(gid);
                self.retire_group(gid, true);
            }
            WorkerEvent::Exited { code, signal } => self.on_exit(key, code, signal),
        }
    }

    /// Says which rank made fewer reports than the others before finishing.
    fn report_mismatch(&self, gid: GroupId, finished: usize) -> String {
        let g = &self.groups[&gid];
        let counts: Vec<String> = g.reports.iter().enumerate().map(|(i, n)| format!("rank {i}: {n}")).collect();
        format!(
            "rank {finished} finished while other ranks were still reporting (reports so far: {}): every rank must call report() the same number of times",
            counts.join(", ")
        )
    }

    /// Fails a group's trial for a fault of the group as a whole (not retried: it would recur)
    /// and tears the group down.
    fn group_failed(&mut self, gid: GroupId, seq: u64, msg: String) {
        self.detach(gid);
        self.trial_failed(seq, msg, String::new(), false);
        self.retire_group(gid, true);
    }

    /// Acknowledges the current report of every rank of a group.
    pub(crate) fn ack_group(&self, gid: GroupId, stop: bool) {
        if let Some(g) = self.groups.get(&gid) {
            for w in g.workers.iter().flatten() {
                w.ack(stop);
            }
        }
    }

    /// Forgets a group's trial, so late events from a dying group cannot touch it.
    fn detach(&mut self, gid: GroupId) {
        if let Some(g) = self.groups.get_mut(&gid) {
            g.trial = None;
        }
    }

    /// A group finished its trial; keep it warm or let it go.
    fn release_trial(&mut self, gid: GroupId) {
        let stop_new = self.stop_new;
        let explicit = self.reuse;
        let Some(g) = self.groups.get_mut(&gid) else { return };
        let no_gpu = g.res.as_ref().is_none_or(|r| r.gang().bundles.iter().all(|b| b.gpu == 0.0));
        let reuse = explicit.unwrap_or(no_gpu) && !stop_new;
        g.trial = None;
        g.started = false;
        g.done.iter_mut().for_each(|d| *d = false);
        g.pending.iter_mut().for_each(|p| *p = None);
        g.reports.iter_mut().for_each(|r| *r = 0);
        if !(reuse && g.python) || g.retiring {
            g.retiring = false;
            self.retire_group(gid, false);
        }
    }

    fn on_exit(&mut self, key: WorkerKey, code: Option<i32>, signal: Option<i32>) {
        let gid = key.group;
        let Some(g) = self.groups.get_mut(&gid) else { return };
        if let Some(w) = g.workers[key.rank as usize].take() {
            // Whatever the worker started and left behind in its process group goes with it.
            w.signal(libc::SIGKILL);
        }
        if !g.done[key.rank as usize] {
            // An exit that was not a clean finish ends the group's trial and the group.
            let retiring = g.retiring;
            let (g_python, g_started) = (g.python, g.started);
            if let Some(seq) = g.trial.take() {
                let t = &self.trials[&seq];
                if !(t.status.is_final() || t.ending || (retiring && self.interrupted)) {
                    let how = match (code, signal) {
                        (_, Some(s)) => format!("killed by signal {s} ({})", signal_name(s)),
                        (Some(c), _) => format!("exited with code {c}"),
                        _ => "ended".into(),
                    };
                    // Before the trial started, the worker's own log holds its output (an import error, say).
                    let log = if g_python && !g_started {
                        self.exp_dir.join("workers").join(format!("worker-{}-{}.log", gid.0, key.rank))
                    } else {
                        t.dir.join("stderr.log")
                    };
                    let tail = tail_of(&log, 20);
                    let msg = format!("worker (rank {}) {how} while running the trial", key.rank);
                    self.trial_failed(seq, msg, tail, true);
                } else if let Some(t) = self.trials.get_mut(&seq) {
                    t.group = None;
                    if t.status == Status::Paused && !self.stop_new {
                        self.waiting.push_back(seq);
                    }
                }
            }
            // (Failing the trial may have ended the experiment and retired the group already.)
            if let Some(g) = self.groups.get_mut(&gid) {
                for w in g.workers.iter().flatten() {
                    w.signal(libc::SIGKILL);
                }
                g.retiring = true;
            }
        }
        if self.groups.get(&gid).is_some_and(|g| g.workers.iter().all(|w| w.is_none())) {
            self.groups.remove(&gid); // drops the reservation: capacity freed
        }
    }

    fn on_report(&mut self, gid: GroupId, seq: u64, metrics: Map<String, Value>, checkpoint: Vec<PathBuf>) {
        let t = self.trials.get_mut(&seq).expect("trial exists");
        if t.ending || t.status.is_final() {
            self.ack_group(gid, true);
            return;
        }
        let now_i = Instant::now();
        let dt = now_i.duration_since(t.last_report).as_secs_f64();
        t.last_report = now_i;
        t.iteration += 1;
        t.iterations_since_restore += 1;
        t.time_total += dt;
        t.time_since_restore += dt;
        if t.iteration <= t.recorded {
            // Resumed from an older checkpoint: this iteration was recorded (and decided on) before.
            // The first record stands, so every result is recorded exactly once.
            self.ack_group(gid, false);
            return;
        }
        t.recorded = t.iteration;
        let mut m = metrics;
        if let Some(metric) = &self.spec.experiment.metric {
            if !m.contains_key(metric) {
                let keys: Vec<String> = m.keys().cloned().collect();
                let msg =
                    format!("the trial reported {{{}}} but not the experiment's metric `{metric}`", keys.join(", "));
                self.ack_group(gid, true);
                self.trial_failed(seq, msg, String::new(), false);
                return;
            }
        }
        let ts = now();
        m.insert("training_iteration".into(), t.iteration.into());
        m.insert("time_this_iter_s".into(), dt.into());
        m.insert("time_total_s".into(), t.time_total.into());
        m.insert("timestamp".into(), (ts as i64).into());
        m.insert("trial_id".into(), t.id.clone().into());
        let user_done = m.get("done").and_then(Value::as_bool).unwrap_or(false);
        m.insert("done".into(), user_done.into());
        m.insert("iterations_since_restore".into(), t.iterations_since_restore.into());
        m.insert("time_since_restore".into(), t.time_since_restore.into());
        m.entry("pid").or_insert(Value::from(self.groups[&gid].workers[0].as_ref().map(|w| w.pid).unwrap_or(0)));
        match checkpoint.is_empty() {
            true => self.record_result(gid, seq, m, None),
            false => {
                let srcs = checkpoint;
                let rel = format!(
                    "{}/checkpoint_{:06}",
                    t.dir.strip_prefix(&self.exp_dir).unwrap_or(&t.dir).display(),
                    t.iteration
                );
                let dst = self.exp_dir.join(&rel);
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || {
                    let src = srcs[0].clone();
                    let saved = persist_checkpoint(&srcs, &dst).map(|_| rel).map_err(|e| {
                        let storage =
                            matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EROFS | libc::EDQUOT | libc::EIO));
                        if storage {
                            (format!("{}: {e}", dst.display()), true)
                        } else {
                            (format!("{}: {e}", src.display()), false)
                        }
                    });
                    let _ = tx.send(Ev::CheckpointSaved { group: gid, seq, metrics: m, saved });
                });
            }
        }
    }

    /// Decides, records, and acknowledges one result (the ack leaves after the commit).
    fn record_result(&mut self, gid: GroupId, seq: u64, m: Map<String, Value>, ckpt: Option<String>) {
        let t = self.trials.get_mut(&seq).expect("trial exists");
        let iteration = m.get("training_iteration").and_then(Value::as_u64).unwrap_or(t.iteration);
        if t.group != Some(gid) || t.ending {
            // The trial moved on (failed, interrupted) while this result's checkpoint was copied:
            // the result is still recorded, but it decides nothing and nobody waits for it.
            let w = ResultWrite { seq, iteration, ckpt, delete: Vec::new(), ack: Vec::new(), log: None };
            self.store_result(&m, w);
            return;
        }
        let obs = Observation { score: self.experiment_score(&m), progress: iteration as f64 };
        let sched = SchedResult {
            progress: self.sched_progress(&m, iteration),
            score: self.sched_score(&m),
            queued: self.waiting.len(),
        };
        // Stop criteria first (Ray: any key reaching its value), then the user's stopper, then the scheduler.
        let mut reason = self
            .spec
            .stop
            .iter()
            .find(|(k, v)| {
                let x = m.get(*k).and_then(|x| x.as_f64().or_else(|| x.as_bool().map(|b| if b { 1.0 } else { 0.0 })));
                x.is_some_and(|x| x >= **v)
            })
            .map(|(k, v)| format!("stop criterion {k} >= {v}"));
        if reason.is_none() && m.get("done").and_then(Value::as_bool) == Some(true) {
            reason = Some("the trial reported done".into());
        }
        let id = self.trials[&seq].id.clone();
        if reason.is_none() && self.hooks.stop_trial(&id, &m) {
            reason = Some("stopper".into());
        }
        let decision = self.algo.result(seq, &obs, &sched, ckpt.is_some());
        let mut pruned = false;
        let mut pause = false;
        let mut exploit = None;
        match decision {
            Decision::Continue => {}
            Decision::Stop { reason: why } => {
                if reason.is_none() {
                    reason = Some(format!("scheduler: {why}"));
                    pruned = true;
                }
            }
            Decision::Pause => pause = reason.is_none(),
            Decision::Exploit { donor, config, note } => {
                if reason.is_none() {
                    pause = true;
                    exploit = Some((donor.0, config, note));
                }
            }
        }
        if self.stop_new && reason.is_none() {
            reason = Some("experiment ending".into());
            pause = false;
            exploit = None;
        }
        let t = self.trials.get_mut(&seq).expect("trial exists");
        t.last_result = Some(m.clone());
        t.last_sched = Some(sched.clone());
        let ck_score = self
            .spec
            .checkpoint
            .score_attribute
            .as_ref()
            .and_then(|k| m.get(k)?.as_f64())
            .map(|x| self.spec.checkpoint.score_order.unwrap_or(crate::spec::Mode::Max).score(x));
        let mut delete: Vec<(u64, String)> = Vec::new();
        if let Some(rel) = &ckpt {
            t.checkpoints.push(Ckpt { iteration, rel: rel.clone(), score: ck_score });
            t.restore = Some(rel.clone());
            if let Some(keep) = self.spec.checkpoint.num_to_keep {
                delete = retention(&mut t.checkpoints, keep.max(1));
            }
        }
        self.hooks.on_result(&id, &m);
        let stop = reason.is_some();
        let mut ack: Vec<hyperfleet_train::worker::Acker> = self
            .groups
            .get(&gid)
            .map(|g| g.workers.iter().flatten().map(|w| w.acker(stop || pause)).collect())
            .unwrap_or_default();
        if self.spec.experiment.durability == crate::spec::Durability::Relaxed {
            ack.drain(..).for_each(|a| a.send());
        }
        let log = self.log_results.then(|| super::algo::result_entry(&obs, &sched, ckpt.is_some()));
        self.store_result(&m, ResultWrite { seq, iteration, ckpt, delete, ack, log });
        if stop {
            let score = obs.score;
            let outcome = if pruned { Outcome::Pruned { score } } else { Outcome::Completed { score } };
            self.end_trial(
                seq,
                Status::Terminated,
                None,
                reason,
                outcome,
                if pruned { TrialEnd::Stopped } else { TrialEnd::Completed },
            );
            self.arm_stop_timer(gid);
        } else if pause {
            let t = self.trials.get_mut(&seq).expect("trial exists");
            t.ending = true;
            t.status = Status::Paused;
            // It becomes runnable again once its group has let go of it (`trial_done` / `on_exit`)
            // and, after an exploit, once the donor's checkpoint is cloned.
            self.set_status(seq, Status::Paused, None, None);
            if let Some((donor, mut config, note)) = exploit {
                match self.hooks.explore(&mut config, true) {
                    Ok(()) => self.start_exploit(seq, donor, config, note),
                    Err(e) => {
                        self.fail_experiment(format!("PBT explore failed for trial {id}: {e}"));
                        self.stop_everything(false, "explore failed");
                    }
                }
            }
            self.arm_stop_timer(gid);
        }
        if self.hooks.stop_all() {
            self.stop_everything(false, "stopper.stop_all()");
        }
    }

    /// The experiment's objective with the mode folded in.
    pub(crate) fn experiment_score(&self, m: &Map<String, Value>) -> Option<f64> {
        let v = m.get(self.spec.experiment.metric.as_ref()?)?.as_f64().filter(|v| !v.is_nan())?;
        Some(self.spec.experiment.mode?.score(v))
    }

    /// The scheduler's objective (its own metric when it has one): `None` when absent, NaN when not a number.
    fn sched_score(&self, m: &Map<String, Value>) -> Option<f64> {
        let (metric, max) = match self.spec.scheduler.objective() {
            Some((metric, max)) => (metric, max),
            None => (self.spec.experiment.metric.as_deref()?, self.spec.experiment.mode? == crate::spec::Mode::Max),
        };
        let v = m.get(metric)?.as_f64().unwrap_or(f64::NAN);
        Some(if max { v } else { -v })
    }

    /// The scheduler's clock: `result[time_attr]`.
    fn sched_progress(&self, m: &Map<String, Value>, iteration: u64) -> f64 {
        m.get(self.spec.scheduler.time_attr()).and_then(Value::as_f64).unwrap_or(iteration as f64)
    }

    /// Queues one result (and its checkpoint, and retention deletes); the ack leaves after the commit.
    fn store_result(&mut self, m: &Map<String, Value>, w: ResultWrite) {
        let ResultWrite { seq, iteration, ckpt, delete, ack, log } = w;
        let log = log.map(|l| l.to_string());
        self.results += 1;
        let it = iteration as i64;
        let ts = m.get("timestamp").and_then(Value::as_f64).unwrap_or(0.0);
        let json = serde_json::to_string(m).unwrap_or_default();
        let dir = self.trials[&seq].dir.clone();
        let doomed: Vec<PathBuf> = delete.iter().map(|(_, rel)| self.exp_dir.join(rel)).collect();
        let for_file = m.clone();
        self.store.write_waited(
            move |c| {
                c.prepare_cached(
                    "INSERT INTO results(trial_seq, training_iteration, timestamp, metrics) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![seq as i64, it, ts, json])?;
                if let Some(rel) = &ckpt {
                    c.prepare_cached(
                        "INSERT INTO checkpoints(trial_seq, training_iteration, path, metrics, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![seq as i64, it, rel, json, ts])?;
                }
                for (_, rel) in &delete {
                    c.prepare_cached("UPDATE checkpoints SET deleted_at = ?2 WHERE trial_seq = ?1 AND path = ?3")?
                        .execute(params![seq as i64, now(), rel])?;
                }
                if let Some(l) = &log {
                    store::append_log(c, seq, "result", l)?;
                }
                Ok(())
            },
            (!ack.is_empty()).then(|| -> store::Ack {
                Box::new(move || {
                    for a in ack {
                        a.send();
                    }
                })
            }),
            Some(Box::new(move |files: &mut TrialFiles| {
                files.append_result(seq, &dir, &for_file);
                // Only after the commit that marks them deleted.
                for d in doomed {
                    let _ = std::fs::remove_dir_all(d);
                }
            })),
        );
    }

    /// Command trainables that ignore `stop` on stdin are signalled after a grace period.
    fn arm_stop_timer(&mut self, gid: GroupId) {
        if let Some(g) = self.groups.get_mut(&gid) {
            if !g.python && g.kill_at.is_none() {
                g.kill_at = Some((Instant::now() + std::time::Duration::from_secs(5), libc::SIGTERM));
            }
        }
    }

    fn trial_done(&mut self, seq: u64) {
        let t = self.trials.get_mut(&seq).expect("trial exists");
        if t.ending && t.status == Status::Paused {
            t.group = None;
            if !t.cloning {
                self.waiting.push_back(seq);
            }
            return;
        }
        if t.status.is_final() || t.ending {
            t.group = None;
            return;
        }
        let score = self.score(seq);
        self.store.write(
            move |c| {
                c.prepare_cached(
                    "UPDATE results SET metrics = json_set(metrics, '$.done', json('true')) WHERE id = (SELECT max(id) FROM results WHERE trial_seq = ?1)",
                )?
                .execute(params![seq as i64])
                .map(|_| ())
            },
            None,
        );
        if let Some(r) = self.trials.get_mut(&seq).and_then(|t| t.last_result.as_mut()) {
            r.insert("done".into(), true.into());
        }
        self.end_trial(seq, Status::Terminated, None, None, Outcome::Completed { score }, TrialEnd::Completed);
    }

    fn score(&self, seq: u64) -> Option<f64> {
        self.experiment_score(self.trials[&seq].last_result.as_ref()?)
    }

    /// A trial failed: retry from its latest checkpoint while `max_failures` allows, else ERROR.
    pub(crate) fn trial_failed(&mut self, seq: u64, error: String, traceback: String, retryable: bool) {
        let max = self.spec.failure.max_failures;
        let t = self.trials.get_mut(&seq).expect("trial exists");
        if t.status.is_final() {
            return;
        }
        t.num_failures += 1;
        t.group = None;
        t.ending = true;
        let n = t.num_failures;
        let _ = std::fs::write(t.dir.join("error.txt"), format!("{error}\n\n{traceback}"));
        let retry = retryable && !self.stop_new && (max == -1 || (n as i64) <= max);
        self.store.event(Some(seq), "trial_error", format!("{error}\n{traceback}"));
        if retry {
            // Continue from the latest checkpoint's iteration.
            let t = self.trials.get_mut(&seq).expect("trial exists");
            t.iteration = t.checkpoints.last().map(|c| c.iteration).unwrap_or(0);
            t.status = Status::Pending;
            let (e2, tb2) = (error.clone(), traceback.clone());
            self.store.write(
                move |c| {
                    c.prepare_cached("UPDATE trials SET status = 'PENDING', num_failures = ?2, error = ?3, traceback = ?4 WHERE seq = ?1")?
                        .execute(params![seq as i64, n as i64, e2, tb2])
                        .map(|_| ())
                },
                None,
            );
            self.waiting.push_back(seq);
        } else {
            let tb = traceback.clone();
            let e2 = error.clone();
            self.store.write(
                move |c| {
                    c.prepare_cached("UPDATE trials SET num_failures = ?2, traceback = ?3, error = ?4 WHERE seq = ?1")?
                        .execute(params![seq as i64, n as i64, tb, e2])
                        .map(|_| ())
                },
                None,
            );
            self.end_trial(seq, Status::Error, Some(error.clone()), None, Outcome::Failed, TrialEnd::Failed);
            if self.spec.failure.fail_fast {
                let id = self.trials[&seq].id.clone();
                self.fail_experiment(format!("trial {id} failed and fail_fast is set: {error}"));
                self.stop_everything(false, "fail_fast");
            }
        }
    }

    /// Records a final status and tells the searcher and scheduler (through the replay log).
    pub(crate) fn end_trial(
        &mut self,
        seq: u64,
        status: Status,
        error: Option<String>,
        reason: Option<String>,
        outcome: Outcome,
        end: TrialEnd,
    ) {
        let t = self.trials.get_mut(&seq).expect("trial exists");
        t.status = status;
        t.ending = true;
        let id = t.id.clone();
        let last = t.last_sched.clone();
        // Every objective of the last result (higher is better), when there are several and all are numbers.
        let objectives: Option<Vec<f64>> = match (&outcome, &t.last_result) {
            (Outcome::Failed, _) | (_, None) => None,
            (_, Some(m)) if !self.spec.experiment.objectives.is_empty() => self
                .spec
                .experiment
                .objectives
                .iter()
                .map(|(metric, mode)| m.get(metric)?.as_f64().filter(|v| v.is_finite()).map(|v| mode.score(v)))
                .collect(),
            _ => None,
        };
        let entry = self.algo.end(seq, &outcome, end, last.as_ref(), objectives.as_deref()).to_string();
        // One transaction: a crash must never leave a trial final in the store while the replay
        // log lacks its end (a resume would then never tell the searcher and scheduler).
        let (s, ended, ts) = (status.as_str(), now(), now());
        self.store.write(
            move |c| {
                set_status_sql(c, seq, s, error, reason, Some(ended))?;
                c.prepare_cached(
                    "INSERT INTO events(timestamp, trial_seq, kind, detail) VALUES (?1, ?2, 'status', ?3)",
                )?
                .execute(params![ts, seq as i64, s])?;
                store::append_log(c, seq, "end", &entry)
            },
            Some(Box::new(move |files: &mut TrialFiles| files.close(seq))),
        );
        self.hooks.on_trial_end(&id, status.as_str());
    }

    /// Brings an ERROR trial back on resume (`resume_errored` / `restart_errored`): the searcher and
    /// scheduler are told it exists again, through the replay log like any other call.
    pub(crate) fn readd_errored(&mut self, seq: u64) {
        let config = self.trials[&seq].config.clone();
        let entry = self.algo.add(seq, &config).to_string();
        let notes = self.algo.scheduler.take_notes();
        let restore = self.trials[&seq].restore.clone();
        self.store.write(
            move |c| {
                c.prepare_cached(
                    "UPDATE trials SET status = 'PENDING', num_failures = 0, error = NULL, ended_at = NULL WHERE seq = ?1",
                )?
                .execute(params![seq as i64])?;
                store::append_log(c, seq, "add", &entry)?;
                store::insert_events(c, seq, "scheduler", &notes)
            },
            None,
        );
        let how = if restore.is_some() { "resumed from its latest checkpoint" } else { "restarted from scratch" };
        self.store.event(Some(seq), "trial_readded", format!("ERROR trial {how}"));
    }

    /// Ends a trial TERMINATED with `reason`, scored by its last result (`pruned` when a scheduler stopped it).
    pub(crate) fn end_with_reason(&mut self, seq: u64, reason: String, pruned: bool) {
        let last = self.trials[&seq].last_result.clone();
        let score = last.as_ref().and_then(|m| self.experiment_score(m));
        let (outcome, end) = if pruned {
            (Outcome::Pruned { score }, TrialEnd::Stopped)
        } else {
            (Outcome::Completed { score }, TrialEnd::Completed)
        };
        self.end_trial(seq, Status::Terminated, None, Some(reason), outcome, end);
    }

    /// Clones the donor's latest checkpoint into the trial's folder, then requeues the trial with the explored config.
    pub(crate) fn start_exploit(&mut self, seq: u64, donor: u64, config: Map<String, Value>, note: String) {
        let Some(d) = self.trials.get(&donor) else { return };
        let (Some(src_rel), Some(ck)) = (d.restore.clone(), d.checkpoints.last()) else {
            // The scheduler only exploits donors with a checkpoint; if that ever fails, the trial just resumes.
            self.store.event(Some(seq), "exploit_skipped", format!("donor {} has no checkpoint", d.id));
            if let Some(t) = self.trials.get_mut(&seq) {
                if t.group.is_none() {
                    self.waiting.push_back(seq);
                }
            }
            return;
        };
        let donor_iteration = ck.iteration;
        let donor_id = d.id.clone();
        // What the cloned checkpoint was trained with: the donor may exploit again before the copy ends.
        let (donor_config, donor_policy) = (d.config.clone(), (d.policy.clone(), d.exploits));
        let t = self.trials.get_mut(&seq).expect("trial exists");
        t.cloning = true;
        let rel = format!(
            "{}/checkpoint_{donor_iteration:06}_from_{donor_id}",
            t.dir.strip_prefix(&self.exp_dir).unwrap_or(&t.dir).display()
        );
        let (src, dst) = (self.exp_dir.join(&src_rel), self.exp_dir.join(&rel));
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let saved = persist_checkpoint(std::slice::from_ref(&src), &dst)
                .map(|_| rel)
                .map_err(|e| format!("{}: {e}", src.display()));
            let _ =
                tx.send(Ev::Cloned { seq, donor, donor_iteration, donor_config, donor_policy, config, note, saved });
        });
    }

    /// The donor's checkpoint is in place: switch config, record the lineage, requeue.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish_exploit(
        &mut self,
        seq: u64,
        donor: u64,
        donor_iteration: u64,
        (donor_config, (donor_policy, donor_version)): (Map<String, Value>, (String, u64)),
        config: Map<String, Value>,
        note: String,
        saved: Result<String, String>,
    ) {
        let t = self.trials.get_mut(&seq).expect("trial exists");
        t.cloning = false;
        let requeue = t.group.is_none() && t.status == Status::Paused;
        let rel = match saved {
            Ok(rel) => rel,
            Err(e) => {
                self.store.event(Some(seq), "exploit_failed", e);
                if requeue {
                    self.waiting.push_back(seq);
                }
                return;
            }
        };
        t.config = config.clone();
        let from_iteration = t.iteration;
        t.iteration = donor_iteration;
        t.restore = Some(rel.clone());
        t.checkpoints.push(Ckpt { iteration: donor_iteration, rel: rel.clone(), score: None });
        let donor_id = self.trials[&donor].id.clone();
        let entry = self.algo.exploit(seq, donor, &config).to_string();
        // As in Ray's policy files, `old_config` is the donor's: the model being continued was trained with it.
        let step = json!({
            "trial_id": self.trials[&seq].id, "donor": donor_id, "donor_iteration": donor_iteration,
            "iteration": from_iteration, "old_config": donor_config, "new_config": config,
            "explore": note, "donor_version": donor_version,
        });
        let cfg = serde_json::to_string(&config).unwrap_or_default();
        let line = step.to_string();
        let policy_file = self.exp_dir.join(format!("pbt_policy_{}.txt", self.trials[&seq].id));
        // The trial inherits its donor's history as of the cloned checkpoint, then adds this step
        // (Ray's policy-file layout, as JSON lines). `donor_version` (how many exploits the donor
        // had made then) lets a resume rebuild the same history from the events.
        let policy = format!("{donor_policy}{line}\n");
        let t = self.trials.get_mut(&seq).expect("trial exists");
        t.policy = policy.clone();
        t.exploits += 1;
        let (line2, rel2) = (line, rel.clone());
        self.store.write(
            move |c| {
                store::append_log(c, seq, "exploit", &entry)?;
                c.prepare_cached("UPDATE trials SET config = ?2 WHERE seq = ?1")?.execute(params![seq as i64, cfg])?;
                c.prepare_cached(
                    "INSERT INTO checkpoints(trial_seq, training_iteration, path, metrics, created_at) VALUES (?1, ?2, ?3, '{}', ?4)",
                )?
                .execute(params![seq as i64, donor_iteration as i64, rel2, now()])?;
                c.prepare_cached("INSERT INTO events(timestamp, trial_seq, kind, detail) VALUES (?1, ?2, 'exploit', ?3)")?
                    .execute(params![now(), seq as i64, line2])?;
                Ok(())
            },
            Some(Box::new(move |_: &mut TrialFiles| {
                let _ = std::fs::write(&policy_file, policy);
            })),
        );
        if requeue {
            self.waiting.push_back(seq);
        }
    }

    pub(crate) fn set_status(&mut self, seq: u64, status: Status, error: Option<String>, reason: Option<String>) {
        let s = status.as_str();
        let ended = status.is_final().then(now);
        self.store.write(move |c| set_status_sql(c, seq, s, error, reason, ended), None);
        self.store.event(Some(seq), "status", s.to_string());
    }

    pub(crate) fn fail_experiment(&mut self, why: String) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
        self.stop_new = true;
    }
}

/// Records a trial's status (and its error, stop reason and end time when given).
fn set_status_sql(
    c: &rusqlite::Connection,
    seq: u64,
    status: &str,
    error: Option<String>,
    reason: Option<String>,
    ended: Option<f64>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE trials SET status = ?2, error = coalesce(?3, error), stop_reason = coalesce(?4, stop_reason), ended_at = coalesce(?5, ended_at) WHERE seq = ?1",
    )?
    .execute(params![seq as i64, status, error, reason, ended])
    .map(|_| ())
}

/// The last `n` lines of a text file.
pub(crate) fn tail_of(path: &Path, n: usize) -> String {
    let Ok(s) = std::fs::read_to_string(path) else { return String::new() };
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGKILL => "SIGKILL: killed from outside, or by the kernel when memory ran out",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV: a segmentation fault",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        _ => "signal",
    }
}
