//! Ray Tune's default searcher: every grid combination, `num_samples` times, other leaves sampled.
//!
//! The sequence of variants follows Ray's `BasicVariantGenerator`:
//! 1. each of `points_to_evaluate`, in order, counts as one sample: its keys are fixed, grid
//!    leaves it leaves unset are expanded, other leaves are sampled;
//! 2. then `num_samples - points` (when positive) full grid walks.
//!
//! Within a grid walk the grid leaves are sorted by path and the first one varies fastest
//! (`{a: [1, 2], b: [x, y]}` gives `(1,x) (2,x) (1,y) (2,y)`), as Ray's grid generator does.

use crate::path::{get_path, point_leaves, set_path};
use crate::searcher::{Outcome, Searcher, Suggestion, TrialId};
use crate::space::{grid_len, grid_value, Config, Space, SpaceError};
use crate::{Domain, Rng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// Options of [`BasicVariantGenerator`], as Ray's constructor takes them (seed aside).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BasicVariantConfig {
    /// Partial configs run first, each replacing one of the `num_samples`.
    pub points_to_evaluate: Vec<Config>,
    /// At most this many trials live at once; 0 means no limit.
    pub max_concurrent: usize,
    /// Sample the random leaves once per sample and share them across its grid combinations.
    pub constant_grid_search: bool,
}

impl BasicVariantConfig {
    /// Builds the generator; `num_samples` is -1 for unlimited, else at least 0.
    ///
    /// Every key of every point must name a leaf or section of `space`; the error path is
    /// `points_to_evaluate[i].dotted.key`.
    pub fn build(self, space: Space, num_samples: i64) -> Result<BasicVariantGenerator, SpaceError> {
        let samples = match num_samples {
            -1 => None,
            n if n >= 0 => Some((n as u64).saturating_sub(self.points_to_evaluate.len() as u64)),
            n => {
                return Err(SpaceError {
                    path: "num_samples".into(),
                    rule: format!("must be -1 (unlimited) or at least 0, got {n}"),
                })
            }
        };
        let mut presets = Vec::with_capacity(self.points_to_evaluate.len());
        for (i, point) in self.points_to_evaluate.iter().enumerate() {
            let mut overrides = Vec::new();
            point_leaves(point, &mut Vec::new(), &mut overrides);
            for (path, _) in &overrides {
                if space.find(path).is_none() {
                    return Err(SpaceError {
                        path: format!("points_to_evaluate[{i}].{}", path.join(".")),
                        rule: "no such key in the search space".into(),
                    });
                }
            }
            let masked: Vec<bool> =
                space.params().iter().map(|p| overrides.iter().any(|(o, _)| p.path.starts_with(o))).collect();
            let dims: Vec<usize> = space.grid_indices().iter().copied().filter(|&g| !masked[g]).collect();
            let size = walk_size(&space, &dims);
            presets.push(Preset { overrides, masked, dims, size });
        }
        let full_dims = space.grid_indices().to_vec();
        let full_size = walk_size(&space, &full_dims);
        Ok(BasicVariantGenerator {
            space,
            presets,
            samples,
            full_dims,
            full_size,
            max_concurrent: self.max_concurrent,
            constant_grid_search: self.constant_grid_search,
            added: BTreeSet::new(),
            live: BTreeSet::new(),
            shared: None,
        })
    }
}

/// One point of `points_to_evaluate`, compiled against the space.
#[derive(Clone, Debug, PartialEq)]
struct Preset {
    /// Leaf paths of the point and their values.
    overrides: Vec<(Vec<String>, Value)>,
    /// Per param: set by the point (itself or a section above it), hence neither walked nor sampled.
    masked: Vec<bool>,
    /// Grid params still walked.
    dims: Vec<usize>,
    /// Combinations of `dims`.
    size: u64,
}

/// Where a position falls: one group (a point or a full-grid sample) and the index inside it.
struct Slot<'a> {
    dims: &'a [usize],
    masked: Option<&'a [bool]>,
    overrides: &'a [(Vec<String>, Value)],
    /// Position of the group's first variant.
    start: u64,
    /// Index of the grid combination inside the group.
    index: u64,
}

/// Ray's default searcher: grid expansion times `num_samples`, random leaves sampled per variant.
#[derive(Clone, Debug, PartialEq)]
pub struct BasicVariantGenerator {
    space: Space,
    presets: Vec<Preset>,
    /// Full-grid samples after the presets; `None` when unlimited.
    samples: Option<u64>,
    full_dims: Vec<usize>,
    full_size: u64,
    max_concurrent: usize,
    constant_grid_search: bool,
    /// Trials seen by `on_trial_add`; its size is the position in the variant sequence.
    added: BTreeSet<TrialId>,
    /// Added and not completed.
    live: BTreeSet<TrialId>,
    /// With `constant_grid_search`: the config of the current group's first trial.
    shared: Option<(u64, Config)>,
}

impl BasicVariantGenerator {
    /// A generator with default options (no points, no concurrency cap, fresh samples per variant).
    pub fn new(space: Space, num_samples: i64) -> Result<Self, SpaceError> {
        BasicVariantConfig::default().build(space, num_samples)
    }

    /// How many variants in all: `None` when `num_samples` is -1.
    pub fn total_variants(&self) -> Option<u64> {
        let presets = self.presets.iter().fold(0u64, |acc, p| acc.saturating_add(p.size));
        self.samples.map(|n| presets.saturating_add(n.saturating_mul(self.full_size)))
    }

    /// How many trials have been added so far: the index of the next variant.
    pub fn position(&self) -> u64 {
        self.added.len() as u64
    }

    /// Trials added and not yet completed.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Whether every variant has been handed out (sticky).
    pub fn is_exhausted(&self) -> bool {
        self.locate(self.position()).is_none()
    }

    /// The space this generator walks.
    pub fn space(&self) -> &Space {
        &self.space
    }

    fn locate(&self, pos: u64) -> Option<Slot<'_>> {
        let mut start = 0u64;
        for p in &self.presets {
            if pos - start < p.size {
                let (dims, masked) = (&p.dims[..], Some(&p.masked[..]));
                let overrides = &p.overrides[..];
                return Some(Slot { dims, masked, overrides, start, index: pos - start });
            }
            start += p.size;
        }
        let sample = (pos - start) / self.full_size;
        if self.samples.is_some_and(|n| sample >= n) {
            return None;
        }
        Some(Slot {
            dims: &self.full_dims,
            masked: None,
            overrides: &[],
            start: start + sample * self.full_size,
            index: (pos - start) % self.full_size,
        })
    }

    fn variant(&self, slot: &Slot<'_>, rng: &mut Rng) -> Config {
        let params = self.space.params();
        let mut values: Vec<Option<Value>> = vec![None; params.len()];
        let mut k = slot.index;
        for &d in slot.dims {
            let len = grid_len(&params[d].domain);
            values[d] = Some(grid_value(&params[d].domain, k % len));
            k /= len;
        }
        let shared = match &self.shared {
            Some((start, config)) if self.constant_grid_search && slot.index > 0 && *start == slot.start => {
                Some(config)
            }
            _ => None,
        };
        for (i, param) in params.iter().enumerate() {
            if values[i].is_some() || slot.masked.is_some_and(|m| m[i]) {
                continue;
            }
            let kept = match (shared, &param.domain) {
                (Some(c), d) if !matches!(d, Domain::SampleFrom { .. }) => get_path(c, &param.path),
                _ => None,
            };
            values[i] = Some(match kept {
                Some(v) => v.clone(),
                None => param.domain.sample(rng),
            });
        }
        let values: Vec<Value> = values.into_iter().map(Option::unwrap_or_default).collect();
        let mut config = self.space.assemble(&values);
        for (path, v) in slot.overrides {
            set_path(&mut config, path, v.clone());
        }
        config
    }
}

/// The generator is a fold over `on_trial_add` / `on_complete`:
///
/// - its position is the number of distinct trials passed to `on_trial_add`;
/// - `suggest` answers the variant at that position (sampled with the given `rng`) and does not
///   move; calling it again without an `on_trial_add` in between answers the same position;
/// - `on_trial_add` advances by one whether or not this generator proposed the config, so
///   replaying the stored trials after a resume puts it exactly where it was;
/// - with `constant_grid_search`, the shared values of a group come from the config added at the
///   group's first position, so they survive a replay as well;
/// - `Wait` when `max_concurrent > 0` trials are live, `Exhausted` (sticky) once every variant
///   has been added.
impl Searcher for BasicVariantGenerator {
    fn suggest(&mut self, _trial: TrialId, rng: &mut Rng) -> Suggestion {
        let Some(slot) = self.locate(self.position()) else {
            return Suggestion::Exhausted;
        };
        if self.max_concurrent > 0 && self.live.len() >= self.max_concurrent {
            return Suggestion::Wait;
        }
        Suggestion::Config(self.variant(&slot, rng))
    }

    fn on_trial_add(&mut self, trial: TrialId, config: &Config) {
        let pos = self.position();
        if !self.added.insert(trial) {
            return;
        }
        self.live.insert(trial);
        if self.constant_grid_search {
            let start = self.locate(pos).filter(|s| s.index == 0).map(|s| s.start);
            if let Some(start) = start {
                self.shared = Some((start, config.clone()));
            }
        }
    }

    fn on_complete(&mut self, trial: TrialId, _outcome: &Outcome) {
        self.live.remove(&trial);
    }
}

fn walk_size(space: &Space, dims: &[usize]) -> u64 {
    dims.iter().map(|&d| grid_len(&space.params()[d].domain)).fold(1u64, u64::saturating_mul)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    fn rng_for(t: u64) -> Rng {
        crate::trial_rng(9, TrialId(t))
    }

    /// Suggests and adds until the generator stops giving configs.
    fn run(gen: &mut BasicVariantGenerator, limit: u64) -> (Vec<Config>, Suggestion) {
        let mut out = Vec::new();
        for t in 0..limit {
            match gen.suggest(TrialId(t), &mut rng_for(t)) {
                Suggestion::Config(c) => {
                    gen.on_trial_add(TrialId(t), &c);
                    out.push(c);
                }
                other => return (out, other),
            }
        }
        (out, Suggestion::Wait)
    }

    fn space(v: Value) -> Space {
        Space::parse(&v).unwrap()
    }

    #[test]
    fn grid_times_samples_in_ray_order_then_sticky_exhausted() {
        let s = space(json!({"a": {"grid_search": [1, 2]}, "b": {"grid_search": ["x", "y", "z"]}}));
        let mut gen = BasicVariantGenerator::new(s, 2).unwrap();
        assert_eq!(gen.total_variants(), Some(12));
        let (configs, last) = run(&mut gen, 100);
        assert_eq!(last, Suggestion::Exhausted);
        let got: Vec<(Value, Value)> = configs.iter().map(|c| (c["a"].clone(), c["b"].clone())).collect();
        let one: Vec<(Value, Value)> =
            ["x", "y", "z"].iter().flat_map(|b| [1, 2].map(|a| (json!(a), json!(b)))).collect();
        assert_eq!(got, [one.clone(), one].concat());
        for t in 100..103 {
            assert_eq!(gen.suggest(TrialId(t), &mut rng_for(t)), Suggestion::Exhausted);
        }
        assert!(gen.is_exhausted());
    }

    #[test]
    fn points_first_each_replacing_one_sample_like_ray_docs() {
        // Ray's docstring example: 4 samples, 3 points -> 6 trials.
        let s = space(json!({"a": {"grid_search": [1, 2]}, "b": {"randint": [0, 3]}}));
        let cfg: BasicVariantConfig = serde_json::from_value(json!({
            "points_to_evaluate": [{"a": 2, "b": 2}, {"a": 1}, {"b": 2}],
        }))
        .unwrap();
        let mut gen = cfg.build(s, 4).unwrap();
        assert_eq!(gen.total_variants(), Some(6));
        let (c, last) = run(&mut gen, 100);
        assert_eq!(last, Suggestion::Exhausted);
        assert_eq!(c.len(), 6);
        assert_eq!((c[0]["a"].clone(), c[0]["b"].clone()), (json!(2), json!(2)));
        assert_eq!(c[1]["a"], json!(1));
        assert_eq!((c[2]["a"].clone(), c[2]["b"].clone()), (json!(1), json!(2)));
        assert_eq!((c[3]["a"].clone(), c[3]["b"].clone()), (json!(2), json!(2)));
        assert_eq!((c[4]["a"].clone(), c[5]["a"].clone()), (json!(1), json!(2)));
        assert!(c.iter().all(|c| (0..3).contains(&c["b"].as_i64().unwrap())));
    }

    #[test]
    fn more_points_than_samples_all_run() {
        let s = space(json!({"x": {"uniform": [0, 1]}}));
        let cfg = BasicVariantConfig {
            points_to_evaluate: vec![json!({"x": 0.5}), json!({})]
                .into_iter()
                .map(|v| v.as_object().unwrap().clone())
                .collect(),
            ..Default::default()
        };
        let mut gen = cfg.build(s, 1).unwrap();
        let (c, _) = run(&mut gen, 10);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["x"], json!(0.5));
    }

    #[test]
    fn point_may_replace_a_whole_section() {
        let s = space(json!({"opt": {"lr": {"uniform": [0, 1]}, "g": {"grid_search": [1, 2]}}}));
        let cfg = BasicVariantConfig {
            points_to_evaluate: vec![json!({"opt": "sgd"}).as_object().unwrap().clone()],
            ..Default::default()
        };
        let mut gen = cfg.build(s, 1).unwrap();
        let (c, _) = run(&mut gen, 10);
        assert_eq!(c, vec![json!({"opt": "sgd"}).as_object().unwrap().clone()]);
    }

    #[test]
    fn unknown_point_key_names_index_and_path() {
        let s = space(json!({"optimizer": {"lr": {"uniform": [0, 1]}}}));
        let cfg: BasicVariantConfig = serde_json::from_value(json!({
            "points_to_evaluate": [{"optimizer": {"lr": 0.1}}, {"optimizer": {"mom": 0.9}}],
        }))
        .unwrap();
        let e = cfg.build(s, 2).unwrap_err();
        assert_eq!(e.to_string(), "points_to_evaluate[1].optimizer.mom: no such key in the search space");
        assert!(serde_json::from_value::<BasicVariantConfig>(json!({"seed": 1})).is_err());
        let s = space(json!({}));
        assert_eq!(
            BasicVariantGenerator::new(s, -2).unwrap_err().to_string(),
            "num_samples: must be -1 (unlimited) or at least 0, got -2"
        );
    }

    #[test]
    fn max_concurrent_waits_until_a_completion() {
        let s = space(json!({"x": {"uniform": [0, 1]}}));
        let cfg = BasicVariantConfig { max_concurrent: 2, ..Default::default() };
        let mut gen = cfg.build(s, 5).unwrap();
        let (c, last) = run(&mut gen, 10);
        assert_eq!((c.len(), last), (2, Suggestion::Wait));
        gen.on_complete(TrialId(0), &Outcome::Failed);
        assert!(matches!(gen.suggest(TrialId(2), &mut rng_for(2)), Suggestion::Config(_)));
    }

    #[test]
    fn constant_grid_search_shares_random_values_within_a_sample() {
        let s = space(json!({"a": {"grid_search": [1, 2, 3]}, "x": {"uniform": [0, 1]}}));
        let cfg = BasicVariantConfig { constant_grid_search: true, ..Default::default() };
        let mut gen = cfg.build(s.clone(), 2).unwrap();
        let (c, _) = run(&mut gen, 10);
        let xs: Vec<&Value> = c.iter().map(|c| &c["x"]).collect();
        assert_eq!((xs[0], xs[0]), (xs[1], xs[2]));
        assert_eq!((xs[3], xs[3]), (xs[4], xs[5]));
        assert_ne!(xs[0], xs[3]);
        let (c, _) = run(&mut BasicVariantGenerator::new(s, 1).unwrap(), 10);
        assert_ne!(c[0]["x"], c[1]["x"]);
    }

    #[test]
    fn unlimited_samples_never_exhaust() {
        let s = space(json!({"a": {"grid_search": [1, 2]}}));
        let mut gen = BasicVariantGenerator::new(s, -1).unwrap();
        assert_eq!(gen.total_variants(), None);
        let (c, _) = run(&mut gen, 50);
        assert_eq!(c.len(), 50);
        assert_eq!(c[49]["a"], json!(2));
    }

    #[test]
    fn suggest_without_add_repeats_and_replay_resumes() {
        for constant in [false, true] {
            let s = space(json!({
                "a": {"grid_search": [1, 2]}, "x": {"loguniform": [1e-3, 1]}, "k": 3,
            }));
            let cfg = BasicVariantConfig { constant_grid_search: constant, ..Default::default() };
            let mut straight = cfg.clone().build(s.clone(), 3).unwrap();
            let first = straight.suggest(TrialId(0), &mut rng_for(0));
            assert_eq!(first, straight.suggest(TrialId(0), &mut rng_for(0)));
            let (all, _) = run(&mut straight, 6);
            for n in 0..6 {
                let mut resumed = cfg.clone().build(s.clone(), 3).unwrap();
                for (t, c) in all.iter().enumerate().take(n) {
                    resumed.on_trial_add(TrialId(t as u64), c);
                    resumed.on_trial_add(TrialId(t as u64), c);
                }
                let next = resumed.suggest(TrialId(n as u64), &mut rng_for(n as u64));
                assert_eq!(next, Suggestion::Config(all[n].clone()), "n = {n}, constant = {constant}");
            }
        }
    }

    #[test]
    fn empty_space_gives_num_samples_copies() {
        let mut gen = BasicVariantGenerator::new(space(json!({"k": 1})), 2).unwrap();
        let (c, last) = run(&mut gen, 10);
        assert_eq!((c.len(), last), (2, Suggestion::Exhausted));
        let mut none = BasicVariantGenerator::new(space(json!({})), 0).unwrap();
        assert_eq!(none.suggest(TrialId(0), &mut Rng::seed_from_u64(0)), Suggestion::Exhausted);
    }
}
