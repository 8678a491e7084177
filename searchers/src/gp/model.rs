//! The Gaussian process: a Matérn-5/2 ARD kernel, its hyperparameters fitted by MAP, and the
//! posterior at new points with gradients.
//!
//! `k(a, b) = scale · m(Σ_j ρ_j (a_j - b_j)²)`, `m(d²) = (1 + r + r²/3) e^{-r}` with
//! `r = sqrt(5 d²)`, where `ρ_j = 1 / ℓ_j²` is the inverse squared length scale of coordinate
//! `j`; observations carry Gaussian noise of variance `noise >= MIN_NOISE`.
//!
//! The fit maximises `log p(y | θ) + log prior(θ)` over `θ = (ln ρ_1.., ln scale, ln(noise -
//! MIN_NOISE))` with L-BFGS and the analytic gradient `½ tr((α αᵀ - K⁻¹) ∂K/∂θ)`. The priors are
//! the heuristic ones Optuna's `GPSampler` uses (densities over the parameters themselves):
//! `-(0.1/ρ + 0.1 ρ)` on each inverse squared length scale (favouring length scales near the
//! unit cube's side), Gamma(2, rate 1) on the scale and Gamma(1.1, rate 30) on the noise, which
//! keeps it small unless the data insist.

use super::linalg::{cholesky, inverse_from_cholesky, solve_lower, solve_upper};
use crate::lbfgs;

/// The noise variance floor (the targets are standardised).
pub(crate) const MIN_NOISE: f64 = 1e-6;

/// The posterior variance floor, so that `ln σ` stays finite at observed points.
const MIN_VAR: f64 = 1e-12;

/// L-BFGS iterations of one fit at most.
const FIT_ITERS: u64 = 100;

/// Evaluations of the log posterior (each `O(n³)`) in one fit at most.
const FIT_EVALS: u64 = 150;

/// `ln(2π)`.
const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The Matérn-5/2 correlation at scaled squared distance `d2`, and its derivative in `d2`.
pub(crate) fn matern52(d2: f64) -> (f64, f64) {
    let r = (5.0 * d2).sqrt();
    let e = (-r).exp();
    ((1.0 + r + r * r / 3.0) * e, -5.0 / 6.0 * (1.0 + r) * e)
}

/// The kernel's hyperparameters and the noise variance.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hyper {
    /// Per input coordinate, `1 / length_scale²`.
    pub(crate) inv_sq_ls: Vec<f64>,
    /// Signal variance.
    pub(crate) scale: f64,
    /// Observation noise variance.
    pub(crate) noise: f64,
}

impl Hyper {
    /// The default start: unit length scales and signal variance, noise 0.01 (`MIN_NOISE`
    /// when it is not fitted).
    pub(crate) fn initial(d: usize, fit_noise: bool) -> Hyper {
        Hyper { inv_sq_ls: vec![1.0; d], scale: 1.0, noise: if fit_noise { 1e-2 } else { MIN_NOISE } }
    }

    /// The fitted parameters: `ln ρ`, `ln scale`, and `ln(noise - MIN_NOISE)` when fitted.
    pub(crate) fn raw(&self, fit_noise: bool) -> Vec<f64> {
        let mut raw: Vec<f64> = self.inv_sq_ls.iter().map(|r| r.ln()).collect();
        raw.push(self.scale.ln());
        if fit_noise {
            raw.push((self.noise - MIN_NOISE).max(1e-300).ln());
        }
        raw
    }

    /// The inverse of [`Hyper::raw`] for `d` input coordinates.
    pub(crate) fn from_raw(raw: &[f64], d: usize, fit_noise: bool) -> Hyper {
        Hyper {
            inv_sq_ls: raw[..d].iter().map(|r| r.exp()).collect(),
            scale: raw[d].exp(),
            noise: if fit_noise { raw[d + 1].exp() + MIN_NOISE } else { MIN_NOISE },
        }
    }
}

/// `Σ_j ρ_j (a_j - b_j)²`.
fn dist2(a: &[f64], b: &[f64], rho: &[f64]) -> f64 {
    a.iter().zip(b).zip(rho).map(|((x, y), r)| r * (x - y) * (x - y)).sum()
}

/// The log prior of the hyperparameters and its gradient in the raw parameters.
fn log_prior(h: &Hyper, fit_noise: bool) -> (f64, Vec<f64>) {
    let mut grad = Vec::with_capacity(h.inv_sq_ls.len() + 2);
    let mut lp = 0.0;
    for &r in &h.inv_sq_ls {
        lp -= 0.1 / r + 0.1 * r;
        grad.push(0.1 / r - 0.1 * r);
    }
    lp += h.scale.ln() - h.scale;
    grad.push(1.0 - h.scale);
    if fit_noise {
        lp += 0.1 * h.noise.ln() - 30.0 * h.noise;
        grad.push((0.1 / h.noise - 30.0) * (h.noise - MIN_NOISE));
    }
    (lp, grad)
}

/// The negative log posterior `-(log p(y | θ) + log prior(θ))` of the raw parameters and its
/// gradient; `None` where the kernel matrix cannot be factored.
pub(crate) fn neg_log_posterior(x: &[Vec<f64>], y: &[f64], raw: &[f64], fit_noise: bool) -> Option<(f64, Vec<f64>)> {
    let d = raw.len() - 1 - usize::from(fit_noise);
    // Length scales and signal variance stay within e^±60; the noise may sink to its floor.
    let bounded = raw[..=d].iter().all(|v| v.abs() <= 60.0) && raw[d + 1..].iter().all(|v| *v <= 60.0);
    if !bounded {
        return None;
    }
    let h = Hyper::from_raw(raw, d, fit_noise);
    let n = x.len();
    // The kernel matrix with noise, and m'(d²) per pair (lower triangle).
    let mut a = vec![0.0; n * n];
    let mut dm = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..i {
            let (m, dmv) = matern52(dist2(&x[i], &x[j], &h.inv_sq_ls));
            a[i * n + j] = h.scale * m;
            a[j * n + i] = h.scale * m;
            dm[i * n + j] = dmv;
        }
        a[i * n + i] = h.scale + h.noise;
    }
    let l = cholesky(&a, n)?;
    let mut alpha = y.to_vec();
    solve_lower(&l, n, &mut alpha);
    let quad: f64 = alpha.iter().map(|v| v * v).sum();
    solve_upper(&l, n, &mut alpha);
    let half_logdet: f64 = (0..n).map(|i| l[i * n + i].ln()).sum();
    let lml = -0.5 * quad - half_logdet - 0.5 * n as f64 * LN_2PI;
    let inv = inverse_from_cholesky(&l, n);
    // W = α αᵀ - K⁻¹; d lml / dθ = ½ Σ_ab W_ab ∂K_ab/∂θ.
    let mut grad = vec![0.0; raw.len()];
    let (mut g_scale, mut trace_w) = (0.0, 0.0);
    for i in 0..n {
        let wii = alpha[i] * alpha[i] - inv[i * n + i];
        trace_w += wii;
        g_scale += 0.5 * wii * h.scale;
        for j in 0..i {
            let w = alpha[i] * alpha[j] - inv[i * n + j];
            g_scale += w * a[i * n + j];
            let c = w * h.scale * dm[i * n + j];
            for ((g, xi), xj) in grad[..d].iter_mut().zip(&x[i]).zip(&x[j]) {
                *g += c * (xi - xj) * (xi - xj);
            }
        }
    }
    for (g, r) in grad[..d].iter_mut().zip(&h.inv_sq_ls) {
        *g *= r;
    }
    grad[d] = g_scale;
    if fit_noise {
        grad[d + 1] = 0.5 * trace_w * (h.noise - MIN_NOISE);
    }
    let (lp, gp) = log_prior(&h, fit_noise);
    let value = -(lml + lp);
    Some((value, grad.iter().zip(&gp).map(|(g, p)| -(g + p)).collect()))
}

/// The MAP hyperparameters for inputs `x` and standardised targets `y` (zero mean), searched
/// from `start` (the previous fit) when given and defined, else from [`Hyper::initial`]; the
/// initial values themselves if both fail.
pub(crate) fn fit(x: &[Vec<f64>], y: &[f64], start: Option<&Hyper>, d: usize, fit_noise: bool) -> Hyper {
    let f = |z: &[f64]| neg_log_posterior(x, y, z, fit_noise);
    let from = |h: &Hyper| {
        let (_, z) = lbfgs::minimize(&f, h.raw(fit_noise), FIT_ITERS, FIT_EVALS, 1e-2, 1e-9)?;
        Some(Hyper::from_raw(&z, d, fit_noise))
    };
    let initial = Hyper::initial(d, fit_noise);
    start.and_then(from).or_else(|| from(&initial)).unwrap_or(initial)
}

/// A GP conditioned on data: prediction and its gradient at new points.
#[derive(Clone, Debug)]
pub(crate) struct Posterior {
    x: Vec<Vec<f64>>,
    h: Hyper,
    /// The constant prior mean.
    mean: f64,
    /// Lower Cholesky factor of `K + (noise + jitter) I`, row-major.
    l: Vec<f64>,
    /// `(K + (noise + jitter) I)⁻¹ (y - mean)`.
    alpha: Vec<f64>,
}

/// A prediction at one point: mean, latent variance and their gradients along the coordinates asked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Prediction {
    pub(crate) mean: f64,
    pub(crate) var: f64,
    pub(crate) d_mean: Vec<f64>,
    pub(crate) d_var: Vec<f64>,
}

impl Posterior {
    /// Conditions on `(x, y)` with constant mean `mean`; when `K + noise I` cannot be factored,
    /// jitter of `10⁻¹⁰ .. 10⁻²` times the signal variance is added until it can (`None` if never).
    pub(crate) fn new(x: Vec<Vec<f64>>, y: &[f64], mean: f64, h: Hyper) -> Option<Posterior> {
        let n = x.len();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..i {
                let k = h.scale * matern52(dist2(&x[i], &x[j], &h.inv_sq_ls)).0;
                a[i * n + j] = k;
                a[j * n + i] = k;
            }
        }
        for jitter in [0.0, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2] {
            for i in 0..n {
                a[i * n + i] = h.scale + h.noise + jitter * h.scale;
            }
            if let Some(l) = cholesky(&a, n) {
                let mut alpha: Vec<f64> = y.iter().map(|v| v - mean).collect();
                solve_lower(&l, n, &mut alpha);
                solve_upper(&l, n, &mut alpha);
                return Some(Posterior { x, h, mean, l, alpha });
            }
        }
        None
    }

    /// Mean and latent (noise-free) variance at `p`, with their gradients along `cols`.
    pub(crate) fn predict(&self, p: &[f64], cols: &[usize]) -> Prediction {
        let n = self.x.len();
        let h = &self.h;
        let mut k = Vec::with_capacity(n);
        let mut g = Vec::with_capacity(if cols.is_empty() { 0 } else { n });
        for xi in &self.x {
            let (m, dm) = matern52(dist2(p, xi, &h.inv_sq_ls));
            k.push(h.scale * m);
            if !cols.is_empty() {
                g.push(2.0 * h.scale * dm);
            }
        }
        let mean = self.mean + k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum::<f64>();
        let mut v = k;
        solve_lower(&self.l, n, &mut v);
        let raw_var = h.scale - v.iter().map(|x| x * x).sum::<f64>();
        let var = raw_var.max(MIN_VAR);
        if cols.is_empty() {
            return Prediction { mean, var, d_mean: Vec::new(), d_var: Vec::new() };
        }
        // ∂k_i/∂p_c = g_i ρ_c (p_c - x_ic); ∂var/∂p = -2 (K⁻¹k)ᵀ ∂k/∂p.
        let mut w = v;
        solve_upper(&self.l, n, &mut w);
        let mut d_mean = vec![0.0; cols.len()];
        let mut d_var = vec![0.0; cols.len()];
        for (i, xi) in self.x.iter().enumerate() {
            let (am, av) = (self.alpha[i] * g[i], -2.0 * w[i] * g[i]);
            for ((dm, dv), &c) in d_mean.iter_mut().zip(d_var.iter_mut()).zip(cols) {
                let diff = p[c] - xi[c];
                *dm += am * diff;
                *dv += av * diff;
            }
        }
        for ((dm, dv), &c) in d_mean.iter_mut().zip(d_var.iter_mut()).zip(cols) {
            *dm *= h.inv_sq_ls[c];
            *dv = if raw_var > MIN_VAR { *dv * h.inv_sq_ls[c] } else { 0.0 };
        }
        Prediction { mean, var, d_mean, d_var }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matern_at_known_distances() {
        assert_eq!(matern52(0.0), (1.0, -5.0 / 6.0));
        // r = sqrt(5) at unit distance: (1 + √5 + 5/3) e^{-√5}.
        let (m, _) = matern52(1.0);
        assert!((m - 0.523_994_108_831_820_3).abs() < 1e-14, "{m}");
        // d = 2: r = 2√5 = 4.472135955, (1 + r + r²/3) e^{-r} = (1 + 4.472135955 + 6.666666667) e^{-4.472135955}.
        let (m, _) = matern52(4.0);
        assert!((m - 0.138_660_219_138_504_26).abs() < 1e-14, "{m}");
        // Derivative against a central difference.
        for d2 in [0.01, 0.3, 1.0, 4.0] {
            let fd = (matern52(d2 + 1e-6).0 - matern52(d2 - 1e-6).0) / 2e-6;
            assert!((matern52(d2).1 - fd).abs() < 1e-8, "{d2}: {} vs {fd}", matern52(d2).1);
        }
    }

    #[test]
    fn two_point_posterior_by_hand() {
        // x = 0 and 1 (unit length scale, unit scale), y = 1 and -1, noise 0.01.
        let h = Hyper { inv_sq_ls: vec![1.0], scale: 1.0, noise: 0.01 };
        let post = Posterior::new(vec![vec![0.0], vec![1.0]], &[1.0, -1.0], 0.0, h).unwrap();
        let k = 0.523_994_108_831_820_3;
        // K + σ²I = [[1.01, k], [k, 1.01]]; at x = 0: k* = (1, k).
        let det = 1.01 * 1.01 - k * k;
        let inv = [1.01 / det, -k / det, -k / det, 1.01 / det];
        let alpha = [inv[0] - inv[1], inv[2] - inv[3]];
        let mean = alpha[0] + k * alpha[1];
        let var = 1.0 - (inv[0] + 2.0 * k * inv[1] + k * k * inv[3]);
        let p = post.predict(&[0.0], &[]);
        assert!((p.mean - mean).abs() < 1e-12 && (p.var - var).abs() < 1e-12, "{p:?} vs {mean} {var}");
        // Halfway: symmetric, so the mean is 0; k* = (m(0.25), m(0.25)).
        let (kh, _) = matern52(0.25);
        let p = post.predict(&[0.5], &[]);
        let var_mid = 1.0 - 2.0 * kh * kh * (inv[0] + inv[1]);
        assert!(p.mean.abs() < 1e-12 && (p.var - var_mid).abs() < 1e-12, "{p:?} vs {var_mid}");
        // A constant mean shifts the prediction far away from the data.
        let h = Hyper { inv_sq_ls: vec![1.0], scale: 1.0, noise: 0.01 };
        let post = Posterior::new(vec![vec![0.0], vec![1.0]], &[1.0, -1.0], 0.3, h).unwrap();
        let p = post.predict(&[40.0], &[]);
        assert!((p.mean - 0.3).abs() < 1e-12 && (p.var - 1.0).abs() < 1e-12);
    }

    fn data() -> (Vec<Vec<f64>>, Vec<f64>) {
        let x: Vec<Vec<f64>> = (0..9)
            .map(|i| {
                let t = f64::from(i) / 8.0;
                vec![t, (3.0 * t).sin().abs(), 1.0 - t * t]
            })
            .collect();
        let y = x.iter().map(|p| (4.0 * p[0]).sin() + 0.3 * p[1] - 0.5 * p[2]).collect();
        (x, y)
    }

    #[test]
    fn marginal_likelihood_gradient_matches_finite_differences() {
        let (x, y) = data();
        for fit_noise in [true, false] {
            let mut raw = vec![0.3, -0.7, 1.1, -0.2];
            if fit_noise {
                raw.push(-3.0);
            }
            let (_, g) = neg_log_posterior(&x, &y, &raw, fit_noise).unwrap();
            for k in 0..raw.len() {
                let (mut up, mut down) = (raw.clone(), raw.clone());
                up[k] += 1e-6;
                down[k] -= 1e-6;
                let fd = (neg_log_posterior(&x, &y, &up, fit_noise).unwrap().0
                    - neg_log_posterior(&x, &y, &down, fit_noise).unwrap().0)
                    / 2e-6;
                assert!((g[k] - fd).abs() < 1e-5 * (1.0 + fd.abs()), "θ{k}: {} vs {fd}", g[k]);
            }
        }
    }

    #[test]
    fn prediction_gradient_matches_finite_differences() {
        let (x, y) = data();
        let h = Hyper { inv_sq_ls: vec![2.0, 0.5, 3.0], scale: 1.3, noise: 1e-3 };
        let post = Posterior::new(x, &y, 0.1, h).unwrap();
        let p = [0.37, 0.61, 0.2];
        let pred = post.predict(&p, &[0, 2]);
        for (i, &c) in [0usize, 2].iter().enumerate() {
            let (mut up, mut down) = (p, p);
            up[c] += 1e-6;
            down[c] -= 1e-6;
            let (u, d) = (post.predict(&up, &[]), post.predict(&down, &[]));
            let (fm, fv) = ((u.mean - d.mean) / 2e-6, (u.var - d.var) / 2e-6);
            assert!((pred.d_mean[i] - fm).abs() < 1e-6, "{} vs {fm}", pred.d_mean[i]);
            assert!((pred.d_var[i] - fv).abs() < 1e-6, "{} vs {fv}", pred.d_var[i]);
        }
    }

    #[test]
    fn the_fit_improves_the_posterior_and_survives_degenerate_data() {
        let (x, y) = data();
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let y: Vec<f64> = y.iter().map(|v| v - mean).collect();
        let start = Hyper::initial(3, true);
        let h = fit(&x, &y, None, 3, true);
        let at = |h: &Hyper| neg_log_posterior(&x, &y, &h.raw(true), true).unwrap().0;
        assert!(at(&h) < at(&start) - 1.0, "{h:?}");
        // Warm start from the fit stays put.
        let again = fit(&x, &y, Some(&h), 3, true);
        assert!(at(&again) <= at(&h) + 1e-9);
        // All-equal targets and duplicated inputs: finite, no panic.
        let dup = vec![vec![0.5, 0.5]; 6];
        let h = fit(&dup, &[0.0; 6], None, 2, true);
        assert!(h.inv_sq_ls.iter().chain([&h.scale, &h.noise]).all(|v| v.is_finite() && *v > 0.0), "{h:?}");
        let h = fit(&dup, &[0.0; 6], None, 2, false);
        assert_eq!(h.noise, MIN_NOISE);
        assert!(Posterior::new(dup, &[0.0; 6], 0.0, h).is_some());
    }
}
