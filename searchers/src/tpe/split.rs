//! Which trials shape `l(x)` (the good ones, "below") and which `g(x)` ("above"), as Optuna 5.0.0
//! divides them for a single objective.

use crate::searcher::TrialId;
use std::cmp::Ordering;

/// How many of `n` finished trials count as good: Optuna's `default_gamma`, `min(ceil(0.1 n), 25)`.
pub fn default_gamma(n: usize) -> usize {
    ((0.1 * n as f64).ceil() as usize).min(25)
}

/// The weights of `n` observations, oldest first: Optuna's `default_weights` (all 1 below 25
/// observations; above, the oldest `n - 25` ramp linearly from `1 / n` towards 1).
pub fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let start = 1.0 / n as f64;
    let mut out = Vec::with_capacity(n);
    if ramp == 1 {
        out.push(start);
    } else if ramp > 1 {
        // NumPy's linspace: i * step + start, the last one exactly the stop.
        let step = (1.0 - start) / (ramp - 1) as f64;
        out.extend((0..ramp - 1).map(|i| i as f64 * step + start));
        out.push(1.0);
    }
    out.resize(n, 1.0);
    out
}

/// Where a trial stands, as the split reads it. Scores are "higher is better".
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrialStatus {
    /// Added and not yet ended.
    Running,
    /// Ended normally with this final score.
    Complete {
        /// The final score.
        score: f64,
    },
    /// Stopped early; the intermediate score at its latest progress step, if it reported any
    /// (`(progress, score)`, the score NaN when it was absent or NaN).
    Pruned {
        /// `(progress, score)` of the latest reported step.
        last: Option<(f64, f64)>,
    },
    /// Errored, or ended without a usable score: ignored.
    Failed,
}

/// The two sets, each in trial order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// The good trials: they shape `l(x)`.
    pub below: Vec<TrialId>,
    /// The rest, and with `constant_liar` the running trials: they shape `g(x)`.
    pub above: Vec<TrialId>,
}

/// Divides trials as Optuna 5.0.0's `TPESampler` does before each suggestion.
///
/// Failed trials are left out, and running ones too unless `constant_liar`. Of the
/// `n = complete + pruned` trials, `default_gamma(n)` are good: the best completed ones first
/// (by score, ties in trial order), then, if more are needed, pruned ones ranked by how far they
/// got (latest progress first) and then by their score there (a NaN score last; a trial with no
/// intermediate score after all of those). Running trials always go to `above` — the constant
/// liar: they count as bad, so TPE avoids proposing configs next to them.
pub fn split_trials(trials: impl IntoIterator<Item = (TrialId, TrialStatus)>, constant_liar: bool) -> Split {
    let mut complete: Vec<(TrialId, f64)> = Vec::new();
    let mut pruned: Vec<(TrialId, (f64, f64))> = Vec::new();
    let mut running: Vec<TrialId> = Vec::new();
    for (id, status) in trials {
        match status {
            TrialStatus::Running if constant_liar => running.push(id),
            TrialStatus::Running | TrialStatus::Failed => {}
            TrialStatus::Complete { score } => complete.push((id, score)),
            TrialStatus::Pruned { last } => pruned.push((id, pruned_key(last))),
        }
    }
    let n_below = default_gamma(complete.len() + pruned.len());
    let mut split = Split::default();
    // Only membership matters (both sets end in trial order), so partition around the n-th best
    // instead of sorting everything. Ties go to the earlier trial.
    let by_score =
        |a: &(TrialId, f64), b: &(TrialId, f64)| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal).then(a.0.cmp(&b.0));
    let by_key = |a: &(TrialId, (f64, f64)), b: &(TrialId, (f64, f64))| {
        let (x, y) = (a.1, b.1);
        x.0.partial_cmp(&y.0)
            .unwrap_or(Ordering::Equal)
            .then(x.1.partial_cmp(&y.1).unwrap_or(Ordering::Equal))
            .then(a.0.cmp(&b.0))
    };
    let take = n_below.min(complete.len());
    if take > 0 && take < complete.len() {
        complete.select_nth_unstable_by(take - 1, by_score);
    }
    split.below.extend(complete[..take].iter().map(|t| t.0));
    split.above.extend(complete[take..].iter().map(|t| t.0));
    let take = (n_below - take).min(pruned.len());
    if take > 0 && take < pruned.len() {
        pruned.select_nth_unstable_by(take - 1, by_key);
    }
    split.below.extend(pruned[..take].iter().map(|t| t.0));
    split.above.extend(pruned[take..].iter().map(|t| t.0));
    split.above.extend(running);
    split.below.sort_unstable();
    split.above.sort_unstable();
    split
}

/// The ascending sort key of a pruned trial: `(-progress, -score)`, a NaN score as `+inf`, no
/// intermediate score at all as `(1, 0)`.
fn pruned_key(last: Option<(f64, f64)>) -> (f64, f64) {
    match last {
        None => (1.0, 0.0),
        Some((step, score)) if score.is_nan() => (-step, f64::INFINITY),
        Some((step, score)) => (-step, -score),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_and_weights_by_hand() {
        assert_eq!(default_gamma(0), 0);
        assert_eq!(default_gamma(10), 1);
        assert_eq!(default_gamma(11), 2);
        assert_eq!(default_gamma(30), 3);
        assert_eq!(default_gamma(249), 25);
        assert_eq!(default_gamma(1000), 25);
        assert_eq!(default_weights(3), vec![1.0; 3]);
        // n = 30: a ramp of 5 from 1/30 to 1, then 25 ones.
        let w = default_weights(30);
        assert_eq!(w.len(), 30);
        let step = (1.0 - 1.0 / 30.0) / 4.0;
        for (i, want) in
            [1.0 / 30.0, 1.0 / 30.0 + step, 1.0 / 30.0 + 2.0 * step, 1.0 / 30.0 + 3.0 * step, 1.0].iter().enumerate()
        {
            assert!((w[i] - want).abs() < 1e-15, "{i}: {} vs {want}", w[i]);
        }
        assert!(w[5..].iter().all(|&x| x == 1.0));
        assert_eq!(default_weights(26)[0], 1.0 / 26.0);
    }

    #[test]
    fn complete_first_then_pruned_then_liar() {
        use TrialStatus::*;
        let t = |i| TrialId(i);
        let trials: Vec<(TrialId, TrialStatus)> = vec![
            (t(0), Complete { score: 1.0 }),
            (t(1), Pruned { last: Some((5.0, 9.0)) }),
            (t(2), Pruned { last: Some((7.0, 0.0)) }),
            (t(3), Running),
            (t(4), Failed),
            (t(5), Complete { score: 0.5 }),
        ]
        .into_iter()
        .chain((6..20).map(|i| (t(i), Complete { score: -(i as f64) })))
        .collect();
        // n = 18 finished -> 2 good: the best completed ones (0 and 5).
        let s = split_trials(trials.iter().copied(), true);
        assert_eq!(s.below, vec![t(0), t(5)]);
        assert!(s.above.contains(&t(3)) && !s.above.contains(&t(4)));
        let s = split_trials(trials.iter().copied(), false);
        assert!(!s.above.contains(&t(3)));
        // Only pruned: the one that got furthest wins despite a worse score.
        let s = split_trials(trials[1..3].iter().copied(), true);
        assert_eq!(s.below, vec![t(2)]);
    }
}
