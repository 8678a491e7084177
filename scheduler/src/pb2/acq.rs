//! PB2's acquisition: the upper confidence bound `mean + κ · std` over the normalised
//! hyperparameter box `[0, 1]^d`, time and reward held at the new point's values.
//!
//! As in Ray, the mean comes from the GP on the data and the spread from a second GP that also
//! holds the points already chosen in this round (hallucinated with y = 0, which does not move
//! a variance), so one round's choices spread out (Desautels et al. 2014). `κ = sqrt(0.2 +
//! max(0, ln(0.4 n)))` for `n` data points (Ray's constants). Unlike Ray, which adds κ times the
//! *variance*, this adds κ times the *standard deviation*, as GP-UCB and the PB2 paper do, so
//! the exploration bonus has the mean's units. The second GP reuses the first one's fitted
//! kernel (Ray refits it on the hallucinated zeros).
//!
//! The box is handled by the smooth map `x = (1 - cos(π z)) / 2`, so argmin's unconstrained
//! L-BFGS can reach the faces (where the map is stationary) without leaving the box.

use super::gp::Gp;
use hyperfleet_searchers::lbfgs;
use std::f64::consts::PI;

/// Ray's exploration weight for `n` data points: `sqrt(0.2 + max(0, ln(0.4 n)))`.
pub(crate) fn kappa(n: usize) -> f64 {
    (0.2 + (0.4 * n as f64).ln().max(0.0)).sqrt()
}

/// The UCB of a point of the box, given the fixed (time, reward) coordinates.
pub(crate) struct Ucb<'a> {
    /// GP giving the mean.
    pub m: &'a Gp,
    /// GP giving the standard deviation (the data plus this round's pending points).
    pub m1: &'a Gp,
    /// Normalised time and reward of the new point.
    pub fixed: [f64; 2],
    /// Weight of the standard deviation.
    pub kappa: f64,
}

impl Ucb<'_> {
    /// The UCB at `x` and its gradient.
    pub fn value_grad(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let mut input = self.fixed.to_vec();
        input.extend_from_slice(x);
        let (mean, mean_grad) = self.m.mean(&input, 2);
        let (var, var_grad) = self.m1.var(&input, 2);
        let std = var.sqrt();
        let value = mean + self.kappa * std;
        let grad = (0..x.len())
            .map(|j| {
                let dstd = if std > 1e-12 { var_grad[j] / (2.0 * std) } else { 0.0 };
                mean_grad[j] + self.kappa * dstd
            })
            .collect();
        (value, grad)
    }
}

fn to_box(z: &[f64]) -> Vec<f64> {
    z.iter().map(|z| ((1.0 - (PI * z).cos()) / 2.0).clamp(0.0, 1.0)).collect()
}

fn from_box(x: &[f64]) -> Vec<f64> {
    x.iter().map(|x| (1.0 - 2.0 * x.clamp(0.0, 1.0)).acos() / PI).collect()
}

/// Maximises the UCB with L-BFGS from each start (points of the box) and returns the best point
/// found and its value (the earliest start wins ties).
pub(crate) fn maximize(ucb: &Ucb<'_>, starts: &[Vec<f64>]) -> (Vec<f64>, f64) {
    let oracle = |z: &[f64]| {
        let (v, g) = ucb.value_grad(&to_box(z));
        let gz = g.iter().zip(z).map(|(g, z)| -g * PI / 2.0 * (PI * z).sin()).collect();
        Some((-v, gz))
    };
    let mut best: Option<(f64, Vec<f64>)> = None;
    for start in starts {
        let Some((v, z)) = lbfgs::minimize_unscaled(&oracle, from_box(start), 100, 1e-7, 1e-9) else { continue };
        let better = match &best {
            Some((b, _)) => v < *b,
            None => true,
        };
        if better {
            best = Some((v, z));
        }
    }
    match best {
        Some((v, z)) => (to_box(&z), -v),
        None => (vec![0.5; starts.first().map_or(0, Vec::len)], f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::super::gp::{fit, Hyper};
    use super::*;

    #[test]
    fn kappa_follows_ray_constants() {
        assert!((kappa(1) - 0.2f64.sqrt()).abs() < 1e-15, "ln(0.4) < 0 is floored at 0");
        assert!((kappa(10) - (0.2 + 4.0f64.ln()).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn box_map_round_trips() {
        for x in [0.0, 0.1, 0.5, 0.93, 1.0] {
            assert!((to_box(&from_box(&[x]))[0] - x).abs() < 1e-12);
        }
    }

    /// Reward change rises with the hyperparameter: the UCB maximum is near the top.
    #[test]
    fn ucb_picks_the_better_region_in_one_dimension() {
        let x: Vec<Vec<f64>> = (0..9).map(|i| vec![1.0, 0.5, i as f64 / 10.0 + 0.05]).collect();
        let y: Vec<f64> = x.iter().map(|p| 2.0 * p[2] - 1.0).collect();
        let h = fit(&x, &y);
        let gp = Gp::new(x, &y, h).unwrap();
        let ucb = Ucb { m: &gp, m1: &gp, fixed: [1.0, 0.5], kappa: kappa(9) };
        let (best, value) = maximize(&ucb, &[vec![0.1], vec![0.4]]);
        assert!(best[0] > 0.85, "{best:?}");
        assert!(value >= ucb.value_grad(&[0.5]).0);
    }

    #[test]
    fn pending_points_push_the_choice_away() {
        // A flat mean: the spread decides, and a pending point at 0.8 makes 0.8 unattractive.
        let h = Hyper { variance: 1.0, lengthscale: 0.05, epsilon: 0.1, noise: 1e-4 };
        let x = vec![vec![0.0, 0.5, 0.2]];
        let gp = Gp::new(x.clone(), &[0.0], h).unwrap();
        let with_pending = Gp::new(vec![x[0].clone(), vec![1.0, 0.5, 0.8]], &[0.0, 0.0], h).unwrap();
        let ucb = Ucb { m: &gp, m1: &with_pending, fixed: [1.0, 0.5], kappa: 1.0 };
        let at_pending = ucb.value_grad(&[0.8]).0;
        let (best, value) = maximize(&ucb, &[vec![0.75], vec![0.5]]);
        assert!(value > at_pending + 0.5, "{best:?} {value} {at_pending}");
        assert!((best[0] - 0.8).abs() > 0.05);
    }

    #[test]
    fn gradient_matches_differences() {
        let h = Hyper { variance: 1.0, lengthscale: 0.3, epsilon: 0.1, noise: 0.01 };
        let x: Vec<Vec<f64>> =
            (0..5).map(|i| vec![i as f64 / 4.0, 0.3, i as f64 / 5.0, 1.0 - i as f64 / 7.0]).collect();
        let gp = Gp::new(x, &[0.3, -0.2, 1.0, 0.1, -1.0], h).unwrap();
        let ucb = Ucb { m: &gp, m1: &gp, fixed: [0.9, 0.4], kappa: 1.3 };
        let p = [0.37, 0.61];
        let (_, g) = ucb.value_grad(&p);
        for j in 0..2 {
            let (mut a, mut b) = (p, p);
            a[j] += 1e-6;
            b[j] -= 1e-6;
            let fd = (ucb.value_grad(&a).0 - ucb.value_grad(&b).0) / 2e-6;
            assert!((g[j] - fd).abs() < 1e-5, "{j}: {} vs {fd}", g[j]);
        }
    }
}
