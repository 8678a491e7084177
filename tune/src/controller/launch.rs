//! Starting trials: capacity, suggestions, worker groups.

use super::{Controller, Group, Status, Trial};
use crate::store::now;
use hyperfleet_searchers::{Suggestion, TrialId};
use hyperfleet_train::{spawn_worker, GroupId, IoMode, WorkerKey, WorkerLaunch};
use rusqlite::params;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// At most this many trials wait for capacity at once: the oldest, and one drawn behind it.
const MAX_BLOCKED: usize = 2;

/// What trying the blocked trials came to.
enum BlockedStart {
    /// One of them started.
    Started,
    /// The oldest reserves the capacity it waits for: nothing else may start.
    Reserved,
    /// None started; others may start ahead of them (or none are blocked).
    Waiting,
}

impl Controller {
    /// Starts trials while capacity, the concurrency cap and the searcher allow.
    ///
    /// When every trial has the same gang, capacity is reserved before a suggestion is drawn, so
    /// none is drawn that cannot run. When gangs differ per trial (`scaling_config` in the
    /// space), a trial is drawn first and, if its gang does not fit, waits in `blocked`: smaller
    /// trials may start ahead of it (backfill) until it has waited `reserve_after`; from then on
    /// it reserves: nothing else starts until its gang has been placed, so a large gang is never
    /// starved by a stream of small trials.
    pub(crate) fn fill(&mut self) {
        self.end_scheduler_stopped();
        self.start_scheduler_exploits();
        if self.algo.scheduler.wants_population_up_front() {
            self.create_population();
        }
        while !self.stop_new && self.running() < self.max_concurrent {
            match self.start_blocked() {
                BlockedStart::Started => continue,
                BlockedStart::Reserved => break,
                BlockedStart::Waiting => {}
            }
            // At most one trial drawn ahead of a blocked one, so a full cluster draws nothing more.
            if !self.has_more_work() || self.blocked.len() >= MAX_BLOCKED {
                break;
            }
            if self.varying_gangs {
                let was_done = self.searcher_done;
                match self.next_trial() {
                    Some(seq) => {
                        if !self.try_start(seq) {
                            self.blocked.push_back((seq, Instant::now()));
                        }
                    }
                    None if !was_done && self.searcher_done => continue,
                    None => {
                        self.end_stranded();
                        break;
                    }
                }
                continue;
            }
            // Capacity first, so that no suggestion is drawn that cannot run.
            let idle = self.groups.iter().find(|(_, g)| g.trial.is_none() && !g.retiring).map(|(id, _)| *id);
            let gid = match idle {
                Some(id) => id,
                None => match self.cluster.try_reserve(&self.gang) {
                    Some(res) => self.new_group(res),
                    None => break, // a capacity-freed event will call us again
                },
            };
            let was_done = self.searcher_done;
            match self.next_trial() {
                Some(seq) => self.assign(seq, gid),
                // The searcher just ran out: the scheduler (told so) may now release paused trials.
                None if !was_done && self.searcher_done => continue,
                None => {
                    // A fresh group has no processes yet: it stays idle, holding its reservation,
                    // until a trial comes or the experiment no longer needs it (below).
                    self.end_stranded();
                    break;
                }
            }
        }
        // Warm workers nobody will need again go away; so do idle groups of another shape while
        // a trial waits for capacity (its own shape would have taken one).
        let unneeded = self.stop_new || (self.searcher_done && self.waiting.is_empty() && self.blocked.is_empty());
        if (unneeded || !self.blocked.is_empty()) && !self.groups.is_empty() {
            let idle: Vec<GroupId> =
                self.groups.iter().filter(|(_, g)| g.trial.is_none() && !g.retiring).map(|(id, _)| *id).collect();
            for id in idle {
                self.retire_group(id, false);
            }
        }
    }

    /// Tries the blocked trials, oldest first.
    fn start_blocked(&mut self) -> BlockedStart {
        let Some(&(_, since)) = self.blocked.front() else { return BlockedStart::Waiting };
        let reserving = since.elapsed() >= self.reserve_after;
        let mut i = 0;
        while i < self.blocked.len() {
            let seq = self.blocked[i].0;
            if self.trials[&seq].status != Status::Pending {
                self.blocked.remove(i); // ended meanwhile (the scheduler stopped it, say)
                continue;
            }
            if self.try_start(seq) {
                self.blocked.remove(i);
                return BlockedStart::Started;
            }
            if i == 0 && reserving {
                return BlockedStart::Reserved;
            }
            i += 1;
        }
        BlockedStart::Waiting
    }

    /// Starts `seq` on a warm group of its shape or on a fresh reservation; `false` when its gang
    /// does not fit now. A trial whose gang is invalid or can never fit ends in ERROR (`true`).
    fn try_start(&mut self, seq: u64) -> bool {
        let gang = match &self.trials[&seq].gang {
            Ok(g) => g.clone(),
            Err(e) => {
                let why = format!("its scaling_config is invalid: {e}");
                self.trial_failed(seq, why, String::new(), false);
                return true;
            }
        };
        if !self.cluster.could_ever_fit(&gang) {
            let mut need = hyperfleet_train::Resources::default();
            gang.bundles.iter().for_each(|b| need.add(b));
            let have = self.cluster.total();
            let why = format!(
                "its gang of {} worker(s) ({:?} placement) needs {} in all and can never be placed on this cluster ({})",
                gang.bundles.len(),
                gang.strategy,
                super::setup::fmt_res(need.cpu, need.gpu, &need.custom),
                super::setup::fmt_res(have.cpu, have.gpu, &have.custom),
            );
            self.trial_failed(seq, why, String::new(), false);
            return true;
        }
        let idle = self
            .groups
            .iter()
            .find(|(_, g)| g.trial.is_none() && !g.retiring && g.res.as_ref().is_some_and(|r| r.gang() == &gang))
            .map(|(id, _)| *id);
        let gid = match idle {
            Some(id) => id,
            None => match self.cluster.try_reserve(&gang) {
                Some(res) => self.new_group(res),
                None => return false,
            },
        };
        self.assign(seq, gid);
        true
    }

    /// Creates every trial the searcher has (up to a bound) as PENDING, so a population-based
    /// scheduler sees the whole population and time-multiplexes it over the capacity.
    fn create_population(&mut self) {
        const MAX_PENDING: usize = 1000;
        while !self.stop_new && !self.searcher_done && self.waiting.len() < MAX_PENDING {
            let seq = self.next_seq;
            match self.suggest_new() {
                Some(s) => {
                    debug_assert_eq!(s, seq);
                    self.waiting.push_back(s);
                }
                None => break,
            }
        }
    }

    /// The searcher has nothing more: tell the scheduler (through the log) once.
    fn searcher_exhausted(&mut self) {
        if self.searcher_done {
            return;
        }
        self.searcher_done = true;
        let entry = self.algo.no_more_trials().to_string();
        self.store.write(move |c| crate::store::append_log(c, 0, "no_more", &entry), None);
    }

    /// Trials the scheduler stopped while they were paused (HyperBand's losers) end now.
    pub(crate) fn end_scheduler_stopped(&mut self) {
        loop {
            let stopped = self.algo.scheduler.take_stopped();
            if stopped.is_empty() {
                return;
            }
            for (TrialId(seq), why) in stopped {
                let Some(t) = self.trials.get(&seq) else { continue };
                if t.status.is_final() {
                    continue;
                }
                self.waiting.retain(|s| *s != seq);
                self.blocked.retain(|(s, _)| *s != seq);
                self.end_with_reason(seq, format!("scheduler: {why}"), true);
            }
        }
    }

    /// Exploits the scheduler decided for paused trials (synchronous PBT's barrier) start: the
    /// donor's checkpoint is cloned and the trial requeued with the explored config.
    fn start_scheduler_exploits(&mut self) {
        let mut todo: Vec<(u64, u64, Map<String, Value>, String)> = std::mem::take(&mut self.resume_exploits);
        todo.extend(self.algo.scheduler.take_exploits().into_iter().map(|(t, d, c, n)| (t.0, d.0, c, n)));
        for (seq, donor, mut config, note) in todo {
            let Some(t) = self.trials.get_mut(&seq) else { continue };
            if t.status.is_final() || self.stop_new {
                continue;
            }
            // (A resumed trial is PENDING; the exploit brings it back as the paused trial it was.)
            t.status = Status::Paused;
            self.waiting.retain(|s| *s != seq);
            if let Err(e) = self.hooks.explore(&mut config, true) {
                let id = self.trials[&seq].id.clone();
                self.fail_experiment(format!("PBT explore failed for trial {id}: {e}"));
                self.stop_everything(false, "explore failed");
                return;
            }
            self.start_exploit(seq, donor, config, note);
        }
    }

    /// Paused trials that the scheduler declined while nothing runs and nothing new may start
    /// would wait forever: they end here, TERMINATED, with the reason recorded.
    fn end_stranded(&mut self) {
        let stuck = self.running() == 0
            && !self.waiting.is_empty()
            && (self.searcher_done || !self.algo.scheduler.may_start_new_trial())
            && !self.trials.values().any(|t| t.cloning);
        if !stuck {
            return;
        }
        for seq in std::mem::take(&mut self.waiting) {
            let why = "paused by the scheduler and not resumed before the experiment ended";
            self.end_with_reason(seq, why.into(), false);
        }
    }

    fn has_more_work(&self) -> bool {
        !self.waiting.is_empty() || !self.blocked.is_empty() || !self.searcher_done
    }

    /// A waiting trial (the scheduler picks) or a fresh suggestion.
    fn next_trial(&mut self) -> Option<u64> {
        if !self.waiting.is_empty() {
            let ids: Vec<TrialId> = self.waiting.iter().map(|s| TrialId(*s)).collect();
            if let Some(TrialId(seq)) = self.algo.scheduler.choose_trial_to_run(&ids) {
                self.waiting.retain(|s| *s != seq);
                return Some(seq);
            }
        }
        if self.searcher_done || !self.algo.scheduler.may_start_new_trial() {
            return None;
        }
        self.suggest_new()
    }

    /// Asks the searcher for one new trial and creates it.
    fn suggest_new(&mut self) -> Option<u64> {
        let seq = self.next_seq;
        let mut rng = hyperfleet_searchers::trial_rng(self.seed, TrialId(seq));
        match self.algo.searcher.suggest(TrialId(seq), &mut rng) {
            Suggestion::Config(mut config) => {
                let leaves = self.space.sample_from_ids();
                if let Err(e) = self.hooks.resolve(&mut config, &leaves) {
                    self.fail_experiment(format!("sample_from failed: {e}"));
                    return None;
                }
                if self.hooks.stop_all() {
                    self.stop_new = true;
                    return None;
                }
                // PBT-style schedulers fill hyperparameters the config lacks, from a stream of their own.
                let mut fill_rng = hyperfleet_searchers::trial_rng(self.seed, TrialId(seq | (1 << 63)));
                self.algo.scheduler.fill_config(&mut config, &mut fill_rng);
                if crate::controller::has_call(&Value::Object(config.clone())) {
                    if let Err(e) = self.hooks.explore(&mut config, false) {
                        self.fail_experiment(format!("filling hyperparam_mutations failed: {e}"));
                        return None;
                    }
                }
                self.next_seq += 1;
                self.create_trial(seq, config);
                Some(seq)
            }
            Suggestion::Wait => {
                if self.running() == 0 && self.waiting.is_empty() {
                    // Nothing runs that could unblock the searcher.
                    self.searcher_exhausted();
                }
                None
            }
            Suggestion::Exhausted => {
                self.searcher_exhausted();
                None
            }
        }
    }

    fn create_trial(&mut self, seq: u64, config: Map<String, Value>) {
        let id = format!("{}_{:05}", self.id_prefix, seq);
        let trainable = self.trainable_name();
        let name = self.hooks.trial_name(&id, &config).unwrap_or_else(|| format!("{trainable}_{id}"));
        let folder = match self.hooks.trial_dirname(&id, &config) {
            Some(d) if !d.is_empty() && !d.contains('/') && d != "." && d != ".." => d,
            _ => id.clone(),
        };
        let rel = format!("trials/{folder}");
        let dir = self.exp_dir.join(&rel);
        let _ = std::fs::create_dir_all(&dir);
        let cfg_json = serde_json::to_string(&config).unwrap_or_default();
        let _ = std::fs::write(dir.join("params.json"), serde_json::to_vec_pretty(&config).unwrap_or_default());
        let gang = crate::spec::trial_gang(&self.gang, &config);
        let res_json = match &gang {
            Ok(g) => serde_json::to_string(g).unwrap_or_default(),
            Err(_) => "null".into(),
        };
        let (i2, n2, r2) = (id.clone(), name.clone(), rel.clone());
        let created = now();
        let entry = self.algo.add(seq, &config).to_string();
        // The scheduler's notes on this add commit with it: a resume replays the add silently.
        let notes = self.algo.scheduler.take_notes();
        self.store.write(
            move |c| {
                c.prepare_cached(
                    "INSERT INTO trials(seq, trial_id, name, config, status, resources, logdir, created_at) VALUES (?1, ?2, ?3, ?4, 'PENDING', ?5, ?6, ?7)",
                )?
                .execute(params![seq as i64, i2, n2, cfg_json, res_json, r2, created])?;
                crate::store::append_log(c, seq, "add", &entry)?;
                crate::store::insert_events(c, seq, "scheduler", &notes)
            },
            None,
        );
        self.trials.insert(
            seq,
            Trial {
                seq,
                id,
                name,
                config,
                status: Status::Pending,
                dir,
                iteration: 0,
                iterations_since_restore: 0,
                time_total: 0.0,
                time_since_restore: 0.0,
                last_result: None,
                checkpoints: Vec::new(),
                num_failures: 0,
                group: None,
                last_report: Instant::now(),
                ending: false,
                restore: None,
                last_sched: None,
                cloning: false,
                policy: String::new(),
                exploits: 0,
                recorded: 0,
                gang,
            },
        );
    }

    pub(crate) fn trainable_name(&self) -> String {
        let t = &self.spec.trainable;
        if let Some(n) = &t.name {
            return n.clone();
        }
        if let Some(p) = &t.python {
            return p.rsplit(':').next().unwrap_or("trainable").to_string();
        }
        if let Some(c) = &t.command {
            return std::path::Path::new(&c[0])
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        "trainable".into()
    }

    fn new_group(&mut self, res: hyperfleet_train::Reservation) -> GroupId {
        let id = GroupId(self.next_group);
        self.next_group += 1;
        let n = res.gang().bundles.len();
        let python = self.spec.trainable.command.is_none();
        let g = Group {
            res: Some(res),
            workers: (0..n).map(|_| None).collect(),
            ready: vec![false; n],
            done: vec![false; n],
            pending: vec![None; n],
            reports: vec![0; n],
            python,
            trial: None,
            started: false,
            retiring: false,
            kill_at: None,
        };
        self.groups.insert(id, g);
        id
    }

    /// Starts a Python group's worker processes, once it has a trial to give them (so capacity
    /// reserved for a suggestion that never comes costs no process).
    fn spawn_python_workers(&mut self, gid: GroupId) -> bool {
        let logs = self.exp_dir.join("workers");
        let _ = std::fs::create_dir_all(&logs);
        let n = self.groups[&gid].workers.len();
        for rank in 0..n {
            let env = self.worker_env(self.groups[&gid].res.as_ref().expect("reserved"), rank);
            let launch = WorkerLaunch {
                argv: vec![self.opts.python.clone(), "-m".into(), "hyperfleet._worker".into()],
                env,
                cwd: Some(self.opts.cwd.clone()),
                io: IoMode::Socket { log: logs.join(format!("worker-{}-{rank}.log", gid.0)) },
            };
            match spawn_worker(launch, WorkerKey { group: gid, rank: rank as u32 }, self.worker_tx()) {
                Ok(h) => self.groups.get_mut(&gid).expect("group exists").workers[rank] = Some(h),
                Err(e) => {
                    self.fail_experiment(format!("could not start a Python worker with `{}`: {e}", self.opts.python));
                    return false;
                }
            }
        }
        true
    }

    fn worker_tx(&self) -> tokio::sync::mpsc::UnboundedSender<(WorkerKey, hyperfleet_train::WorkerEvent)> {
        self.wtx.clone()
    }

    fn worker_env(&self, res: &hyperfleet_train::Reservation, rank: usize) -> Vec<(String, String)> {
        let n = res.gang().bundles.len();
        let mut env: Vec<(String, String)> =
            self.spec.trainable.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.push(("CUDA_VISIBLE_DEVICES".into(), res.cuda_visible_devices(rank)));
        env.push(("HYPERFLEET_WORLD_RANK".into(), rank.to_string()));
        env.push(("HYPERFLEET_WORLD_SIZE".into(), n.to_string()));
        env.push(("HYPERFLEET_EXPERIMENT_NAME".into(), self.exp_name.clone()));
        env.push(("HYPERFLEET_EXPERIMENT_DIR".into(), self.exp_dir.display().to_string()));
        env
    }

    /// Gives a trial to a group: sends it to warm Python workers, or starts the command.
    pub(crate) fn assign(&mut self, seq: u64, gid: GroupId) {
        let t = self.trials.get_mut(&seq).expect("trial exists");
        t.status = Status::Running;
        t.group = Some(gid);
        t.ending = false;
        t.last_report = Instant::now();
        t.iterations_since_restore = 0;
        t.time_since_restore = 0.0;
        let started = now();
        self.store.write(
            move |c| {
                c.prepare_cached(
                    "UPDATE trials SET status = 'RUNNING', started_at = coalesce(started_at, ?2) WHERE seq = ?1",
                )?
                .execute(params![seq as i64, started])
                .map(|_| ())
            },
            None,
        );
        let g = self.groups.get_mut(&gid).expect("group exists");
        g.trial = Some(seq);
        if g.python {
            if g.workers.iter().all(|w| w.is_none()) && !self.spawn_python_workers(gid) {
                let why = "could not start its worker processes".to_string();
                self.trial_failed(seq, why, String::new(), false);
                if let Some(g) = self.groups.get_mut(&gid) {
                    g.trial = None;
                }
                self.retire_group(gid, true);
                return;
            }
            if self.groups[&gid].ready.iter().all(|r| *r) {
                self.send_run(gid);
            }
        } else {
            self.start_command(gid, seq);
        }
    }

    /// Sends the start message to every rank of a ready Python group.
    pub(crate) fn send_run(&mut self, gid: GroupId) {
        let Some(g) = self.groups.get(&gid) else { return };
        let Some(seq) = g.trial else { return };
        let t = &self.trials[&seq];
        let trainable = match (&self.spec.trainable.pickle, &self.spec.trainable.python) {
            (Some(p), _) => json!({"pickle": p}),
            (None, Some(r)) => json!({"python": r}),
            _ => Value::Null,
        };
        let ck = t.restore.as_ref().map(|r| self.exp_dir.join(r).display().to_string());
        let n = g.workers.len();
        let ranks = g.res.as_ref().map(|r| rank_layout(r.placement())).unwrap_or_default();
        // A fresh rendezvous port for every run of the group (a restarted group gets another).
        let port = if n > 1 || self.spec.scaling.backend.is_some() { free_port() } else { 0 };
        for (rank, w) in g.workers.iter().enumerate() {
            if let Some(w) = w {
                let (node_rank, local_rank, local_world_size) = ranks.get(rank).copied().unwrap_or((0, rank, n));
                w.send_json(&json!({
                    "t": "run",
                    "trial_id": t.id,
                    "trial_name": t.name,
                    "trial_dir": t.dir,
                    "experiment_name": self.exp_name,
                    "experiment_dir": self.exp_dir,
                    "config": t.config,
                    "trainable": trainable,
                    "checkpoint": ck,
                    "iteration": t.iteration,
                    "rank": rank,
                    "world_size": n,
                    "local_rank": local_rank,
                    "local_world_size": local_world_size,
                    "node_rank": node_rank,
                    "master_addr": "127.0.0.1",
                    "master_port": port,
                    "backend": self.spec.scaling.backend,
                    "timeout_s": self.spec.scaling.timeout_s,
                    "sys_path": self.spec.experiment.python_path,
                    "checkpoint_frequency": self.spec.checkpoint.frequency,
                    "checkpoint_at_end": self.spec.checkpoint.at_end,
                }));
            }
        }
        if let Some(g) = self.groups.get_mut(&gid) {
            g.started = true;
        }
        // The trial's clock starts when its workers get it, not when it was queued.
        if let Some(t) = self.trials.get_mut(&seq) {
            t.last_report = Instant::now();
        }
    }

    fn start_command(&mut self, gid: GroupId, seq: u64) {
        let t = &self.trials[&seq];
        let argv: Result<Vec<String>, String> = self
            .spec
            .trainable
            .command
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|a| substitute(a, &t.config, t))
            .collect();
        let argv = match argv {
            Ok(a) => a,
            Err(e) => {
                self.trial_failed(seq, e, String::new(), false);
                self.retire_group(gid, true);
                return;
            }
        };
        let n = self.groups[&gid].workers.len();
        let layout = self.groups[&gid].res.as_ref().map(|r| rank_layout(r.placement())).unwrap_or_default();
        let port = free_port();
        for rank in 0..n {
            let res = self.groups[&gid].res.as_ref().expect("reserved");
            let mut env = self.worker_env(res, rank);
            // torchrun's variables, so a program can join a process group as it would under torchrun.
            let (node_rank, local_rank, local_world_size) = layout.get(rank).copied().unwrap_or((0, rank, n));
            for (k, v) in [
                ("MASTER_ADDR", "127.0.0.1".to_string()),
                ("MASTER_PORT", port.to_string()),
                ("RANK", rank.to_string()),
                ("WORLD_SIZE", n.to_string()),
                ("LOCAL_RANK", local_rank.to_string()),
                ("LOCAL_WORLD_SIZE", local_world_size.to_string()),
                ("NODE_RANK", node_rank.to_string()),
                ("GROUP_RANK", node_rank.to_string()),
            ] {
                env.push((k.into(), v));
            }
            let cfg = serde_json::to_string(&t.config).unwrap_or_default();
            env.push(("HYPERFLEET_CONFIG".into(), cfg));
            env.push(("HYPERFLEET_CONFIG_FILE".into(), t.dir.join("params.json").display().to_string()));
            env.push(("HYPERFLEET_TRIAL_ID".into(), t.id.clone()));
            env.push(("HYPERFLEET_TRIAL_NAME".into(), t.name.clone()));
            env.push(("HYPERFLEET_TRIAL_DIR".into(), t.dir.display().to_string()));
            env.push(("HYPERFLEET_ITERATION".into(), t.iteration.to_string()));
            if let Some(r) = &t.restore {
                env.push(("HYPERFLEET_CHECKPOINT_DIR".into(), self.exp_dir.join(r).display().to_string()));
            }
            // Rank 0 writes stdout.log/stderr.log; other ranks get their own files.
            let suffix = if rank == 0 { String::new() } else { format!(".rank{rank}") };
            let launch = WorkerLaunch {
                argv: argv.clone(),
                env,
                cwd: Some(self.opts.cwd.clone()),
                io: IoMode::Lines {
                    stdout_log: t.dir.join(format!("stdout{suffix}.log")),
                    stderr_log: t.dir.join(format!("stderr{suffix}.log")),
                },
            };
            match spawn_worker(launch, WorkerKey { group: gid, rank: rank as u32 }, self.worker_tx()) {
                Ok(h) => {
                    let g = self.groups.get_mut(&gid).expect("group exists");
                    g.workers[rank] = Some(h);
                    g.ready[rank] = true;
                    g.started = true;
                }
                Err(e) => {
                    self.trial_failed(seq, format!("could not start `{}`: {e}", argv[0]), String::new(), false);
                    self.retire_group(gid, true);
                    return;
                }
            }
        }
    }

    /// Ends a group: idle Python workers are told to exit, busy ones signalled; resources return on exit.
    pub(crate) fn retire_group(&mut self, gid: GroupId, force: bool) {
        let Some(g) = self.groups.get_mut(&gid) else { return };
        let first = !g.retiring;
        g.retiring = true;
        if g.workers.iter().all(|w| w.is_none()) {
            self.groups.remove(&gid);
            return;
        }
        if force {
            for w in g.workers.iter().flatten() {
                w.signal(libc::SIGKILL);
            }
            return;
        }
        if first {
            if g.python && g.trial.is_none() {
                for w in g.workers.iter().flatten() {
                    w.send_json(&json!({"t": "exit"}));
                }
                g.kill_at = Some((Instant::now() + Duration::from_secs(5), libc::SIGKILL));
            } else {
                for w in g.workers.iter().flatten() {
                    w.signal(libc::SIGTERM);
                }
                g.kill_at = Some((Instant::now() + Duration::from_secs(5), libc::SIGKILL));
            }
        }
    }
}

/// Replaces `{path.to.key}`, `{trial_id}` and `{trial_dir}` in a command argument.
fn substitute(arg: &str, config: &Map<String, Value>, t: &Trial) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let key = &after[..close];
        let val = match key {
            "trial_id" => t.id.clone(),
            "trial_dir" => t.dir.display().to_string(),
            _ => {
                let mut cur: Option<&Value> = None;
                let mut map = Some(config);
                for part in key.split('.') {
                    cur = map.and_then(|m| m.get(part));
                    map = cur.and_then(Value::as_object);
                }
                match cur {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => {
                        return Err(format!(
                            "command argument {arg:?}: `{{{key}}}` is not a config key (keys: {})",
                            config.keys().cloned().collect::<Vec<_>>().join(", ")
                        ))
                    }
                }
            }
        };
        out.push_str(&val);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// For each rank: (node rank, local rank, workers of the group on that node). Nodes are numbered
/// in the order the group's ranks first use them, so rank 0 is always on node rank 0.
fn rank_layout(p: &hyperfleet_train::Placement) -> Vec<(usize, usize, usize)> {
    let mut order: Vec<u32> = Vec::new();
    for b in &p.bundles {
        if !order.contains(&b.node.0) {
            order.push(b.node.0);
        }
    }
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    p.bundles
        .iter()
        .map(|b| {
            let node_rank = order.iter().position(|n| *n == b.node.0).unwrap_or(0);
            let local = seen.entry(b.node.0).or_insert(0);
            let local_rank = *local;
            *local += 1;
            let on_node = p.bundles.iter().filter(|x| x.node == b.node).count();
            (node_rank, local_rank, on_node)
        })
        .collect()
}

/// A TCP port free on the loopback interface right now, for `torch.distributed`'s rendezvous.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(29500)
}
