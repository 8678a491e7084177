//! Reading finished or running experiments: the store is the source of truth.

use crate::spec::Mode;
use crate::store::{self, TrialRow};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// An experiment as read from its store.
#[derive(Clone, Debug)]
pub struct ExperimentInfo {
    /// Experiment folder.
    pub path: PathBuf,
    /// Name.
    pub name: String,
    /// `running`, `finished`, `interrupted` or `failed`.
    pub status: String,
    /// Creation time, seconds since the epoch.
    pub created_at: f64,
    /// The objective, if the experiment has one.
    pub metric: Option<String>,
    /// Its direction.
    pub mode: Option<Mode>,
    /// Every trial in creation order.
    pub trials: Vec<TrialRow>,
    /// PBT lineage: each trial's exploit steps in order (donor, iterations, configs, what was explored).
    pub lineage: std::collections::BTreeMap<u64, Vec<Value>>,
    /// What the scheduler noted about its own course, in order (adaptive ASHA's bracket moves).
    pub scheduler_notes: Vec<String>,
}

/// Reading an experiment failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No `experiment.db` there.
    #[error("{0}: no experiment here (no experiment.db)")]
    NotFound(PathBuf),
    /// The database could not be read.
    #[error("{0}")]
    Store(String),
}

/// Reads the experiment in folder `dir`.
pub fn load(dir: &Path) -> Result<ExperimentInfo, QueryError> {
    let db = dir.join("experiment.db");
    if !db.is_file() {
        return Err(QueryError::NotFound(dir.to_path_buf()));
    }
    let c = store::open(&db, false).map_err(|e| QueryError::Store(e.to_string()))?;
    let m = |k: &str| store::meta(&c, k).map_err(|e| QueryError::Store(format!("{}: {e}", db.display())));
    let spec: Option<crate::spec::Spec> = m("spec")?.and_then(|s| serde_json::from_str(&s).ok());
    let trials = store::load_trials(&c).map_err(|e| QueryError::Store(format!("{}: {e}", db.display())))?;
    let mut lineage: std::collections::BTreeMap<u64, Vec<Value>> = std::collections::BTreeMap::new();
    let mut st = c
        .prepare("SELECT trial_seq, detail FROM events WHERE kind = 'exploit' ORDER BY id")
        .map_err(|e| QueryError::Store(format!("{}: {e}", db.display())))?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)))
        .map_err(|e| QueryError::Store(format!("{}: {e}", db.display())))?;
    for row in rows.flatten() {
        lineage.entry(row.0).or_default().push(serde_json::from_str(&row.1).unwrap_or(Value::Null));
    }
    drop(st);
    let scheduler_notes = c
        .prepare("SELECT detail FROM events WHERE kind = 'scheduler' ORDER BY id")
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| QueryError::Store(format!("{}: {e}", db.display())))?;
    Ok(ExperimentInfo {
        lineage,
        scheduler_notes,
        path: dir.to_path_buf(),
        name: m("name")?.unwrap_or_default(),
        status: m("status")?.unwrap_or_default(),
        created_at: m("created_at")?.and_then(|s| s.parse().ok()).unwrap_or(0.0),
        metric: spec.as_ref().and_then(|s| s.experiment.metric.clone()),
        mode: spec.as_ref().and_then(|s| s.experiment.mode),
        trials,
    })
}

/// Experiments directly under `storage`, newest first.
pub fn list(storage: &Path) -> Vec<Result<ExperimentInfo, QueryError>> {
    let mut out: Vec<Result<ExperimentInfo, QueryError>> = std::fs::read_dir(storage)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("experiment.db").is_file())
        .map(|e| load(&e.path()))
        .collect();
    out.sort_by(|a, b| {
        let t = |r: &Result<ExperimentInfo, QueryError>| r.as_ref().map(|i| i.created_at).unwrap_or(0.0);
        t(b).total_cmp(&t(a))
    });
    out
}

/// The metric value of a trial's last result.
pub fn last_metric(t: &TrialRow, metric: &str) -> Option<f64> {
    t.last_result.as_ref()?.get(metric)?.as_f64().filter(|v| v.is_finite())
}

/// The trial whose last `metric` is best under `mode`.
pub fn best<'a>(info: &'a ExperimentInfo, metric: &str, mode: Mode) -> Option<&'a TrialRow> {
    info.trials
        .iter()
        .filter_map(|t| last_metric(t, metric).map(|v| (mode.score(v), t)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, t)| t)
}

/// A trial as JSON for `--json` output.
pub fn trial_json(info: &ExperimentInfo, t: &TrialRow) -> Value {
    json!({
        "trial_id": t.trial_id,
        "name": t.name,
        "status": t.status,
        "config": t.config,
        "last_result": t.last_result,
        "num_failures": t.num_failures,
        "error": t.error,
        "stop_reason": t.stop_reason,
        "path": info.path.join(&t.logdir),
        "checkpoint": t.latest_checkpoint.as_ref().map(|(_, p)| info.path.join(p)),
        "lineage": info.lineage.get(&t.seq).cloned().unwrap_or_default(),
    })
}

/// Counts of trials by status.
pub fn counts(info: &ExperimentInfo) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for t in &info.trials {
        *m.entry(t.status.clone()).or_insert(0) += 1;
    }
    m
}
