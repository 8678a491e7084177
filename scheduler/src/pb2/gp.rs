//! A Gaussian process with PB2's time-varying squared-exponential kernel (Parker-Holder et al.
//! 2020, after Bogunovic et al. 2016), as Ray's `TV_SquaredExp`:
//!
//! `k(a, b) = variance · exp(-|a_s - b_s|² / lengthscale) · (1 - epsilon)^(|a_t - b_t| / 2)`
//!
//! where column 0 of an input is time and the rest are the spatial coordinates. The kernel's
//! hyperparameters are fitted by maximising the log marginal likelihood with argmin's L-BFGS,
//! in log space inside Ray's bounds. Unlike Ray's scikit-learn port (fixed 1e-10 jitter), the
//! observation noise is a fitted hyperparameter as in the GPy model of the original PB2 code,
//! which keeps the fit well-conditioned on noisy, repeated points.

use hyperfleet_searchers::lbfgs;

/// The kernel's hyperparameters plus the observation noise variance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Hyper {
    /// Signal variance.
    pub variance: f64,
    /// Squared-exponential length scale (dividing the squared distance, as in Ray).
    pub lengthscale: f64,
    /// Forgetting rate over time, in (0, 0.5].
    pub epsilon: f64,
    /// Observation noise variance.
    pub noise: f64,
}

/// Bounds of `[variance, lengthscale, epsilon, noise]` (Ray's for the first three). The noise
/// floor (the targets are standardised) keeps exact repeats, such as a cloned trial retracing
/// its donor, from being read as noise-free and collapsing the fit onto them.
const BOUNDS: [(f64, f64); 4] = [(1e-5, 1e5), (1e-5, 1e5), (1e-5, 0.5), (1e-3, 10.0)];

impl Hyper {
    fn to_array(self) -> [f64; 4] {
        [self.variance, self.lengthscale, self.epsilon, self.noise]
    }

    fn from_array(a: [f64; 4]) -> Self {
        Hyper { variance: a[0], lengthscale: a[1], epsilon: a[2], noise: a[3] }
    }
}

/// The kernel between two inputs (time first).
pub(crate) fn kernel(h: &Hyper, a: &[f64], b: &[f64]) -> f64 {
    let dt = (a[0] - b[0]).abs();
    let d2: f64 = a[1..].iter().zip(&b[1..]).map(|(x, y)| (x - y) * (x - y)).sum();
    h.variance * (-d2 / h.lengthscale).exp() * (1.0 - h.epsilon).powf(0.5 * dt)
}

/// A GP conditioned on its training data.
#[derive(Clone, Debug)]
pub(crate) struct Gp {
    x: Vec<Vec<f64>>,
    h: Hyper,
    /// Lower Cholesky factor of `K + noise·I`, row-major.
    chol: Vec<f64>,
    /// `(K + noise·I)⁻¹ y`.
    alpha: Vec<f64>,
}

impl Gp {
    /// Conditions on `(x, y)` with hyperparameters `h`; `None` when the matrix is not positive
    /// definite even with added jitter.
    pub fn new(x: Vec<Vec<f64>>, y: &[f64], h: Hyper) -> Option<Gp> {
        let chol = factor(&Pairs::new(&x).kernel(&h), x.len(), h.noise)?;
        let alpha = solve(&chol, x.len(), y);
        Some(Gp { x, h, chol, alpha })
    }

    /// How many training points.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Posterior mean and latent variance at `xs`, with their gradients along the coordinates
    /// `from..` of the input (spatial coordinates, never time).
    #[cfg(test)]
    pub fn predict(&self, xs: &[f64], from: usize) -> Prediction {
        let k = self.cross(xs);
        let (mean, mean_grad) = self.mean_with(xs, from, &k);
        let (var, var_grad) = self.var_with(xs, from, &k);
        Prediction { mean, var, mean_grad, var_grad }
    }

    /// Posterior mean at `xs` and its gradient along `from..`.
    pub fn mean(&self, xs: &[f64], from: usize) -> (f64, Vec<f64>) {
        self.mean_with(xs, from, &self.cross(xs))
    }

    /// Posterior latent variance at `xs` and its gradient along `from..`.
    pub fn var(&self, xs: &[f64], from: usize) -> (f64, Vec<f64>) {
        self.var_with(xs, from, &self.cross(xs))
    }

    fn cross(&self, xs: &[f64]) -> Vec<f64> {
        self.x.iter().map(|xi| kernel(&self.h, xs, xi)).collect()
    }

    /// `d k_i / d xs_(from + j) = k_i · (-2 (xs - x_i) / lengthscale)` along that coordinate.
    fn dk(&self, xs: &[f64], k: &[f64], i: usize, c: usize) -> f64 {
        k[i] * (-2.0 * (xs[c] - self.x[i][c]) / self.h.lengthscale)
    }

    fn mean_with(&self, xs: &[f64], from: usize, k: &[f64]) -> (f64, Vec<f64>) {
        let mean = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let grad = (from..xs.len()).map(|c| (0..k.len()).map(|i| self.alpha[i] * self.dk(xs, k, i, c)).sum()).collect();
        (mean, grad)
    }

    fn var_with(&self, xs: &[f64], from: usize, k: &[f64]) -> (f64, Vec<f64>) {
        let w = solve(&self.chol, k.len(), k);
        let var = self.h.variance - k.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
        let grad =
            (from..xs.len()).map(|c| -2.0 * (0..k.len()).map(|i| w[i] * self.dk(xs, k, i, c)).sum::<f64>()).collect();
        (var.max(0.0), grad)
    }
}

/// A posterior prediction at one point.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Prediction {
    /// Posterior mean.
    pub mean: f64,
    /// Posterior variance of the latent function (no observation noise), at least 0.
    pub var: f64,
    /// Gradient of the mean.
    pub mean_grad: Vec<f64>,
    /// Gradient of the variance.
    pub var_grad: Vec<f64>,
}

/// Hyperparameter-free pieces of the kernel matrix: squared spatial distances and time gaps.
pub(crate) struct Pairs {
    n: usize,
    d2: Vec<f64>,
    dt: Vec<f64>,
}

impl Pairs {
    /// The pairwise pieces of `x` (time first).
    pub fn new(x: &[Vec<f64>]) -> Self {
        let n = x.len();
        let (mut d2, mut dt) = (vec![0.0; n * n], vec![0.0; n * n]);
        for i in 0..n {
            for j in 0..i {
                let d: f64 = x[i][1..].iter().zip(&x[j][1..]).map(|(a, b)| (a - b) * (a - b)).sum();
                let t = (x[i][0] - x[j][0]).abs();
                (d2[i * n + j], d2[j * n + i], dt[i * n + j], dt[j * n + i]) = (d, d, t, t);
            }
        }
        Pairs { n, d2, dt }
    }

    /// The kernel matrix (without noise) for `h`.
    fn kernel(&self, h: &Hyper) -> Vec<f64> {
        let decay = 0.5 * (1.0 - h.epsilon).ln();
        self.d2.iter().zip(&self.dt).map(|(d2, dt)| h.variance * (-d2 / h.lengthscale + decay * dt).exp()).collect()
    }
}

/// Cholesky of `kf + noise·I`, adding jitter (1e-10, 1e-9, ...) when needed.
fn factor(kf: &[f64], n: usize, noise: f64) -> Option<Vec<f64>> {
    let mut jitter = 0.0;
    for _ in 0..6 {
        let mut m = kf.to_vec();
        for i in 0..n {
            m[i * n + i] += noise + jitter;
        }
        if let Some(l) = cholesky(m, n) {
            return Some(l);
        }
        jitter = if jitter == 0.0 { 1e-10 } else { jitter * 10.0 };
    }
    None
}

/// The inverse of a lower-triangular `n × n` matrix (lower triangular too).
fn invert_lower(l: &[f64], n: usize) -> Vec<f64> {
    let mut inv = vec![0.0; n * n];
    for j in 0..n {
        inv[j * n + j] = 1.0 / l[j * n + j];
        for i in j + 1..n {
            let s: f64 = (j..i).map(|k| l[i * n + k] * inv[k * n + j]).sum();
            inv[i * n + j] = -s / l[i * n + i];
        }
    }
    inv
}

/// In-place lower Cholesky factor of a symmetric `n × n` matrix; `None` if not positive definite.
pub(crate) fn cholesky(mut a: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
        for i in 0..j {
            a[i * n + j] = 0.0;
        }
    }
    Some(a)
}

/// Solves `L Lᵀ x = b` given the lower factor `L`.
pub(crate) fn solve(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut z = b.to_vec();
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * z[k]).sum();
        z[i] = (z[i] - s) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * z[k]).sum();
        z[i] = (z[i] - s) / l[i * n + i];
    }
    z
}

/// Negative log marginal likelihood and its gradient in the log hyperparameters.
pub(crate) fn nll(p: &Pairs, y: &[f64], h: &Hyper) -> Option<(f64, [f64; 4])> {
    let n = p.n;
    let kf = p.kernel(h);
    let l = factor(&kf, n, h.noise)?;
    let alpha = solve(&l, n, y);
    let logdet: f64 = (0..n).map(|i| l[i * n + i].ln()).sum();
    let fit: f64 = y.iter().zip(&alpha).map(|(a, b)| a * b).sum();
    let value = 0.5 * fit + logdet + 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
    // ∂nll/∂θ = -½ Σ_ij (αα' - K⁻¹)_ij ∂K_ij/∂θ, with K⁻¹ = L⁻' L⁻¹, over the lower half.
    let linv = invert_lower(&l, n);
    let mut grad = [0.0; 4];
    let eps_factor = -h.epsilon / (1.0 - h.epsilon);
    for i in 0..n {
        for j in 0..=i {
            let kinv: f64 = (i..n).map(|k| linv[k * n + i] * linv[k * n + j]).sum();
            let twice = if i == j { 1.0 } else { 2.0 };
            let w = twice * (alpha[i] * alpha[j] - kinv);
            let (kf, d2, dt) = (kf[i * n + j], p.d2[i * n + j], p.dt[i * n + j]);
            grad[0] += w * kf;
            grad[1] += w * kf * d2 / h.lengthscale;
            grad[2] += w * kf * 0.5 * dt * eps_factor;
            if i == j {
                grad[3] += w * h.noise;
            }
        }
    }
    Some((value, grad.map(|g| -0.5 * g)))
}

/// Fits the hyperparameters by maximum marginal likelihood: L-BFGS from two starts (variance 1,
/// length scale 1, epsilon 0.1 as Ray; noise 1 and 0.01), each coordinate mapped smoothly into
/// its log bounds; the best point evaluated wins.
pub(crate) fn fit(x: &[Vec<f64>], y: &[f64]) -> Hyper {
    let lo: Vec<f64> = BOUNDS.iter().map(|b| b.0.ln()).collect();
    let hi: Vec<f64> = BOUNDS.iter().map(|b| b.1.ln()).collect();
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let to_hyper = |z: &[f64]| {
        let mut a = [0.0; 4];
        for i in 0..4 {
            a[i] = (lo[i] + (hi[i] - lo[i]) * sigmoid(z[i])).exp();
        }
        Hyper::from_array(a)
    };
    let pairs = Pairs::new(x);
    let objective = |z: &[f64]| -> Option<(f64, Vec<f64>)> {
        let h = to_hyper(z);
        let (v, g) = nll(&pairs, y, &h)?;
        let gz = (0..4).map(|i| g[i] * (hi[i] - lo[i]) * sigmoid(z[i]) * (1.0 - sigmoid(z[i]))).collect();
        Some((v, gz))
    };
    let mut best: Option<(f64, Vec<f64>)> = None;
    for noise in [1.0, 0.01] {
        let start = Hyper { variance: 1.0, lengthscale: 1.0, epsilon: 0.1, noise }.to_array();
        let z0: Vec<f64> = (0..4)
            .map(|i| {
                let u = (start[i].ln() - lo[i]) / (hi[i] - lo[i]);
                (u / (1.0 - u)).ln()
            })
            .collect();
        if let Some((v, z)) = lbfgs::minimize_unscaled(&objective, z0, 40, 1e-7, 1e-6) {
            let better = match &best {
                Some((b, _)) => v < *b,
                None => true,
            };
            if better {
                best = Some((v, z));
            }
        }
    }
    best.map_or(Hyper { variance: 1.0, lengthscale: 1.0, epsilon: 0.1, noise: 1.0 }, |(_, z)| to_hyper(&z))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Hyper = Hyper { variance: 1.0, lengthscale: 1.0, epsilon: 0.1, noise: 0.01 };

    #[test]
    fn kernel_by_hand() {
        // Same time: exp(-1); one time unit apart: exp(-1) · 0.9^0.5.
        assert!((kernel(&H, &[0.0, 0.0], &[0.0, 1.0]) - (-1.0f64).exp()).abs() < 1e-15);
        let k = kernel(&H, &[0.0, 0.0], &[1.0, 1.0]);
        assert!((k - (-1.0f64).exp() * 0.9f64.sqrt()).abs() < 1e-15);
        let h2 = Hyper { variance: 2.0, lengthscale: 0.5, ..H };
        assert!((kernel(&h2, &[0.0, 0.0, 0.0], &[0.0, 0.5, 0.5]) - 2.0 * (-1.0f64).exp()).abs() < 1e-15);
    }

    #[test]
    fn posterior_matches_a_hand_computation() {
        // Points s = 0 and s = 1 at time 0, y = (1, -1); K = [[1.01, e⁻¹], [e⁻¹, 1.01]].
        let gp = Gp::new(vec![vec![0.0, 0.0], vec![0.0, 1.0]], &[1.0, -1.0], H).unwrap();
        let (a, b) = (1.01, (-1.0f64).exp());
        let det = a * a - b * b;
        // At s = 0.25: k* = (e^-0.0625, e^-0.5625).
        let (k1, k2) = ((-0.0625f64).exp(), (-0.5625f64).exp());
        // K⁻¹ = [[a, -b], [-b, a]] / det.
        let w1 = (a * k1 - b * k2) / det;
        let w2 = (-b * k1 + a * k2) / det;
        let mean = w1 - w2;
        let var = 1.0 - (k1 * w1 + k2 * w2);
        let p = gp.predict(&[0.0, 0.25], 1);
        assert!((p.mean - mean).abs() < 1e-9, "{} vs {mean}", p.mean);
        assert!((p.var - var).abs() < 1e-9, "{} vs {var}", p.var);
        // The middle point is symmetric: mean 0; gradient of mean along s matches a difference.
        let mid = gp.predict(&[0.0, 0.5], 1);
        assert!(mid.mean.abs() < 1e-12);
        let e = 1e-6;
        let fd = (gp.predict(&[0.0, 0.25 + e], 1).mean - gp.predict(&[0.0, 0.25 - e], 1).mean) / (2.0 * e);
        assert!((p.mean_grad[0] - fd).abs() < 1e-6);
        let fd = (gp.predict(&[0.0, 0.25 + e], 1).var - gp.predict(&[0.0, 0.25 - e], 1).var) / (2.0 * e);
        assert!((p.var_grad[0] - fd).abs() < 1e-6);
    }

    #[test]
    fn time_decay_raises_the_variance_of_old_points() {
        let x = vec![vec![0.0, 0.5]];
        let gp = Gp::new(x, &[1.0], Hyper { noise: 1e-6, ..H }).unwrap();
        let now = gp.predict(&[0.0, 0.5], 1);
        let later = gp.predict(&[1.0, 0.5], 1);
        // k* = 0.9^0.5 one unit later: var = 1 - 0.9 / (1 + 1e-6).
        assert!((later.var - (1.0 - 0.9 / (1.0 + 1e-6))).abs() < 1e-9);
        assert!(now.var < 1e-5 && later.var > 0.09);
    }

    #[test]
    fn nll_gradient_matches_differences() {
        let x: Vec<Vec<f64>> = (0..6).map(|i| vec![i as f64 / 5.0, (i * 7 % 5) as f64 / 4.0, 0.3]).collect();
        let y = [0.5, -1.0, 0.2, 1.5, -0.3, 0.0];
        let h = Hyper { variance: 1.3, lengthscale: 0.7, epsilon: 0.2, noise: 0.05 };
        let p = Pairs::new(&x);
        let (_, g) = nll(&p, &y, &h).unwrap();
        let a = h.to_array();
        for i in 0..4 {
            let e = 1e-6;
            let (mut up, mut down) = (a, a);
            up[i] = (a[i].ln() + e).exp();
            down[i] = (a[i].ln() - e).exp();
            let fd = (nll(&p, &y, &Hyper::from_array(up)).unwrap().0
                - nll(&p, &y, &Hyper::from_array(down)).unwrap().0)
                / (2.0 * e);
            assert!((g[i] - fd).abs() < 1e-5, "param {i}: {} vs {fd}", g[i]);
        }
    }

    #[test]
    fn fit_improves_the_likelihood_and_stays_in_bounds() {
        let x: Vec<Vec<f64>> = (0..12).map(|i| vec![0.0, 0.5, i as f64 / 11.0]).collect();
        let y: Vec<f64> = x.iter().map(|p| (6.0 * p[2]).sin()).collect();
        let h = fit(&x, &y);
        let start = Hyper { variance: 1.0, lengthscale: 1.0, epsilon: 0.1, noise: 1.0 };
        let p = Pairs::new(&x);
        assert!(nll(&p, &y, &h).unwrap().0 < nll(&p, &y, &start).unwrap().0);
        for (v, (lo, hi)) in h.to_array().into_iter().zip(BOUNDS) {
            assert!((lo * 0.999..=hi * 1.001).contains(&v), "{v} outside [{lo}, {hi}]");
        }
        assert!(h.noise < 0.05, "a smooth noiseless curve: {h:?}");
        assert_eq!(fit(&x, &y), h, "deterministic");
    }

    #[test]
    fn cholesky_and_solve() {
        let l = cholesky(vec![4.0, 2.0, 2.0, 3.0], 2).unwrap();
        assert_eq!(l, vec![2.0, 0.0, 1.0, 2.0f64.sqrt()]);
        let x = solve(&l, 2, &[2.0, 1.0]);
        assert!((4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-12 && (2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-12);
        assert_eq!(cholesky(vec![1.0, 2.0, 2.0, 1.0], 2), None);
    }
}
