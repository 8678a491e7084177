//! Discrete-event simulation of an experiment: `n_workers` workers, every epoch costs one time
//! unit, and a scheduler driven through [`TrialScheduler`] with the calls, arguments and order of
//! tune's controller (`tune/src/controller/launch.rs` `fill`/`next_trial`/`end_stranded`,
//! `events.rs` `record_result`/`end_trial`):
//!
//! - a free worker takes a waiting (paused) trial if `choose_trial_to_run` picks one, else the next
//!   unused config (`on_trial_add` when it is created), unless `may_start_new_trial` says no;
//!   asking past the last config calls `on_no_more_trials` once;
//! - every epoch's result goes to `on_result` with `progress = t`, `score = -loss`,
//!   `queued = ` the number of waiting trials; `Continue` runs the next epoch on the same worker
//!   (a trial that reached `max_t` completes: `on_trial_complete(Completed)`), `Stop` ends it
//!   (`on_trial_complete(Stopped, last)`), `Pause` frees the worker and queues the trial, which
//!   later resumes from the epoch it had reached;
//! - before filling free workers, trials returned by `take_stopped` end (`Stopped`); when nothing
//!   runs and nothing may start, waiting trials end (`Completed`, "stranded").
//!
//! Workers that free up at the same time are served in worker order; an epoch counts as consumed
//! when it starts, and none starts once `budget` epochs have.

use hyperfleet_scheduler::{Config, Decision, Rng, SchedResult, TrialEnd, TrialId, TrialScheduler, TrialView};
use rand::SeedableRng;
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// What a simulation runs with.
pub struct Setup {
    pub max_t: usize,
    pub n_workers: usize,
    /// Most epochs started.
    pub budget: u64,
    /// Configs on offer (the first `n_configs` curves, in order).
    pub n_configs: usize,
    /// Seed of the scheduler's random stream.
    pub seed: u64,
    /// Time every `on_result` call (for the decision-cost mode).
    pub time_decisions: bool,
}

/// How a simulation went.
#[derive(Default)]
pub struct Outcome {
    /// Lowest loss at `t = max_t`, and its config.
    pub best_final: Option<(f64, usize)>,
    /// Lowest loss at any `t`: (loss, config, t).
    pub best_any: Option<(f64, usize, usize)>,
    /// Each improvement of `best_final`: (epochs consumed, time, config, loss).
    pub incumbents: Vec<(u64, u64, usize, f64)>,
    pub epochs: u64,
    pub sim_time: u64,
    pub configs_started: usize,
    pub reached_max_t: usize,
    pub results: u64,
    pub stops: u64,
    pub pauses: u64,
    pub resumes: u64,
    /// Paused trials ended through `take_stopped`.
    pub stopped_while_paused: u64,
    /// Waiting trials ended because nothing ran and nothing could start.
    pub stranded: u64,
    /// Trials chosen to resume that had nothing left to run (already at `max_t`).
    pub resumed_at_max_t: u64,
    /// Epochs whose result was dropped because the trial had been ended meanwhile.
    pub wasted_epochs: u64,
    /// Time at which `on_no_more_trials` was called, if it was.
    pub no_more_trials_at: Option<u64>,
    /// Trials still paused when the simulation ended (the budget ran out while they waited).
    pub paused_at_end: u64,
    /// Time spent in `on_result` (only with `time_decisions`).
    pub decision_time: Duration,
    /// Calls of `choose_trial_to_run`, the waiting trials they were shown in all, and the time
    /// spent in them (only with `time_decisions`).
    pub choose_calls: u64,
    pub choose_shown: u64,
    pub choose_time: Duration,
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        json!({
            "best_final_loss": self.best_final.map(|b| b.0),
            "best_final_config": self.best_final.map(|b| b.1),
            "best_any_loss": self.best_any.map(|b| b.0),
            "best_any_config": self.best_any.map(|b| b.1),
            "best_any_t": self.best_any.map(|b| b.2),
            "incumbents": self.incumbents.iter().map(|i| json!([i.0, i.1, i.2, i.3])).collect::<Vec<_>>(),
            "epochs": self.epochs,
            "sim_time": self.sim_time,
            "configs_started": self.configs_started,
            "reached_max_t": self.reached_max_t,
            "results": self.results,
            "stops": self.stops,
            "pauses": self.pauses,
            "resumes": self.resumes,
            "stopped_while_paused": self.stopped_while_paused,
            "stranded": self.stranded,
            "resumed_at_max_t": self.resumed_at_max_t,
            "wasted_epochs": self.wasted_epochs,
            "no_more_trials_at": self.no_more_trials_at,
            "paused_at_end": self.paused_at_end,
            "choose_calls": self.choose_calls,
        })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Status {
    Running,
    Waiting,
    Ended,
}

struct Trial {
    /// Epochs done so far.
    done: usize,
    last: Option<SchedResult>,
    status: Status,
}

struct Sim<'a> {
    curves: &'a [Vec<f64>],
    setup: &'a Setup,
    sched: Box<dyn TrialScheduler>,
    rng: Rng,
    config: Config,
    trials: Vec<Trial>,
    /// Paused trials waiting for a worker, in the order they paused (the controller's `waiting`).
    waiting: VecDeque<u64>,
    /// The trial each worker runs an epoch of.
    workers: Vec<Option<u64>>,
    /// (time the epoch ends, worker).
    events: BinaryHeap<Reverse<(u64, usize)>>,
    now: u64,
    searcher_done: bool,
    out: Outcome,
}

/// Runs one simulation of `sched` on the first `setup.n_configs` curves.
pub fn run(curves: &[Vec<f64>], setup: &Setup, sched: Box<dyn TrialScheduler>) -> Result<Outcome, String> {
    let mut sim = Sim {
        curves,
        setup,
        sched,
        rng: Rng::seed_from_u64(setup.seed),
        config: Config::new(),
        trials: Vec::new(),
        waiting: VecDeque::new(),
        workers: vec![None; setup.n_workers],
        events: BinaryHeap::new(),
        now: 0,
        searcher_done: false,
        out: Outcome::default(),
    };
    sim.fill()?;
    while let Some(Reverse((time, w))) = sim.events.pop() {
        sim.now = time;
        let seq = sim.workers[w].take().ok_or("an event for an idle worker")?;
        sim.epoch_done(seq, w)?;
        sim.fill()?;
    }
    sim.out.sim_time = sim.now;
    sim.out.configs_started = sim.trials.len();
    sim.out.paused_at_end = sim.waiting.len() as u64;
    Ok(sim.out)
}

impl Sim<'_> {
    fn budget_left(&self) -> bool {
        self.out.epochs < self.setup.budget
    }

    fn start_epoch(&mut self, seq: u64, w: usize) {
        self.workers[w] = Some(seq);
        self.events.push(Reverse((self.now + 1, w)));
        self.out.epochs += 1;
    }

    fn end(&mut self, seq: u64, end: TrialEnd) {
        let t = &mut self.trials[seq as usize];
        t.status = Status::Ended;
        let last = t.last.clone();
        self.sched.on_trial_complete(TrialId(seq), end, last.as_ref());
    }

    /// One epoch of `seq` finished on worker `w`: the result, the decision, what follows.
    fn epoch_done(&mut self, seq: u64, w: usize) -> Result<(), String> {
        let max_t = self.setup.max_t;
        let tr = &mut self.trials[seq as usize];
        if tr.status == Status::Ended {
            // Ended while this epoch ran (the controller ignores such a report).
            self.out.wasted_epochs += 1;
            return Ok(());
        }
        tr.done += 1;
        let t = tr.done;
        let loss = self.curves[seq as usize][t - 1];
        if self.out.best_any.is_none_or(|b| loss < b.0) {
            self.out.best_any = Some((loss, seq as usize, t));
        }
        if t == max_t {
            self.out.reached_max_t += 1;
            if self.out.best_final.is_none_or(|b| loss < b.0) {
                self.out.best_final = Some((loss, seq as usize));
                self.out.incumbents.push((self.out.epochs, self.now, seq as usize, loss));
            }
        }
        let res = SchedResult { progress: t as f64, score: Some(-loss), queued: self.waiting.len() };
        let view = TrialView { id: TrialId(seq), config: &self.config, has_checkpoint: true };
        let decision = if self.setup.time_decisions {
            let t0 = Instant::now();
            let d = self.sched.on_result(&view, &res, &mut self.rng);
            self.out.decision_time += t0.elapsed();
            d
        } else {
            self.sched.on_result(&view, &res, &mut self.rng)
        };
        self.out.results += 1;
        self.trials[seq as usize].last = Some(res);
        match decision {
            Decision::Continue if t >= max_t => self.end(seq, TrialEnd::Completed), // the trainable returns
            Decision::Continue => {
                if self.budget_left() {
                    self.start_epoch(seq, w);
                }
            }
            Decision::Stop { .. } => {
                self.out.stops += 1;
                self.end(seq, TrialEnd::Stopped);
            }
            Decision::Pause => {
                self.out.pauses += 1;
                self.trials[seq as usize].status = Status::Waiting;
                self.waiting.push_back(seq);
            }
            Decision::Exploit { .. } => return Err("Exploit decisions (PBT) are not simulated".into()),
        }
        Ok(())
    }

    /// The controller's `fill`: trials to end first, then work for free workers.
    fn fill(&mut self) -> Result<(), String> {
        self.end_scheduler_stopped();
        while self.budget_left() {
            let Some(w) = self.workers.iter().position(Option::is_none) else { break };
            if self.waiting.is_empty() && self.searcher_done {
                break;
            }
            match self.next_trial()? {
                Some(seq) => self.assign(seq, w),
                None => {
                    self.end_stranded();
                    break;
                }
            }
        }
        Ok(())
    }

    fn end_scheduler_stopped(&mut self) {
        loop {
            let stopped = self.sched.take_stopped();
            if stopped.is_empty() {
                return;
            }
            for (TrialId(seq), _why) in stopped {
                if self.trials.get(seq as usize).is_none_or(|t| t.status == Status::Ended) {
                    continue;
                }
                self.waiting.retain(|s| *s != seq);
                self.out.stopped_while_paused += 1;
                self.end(seq, TrialEnd::Stopped);
            }
        }
    }

    fn running(&self) -> usize {
        self.workers.iter().filter(|w| w.is_some()).count()
    }

    fn end_stranded(&mut self) {
        let stuck = self.running() == 0
            && !self.waiting.is_empty()
            && (self.searcher_done || !self.sched.may_start_new_trial());
        if !stuck {
            return;
        }
        for seq in std::mem::take(&mut self.waiting) {
            self.out.stranded += 1;
            self.end(seq, TrialEnd::Completed);
        }
    }

    fn next_trial(&mut self) -> Result<Option<u64>, String> {
        if !self.waiting.is_empty() {
            let ids: Vec<TrialId> = self.waiting.iter().map(|s| TrialId(*s)).collect();
            self.out.choose_calls += 1;
            self.out.choose_shown += ids.len() as u64;
            let chosen = if self.setup.time_decisions {
                let t0 = Instant::now();
                let c = self.sched.choose_trial_to_run(&ids);
                self.out.choose_time += t0.elapsed();
                c
            } else {
                self.sched.choose_trial_to_run(&ids)
            };
            if let Some(TrialId(seq)) = chosen {
                if !self.waiting.contains(&seq) {
                    return Err(format!("choose_trial_to_run returned trial {seq}, which is not waiting"));
                }
                self.waiting.retain(|s| *s != seq);
                return Ok(Some(seq));
            }
        }
        if self.searcher_done || !self.sched.may_start_new_trial() {
            return Ok(None);
        }
        Ok(self.suggest_new())
    }

    fn suggest_new(&mut self) -> Option<u64> {
        if self.trials.len() >= self.setup.n_configs {
            if !self.searcher_done {
                self.searcher_done = true;
                self.out.no_more_trials_at = Some(self.now);
                self.sched.on_no_more_trials();
            }
            return None;
        }
        let seq = self.trials.len() as u64;
        self.trials.push(Trial { done: 0, last: None, status: Status::Waiting });
        let view = TrialView { id: TrialId(seq), config: &self.config, has_checkpoint: false };
        self.sched.on_trial_add(&view, &mut self.rng);
        Some(seq)
    }

    fn assign(&mut self, seq: u64, w: usize) {
        let t = &mut self.trials[seq as usize];
        if t.done >= self.setup.max_t {
            // Resumed with nothing left to train: the trainable returns at once.
            self.out.resumed_at_max_t += 1;
            self.end(seq, TrialEnd::Completed);
            return;
        }
        if t.done > 0 {
            self.out.resumes += 1;
        }
        t.status = Status::Running;
        self.start_epoch(seq, w);
    }
}
