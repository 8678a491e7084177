//! Runs every config of a searcher several times and tells it the average, as Ray's `Repeater`.

use crate::searcher::{Observation, Outcome, Searcher, Suggestion, TrialId};
use crate::{space::Config, Rng};
use serde_json::Value;
use std::collections::BTreeMap;

/// The config key that numbers a trial within its group (0, 1, ...), when `set_index` is on.
pub const TRIAL_INDEX: &str = "__trial_index__";

/// One config and the trials that run it.
#[derive(Clone, Debug, PartialEq)]
struct Group {
    /// The first trial: the one the inner searcher knows.
    leader: TrialId,
    /// The config without the index key.
    config: Config,
    /// Members in order, with their outcome once complete.
    members: Vec<(TrialId, Option<Outcome>)>,
    /// Members' objectives (multi-objective experiments), as `on_objectives` gave them.
    objectives: BTreeMap<TrialId, Vec<f64>>,
}

/// Wraps a searcher so that each config it proposes runs `repeat` times (noisy objectives); the
/// inner searcher sees one trial per config, whose result is the mean of the group's scores.
///
/// Like every searcher here it is a fold over its calls: `suggest` does not change it, and a
/// trial added while the latest group has fewer than `repeat` members joins that group, so a
/// replay of `on_trial_add` rebuilds the same groups. The inner searcher hears the leader's
/// intermediate results, and the group's outcome once all its trials have ended: the mean of the
/// scores present (completed and pruned trials), `Failed` only if every trial failed. In a
/// multi-objective experiment it hears, just before that outcome, each objective averaged the
/// same way (over the completed and pruned trials that gave objectives of the first such
/// trial's length).
#[derive(Clone, Debug)]
pub struct Repeater<S> {
    inner: S,
    repeat: usize,
    set_index: bool,
    groups: Vec<Group>,
    /// Trial -> index of its group.
    of: BTreeMap<TrialId, usize>,
}

impl<S: Searcher> Repeater<S> {
    /// Wraps `inner`; `repeat` of 0 or 1 runs each config once.
    pub fn new(inner: S, repeat: usize, set_index: bool) -> Self {
        Repeater { inner, repeat: repeat.max(1), set_index, groups: Vec::new(), of: BTreeMap::new() }
    }

    /// The wrapped searcher.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Trials per config.
    pub fn repeat(&self) -> usize {
        self.repeat
    }

    fn open(&self) -> Option<&Group> {
        self.groups.last().filter(|g| g.members.len() < self.repeat)
    }

    fn indexed(&self, mut config: Config, k: usize) -> Config {
        if self.set_index {
            config.insert(TRIAL_INDEX.into(), Value::from(k as u64));
        }
        config
    }
}

impl<S: Searcher> Searcher for Repeater<S> {
    fn suggest(&mut self, trial: TrialId, rng: &mut Rng) -> Suggestion {
        if let Some(g) = self.open() {
            let k = g.members.len();
            return Suggestion::Config(self.indexed(g.config.clone(), k));
        }
        match self.inner.suggest(trial, rng) {
            Suggestion::Config(c) => Suggestion::Config(self.indexed(c, 0)),
            other => other,
        }
    }

    fn on_trial_add(&mut self, trial: TrialId, config: &Config) {
        if self.of.contains_key(&trial) {
            return;
        }
        let mut plain = config.clone();
        plain.remove(TRIAL_INDEX);
        if self.open().is_some() {
            let i = self.groups.len() - 1;
            self.groups[i].members.push((trial, None));
            self.of.insert(trial, i);
            return;
        }
        self.inner.on_trial_add(trial, &plain);
        self.groups.push(Group {
            leader: trial,
            config: plain,
            members: vec![(trial, None)],
            objectives: BTreeMap::new(),
        });
        self.of.insert(trial, self.groups.len() - 1);
    }

    fn on_result(&mut self, trial: TrialId, obs: &Observation) {
        if let Some(&i) = self.of.get(&trial) {
            if self.groups[i].leader == trial {
                self.inner.on_result(trial, obs);
            }
        }
    }

    fn on_objectives(&mut self, trial: TrialId, values: &[f64]) {
        let Some(&i) = self.of.get(&trial) else { return };
        let g = &mut self.groups[i];
        if g.members.iter().any(|(t, o)| *t == trial && o.is_none()) {
            g.objectives.insert(trial, values.to_vec());
        }
    }

    fn on_complete(&mut self, trial: TrialId, outcome: &Outcome) {
        let Some(&i) = self.of.get(&trial) else { return };
        let repeat = self.repeat;
        let g = &mut self.groups[i];
        let Some(m) = g.members.iter_mut().find(|(t, o)| *t == trial && o.is_none()) else { return };
        m.1 = Some(outcome.clone());
        if g.members.len() < repeat || g.members.iter().any(|(_, o)| o.is_none()) {
            return;
        }
        let scores: Vec<f64> = g
            .members
            .iter()
            .filter_map(|(_, o)| match o {
                Some(Outcome::Completed { score }) | Some(Outcome::Pruned { score }) => *score,
                _ => None,
            })
            .collect();
        let all_failed = g.members.iter().all(|(_, o)| matches!(o, Some(Outcome::Failed)));
        let mean = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
        let told = if all_failed { Outcome::Failed } else { Outcome::Completed { score: mean } };
        let reported: Vec<&Vec<f64>> = g
            .members
            .iter()
            .filter(|(_, o)| matches!(o, Some(Outcome::Completed { .. }) | Some(Outcome::Pruned { .. })))
            .filter_map(|(t, _)| g.objectives.get(t))
            .collect();
        let objectives = reported.first().filter(|_| !all_failed).map(|first| {
            let same: Vec<&&Vec<f64>> = reported.iter().filter(|v| v.len() == first.len()).collect();
            (0..first.len()).map(|k| same.iter().map(|v| v[k]).sum::<f64>() / same.len() as f64).collect::<Vec<f64>>()
        });
        let leader = g.leader;
        if let Some(values) = objectives {
            self.inner.on_objectives(leader, &values);
        }
        self.inner.on_complete(leader, &told);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{trial_rng, BasicVariantGenerator, Space};
    use serde_json::json;

    /// Records what the inner searcher is told.
    #[derive(Default)]
    struct Spy {
        next: u64,
        added: Vec<(TrialId, Config)>,
        completed: Vec<(TrialId, Outcome)>,
        /// Objectives heard, and how many completions had been heard before each.
        objectives: Vec<(TrialId, Vec<f64>, usize)>,
    }

    impl Searcher for Spy {
        fn suggest(&mut self, _trial: TrialId, _rng: &mut Rng) -> Suggestion {
            let mut c = Config::new();
            c.insert("k".into(), Value::from(self.next + self.added.len() as u64));
            Suggestion::Config(c)
        }
        fn on_trial_add(&mut self, trial: TrialId, config: &Config) {
            self.added.push((trial, config.clone()));
        }
        fn on_objectives(&mut self, trial: TrialId, values: &[f64]) {
            self.objectives.push((trial, values.to_vec(), self.completed.len()));
        }
        fn on_complete(&mut self, trial: TrialId, outcome: &Outcome) {
            self.completed.push((trial, outcome.clone()));
        }
    }

    fn run(r: &mut Repeater<Spy>, t: u64) -> Config {
        let Suggestion::Config(c) = r.suggest(TrialId(t), &mut trial_rng(0, TrialId(t))) else { panic!() };
        r.on_trial_add(TrialId(t), &c);
        c
    }

    #[test]
    fn each_config_runs_repeat_times_and_the_inner_searcher_hears_the_mean() {
        let mut r = Repeater::new(Spy::default(), 3, true);
        let cs: Vec<Config> = (0..6).map(|t| run(&mut r, t)).collect();
        assert_eq!(cs[0]["k"], 0);
        assert_eq!(cs[1]["k"], 0);
        assert_eq!(cs[2]["k"], 0);
        assert_eq!(cs[3]["k"], 1);
        assert_eq!([&cs[0][TRIAL_INDEX], &cs[1][TRIAL_INDEX], &cs[2][TRIAL_INDEX]], [&json!(0), &json!(1), &json!(2)]);
        assert_eq!(r.inner().added.len(), 2, "the inner searcher sees one trial per config");
        assert!(!r.inner().added[0].1.contains_key(TRIAL_INDEX));
        r.on_complete(TrialId(0), &Outcome::Completed { score: Some(1.0) });
        r.on_complete(TrialId(2), &Outcome::Pruned { score: Some(4.0) });
        assert!(r.inner().completed.is_empty(), "told only when the whole group has ended");
        r.on_complete(TrialId(1), &Outcome::Failed);
        assert_eq!(r.inner().completed, vec![(TrialId(0), Outcome::Completed { score: Some(2.5) })]);
        for t in 3..6 {
            r.on_complete(TrialId(t), &Outcome::Failed);
        }
        assert_eq!(r.inner().completed[1], (TrialId(3), Outcome::Failed), "all failed: failed");
    }

    #[test]
    fn objectives_are_averaged_over_the_group() {
        let mut r = Repeater::new(Spy::default(), 3, false);
        for t in 0..6 {
            run(&mut r, t);
        }
        r.on_objectives(TrialId(0), &[1.0, 10.0]);
        r.on_complete(TrialId(0), &Outcome::Completed { score: Some(1.0) });
        r.on_objectives(TrialId(0), &[100.0, 100.0]);
        r.on_complete(TrialId(1), &Outcome::Failed);
        r.on_objectives(TrialId(2), &[3.0, 20.0]);
        r.on_complete(TrialId(2), &Outcome::Pruned { score: Some(3.0) });
        assert_eq!(
            r.inner().objectives,
            vec![(TrialId(0), vec![2.0, 15.0], 0)],
            "before the outcome, failures left out"
        );
        assert_eq!(r.inner().completed, vec![(TrialId(0), Outcome::Completed { score: Some(2.0) })]);
        for t in 3..6 {
            r.on_complete(TrialId(t), &Outcome::Completed { score: None });
        }
        assert_eq!(r.inner().objectives.len(), 1, "no objectives, none told");
    }

    #[test]
    fn replaying_the_adds_rebuilds_the_same_groups() {
        let space = Space::parse(&json!({"x": {"uniform": [0, 1]}})).unwrap();
        let make = || Repeater::new(BasicVariantGenerator::new(space.clone(), 4).unwrap(), 2, false);
        let mut live = make();
        let mut log = Vec::new();
        for t in 0..5 {
            let Suggestion::Config(c) = live.suggest(TrialId(t), &mut trial_rng(9, TrialId(t))) else { panic!() };
            live.on_trial_add(TrialId(t), &c);
            log.push((TrialId(t), c));
        }
        assert_eq!(log[0].1, log[1].1);
        assert_ne!(log[1].1, log[2].1);
        let mut replayed = make();
        for (t, c) in &log {
            replayed.on_trial_add(*t, c);
        }
        let a = live.suggest(TrialId(5), &mut trial_rng(9, TrialId(5)));
        let b = replayed.suggest(TrialId(5), &mut trial_rng(9, TrialId(5)));
        assert_eq!(a, b);
        assert_eq!(a, Suggestion::Config(log[4].1.clone()), "trial 5 repeats trial 4's config");
    }
}
