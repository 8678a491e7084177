//! Which trials shape `l(x)` (the good ones, "below") and which `g(x)` ("above"), as Optuna 5.0.0
//! divides them, for one objective ([`split_trials`]) or several ([`split_trials_multi_objective`]).

use crate::hypervolume::{non_domination_ranks, reference_point, solve_hssp};
use crate::searcher::TrialId;
use std::cmp::Ordering;

/// How many of `n` finished trials count as good: Optuna's `default_gamma`, `min(ceil(0.1 n), 25)`.
pub fn default_gamma(n: usize) -> usize {
    ((0.1 * n as f64).ceil() as usize).min(25)
}

/// How many of `n` finished trials count as good with several objectives: Optuna's
/// `default_gamma_multiobjective`, `ceil(0.1 n)` (no cap).
pub fn default_gamma_multi_objective(n: usize) -> usize {
    (0.1 * n as f64).ceil() as usize
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

/// The weights of the `n` good observations, oldest first: [`default_weights`] for one objective,
/// all 1 for several (Optuna 5.0.0 hands its estimator `np.ones` for a multi-objective study).
pub fn default_weights_below(n: usize, n_objectives: usize) -> Vec<f64> {
    if n_objectives >= 2 {
        vec![1.0; n]
    } else {
        default_weights(n)
    }
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

/// Divides trials as Optuna 5.0.0's `TPESampler` does before each suggestion when the study has
/// several objectives; `values` are a completed trial's objectives, higher is better.
///
/// Failed trials are left out, and so are completed ones whose `values` are missing, not
/// `n_objectives` long or hold a NaN (Optuna fails such trials); running ones too unless
/// `constant_liar`. Of the `n = complete + pruned` trials, [`default_gamma_multi_objective`]`(n)`
/// are good: completed ones first, whole non-domination fronts in order as long as they fit,
/// then from the first front that does not fit the points a greedy hypervolume subset selection
/// picks ([`solve_hssp`], reference point [`reference_point`] of that front, objectives
/// negated to Optuna's minimisation); then, if more are needed, pruned ones in trial order
/// (Optuna's multi-objective trials have no intermediate values to rank them by). Running
/// trials always go to `above`.
pub fn split_trials_multi_objective<'a>(
    trials: impl IntoIterator<Item = (TrialId, TrialStatus, Option<&'a [f64]>)>,
    n_objectives: usize,
    constant_liar: bool,
) -> Split {
    let mut complete: Vec<(TrialId, Vec<f64>)> = Vec::new();
    let mut pruned: Vec<TrialId> = Vec::new();
    let mut running: Vec<TrialId> = Vec::new();
    for (id, status, values) in trials {
        match status {
            TrialStatus::Running if constant_liar => running.push(id),
            TrialStatus::Running | TrialStatus::Failed => {}
            TrialStatus::Complete { .. } => match values {
                Some(v) if v.len() == n_objectives && !v.iter().any(|x| x.is_nan()) => {
                    complete.push((id, v.iter().map(|x| -x).collect()));
                }
                _ => {}
            },
            TrialStatus::Pruned { .. } => pruned.push(id),
        }
    }
    complete.sort_by_key(|t| t.0);
    pruned.sort_unstable();
    let n_below = default_gamma_multi_objective(complete.len() + pruned.len());
    let take = n_below.min(complete.len());
    let mut split = Split::default();
    let below = below_fronts(&complete.iter().map(|t| t.1.as_slice()).collect::<Vec<_>>(), take);
    for (i, (id, _)) in complete.iter().enumerate() {
        if below[i] {
            split.below.push(*id);
        } else {
            split.above.push(*id);
        }
    }
    let take = (n_below - take).min(pruned.len());
    split.below.extend(&pruned[..take]);
    split.above.extend(&pruned[take..]);
    split.above.extend(running);
    split.below.sort_unstable();
    split.above.sort_unstable();
    split
}

/// Optuna's `_split_complete_trials_multi_objective` on loss vectors (minimised): which `n_below`
/// of them are good.
fn below_fronts(losses: &[&[f64]], n_below: usize) -> Vec<bool> {
    let n = losses.len();
    if n_below == 0 || n_below >= n {
        return vec![n_below >= n; n];
    }
    let ranks = non_domination_ranks(losses, Some(n_below));
    let n_ranks = ranks.iter().max().map_or(0, |r| r + 1);
    let mut counts = vec![0usize; n_ranks];
    for &r in &ranks {
        counts[r] += 1;
    }
    // The fronts that fit whole.
    let mut fit = 0;
    let mut total = 0;
    while fit < n_ranks && total + counts[fit] <= n_below {
        total += counts[fit];
        fit += 1;
    }
    let mut below: Vec<bool> = ranks.iter().map(|&r| r < fit).collect();
    if total < n_below {
        let cut: Vec<usize> = (0..n).filter(|&i| ranks[i] == fit).collect();
        let front: Vec<&[f64]> = cut.iter().map(|&i| losses[i]).collect();
        for i in solve_hssp(&front, &cut, n_below - total, &reference_point(&front)) {
            below[i] = true;
        }
    }
    below
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

    #[test]
    fn multi_objective_takes_whole_fronts_then_the_largest_contributions() {
        use TrialStatus::*;
        let t = |i| TrialId(i);
        let done = Complete { score: 0.0 };
        // Losses (minimised; the values are their negatives): front 0 is (1,3), (2,2), (3,1);
        // the rest are dominated.
        let mut values: Vec<Vec<f64>> = vec![vec![-3.0, -1.0], vec![-1.0, -3.0], vec![-2.0, -2.0]];
        values.extend((0..17).map(|i| vec![-5.0 - i as f64, -5.0]));
        let mut trials: Vec<(TrialId, TrialStatus, Option<&[f64]>)> =
            values.iter().enumerate().map(|(i, v)| (t(i as u64), done, Some(v.as_slice()))).collect();
        // 20 finished -> 2 good: front 0 must be cut. Under its reference point (3.3, 3.3),
        // (2,2) contributes 1.69, the others 0.69; next to (2,2) each adds 0.3 and the first in
        // lexicographic order, (1,3), wins the tie.
        let s = split_trials_multi_objective(trials.iter().copied(), 2, true);
        assert_eq!(s.below, vec![t(1), t(2)]);
        assert_eq!(s.above.len(), 18);
        // Ten more finished (pruned, in trial order after the completed ones) -> 3 good: the
        // whole front. Running trials are bad with the liar, failed ones and completed ones
        // without usable objectives are left out.
        let nan = [f64::NAN, 0.0];
        trials.extend((20..30).map(|i| (t(i), Pruned { last: None }, None)));
        trials.push((t(30), Running, None));
        trials.push((t(31), Failed, None));
        trials.push((t(32), done, None));
        trials.push((t(33), done, Some(&nan[..])));
        let s = split_trials_multi_objective(trials.iter().copied(), 2, true);
        assert_eq!(s.below, vec![t(0), t(1), t(2)]);
        assert_eq!(s.above.len(), 17 + 10 + 1);
        assert!(s.above.contains(&t(30)) && !s.above.contains(&t(31)) && !s.above.contains(&t(32)));
        let s = split_trials_multi_objective(trials.iter().copied(), 2, false);
        assert!(!s.above.contains(&t(30)));
        // Few completed: pruned ones fill the good side in trial order.
        let few: Vec<_> = trials[..1].iter().copied().chain(trials[20..30].iter().copied()).collect();
        assert_eq!(split_trials_multi_objective(few, 2, true).below, vec![t(0), t(20)]);
        assert_eq!(default_gamma_multi_objective(1000), 100);
        assert_eq!(default_weights_below(30, 2), vec![1.0; 30]);
        assert_eq!(default_weights_below(30, 1), default_weights(30));
    }
}
