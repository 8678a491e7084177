//! One run of (μ/μ_w, λ)-CMA-ES in `[0, 1]^n`, after Hansen's tutorial (arXiv:1604.00772,
//! 2016): weighted recombination of the best half, cumulative step-size adaptation, rank-one
//! and rank-μ covariance updates, with the tutorial's negative weights for the worse half
//! (active CMA-ES: the covariance shrinks along the directions of bad steps).

use super::linalg::{symmetric_eigen, Matrix};
use crate::qmc::ndtri;
use crate::sample::unit;
use crate::Rng;

/// Why a CMA-ES run ended (tested after every generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `σ · max(sqrt(diag C)) < 1e-12`: the search distribution collapsed.
    TolX,
    /// The condition number of `C` exceeds `1e14`.
    Condition,
    /// The best score of the run has not improved for `10 + ceil(30 n / λ)` generations.
    Stagnation,
}

/// The strategy's constants for a dimension and population size (the tutorial's table 1).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Params {
    pub(crate) lambda: usize,
    /// Recombination weights of the best `μ = ⌊λ/2⌋` (positive, summing to 1).
    weights: Vec<f64>,
    /// Weights of the other `λ - μ` in the covariance update (at most 0).
    neg_weights: Vec<f64>,
    mu_eff: f64,
    c_sigma: f64,
    d_sigma: f64,
    c_c: f64,
    c_1: f64,
    c_mu: f64,
    /// `E‖N(0, I)‖`.
    chi_n: f64,
}

impl Params {
    pub(crate) fn new(n: usize, lambda: usize) -> Params {
        let nf = n as f64;
        let mu = lambda / 2;
        let prime: Vec<f64> = (1..=lambda).map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - (i as f64).ln()).collect();
        let (raw, raw_neg) = prime.split_at(mu);
        let sum: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / sum).collect();
        let mu_eff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        let c_sigma = (mu_eff + 2.0) / (nf + mu_eff + 5.0);
        let d_sigma = 1.0 + 2.0 * (((mu_eff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + c_sigma;
        let c_c = (4.0 + mu_eff / nf) / (nf + 4.0 + 2.0 * mu_eff / nf);
        let c_1 = 2.0 / ((nf + 1.3).powi(2) + mu_eff);
        let alpha_mu = 2.0;
        let c_mu =
            (1.0 - c_1).min(alpha_mu * (mu_eff - 2.0 + 1.0 / mu_eff) / ((nf + 2.0).powi(2) + alpha_mu * mu_eff / 2.0));
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        // The tutorial's (53): negative weights scaled by the least of α⁻_μ, α⁻_μeff, α⁻_posdef.
        let neg_sum: f64 = raw_neg.iter().map(|w| w.abs()).sum();
        let neg_sq: f64 = raw_neg.iter().map(|w| w * w).sum();
        let mu_eff_neg = if neg_sq > 0.0 { neg_sum * neg_sum / neg_sq } else { 0.0 };
        let scale =
            (1.0 + c_1 / c_mu).min(1.0 + 2.0 * mu_eff_neg / (mu_eff + 2.0)).min((1.0 - c_1 - c_mu) / (nf * c_mu));
        let neg_weights = raw_neg
            .iter()
            .map(|w| if neg_sum > 0.0 && c_mu > 0.0 { scale * w.min(0.0) / neg_sum } else { 0.0 })
            .collect();
        Params { lambda, weights, neg_weights, mu_eff, c_sigma, d_sigma, c_c, c_1, c_mu, chi_n }
    }
}

/// The state of one run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Strategy {
    pub(crate) params: Params,
    pub(crate) mean: Vec<f64>,
    pub(crate) sigma: f64,
    c: Matrix,
    /// Eigenvectors of `C` (columns) and the square roots of its eigenvalues.
    b: Matrix,
    d: Vec<f64>,
    p_sigma: Vec<f64>,
    p_c: Vec<f64>,
    /// Generations told in this run.
    pub(crate) generation: u64,
    /// The best score of the run and the generation that first reached it.
    best: f64,
    best_generation: u64,
}

impl Strategy {
    pub(crate) fn new(mean: Vec<f64>, sigma: f64, lambda: usize) -> Strategy {
        let n = mean.len();
        Strategy {
            params: Params::new(n, lambda),
            mean,
            sigma,
            c: Matrix::identity(n),
            b: Matrix::identity(n),
            d: vec![1.0; n],
            p_sigma: vec![0.0; n],
            p_c: vec![0.0; n],
            generation: 0,
            best: f64::NEG_INFINITY,
            best_generation: 0,
        }
    }

    fn n(&self) -> usize {
        self.mean.len()
    }

    /// One draw of `N(m, σ² C)` inside `[0, 1]^n`: up to 100 draws, then the last one clipped.
    pub(crate) fn sample(&self, rng: &mut Rng) -> Vec<f64> {
        let mut x = Vec::new();
        for _ in 0..100 {
            let z: Vec<f64> = (0..self.n()).map(|_| ndtri(unit(rng) + f64::EPSILON / 4.0)).collect();
            let dz: Vec<f64> = z.iter().zip(&self.d).map(|(z, d)| z * d).collect();
            let y = self.b.mul(&dz);
            x = self.mean.iter().zip(&y).map(|(m, y)| m + self.sigma * y).collect();
            if x.iter().all(|v| (0.0..=1.0).contains(v)) {
                return x;
            }
        }
        x.iter().map(|v| v.clamp(0.0, 1.0)).collect()
    }

    /// `C^{-1/2} y`.
    fn inv_sqrt(&self, y: &[f64]) -> Vec<f64> {
        let t: Vec<f64> = self.b.mul_t(y).iter().zip(&self.d).map(|(v, d)| v / d).collect();
        self.b.mul(&t)
    }

    /// Updates the run with one generation: `ranked` holds its λ points, best first, each with
    /// whether it is an exact draw of the distribution (else rounded, clipped or filled in), the
    /// first `scored` of them with a finite score (the rest, failed trials, get no negative
    /// weight: a crash says nothing about the direction), and `best_score` the generation's best.
    pub(crate) fn tell(&mut self, ranked: &[(Vec<f64>, bool)], scored: usize, best_score: f64) {
        let n = self.n();
        let nf = n as f64;
        let p = &self.params;
        // Steps of the selected points; those that are not exact draws are cut to at most
        // `sqrt(n) + 2n / (n + 2)` in the distribution's metric (the tutorial's rule for
        // injected solutions).
        let c_y = nf.sqrt() + 2.0 * nf / (nf + 2.0);
        let ys: Vec<Vec<f64>> = ranked
            .iter()
            .take(p.weights.len() + p.neg_weights.len())
            .map(|(x, exact)| {
                let y: Vec<f64> = x.iter().zip(&self.mean).map(|(x, m)| (x - m) / self.sigma).collect();
                if *exact {
                    return y;
                }
                let norm = self.inv_sqrt(&y).iter().map(|v| v * v).sum::<f64>().sqrt();
                let f = if norm > c_y { c_y / norm } else { 1.0 };
                y.into_iter().map(|v| v * f).collect()
            })
            .collect();
        let mut y_w = vec![0.0; n];
        for (w, y) in p.weights.iter().zip(&ys) {
            for (a, v) in y_w.iter_mut().zip(y) {
                *a += w * v;
            }
        }
        for (m, y) in self.mean.iter_mut().zip(&y_w) {
            *m += self.sigma * y;
        }
        let cs = (p.c_sigma * (2.0 - p.c_sigma) * p.mu_eff).sqrt();
        let inv = self.inv_sqrt(&y_w);
        for (ps, v) in self.p_sigma.iter_mut().zip(&inv) {
            *ps = (1.0 - p.c_sigma) * *ps + cs * v;
        }
        self.generation += 1;
        let ps_norm = self.p_sigma.iter().map(|v| v * v).sum::<f64>().sqrt();
        let damp = (1.0 - (1.0 - p.c_sigma).powi(2 * self.generation.min(1 << 20) as i32)).sqrt();
        let h_sigma = ps_norm / damp < (1.4 + 2.0 / (nf + 1.0)) * p.chi_n;
        let cc = (p.c_c * (2.0 - p.c_c) * p.mu_eff).sqrt();
        for (pc, y) in self.p_c.iter_mut().zip(&y_w) {
            *pc = (1.0 - p.c_c) * *pc + if h_sigma { cc * y } else { 0.0 };
        }
        let delta = if h_sigma { 0.0 } else { p.c_c * (2.0 - p.c_c) };
        // Every weight in the rank-μ update; a negative one is rescaled by n / ‖C^{-1/2} y‖²
        // (the tutorial's w°), so that long bad steps cannot make C indefinite.
        let w_all: Vec<f64> = p
            .weights
            .iter()
            .copied()
            .chain(p.neg_weights.iter().zip(ys.iter().enumerate().skip(p.weights.len())).map(|(w, (i, y))| {
                let norm2 = self.inv_sqrt(y).iter().map(|v| v * v).sum::<f64>();
                if norm2 > 0.0 && i < scored {
                    w * nf / norm2
                } else {
                    0.0
                }
            }))
            .collect();
        let w_sum: f64 = p.weights.iter().chain(&p.neg_weights).take(ys.len().min(scored.max(p.weights.len()))).sum();
        let keep = 1.0 + p.c_1 * delta - p.c_1 - p.c_mu * w_sum;
        for i in 0..n {
            for j in 0..n {
                let rank_mu: f64 = w_all.iter().zip(&ys).map(|(w, y)| w * y[i] * y[j]).sum();
                let c = &mut self.c.a[i * n + j];
                *c = keep * *c + p.c_1 * self.p_c[i] * self.p_c[j] + p.c_mu * rank_mu;
            }
        }
        self.sigma *= ((p.c_sigma / p.d_sigma) * (ps_norm / p.chi_n - 1.0)).exp();
        let (vals, vecs) = symmetric_eigen(&self.c);
        self.d = vals.iter().map(|v| v.max(f64::MIN_POSITIVE).sqrt()).collect();
        self.b = vecs;
        if best_score > self.best {
            self.best = best_score;
            self.best_generation = self.generation;
        }
    }

    /// Whether the run should end, and why.
    pub(crate) fn stop(&self) -> Option<Stop> {
        let n = self.n();
        let max_sd = (0..n).map(|i| self.c.at(i, i).max(0.0).sqrt()).fold(0.0, f64::max);
        let spread = self.sigma * max_sd;
        if spread.is_nan() || spread < 1e-12 {
            return Some(Stop::TolX);
        }
        let (lo, hi) = self.d.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), d| (lo.min(d * d), hi.max(d * d)));
        if hi.is_nan() || hi > 1e14 * lo {
            return Some(Stop::Condition);
        }
        let patience = 10 + (30.0 * n as f64 / self.params.lambda as f64).ceil() as u64;
        if self.generation - self.best_generation > patience {
            return Some(Stop::Stagnation);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn constants_follow_the_tutorial() {
        // n = 10, λ = 10: μ = 5, μ_eff ≈ 3.17 (the tutorial's default population for n = 10).
        let p = Params::new(10, 10);
        assert_eq!(p.weights.len(), 5);
        assert!((p.weights.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!((p.mu_eff - 3.1672992).abs() < 1e-6, "{}", p.mu_eff);
        assert!((p.chi_n - 3.0847).abs() < 1e-3);
        assert!(p.c_1 + p.c_mu <= 1.0 && p.c_sigma < 1.0 && p.d_sigma > 1.0);
        // The negative weights (the tutorial's (53)), computed by hand for n = 10, λ = 10: w'_i =
        // ln 5.5 - ln i for i = 6..10, scaled to sum to -α with α = min(1 + c_1/c_μ ≈ 1.7583,
        // 1 + 2 μ⁻_eff/(μ_eff + 2) ≈ 2.5440, (1 - c_1 - c_μ)/(n c_μ) ≈ 4.7859).
        let want =
            [-0.08532086250759853, -0.236476601148097, -0.3674136577116645, -0.4829083267842344, -0.5862218287788354];
        assert_eq!(p.neg_weights.len(), 5);
        for (got, want) in p.neg_weights.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert!((p.neg_weights.iter().sum::<f64>() + 1.7583412769304299).abs() < 1e-12);
    }

    #[test]
    fn each_stop_criterion() {
        let fresh = || Strategy::new(vec![0.5, 0.5], 0.2, 6);
        assert_eq!(fresh().stop(), None);
        let mut s = fresh();
        s.sigma = 1e-13;
        assert_eq!(s.stop(), Some(Stop::TolX));
        let mut s = fresh();
        s.d = vec![1.0, 1e-7 * 0.99];
        assert_eq!(s.stop(), Some(Stop::Condition));
        let mut s = fresh();
        s.generation = 10 + 10 + 1;
        assert_eq!(s.stop(), Some(Stop::Stagnation));
        s.generation -= 1;
        assert_eq!(s.stop(), None);
    }

    #[test]
    fn samples_stay_in_the_cube_and_tell_moves_towards_the_best() {
        let mut s = Strategy::new(vec![0.5, 0.5], 0.3, 6);
        let mut rng = Rng::seed_from_u64(4);
        for _ in 0..30 {
            let mut xs: Vec<Vec<f64>> = (0..6).map(|_| s.sample(&mut rng)).collect();
            assert!(xs.iter().flatten().all(|v| (0.0..=1.0).contains(v)));
            xs.sort_by(|a, b| a[0].total_cmp(&b[0]));
            let ranked: Vec<(Vec<f64>, bool)> = xs.into_iter().map(|x| (x, true)).collect();
            let best = -ranked[0].0[0];
            s.tell(&ranked, ranked.len(), best);
        }
        assert!(s.mean[0] < 0.05, "mean {:?}", s.mean);
    }
}
