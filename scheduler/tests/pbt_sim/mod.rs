//! A tiny stand-in for the controller, shared by the PBT and PB2 tests: trials train in turns
//! on a toy objective, checkpoint every few iterations, and obey the scheduler's decisions the
//! way the real controller does (exploit = clone the donor's latest checkpoint and requeue;
//! pause = requeue from the own checkpoint; `choose_trial_to_run` picks who runs next).

#![allow(dead_code)]

use hyperfleet_scheduler::{Config, Decision, Rng, SchedResult, TrialEnd, TrialId, TrialScheduler, TrialView};
use rand::SeedableRng;
use serde_json::{json, Value};

/// One simulated trial.
#[derive(Clone, Debug)]
pub struct Trial {
    pub config: Config,
    pub iteration: u64,
    pub score: f64,
    /// Latest checkpoint: (iteration, score).
    pub ckpt: Option<(u64, f64)>,
    pub done: bool,
}

/// What happened, in call order.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Result { trial: u64, iteration: u64, decision: Decision },
    Chosen(Option<u64>),
}

/// The toy objective's gain per iteration: best at lr = 0.01.
pub fn gain(config: &Config) -> f64 {
    let lr = config["lr"].as_f64().unwrap_or(0.0);
    1.0 - ((lr - 0.01) / 0.01).powi(2)
}

/// Runs `configs` under `sched` with `capacity` slots until every trial reaches `max_iter`.
pub fn run(
    sched: &mut dyn TrialScheduler,
    configs: Vec<Value>,
    capacity: usize,
    ckpt_every: u64,
    max_iter: u64,
    seed: u64,
) -> (Vec<Event>, Vec<Trial>) {
    let mut rng = Rng::seed_from_u64(seed);
    let mut trials: Vec<Trial> = configs
        .into_iter()
        .map(|c| Trial { config: c.as_object().unwrap().clone(), iteration: 0, score: 0.0, ckpt: None, done: false })
        .collect();
    for (i, t) in trials.iter().enumerate() {
        sched.on_trial_add(&TrialView { id: TrialId(i as u64), config: &t.config, has_checkpoint: false }, &mut rng);
    }
    let mut waiting: Vec<TrialId> = (0..trials.len() as u64).map(TrialId).collect();
    let mut running: Vec<u64> = Vec::new();
    let mut events = Vec::new();
    for _ in 0..100_000 {
        while running.len() < capacity && !waiting.is_empty() {
            let pick = sched.choose_trial_to_run(&waiting);
            events.push(Event::Chosen(pick.map(|t| t.0)));
            let Some(pick) = pick else { break };
            waiting.retain(|t| *t != pick);
            running.push(pick.0);
        }
        let Some(id) = running.first().copied() else { break };
        running.remove(0);
        let t = &mut trials[id as usize];
        t.iteration += 1;
        t.score += gain(&t.config);
        if t.iteration.is_multiple_of(ckpt_every) {
            t.ckpt = Some((t.iteration, t.score));
        }
        let view = TrialView { id: TrialId(id), config: &t.config, has_checkpoint: t.ckpt.is_some() };
        let r = SchedResult { progress: t.iteration as f64, score: Some(t.score), queued: waiting.len() };
        let decision = sched.on_result(&view, &r, &mut rng);
        events.push(Event::Result { trial: id, iteration: t.iteration, decision: decision.clone() });
        let finished = trials[id as usize].iteration >= max_iter;
        match decision {
            Decision::Exploit { donor, config, .. } => {
                let (it, score) = trials[donor.0 as usize].ckpt.expect("donors have a checkpoint");
                let t = &mut trials[id as usize];
                (t.config, t.iteration, t.score, t.ckpt) = (config, it, score, Some((it, score)));
                waiting.push(TrialId(id));
            }
            Decision::Stop { .. } => trials[id as usize].done = true,
            _ if finished => {
                trials[id as usize].done = true;
                sched.on_trial_complete(TrialId(id), TrialEnd::Completed, Some(&r));
            }
            Decision::Pause => {
                let t = &mut trials[id as usize];
                let (it, score) = t.ckpt.expect("only trials with a checkpoint pause");
                (t.iteration, t.score) = (it, score);
                waiting.push(TrialId(id));
            }
            Decision::Continue => running.push(id),
        }
    }
    (events, trials)
}

/// `n` starting configs with learning rates spread over [0.0001, 0.02).
pub fn spread(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"lr": 0.0001 + 0.0199 * i as f64 / n as f64, "seed": i})).collect()
}
