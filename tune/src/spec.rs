//! The experiment spec: one serde model for the TOML file and the Python API.

use hyperfleet_scheduler::SchedulerConfig;
use hyperfleet_searchers::{
    BasicVariantConfig, BohbConfig, CmaesConfig, GpConfig, QmcConfig, Searcher, Space, TpeConfig,
};
use hyperfleet_train::{GangSpec, PlacementStrategy, Resources};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A whole experiment, as written in `experiment.toml` or built by `Tuner`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Name, storage, objective and budget.
    pub experiment: ExperimentSection,
    /// What each trial runs.
    pub trainable: TrainableSpec,
    /// Workers per trial and their resources.
    #[serde(default)]
    pub scaling: Scaling,
    /// The search space (nested; leaves are constants or domains).
    #[serde(default)]
    pub space: Map<String, Value>,
    /// How configs are proposed.
    #[serde(default)]
    pub search: SearchSpec,
    /// How running trials are stopped early.
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// Per-trial stop criteria: a trial stops once `result[key] >= value` for any key (Ray's rule).
    #[serde(default)]
    pub stop: BTreeMap<String, f64>,
    /// Overrides of this machine's detected resources (`cpu`, `gpu`, `memory`, custom names).
    #[serde(default)]
    pub resources: Map<String, Value>,
    /// Checkpoint retention.
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
    /// Retries and fail-fast.
    #[serde(default)]
    pub failure: FailureSpec,
    /// How this machine is presented: as one node, or as several virtual nodes.
    #[serde(default, skip_serializing_if = "ClusterSpec::is_default")]
    pub cluster: ClusterSpec,
}

/// `[cluster]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Split this machine into virtual nodes, each with these resources (`{cpu = 2, gpu = 1}`),
    /// so placement strategies act as on a cluster; GPU device indices are dealt out in order.
    #[serde(default)]
    pub virtual_nodes: Vec<Map<String, Value>>,
}

impl ClusterSpec {
    fn is_default(&self) -> bool {
        self.virtual_nodes.is_empty()
    }
}

/// `[experiment]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawExperiment", into = "RawExperiment")]
pub struct ExperimentSection {
    /// Experiment name: the folder under `storage`.
    pub name: Option<String>,
    /// Root folder of experiments (`~` expanded).
    pub storage: String,
    /// The metric to optimise (the first, when there are several).
    pub metric: Option<String>,
    /// `min` or `max` (of the first metric).
    pub mode: Option<Mode>,
    /// Every objective, in order, when there are two or more (`metric = ["loss", "latency"]`);
    /// empty for one.
    pub objectives: Vec<(String, Mode)>,
    /// Samples of the space (each grid point this many times); -1 runs until stopped.
    pub num_samples: i64,
    /// Most trials running at once (default: whatever fits).
    pub max_concurrent_trials: Option<usize>,
    /// Wall-clock budget for the whole experiment, in seconds.
    pub time_budget_s: Option<f64>,
    /// Keep warm worker processes for the next trial (default: on for trials without GPUs).
    pub reuse_workers: Option<bool>,
    /// 0 silent, 1 status lines, 2 status and trial table, 3 also every result.
    pub verbose: u8,
    /// Extra import paths for Python workers.
    pub python_path: Vec<String>,
    /// When `report()` returns: once its result is committed (`durable`), or once it is queued (`relaxed`).
    pub durability: Durability,
}

/// `[experiment]` as written: `metric`/`mode` may be one name or a list (several objectives).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "default_storage")]
    storage: String,
    #[serde(default)]
    metric: Option<OneOrMany<String>>,
    #[serde(default)]
    mode: Option<OneOrMany<Mode>>,
    #[serde(default = "one")]
    num_samples: i64,
    #[serde(default)]
    max_concurrent_trials: Option<usize>,
    #[serde(default)]
    time_budget_s: Option<f64>,
    #[serde(default)]
    reuse_workers: Option<bool>,
    #[serde(default = "two")]
    verbose: u8,
    #[serde(default)]
    python_path: Vec<String>,
    #[serde(default)]
    durability: Durability,
}

/// One value or a list of them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// By hand rather than `untagged`, so that a bad value's own error (`unknown variant `best``) reaches the user.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, value::SeqAccessDeserializer, value::StrDeserializer, SeqAccess, Visitor};
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                T::deserialize(StrDeserializer::<E>::new(s)).map(OneOrMany::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(SeqAccessDeserializer::new(seq)).map(OneOrMany::Many)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl TryFrom<RawExperiment> for ExperimentSection {
    type Error = String;
    fn try_from(r: RawExperiment) -> Result<Self, String> {
        let metrics = match r.metric {
            None => vec![],
            Some(OneOrMany::One(m)) => vec![m],
            Some(OneOrMany::Many(ms)) => ms,
        };
        let modes = match r.mode {
            None => vec![],
            Some(OneOrMany::One(m)) => vec![m],
            Some(OneOrMany::Many(ms)) => ms,
        };
        if metrics.len() > 1 || modes.len() > 1 {
            if metrics.len() != modes.len() {
                return Err(format!(
                    "experiment.metric and experiment.mode: expected lists of the same length (one mode per metric), got {} metric(s) and {} mode(s)",
                    metrics.len(),
                    modes.len()
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(d) = metrics.iter().find(|m| !seen.insert(m.as_str())) {
                return Err(format!("experiment.metric: {d:?} is listed twice"));
            }
        }
        let objectives =
            if metrics.len() > 1 { metrics.iter().cloned().zip(modes.iter().copied()).collect() } else { vec![] };
        Ok(ExperimentSection {
            metric: metrics.into_iter().next(),
            mode: modes.into_iter().next(),
            objectives,
            name: r.name,
            storage: r.storage,
            num_samples: r.num_samples,
            max_concurrent_trials: r.max_concurrent_trials,
            time_budget_s: r.time_budget_s,
            reuse_workers: r.reuse_workers,
            verbose: r.verbose,
            python_path: r.python_path,
            durability: r.durability,
        })
    }
}

impl From<ExperimentSection> for RawExperiment {
    fn from(e: ExperimentSection) -> Self {
        let (metric, mode) = if e.objectives.len() > 1 {
            let (ms, ds): (Vec<String>, Vec<Mode>) = e.objectives.into_iter().unzip();
            (Some(OneOrMany::Many(ms)), Some(OneOrMany::Many(ds)))
        } else {
            (e.metric.map(OneOrMany::One), e.mode.map(OneOrMany::One))
        };
        RawExperiment {
            metric,
            mode,
            name: e.name,
            storage: e.storage,
            num_samples: e.num_samples,
            max_concurrent_trials: e.max_concurrent_trials,
            time_budget_s: e.time_budget_s,
            reuse_workers: e.reuse_workers,
            verbose: e.verbose,
            python_path: e.python_path,
            durability: e.durability,
        }
    }
}

/// When a trial's `report()` is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// After the transaction holding the result commits: a driver crash loses no acknowledged result.
    #[default]
    Durable,
    /// As soon as the result is queued for the store (still committed within milliseconds, in the
    /// same grouped transactions): a driver crash can lose the last few acknowledged results.
    Relaxed,
}

fn default_storage() -> String {
    "~/hyperfleet_results".into()
}
fn one() -> i64 {
    1
}
fn two() -> u8 {
    2
}

/// Optimisation direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

impl Mode {
    /// Folds the direction into a score where higher is better.
    pub fn score(self, v: f64) -> f64 {
        match self {
            Mode::Min => -v,
            Mode::Max => v,
        }
    }
}

/// `[trainable]`: exactly one of `python`, `command`, `pickle`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainableSpec {
    /// `module.path:function_or_class`, imported by each worker.
    #[serde(default)]
    pub python: Option<String>,
    /// Any program; `{name}` in an argument becomes the config value at that (dotted) path.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A cloudpickled trainable written by the Python driver.
    #[serde(default)]
    pub pickle: Option<String>,
    /// Extra environment for workers.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Display name (default: derived from the trainable).
    #[serde(default)]
    pub name: Option<String>,
}

/// `[scaling]`: the worker group of one trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    /// Workers per trial; a gang when above 1.
    #[serde(default = "one_usize")]
    pub workers: usize,
    /// Each worker's bundle.
    #[serde(default = "one_cpu")]
    pub resources_per_worker: Map<String, Value>,
    /// `pack`, `spread`, `strict_pack` or `strict_spread`.
    #[serde(default = "pack")]
    pub placement: String,
    /// `torch.distributed` backend the workers' process group is initialised with before the
    /// trainable runs (`gloo`, `nccl`, or `auto`: nccl with GPUs, else gloo); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Seconds `torch.distributed` waits on a collective before failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Seconds a trial whose gang does not fit lets smaller trials start ahead of it (backfill);
    /// after that it reserves the capacity it needs and nothing else starts until it has run.
    #[serde(default = "default_reserve_after_s")]
    pub reserve_after_s: f64,
}

fn default_reserve_after_s() -> f64 {
    60.0
}

/// The reserved space key whose value overrides `[scaling]` for one trial.
pub const SCALING_KEY: &str = "scaling_config";

const SCALING_FIELDS: [&str; 4] = ["num_workers", "use_gpu", "resources_per_worker", "placement_strategy"];

/// The gang one trial reserves: `base` (from `[scaling]`), overridden by the trial's
/// `scaling_config` (`num_workers`, `use_gpu`, `resources_per_worker`, `placement_strategy`).
pub fn trial_gang(base: &GangSpec, config: &Map<String, Value>) -> Result<GangSpec, String> {
    let Some(sc) = config.get(SCALING_KEY) else { return Ok(base.clone()) };
    let bad = |field: &str, want: &str, got: &Value| format!("{SCALING_KEY}.{field}: expected {want}, got {got}");
    let sc = sc
        .as_object()
        .ok_or_else(|| format!("{SCALING_KEY}: expected a table of {}, got {sc}", SCALING_FIELDS.join(", ")))?;
    if let Some(k) = sc.keys().find(|k| !SCALING_FIELDS.contains(&k.as_str())) {
        return Err(format!("{SCALING_KEY}.{k}: unknown field; expected one of {}", SCALING_FIELDS.join(", ")));
    }
    let mut bundle = base.bundles.first().cloned().unwrap_or_default();
    let mut workers = base.bundles.len();
    let mut strategy = base.strategy;
    if let Some(v) = sc.get("num_workers") {
        workers = v.as_u64().filter(|n| *n >= 1).ok_or_else(|| bad("num_workers", "an integer >= 1", v))? as usize;
    }
    match sc.get("resources_per_worker") {
        Some(Value::Null) | None => {
            if let Some(v) = sc.get("use_gpu") {
                let on = v.as_bool().ok_or_else(|| bad("use_gpu", "true or false", v))?;
                bundle.gpu = match (on, bundle.gpu > 0.0) {
                    (true, false) => 1.0,
                    (false, _) => 0.0,
                    (true, true) => bundle.gpu,
                };
            }
        }
        Some(v) => {
            let o = v.as_object().ok_or_else(|| bad("resources_per_worker", "a table of resource amounts", v))?;
            bundle = Resources::from_json(o).map_err(|e| format!("{SCALING_KEY}.resources_per_worker: {e}"))?;
            if !o.keys().any(|k| matches!(k.as_str(), "cpu" | "CPU" | "num_cpus")) {
                bundle.cpu = 1.0; // Ray's default: one CPU per worker unless told otherwise
            }
            if sc.get("use_gpu") == Some(&Value::Bool(true)) && bundle.gpu == 0.0 {
                bundle.gpu = 1.0;
            }
        }
    }
    if let Some(v) = sc.get("placement_strategy") {
        strategy = v
            .as_str()
            .and_then(PlacementStrategy::parse)
            .ok_or_else(|| bad("placement_strategy", "PACK, SPREAD, STRICT_PACK or STRICT_SPREAD", v))?;
    }
    Ok(GangSpec { bundles: vec![bundle; workers], strategy })
}

fn one_usize() -> usize {
    1
}
fn one_cpu() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("cpu".into(), Value::from(1));
    m
}
fn pack() -> String {
    "pack".into()
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            workers: 1,
            resources_per_worker: one_cpu(),
            placement: pack(),
            backend: None,
            timeout_s: None,
            reserve_after_s: default_reserve_after_s(),
        }
    }
}

/// `[search]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// `random` or `grid` (both: Ray's BasicVariantGenerator), or `tpe`.
    #[serde(default = "random")]
    pub algorithm: String,
    /// The algorithm's own options (`[search.options]`; for `tpe`: `n_startup_trials`, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub options: Map<String, Value>,
    /// Seed; chosen and recorded at creation when absent, so a resume is reproducible.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Configs to try first (partial: missing keys are sampled).
    #[serde(default)]
    pub points_to_evaluate: Vec<Map<String, Value>>,
    /// Concurrency limit applied to the searcher (0: none).
    #[serde(default)]
    pub max_concurrent: usize,
    /// With `max_concurrent`: wait for the whole batch before suggesting more.
    #[serde(default)]
    pub batch: bool,
    /// Run each config this many times and tell the searcher the mean (Ray's `Repeater`; 0/1: once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeat: usize,
    /// With `repeat`: add `__trial_index__` (0, 1, ...) to each trial's config.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub set_index: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn random() -> String {
    "random".into()
}

impl Default for SearchSpec {
    fn default() -> Self {
        SearchSpec {
            algorithm: random(),
            options: Map::new(),
            seed: None,
            points_to_evaluate: Vec::new(),
            max_concurrent: 0,
            batch: false,
            repeat: 0,
            set_index: false,
        }
    }
}

/// `[checkpoint]` (Ray's `CheckpointConfig`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Checkpoints kept per trial (all when absent); the latest is always kept.
    #[serde(default)]
    pub num_to_keep: Option<usize>,
    /// Rank checkpoints by this metric instead of recency.
    #[serde(default)]
    pub score_attribute: Option<String>,
    /// `max` or `min` for `score_attribute`.
    #[serde(default)]
    pub score_order: Option<Mode>,
    /// Class trainables: checkpoint every this many iterations (0: never).
    #[serde(default)]
    pub frequency: u64,
    /// Class trainables: checkpoint when the trial ends.
    #[serde(default)]
    pub at_end: bool,
}

/// `[failure]` (Ray's `FailureConfig`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureSpec {
    /// Retries per trial from its latest checkpoint; -1 retries forever.
    #[serde(default)]
    pub max_failures: i64,
    /// Stop the whole experiment at the first trial error.
    #[serde(default)]
    pub fail_fast: bool,
    /// A running trial that neither reports nor ends for this many seconds is killed and counted as a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang_timeout_s: Option<f64>,
}

/// A spec that is not valid; `field` is the dotted key (`space.optimizer.lr`).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Dotted path of the offending key.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), message: message.into() }
}

/// The checked pieces the controller needs.
#[derive(Debug)]
pub struct Validated {
    /// Parsed search space.
    pub space: Space,
    /// The gang each trial reserves.
    pub gang: GangSpec,
}

impl Spec {
    /// Whether a resume needs each result's replay-log entry: not when the scheduler is FIFO and
    /// the searcher learns nothing from intermediate results (random or grid search), since
    /// replaying them changes no state; skipping them saves a page write per commit.
    pub fn replays_results(&self) -> bool {
        !(matches!(self.scheduler, SchedulerConfig::Fifo)
            && matches!(self.search.algorithm.as_str(), "random" | "grid"))
    }

    /// Checks everything that can be checked before anything runs.
    pub fn validate(&self) -> Result<Validated, SpecError> {
        let e = &self.experiment;
        if e.num_samples == 0 || e.num_samples < -1 {
            return Err(err(
                "experiment.num_samples",
                format!("expected a positive integer or -1, got {}", e.num_samples),
            ));
        }
        if e.mode.is_some() != e.metric.is_some() {
            return Err(err(
                if e.mode.is_some() { "experiment.metric" } else { "experiment.mode" },
                "metric and mode go together: give both or neither",
            ));
        }
        if let Some(0) = e.max_concurrent_trials {
            return Err(err("experiment.max_concurrent_trials", "expected at least 1"));
        }
        if let Some(b) = e.time_budget_s {
            if b.is_nan() || b <= 0.0 {
                return Err(err("experiment.time_budget_s", format!("expected a positive number of seconds, got {b}")));
            }
        }
        if let Some(n) = &e.name {
            if n.is_empty() || n.contains('/') || n == "." || n == ".." {
                return Err(err("experiment.name", format!("expected a folder name without '/', got {n:?}")));
            }
        }
        let t = &self.trainable;
        let n = [t.python.is_some(), t.command.is_some(), t.pickle.is_some()].iter().filter(|x| **x).count();
        if n != 1 {
            return Err(err(
                "trainable",
                "expected exactly one of `python = \"module:function\"` or `command = [\"program\", ...]`",
            ));
        }
        if let Some(p) = &t.python {
            let ok = p.split_once(':').is_some_and(|(m, f)| !m.is_empty() && !f.is_empty());
            if !ok {
                return Err(err("trainable.python", format!("expected \"module.path:name\", got {p:?}")));
            }
        }
        if let Some(c) = &t.command {
            if c.is_empty() || c[0].is_empty() {
                return Err(err("trainable.command", "expected a non-empty list: [\"program\", \"arg\", ...]"));
            }
        }
        match self.search.algorithm.as_str() {
            "random" | "grid" | "basic_variant" => {
                if let Some(k) = self.search.options.keys().next() {
                    return Err(err(format!("search.options.{k}"), "random and grid search take no options"));
                }
            }
            "tpe" | "cmaes" | "gp" | "bohb" => {
                if e.metric.is_none() || e.mode.is_none() {
                    return Err(err(
                        "search.algorithm",
                        format!(
                            "{:?} learns from the experiment's metric: set [experiment] metric and mode",
                            self.search.algorithm
                        ),
                    ));
                }
            }
            "qmc" => {}
            other => {
                return Err(err(
                    "search.algorithm",
                    format!(
                        "expected \"random\", \"grid\", \"tpe\", \"gp\", \"qmc\", \"cmaes\" or \"bohb\", got {other:?}"
                    ),
                ));
            }
        }
        if !e.objectives.is_empty() {
            if !matches!(self.scheduler, SchedulerConfig::Fifo) {
                return Err(err(
                    "scheduler.kind",
                    "a trial scheduler decides on one metric; an experiment with several objectives \
                     (experiment.metric = [...]) runs with kind = \"fifo\"",
                ));
            }
            if !matches!(self.search.algorithm.as_str(), "random" | "grid" | "basic_variant" | "qmc" | "tpe") {
                return Err(err(
                    "search.algorithm",
                    format!(
                        "{:?} optimises one metric; with several objectives use \"tpe\" (multi-objective TPE), \
                         \"random\", \"grid\" or \"qmc\"",
                        self.search.algorithm
                    ),
                ));
            }
        }
        let space = Space::parse(&Value::Object(self.space.clone()))
            .map_err(|se| err(format!("space.{}", se.path), se.rule.clone()))?;
        self.scheduler.build().map_err(|se| err(format!("scheduler.{}", se.field), se.message))?;
        if self.scaling.workers == 0 {
            return Err(err("scaling.workers", "expected at least 1"));
        }
        let bundle = Resources::from_json(&self.scaling.resources_per_worker)
            .map_err(|re| err("scaling.resources_per_worker", re.to_string()))?;
        let strategy = PlacementStrategy::parse(&self.scaling.placement).ok_or_else(|| {
            err(
                "scaling.placement",
                format!("expected pack, spread, strict_pack or strict_spread, got {:?}", self.scaling.placement),
            )
        })?;
        Resources::from_json(&self.resources).map_err(|re| err("resources", re.to_string()))?;
        for (i, n) in self.cluster.virtual_nodes.iter().enumerate() {
            Resources::from_json(n).map_err(|re| err(format!("cluster.virtual_nodes[{i}]"), re.to_string()))?;
        }
        if let Some(b) = &self.scaling.backend {
            if !matches!(b.as_str(), "gloo" | "nccl" | "auto") {
                return Err(err("scaling.backend", format!("expected \"gloo\", \"nccl\" or \"auto\", got {b:?}")));
            }
        }
        if let Some(t) = self.scaling.timeout_s {
            if !(t.is_finite() && t > 0.0) {
                return Err(err("scaling.timeout_s", "expected a number of seconds > 0"));
            }
        }
        if !(self.scaling.reserve_after_s.is_finite() && self.scaling.reserve_after_s >= 0.0) {
            return Err(err("scaling.reserve_after_s", "expected a number of seconds >= 0"));
        }
        match self.space.get(SCALING_KEY) {
            None => {}
            Some(Value::Object(o)) => {
                if let Some(k) = o.keys().find(|k| !SCALING_FIELDS.contains(&k.as_str())) {
                    return Err(err(
                        format!("space.{SCALING_KEY}.{k}"),
                        format!("unknown field; expected one of {}", SCALING_FIELDS.join(", ")),
                    ));
                }
            }
            Some(_) => {
                return Err(err(
                    format!("space.{SCALING_KEY}"),
                    format!("expected a table of {}", SCALING_FIELDS.join(", ")),
                ))
            }
        }
        if let Some(h) = self.failure.hang_timeout_s {
            if !(h.is_finite() && h > 0.0) {
                return Err(err("failure.hang_timeout_s", "expected a number of seconds > 0"));
            }
        }
        if self.failure.max_failures < -1 {
            return Err(err("failure.max_failures", "expected -1 (forever) or a count >= 0"));
        }
        self.build_searcher(space.clone())?;
        Ok(Validated { space, gang: GangSpec { bundles: vec![bundle; self.scaling.workers], strategy } })
    }

    /// The searcher configuration this spec describes.
    pub fn searcher_config(&self) -> BasicVariantConfig {
        BasicVariantConfig { points_to_evaluate: self.search.points_to_evaluate.clone(), ..Default::default() }
    }

    /// The algorithm's options in `[search.options]`, refusing unknown keys.
    fn options<T: serde::de::DeserializeOwned>(&self) -> Result<T, SpecError> {
        serde_json::from_value(Value::Object(self.search.options.clone()))
            .map_err(|e| err("search.options", e.to_string()))
    }

    /// Builds the searcher this spec describes (without the concurrency limiter) over `space`.
    pub fn build_searcher(&self, space: Space) -> Result<Box<dyn Searcher>, SpecError> {
        let repeat = self.search.repeat.max(1);
        let inner = self.build_base_searcher(space, repeat)?;
        Ok(if repeat > 1 {
            Box::new(hyperfleet_searchers::Repeater::new(inner, repeat, self.search.set_index))
        } else {
            inner
        })
    }

    /// The searcher itself; with `repeat`, it proposes one config per group of `repeat` trials.
    fn build_base_searcher(&self, space: Space, repeat: usize) -> Result<Box<dyn Searcher>, SpecError> {
        let n = match self.experiment.num_samples {
            n if n > 0 => (n as usize).div_ceil(repeat) as i64,
            n => n,
        };
        let se = |e: hyperfleet_searchers::SpaceError| err(format!("search.{}", e.path), e.rule);
        Ok(match self.search.algorithm.as_str() {
            "tpe" => {
                let c = TpeConfig {
                    points_to_evaluate: self.search.points_to_evaluate.clone(),
                    n_objectives: self.experiment.objectives.len().max(1),
                    ..self.options()?
                };
                Box::new(c.build(space, n).map_err(se)?)
            }
            "qmc" => {
                let o: QmcConfig = self.options()?;
                let c = QmcConfig {
                    points_to_evaluate: self.search.points_to_evaluate.clone(),
                    seed: o.seed.or(self.search.seed),
                    ..o
                };
                Box::new(c.build(space, n).map_err(se)?)
            }
            "cmaes" => {
                let o: CmaesConfig = self.options()?;
                let c = CmaesConfig {
                    points_to_evaluate: self.search.points_to_evaluate.clone(),
                    seed: o.seed.or(self.search.seed),
                    ..o
                };
                Box::new(c.build(space, n).map_err(se)?)
            }
            "gp" => {
                let o: GpConfig = self.options()?;
                let c = GpConfig { points_to_evaluate: self.search.points_to_evaluate.clone(), ..o };
                Box::new(c.build(space, n).map_err(se)?)
            }
            "bohb" => {
                let o: BohbConfig = self.options()?;
                let c = BohbConfig { points_to_evaluate: self.search.points_to_evaluate.clone(), ..o };
                Box::new(c.build(space, n).map_err(se)?)
            }
            _ => Box::new(self.searcher_config().build(space, n).map_err(se)?),
        })
    }

    /// The experiment's folder: `<storage>/<name>`.
    pub fn experiment_dir(&self) -> PathBuf {
        expand_home(&self.experiment.storage).join(self.experiment.name.as_deref().unwrap_or("experiment"))
    }

    /// Parses a spec from JSON (the Python API's form); errors name the field.
    pub fn from_json(s: &str) -> Result<Spec, SpecError> {
        serde_json::from_str(s).map_err(|e| err("spec", e.to_string()))
    }
}

/// Expands a leading `~/`.
pub fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(h) = std::env::var_os("HOME") {
            return Path::new(&h).join(rest);
        }
    }
    PathBuf::from(p)
}

/// An error in an experiment file, with its position.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{file}:{line}:{column}: {message}")]
pub struct FileError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// Finds the span of the key at a dotted path in a TOML document.
fn span_of(text: &str, path: &[&str]) -> Option<std::ops::Range<usize>> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut span = None;
    for (i, part) in path.iter().enumerate() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *part)?;
        span = Some(k.span());
        if i + 1 < path.len() {
            match v.get_ref() {
                toml::de::DeValue::Table(t) => table = t,
                _ => return span,
            }
        }
    }
    span
}

/// Parses and validates an experiment file; every error names `file:line:column`.
pub fn parse_file(path: &Path, text: &str) -> Result<(Spec, Validated), FileError> {
    let file = path.display().to_string();
    let at = |span: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        FileError { file: file.clone(), line, column, message }
    };
    let mut spec: Spec = toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_string()))?;
    if spec.experiment.name.is_none() {
        spec.experiment.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    }
    let v = spec.validate().map_err(|se| {
        let parts: Vec<&str> = se.field.split('.').collect();
        // The longest prefix of the path that exists in the file.
        let span = (1..=parts.len()).rev().find_map(|n| span_of(text, &parts[..n]));
        at(span, format!("{}: {}", se.field, se.message))
    })?;
    Ok((spec, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[experiment]
name = "quick"
storage = "/tmp/x"
metric = "loss"
mode = "min"
num_samples = 4

[trainable]
command = ["python3", "t.py", "--lr", "{lr}"]

[space]
lr = { loguniform = [1e-4, 1e-1] }
opt = { name = "sgd", momentum = { uniform = [0.8, 0.99] } }
"#;

    #[test]
    fn parses_a_good_file() {
        let (spec, v) = parse_file(Path::new("e.toml"), GOOD).unwrap();
        assert_eq!(spec.experiment.num_samples, 4);
        assert_eq!(spec.experiment.mode, Some(Mode::Min));
        assert_eq!(v.gang.bundles.len(), 1);
        assert_eq!(v.gang.bundles[0].cpu, 1.0);
        assert_eq!(spec.experiment_dir(), PathBuf::from("/tmp/x/quick"));
    }

    #[test]
    fn unknown_keys_name_line_and_column() {
        let bad = GOOD.replace("num_samples = 4", "num_sample = 4");
        let e = parse_file(Path::new("e.toml"), &bad).unwrap_err();
        assert_eq!((e.file.as_str(), e.line, e.column), ("e.toml", 7, 1));
        assert!(e.message.contains("num_sample"), "{}", e.message);
        assert!(e.message.contains("num_samples"), "expected keys listed: {}", e.message);
    }

    #[test]
    fn wrong_types_name_the_position() {
        let bad = GOOD.replace("num_samples = 4", "num_samples = \"four\"");
        let e = parse_file(Path::new("e.toml"), &bad).unwrap_err();
        assert_eq!(e.line, 7);
        assert!(e.message.contains("expected i64"), "{}", e.message);
    }

    #[test]
    fn space_errors_point_at_the_parameter() {
        let bad = GOOD.replace("uniform = [0.8, 0.99]", "uniform = [0.99, 0.8]");
        let e = parse_file(Path::new("e.toml"), &bad).unwrap_err();
        assert_eq!((e.line, e.column), (14, 23), "{e}");
        assert!(e.message.starts_with("space.opt.momentum"), "{}", e.message);
    }

    #[test]
    fn semantic_errors() {
        let bad = GOOD.replace("mode = \"min\"\n", "");
        let e = parse_file(Path::new("e.toml"), &bad).unwrap_err();
        assert!(e.message.contains("metric and mode"), "{e}");
        let bad = GOOD.replace("command = [\"python3\", \"t.py\", \"--lr\", \"{lr}\"]", "python = \"nocolon\"");
        let e = parse_file(Path::new("e.toml"), &bad).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("module.path:name"));
        let bad = GOOD.replace("num_samples = 4", "num_samples = 0");
        assert!(parse_file(Path::new("e.toml"), &bad).unwrap_err().message.contains("positive integer or -1"));
    }

    fn gang_of(base: &GangSpec, sc: Value) -> Result<GangSpec, String> {
        let mut config = Map::new();
        config.insert(SCALING_KEY.into(), sc);
        trial_gang(base, &config)
    }

    #[test]
    fn a_trials_scaling_config_overrides_the_base_gang() {
        let gpu_bundle = Resources { cpu: 2.0, gpu: 1.0, ..Resources::default() };
        let base = GangSpec { bundles: vec![gpu_bundle.clone(); 2], strategy: PlacementStrategy::Pack };
        assert_eq!(trial_gang(&base, &Map::new()).unwrap(), base, "no scaling_config: the base gang");
        let g = gang_of(&base, serde_json::json!({"num_workers": 4, "placement_strategy": "STRICT_SPREAD"})).unwrap();
        assert_eq!(g.bundles, vec![gpu_bundle; 4]);
        assert_eq!(g.strategy, PlacementStrategy::StrictSpread);
        // use_gpu=false drops the base's GPU; a bundle of its own replaces the base's, one CPU by default.
        let g = gang_of(&base, serde_json::json!({"use_gpu": false})).unwrap();
        assert_eq!((g.bundles[0].cpu, g.bundles[0].gpu, g.bundles.len()), (2.0, 0.0, 2));
        let g = gang_of(&base, serde_json::json!({"resources_per_worker": {"GPU": 0.5}, "use_gpu": true})).unwrap();
        assert_eq!((g.bundles[0].cpu, g.bundles[0].gpu), (1.0, 0.5));
        let g = gang_of(&base, serde_json::json!({"resources_per_worker": {"memory": 1e9}, "use_gpu": true})).unwrap();
        assert_eq!((g.bundles[0].cpu, g.bundles[0].gpu), (1.0, 1.0));
    }

    #[test]
    fn a_bad_scaling_config_names_its_field() {
        let base = GangSpec {
            bundles: vec![Resources { cpu: 1.0, ..Resources::default() }],
            strategy: PlacementStrategy::Pack,
        };
        let e = gang_of(&base, serde_json::json!({"num_workers": 0})).unwrap_err();
        assert!(e.starts_with("scaling_config.num_workers: expected an integer >= 1"), "{e}");
        let e = gang_of(&base, serde_json::json!({"placement_strategy": "RING"})).unwrap_err();
        assert!(e.contains("scaling_config.placement_strategy") && e.contains("STRICT_PACK"), "{e}");
        let e = gang_of(&base, serde_json::json!({"workers": 2})).unwrap_err();
        assert!(e.contains("scaling_config.workers: unknown field"), "{e}");
        let e = gang_of(&base, serde_json::json!(3)).unwrap_err();
        assert!(e.starts_with("scaling_config: expected a table"), "{e}");
        let bad = format!("{GOOD}\n[space.scaling_config]\nworkers = 2\n");
        let e = parse_file(Path::new("e.toml"), &bad).unwrap_err();
        assert_eq!(e.line, 17, "{e}");
        assert!(e.message.starts_with("space.scaling_config.workers: unknown field"), "{e}");
    }
}
