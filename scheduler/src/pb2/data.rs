//! PB2's data: one row per trial per perturbation boundary, turned into reward changes.
//!
//! As Ray's `_explore`: rows are sorted by time and grouped by (trial, hyperparameter values);
//! within a group each row after the first gives a point `(time, reward before, values)` with
//! `y = reward change / time change` (rows with no time change give no point). The last 1000
//! points are kept and the GP sees the most recent 200 of them: Ray picks that window length
//! (at least 200) by refitting the GP for every length in steps of 10, which costs dozens of
//! GP fits per decision; this keeps Ray's minimum. Time and reward are normalised by the
//! window's range, hyperparameters by their bounds, and `y` is standardised and clipped to
//! [-2, 2], all as Ray.

use super::acq::{self, Ucb};
use super::gp::{self, Gp};
use crate::{Rng, TrialId};
use rand::Rng as _;
use std::collections::BTreeMap;

/// Points kept (Ray's `iloc[-1000:]`).
const KEEP: usize = 1000;
/// Points the GP is fitted on (Ray's minimum window length).
const WINDOW: usize = 200;
/// Random starts of the acquisition search (Ray's `T = 10`).
const STARTS: usize = 10;

/// One recorded boundary: a trial's time, hyperparameter values and reward (score).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    /// The trial.
    pub trial: TrialId,
    /// Its progress.
    pub time: f64,
    /// Its hyperparameter values, in bound order.
    pub values: Vec<f64>,
    /// Its score, higher is better.
    pub reward: f64,
}

/// One reward change.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Point {
    /// The trial.
    pub trial: TrialId,
    /// Time at the end of the change.
    pub time: f64,
    /// Reward at the start of the change.
    pub before: f64,
    /// Reward at the end.
    pub reward: f64,
    /// Hyperparameter values during the change.
    pub values: Vec<f64>,
    /// Reward change per unit of time.
    pub y: f64,
}

/// The reward changes of `rows`, oldest first, at most the last 1000.
pub(crate) fn points(rows: &[Row]) -> Vec<Point> {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| a.time.total_cmp(&b.time));
    let mut last: BTreeMap<(TrialId, Vec<u64>), (f64, f64)> = BTreeMap::new();
    let mut out = Vec::new();
    for r in sorted {
        let key = (r.trial, r.values.iter().map(|v| v.to_bits()).collect());
        if let Some((t0, r0)) = last.insert(key, (r.time, r.reward)) {
            let dt = r.time - t0;
            if dt > 0.0 {
                let y = (r.reward - r0) / dt;
                let p =
                    Point { trial: r.trial, time: r.time, before: r0, reward: r.reward, values: r.values.clone(), y };
                out.push(p);
            }
        }
    }
    let drop = out.len().saturating_sub(KEEP);
    out.split_off(drop)
}

/// What the bandit chose.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Choice {
    /// New values, normalised to [0, 1] by the bounds.
    pub x: Vec<f64>,
    /// The donor's latest point (time and reward the new values start from).
    pub time: f64,
    /// The donor's reward at that point.
    pub reward: f64,
    /// How many points the GP was fitted on.
    pub n: usize,
}

fn range(v: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    (v.clone().fold(f64::INFINITY, f64::min), v.fold(f64::NEG_INFINITY, f64::max))
}

fn norm(v: f64, (lo, hi): (f64, f64)) -> f64 {
    (v - lo) / (hi - lo + 1e-8)
}

/// Ray's `standardize`: zero mean, unit (population) deviation, clipped to [-2, 2].
pub(crate) fn standardize(y: &[f64]) -> Vec<f64> {
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let sd = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    y.iter().map(|v| ((v - mean) / (sd + 1e-8)).clamp(-2.0, 2.0)).collect()
}

/// Picks new normalised values for a trial cloning `donor`: `None` when the donor has no reward
/// change yet (Ray then keeps the donor's config) or the GP cannot be built. `bounds` are
/// `(low, high)` per hyperparameter; `pending` holds this round's earlier choices (raw values);
/// `start` is the donor's values (normalised), tried as one more start.
pub(crate) fn select(
    rows: &[Row],
    donor: TrialId,
    bounds: &[(f64, f64)],
    pending: &[Vec<f64>],
    start: Vec<f64>,
    rng: &mut Rng,
) -> Option<Choice> {
    let all = points(rows);
    let newpoint = all.iter().rev().find(|p| p.trial == donor)?.clone();
    let window = &all[all.len().saturating_sub(WINDOW)..];
    let t_lim = range(window.iter().map(|p| p.time));
    let r_lim = range(window.iter().map(|p| p.before));
    let hp = |values: &[f64]| -> Vec<f64> { values.iter().zip(bounds).map(|(v, b)| norm(*v, *b)).collect() };
    let fixed = [norm(newpoint.time, t_lim), norm(newpoint.before, r_lim)];
    let x: Vec<Vec<f64>> = window
        .iter()
        .map(|p| {
            let mut row = vec![norm(p.time, t_lim), norm(p.before, r_lim)];
            row.extend(hp(&p.values));
            row
        })
        .collect();
    let y = standardize(&window.iter().map(|p| p.y).collect::<Vec<_>>());
    let h = gp::fit(&x, &y);
    let m = Gp::new(x.clone(), &y, h)?;
    let m1 = if pending.is_empty() {
        m.clone()
    } else {
        let mut x1 = x;
        let mut y1 = y;
        for values in pending {
            let mut row = fixed.to_vec();
            row.extend(hp(values));
            x1.push(row);
            y1.push(0.0);
        }
        Gp::new(x1, &y1, h)?
    };
    let ucb = Ucb { m: &m, m1: &m1, fixed, kappa: acq::kappa(m.len()) };
    let mut starts: Vec<Vec<f64>> =
        (0..STARTS).map(|_| (0..bounds.len()).map(|_| rng.random::<f64>()).collect()).collect();
    starts.push(start.iter().map(|v| v.clamp(0.0, 1.0)).collect());
    let (best, _) = acq::maximize(&ucb, &starts);
    Some(Choice { x: best, time: newpoint.time, reward: newpoint.reward, n: m.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn row(trial: u64, time: f64, v: f64, reward: f64) -> Row {
        Row { trial: TrialId(trial), time, values: vec![v], reward }
    }

    #[test]
    fn reward_changes_by_hand() {
        // Trial 0: value 0.1 at t = 1, 2 (reward 1 -> 3), then value 0.5 at t = 3 (new group).
        // Trial 1: value 0.2 at t = 2, 2 (no time change), 4.
        let rows = vec![
            row(0, 1.0, 0.1, 1.0),
            row(1, 2.0, 0.2, 5.0),
            row(0, 2.0, 0.1, 3.0),
            row(0, 3.0, 0.5, 4.0),
            row(1, 2.0, 0.2, 6.0),
            row(1, 4.0, 0.2, 10.0),
        ];
        let p = points(&rows);
        let got: Vec<(u64, f64, f64, f64)> = p.iter().map(|p| (p.trial.0, p.time, p.before, p.y)).collect();
        assert_eq!(got, vec![(0, 2.0, 1.0, 2.0), (1, 4.0, 6.0, 2.0)]);
    }

    #[test]
    fn standardize_by_hand() {
        // Mean 2, population sd sqrt(2/3): (1, 2, 3) -> (-sqrt(1.5), 0, sqrt(1.5)).
        let s = standardize(&[1.0, 2.0, 3.0]);
        assert!((s[0] + 1.5f64.sqrt()).abs() < 1e-7 && s[1] == 0.0);
        // Nine zeros and 100: mean 10, sd 30, so 100 -> 3, clipped to 2.
        let mut v = vec![0.0; 9];
        v.push(100.0);
        assert_eq!(standardize(&v)[9], 2.0);
        assert_eq!(standardize(&[4.0]), vec![0.0]);
    }

    /// Eight trials over three rounds: reward grows fastest with a high value; the bandit goes high.
    fn synthetic() -> Vec<Row> {
        let mut rows = Vec::new();
        for t in 0..8u64 {
            let v = 0.05 + t as f64 * 0.12;
            let mut reward = 0.0;
            for round in 0..3 {
                rows.push(row(t, round as f64 * 10.0, v, reward));
                reward += 10.0 * v;
            }
        }
        rows
    }

    #[test]
    fn select_goes_where_reward_grows() {
        let rows = synthetic();
        let c = select(&rows, TrialId(7), &[(0.0, 1.0)], &[], vec![0.89], &mut Rng::seed_from_u64(1)).unwrap();
        assert!(c.x[0] > 0.8, "{c:?}");
        assert_eq!((c.time, c.n), (20.0, 16));
        assert_eq!(c.reward, 20.0 * (0.05 + 7.0 * 0.12));
        let again = select(&rows, TrialId(7), &[(0.0, 1.0)], &[], vec![0.89], &mut Rng::seed_from_u64(1)).unwrap();
        assert_eq!(c, again, "deterministic for a seed");
        assert_eq!(select(&rows, TrialId(9), &[(0.0, 1.0)], &[], vec![0.5], &mut Rng::seed_from_u64(1)), None);
    }
}
