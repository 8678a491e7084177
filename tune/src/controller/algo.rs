//! The searcher and scheduler behind one door, so that a live run and a replay feed them the
//! same calls in the same order: every call is made from a log entry, and the entry is stored.

use crate::store::LogRow;
use hyperfleet_scheduler::{Decision, Rng, SchedResult, TrialEnd, TrialScheduler, TrialView};
use hyperfleet_searchers::{Config, Observation, Outcome, Searcher, TrialId};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A stored `result` entry, as `Algorithms::result` writes it.
#[derive(serde::Deserialize)]
struct ResultEntry {
    #[serde(default)]
    obs_progress: f64,
    #[serde(default)]
    obs_score: Option<f64>,
    #[serde(default)]
    progress: f64,
    #[serde(default)]
    score: ScoreEntry,
    #[serde(default)]
    checkpoint: bool,
    #[serde(default)]
    queued: usize,
}

/// A scheduler score as stored: a number, the string "NaN", or null.
#[derive(serde::Deserialize, Default)]
#[serde(untagged)]
enum ScoreEntry {
    Num(f64),
    Text(String),
    #[default]
    Null,
}

/// The two algorithms and what they have been told.
pub(crate) struct Algorithms {
    pub(crate) searcher: Box<dyn Searcher>,
    pub(crate) scheduler: Box<dyn TrialScheduler>,
    rng: Rng,
    configs: BTreeMap<u64, Config>,
    with_checkpoint: BTreeSet<u64>,
    /// Filled by replay only: each unfinished trial's last result as the scheduler saw it. A
    /// resume ends a trial whose stopping result was recorded but whose end was not, and the
    /// scheduler must then get the same `last` the uninterrupted run gave it.
    last_sched: BTreeMap<u64, SchedResult>,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// A scheduler score as JSON: NaN (which JSON lacks) is stored as the string "NaN".
fn score_json(s: Option<f64>) -> Value {
    match s {
        Some(x) if x.is_nan() => Value::from("NaN"),
        Some(x) => Value::from(x),
        None => Value::Null,
    }
}

fn score_back(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) if s == "NaN" => Some(f64::NAN),
        v => v.as_f64(),
    }
}

/// The log entry of a result: what replay feeds the searcher and scheduler again.
pub(crate) fn result_entry(obs: &Observation, sched: &SchedResult, checkpoint: bool) -> Value {
    json!({
        "obs_progress": obs.progress, "obs_score": obs.score,
        "progress": sched.progress, "score": score_json(sched.score), "checkpoint": checkpoint,
        "queued": sched.queued,
    })
}

fn end_str(e: TrialEnd) -> &'static str {
    match e {
        TrialEnd::Completed => "completed",
        TrialEnd::Stopped => "stopped",
        TrialEnd::Failed => "failed",
    }
}

impl Algorithms {
    pub(crate) fn new(searcher: Box<dyn Searcher>, scheduler: Box<dyn TrialScheduler>, rng: Rng) -> Self {
        Algorithms {
            searcher,
            scheduler,
            rng,
            configs: BTreeMap::new(),
            with_checkpoint: BTreeSet::new(),
            last_sched: BTreeMap::new(),
        }
    }

    /// A new trial; returns the log entry.
    pub(crate) fn add(&mut self, trial: u64, config: &Config) -> Value {
        self.searcher.on_trial_add(TrialId(trial), config);
        self.configs.insert(trial, config.clone());
        let view = TrialView { id: TrialId(trial), config, has_checkpoint: false };
        self.scheduler.on_trial_add(&view, &mut self.rng);
        Value::Object(config.clone())
    }

    /// A result: the searcher observes `obs`, the scheduler decides on `sched`; returns the
    /// decision (its log entry is [`result_entry`]'s, written only when results are logged).
    pub(crate) fn result(&mut self, trial: u64, obs: &Observation, sched: &SchedResult, checkpoint: bool) -> Decision {
        self.searcher.on_result(TrialId(trial), obs);
        if checkpoint {
            self.with_checkpoint.insert(trial);
        }
        let empty = Config::new();
        let config = self.configs.get(&trial).unwrap_or(&empty);
        let view = TrialView { id: TrialId(trial), config, has_checkpoint: self.with_checkpoint.contains(&trial) };
        self.scheduler.on_result(&view, sched, &mut self.rng)
    }

    /// A stored result replayed: as [`Algorithms::result`], remembering what the scheduler saw.
    fn replay_result(&mut self, trial: u64, obs: &Observation, sched: SchedResult, checkpoint: bool) -> Decision {
        let d = self.result(trial, obs, &sched, checkpoint);
        self.last_sched.insert(trial, sched);
        d
    }

    /// A trial continues from `donor`'s checkpoint with `config`; returns the log entry.
    pub(crate) fn exploit(&mut self, trial: u64, donor: u64, config: &Config) -> Value {
        self.configs.insert(trial, config.clone());
        self.with_checkpoint.insert(trial);
        json!({"donor": donor, "config": config})
    }

    /// A trial ended; returns the log entry.
    pub(crate) fn end(
        &mut self,
        trial: u64,
        outcome: &Outcome,
        end: TrialEnd,
        last: Option<&SchedResult>,
        objectives: Option<&[f64]>,
    ) -> Value {
        if let Some(v) = objectives {
            self.searcher.on_objectives(TrialId(trial), v);
        }
        self.searcher.on_complete(TrialId(trial), outcome);
        self.scheduler.on_trial_complete(TrialId(trial), end, last);
        let (o, score) = match outcome {
            Outcome::Completed { score } => ("completed", *score),
            Outcome::Pruned { score } => ("pruned", *score),
            Outcome::Failed => ("failed", None),
        };
        let mut entry = json!({"outcome": o, "score": score, "end": end_str(end),
               "last": last.map(|l| json!({"progress": l.progress, "score": score_json(l.score), "queued": l.queued}))});
        if let Some(v) = objectives {
            entry["objectives"] = json!(v);
        }
        entry
    }

    /// The last result the scheduler saw from `trial`, while it has not ended.
    pub(crate) fn last_sched(&self, trial: u64) -> Option<SchedResult> {
        self.last_sched.get(&trial).cloned()
    }

    /// The searcher is exhausted; returns the log entry.
    pub(crate) fn no_more_trials(&mut self) -> Value {
        self.scheduler.on_no_more_trials();
        json!({})
    }

    /// Applies one stored log entry given as text; results (nearly all of a long log) are read
    /// into a typed record rather than a JSON tree.
    pub(crate) fn replay_raw(&mut self, trial: u64, kind: &str, detail: &str) -> Option<Decision> {
        if kind == "result" {
            if let Ok(e) = serde_json::from_str::<ResultEntry>(detail) {
                let obs = Observation { score: e.obs_score, progress: e.obs_progress };
                let sched = SchedResult {
                    progress: e.progress,
                    score: match e.score {
                        ScoreEntry::Num(x) => Some(x),
                        ScoreEntry::Text(t) if t == "NaN" => Some(f64::NAN),
                        _ => None,
                    },
                    queued: e.queued,
                };
                return Some(self.replay_result(trial, &obs, sched, e.checkpoint));
            }
        }
        let detail = serde_json::from_str(detail).unwrap_or(Value::Null);
        self.replay(&LogRow { trial, kind: kind.to_string(), detail })
    }

    /// Applies one stored log entry, as it was applied live; a result gives back the decision made on it.
    pub(crate) fn replay(&mut self, row: &LogRow) -> Option<Decision> {
        let d = &row.detail;
        match row.kind.as_str() {
            "add" => {
                let config = d.as_object().cloned().unwrap_or_default();
                self.add(row.trial, &config);
            }
            "result" => {
                let obs = Observation { score: num(&d["obs_score"]), progress: num(&d["obs_progress"]).unwrap_or(0.0) };
                let sched = SchedResult {
                    progress: num(&d["progress"]).unwrap_or(0.0),
                    score: score_back(&d["score"]),
                    queued: d["queued"].as_u64().unwrap_or(0) as usize,
                };
                return Some(self.replay_result(row.trial, &obs, sched, d["checkpoint"].as_bool().unwrap_or(false)));
            }
            "exploit" => {
                let config = d["config"].as_object().cloned().unwrap_or_default();
                let donor = d["donor"].as_u64().unwrap_or(0);
                self.exploit(row.trial, donor, &config);
            }
            "no_more" => {
                self.no_more_trials();
            }
            "end" => {
                let score = num(&d["score"]);
                let outcome = match d["outcome"].as_str() {
                    Some("pruned") => Outcome::Pruned { score },
                    Some("failed") => Outcome::Failed,
                    _ => Outcome::Completed { score },
                };
                let end = match d["end"].as_str() {
                    Some("stopped") => TrialEnd::Stopped,
                    Some("failed") => TrialEnd::Failed,
                    _ => TrialEnd::Completed,
                };
                let last = d["last"].as_object().map(|l| SchedResult {
                    progress: l["progress"].as_f64().unwrap_or(0.0),
                    score: score_back(&l["score"]),
                    queued: l["queued"].as_u64().unwrap_or(0) as usize,
                });
                let objectives: Option<Vec<f64>> =
                    d["objectives"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect());
                self.end(row.trial, &outcome, end, last.as_ref(), objectives.as_deref());
                self.last_sched.remove(&row.trial);
            }
            _ => {}
        }
        None
    }
}
