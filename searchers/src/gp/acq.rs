//! The acquisition function: the log of expected improvement, computed stably far into the
//! region where EI itself underflows (Ament et al. 2023, "Unexpected Improvements to Expected
//! Improvement for Bayesian Optimization", eq. 9).
//!
//! With `z = (μ - best) / σ`, `EI = σ h(z)` where `h(z) = φ(z) + z Φ(z)`. For `z > -1`,
//! `ln h` is computed directly; below, `ln h(z) = -z²/2 - ln √(2π) + log1mexp(ln(erfcx(-z/√2)
//! |z|) + ln √(π/2))`, and below `-1/√ε` its asymptote `-z²/2 - ln √(2π) - 2 ln |z|`.

use super::model::Posterior;
use crate::tpe::{erfc, log_ndtr, ndtr};
use std::f64::consts::SQRT_2;

/// `ln √(2π)`.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
/// `ln √(π/2)`.
const HALF_LN_PI_2: f64 = 0.225_791_352_644_727_43;
/// `1 / √π`.
const FRAC_1_SQRT_PI: f64 = 0.564_189_583_547_756_3;

/// The standard normal density.
fn pdf(z: f64) -> f64 {
    (-0.5 * z * z - HALF_LN_2PI).exp()
}

/// `ln(1 - eˣ)` for `x < 0`, accurate at both ends (Mächler 2012).
fn log1mexp(x: f64) -> f64 {
    if x > -std::f64::consts::LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

/// The scaled complementary error function `e^{u²} erfc(u)` for `u >= 0`.
pub(crate) fn erfcx(u: f64) -> f64 {
    if u < 26.0 {
        return (u * u).exp() * erfc(u);
    }
    // Asymptotic series: (1 / (u √π)) Σ_k (-1)^k (2k - 1)!! / (2u²)^k; 8 terms are exact to
    // rounding from u = 26 on.
    let s = 1.0 / (2.0 * u * u);
    let (mut term, mut sum) = (1.0, 1.0);
    for k in 1..8 {
        term *= -f64::from(2 * k - 1) * s;
        sum += term;
    }
    sum * FRAC_1_SQRT_PI / u
}

/// `ln h(z)`, `h(z) = φ(z) + z Φ(z)`: finite for every finite `z`.
pub(crate) fn log_h(z: f64) -> f64 {
    if z > -1.0 {
        (pdf(z) + z * ndtr(z)).ln()
    } else if z > -1.0 / f64::EPSILON.sqrt() {
        -0.5 * z * z - HALF_LN_2PI + log1mexp((erfcx(-z / SQRT_2) * -z).ln() + HALF_LN_PI_2)
    } else {
        -0.5 * z * z - HALF_LN_2PI - 2.0 * (-z).ln()
    }
}

/// `d ln h(z) / dz = Φ(z) / h(z)`.
pub(crate) fn dlog_h(z: f64) -> f64 {
    if z > -1.0 {
        ndtr(z) / (pdf(z) + z * ndtr(z))
    } else {
        let r = (log_ndtr(z) - log_h(z)).exp();
        if r.is_finite() {
            r
        } else {
            -z
        }
    }
}

/// `ln EI` at a point with posterior mean `mean` and latent variance `var > 0`, over `best`.
pub(crate) fn log_ei(mean: f64, var: f64, best: f64) -> f64 {
    let s = var.sqrt();
    log_h((mean - best) / s) + s.ln()
}

/// Log expected improvement of a posterior over the best standardised observation.
pub(crate) struct LogEi<'a> {
    /// The GP (with any pending points).
    pub(crate) post: &'a Posterior,
    /// The best (highest) standardised score observed.
    pub(crate) best: f64,
}

impl LogEi<'_> {
    /// `ln EI` at `x`.
    pub(crate) fn value(&self, x: &[f64]) -> f64 {
        let p = self.post.predict(x, &[]);
        log_ei(p.mean, p.var, self.best)
    }

    /// `ln EI` at `x` and its gradient along the coordinates `cols`.
    pub(crate) fn value_grad(&self, x: &[f64], cols: &[usize]) -> (f64, Vec<f64>) {
        let p = self.post.predict(x, cols);
        let s = p.var.sqrt();
        let z = (p.mean - self.best) / s;
        let r = dlog_h(z);
        let grad = p
            .d_mean
            .iter()
            .zip(&p.d_var)
            .map(|(dm, dv)| {
                let ds = dv / (2.0 * s);
                ds / s + r * (dm - z * ds) / s
            })
            .collect();
        (log_h(z) + s.ln(), grad)
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Hyper;
    use super::*;

    fn naive_ei(mean: f64, var: f64, best: f64) -> f64 {
        let s = var.sqrt();
        let z = (mean - best) / s;
        s * (pdf(z) + z * ndtr(z))
    }

    #[test]
    fn log_ei_equals_the_naive_log_where_ei_is_not_tiny() {
        for &(mean, var, best) in
            &[(0.0, 1.0, 0.0), (1.0, 0.25, 0.2), (-1.0, 2.0, 1.5), (0.3, 0.01, 0.5), (-2.0, 0.5, 1.0), (5.0, 1.0, 0.0)]
        {
            let (got, want) = (log_ei(mean, var, best), naive_ei(mean, var, best).ln());
            assert!((got - want).abs() < 1e-9 * (1.0 + want.abs()), "{mean} {var} {best}: {got} vs {want}");
        }
        // EI(0) with unit σ: φ(0) = 1/√(2π).
        assert!((log_ei(0.0, 1.0, 0.0) + HALF_LN_2PI).abs() < 1e-15);
        // On both sides of the branch at z = -1, and at the erfcx switch (z = -26 √2).
        for z in [-1.0 - 1e-12, -1.0, -1.0 + 1e-12, -3.0, -5.0] {
            let want = (pdf(z) + z * ndtr(z)).ln();
            assert!((log_h(z) - want).abs() < 1e-8, "{z}: {} vs {want}", log_h(z));
        }
        let edge = 26.0 * SQRT_2;
        assert!((log_h(-edge + 1e-9) - log_h(-edge - 1e-9)).abs() < 1e-6);
        assert!((erfcx(26.0 - 1e-12) - erfcx(26.0)).abs() < 1e-13 * erfcx(26.0));
    }

    #[test]
    fn log_ei_stays_finite_where_ei_underflows() {
        assert_eq!(naive_ei(-50.0, 1.0, 0.0), 0.0);
        let mut last = f64::INFINITY;
        for z in [-5.0, -10.0, -38.0, -40.0, -100.0, -1e4, -1e7, -1e8, -1e150] {
            let v = log_h(z);
            assert!(v.is_finite() && v < last, "{z}: {v}");
            // Asymptote: h(z) ≈ φ(z) / z².
            if z < -100.0 {
                let asym = -0.5 * z * z - HALF_LN_2PI - 2.0 * (-z).ln();
                assert!((v - asym).abs() <= 1e-3 * asym.abs().max(1.0), "{z}: {v} vs {asym}");
            }
            assert!(dlog_h(z).is_finite() && dlog_h(z) > 0.0);
            last = v;
        }
        // The derivative against a central difference, across the branches.
        for z in [3.0, 0.2, -0.9, -1.1, -4.0, -30.0, -50.0] {
            let fd = (log_h(z + 1e-6) - log_h(z - 1e-6)) / 2e-6;
            assert!((dlog_h(z) - fd).abs() < 1e-5 * (1.0 + fd.abs()), "{z}: {} vs {fd}", dlog_h(z));
        }
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let x: Vec<Vec<f64>> = (0..7).map(|i| vec![f64::from(i) / 6.0, (f64::from(i) * 0.7).cos().abs()]).collect();
        let y: Vec<f64> = x.iter().map(|p| (5.0 * p[0]).sin() * p[1]).collect();
        let h = Hyper { inv_sq_ls: vec![4.0, 1.5], scale: 0.8, noise: 1e-4 };
        let post = Posterior::new(x, &y, 0.0, h).unwrap();
        for best in [0.0, 0.5, 3.0] {
            let acq = LogEi { post: &post, best };
            for p in [[0.13, 0.4], [0.5, 0.9], [0.91, 0.05]] {
                let (v, g) = acq.value_grad(&p, &[0, 1]);
                assert_eq!(v, acq.value(&p));
                for c in 0..2 {
                    let (mut up, mut down) = (p, p);
                    up[c] += 1e-6;
                    down[c] -= 1e-6;
                    let fd = (acq.value(&up) - acq.value(&down)) / 2e-6;
                    assert!((g[c] - fd).abs() < 1e-5 * (1.0 + fd.abs()), "{best} {p:?} {c}: {} vs {fd}", g[c]);
                }
            }
        }
    }
}
