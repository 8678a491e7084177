//! The output warp: scores standardised, then Yeo-Johnson power-transformed with the exponent
//! that makes them most Gaussian (maximum likelihood), then standardised again.
//!
//! A GP assumes Gaussian targets. Scores with a long tail (a few disastrous configs among many
//! middling ones, as on Rosenbrock-like objectives or losses that diverge) make the fitted
//! signal variance huge and the good region flat by comparison; the transform with exponent
//! `λ` compresses the tail that is long and stretches the other (`λ = 1` is the identity, so
//! Gaussian scores are left as they were). The transform is monotone, so the best score stays
//! the best. After Yeo and Johnson (2000); HEBO (Cowen-Rivers et al. 2022) does the same.

/// The smallest and largest exponent searched.
const LAMBDA_RANGE: (f64, f64) = (-3.0, 5.0);

/// Scores scaled to zero mean and unit variance (all zeros when they are all equal).
pub(crate) fn standardise(scores: &[f64]) -> Vec<f64> {
    // Divide by the largest magnitude first, so that huge scores cannot overflow the variance.
    let top = scores.iter().fold(0.0f64, |m, s| m.max(s.abs()));
    let top = if top > 0.0 && top.is_finite() { top } else { 1.0 };
    let y: Vec<f64> = scores.iter().map(|s| s / top).collect();
    let n = y.len().max(1) as f64;
    let mean = y.iter().sum::<f64>() / n;
    let sd = (y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
    let sd = if sd > 1e-12 { sd } else { 1.0 };
    y.iter().map(|v| (v - mean) / sd).collect()
}

/// The Yeo-Johnson transform of `x` with exponent `lambda`.
pub(crate) fn yeo_johnson(x: f64, lambda: f64) -> f64 {
    if x >= 0.0 {
        if lambda.abs() < 1e-12 {
            x.ln_1p()
        } else {
            ((lambda * x.ln_1p()).exp() - 1.0) / lambda
        }
    } else if (lambda - 2.0).abs() < 1e-12 {
        -(-x).ln_1p()
    } else {
        -(((2.0 - lambda) * (-x).ln_1p()).exp() - 1.0) / (2.0 - lambda)
    }
}

/// The profile log-likelihood of exponent `lambda` for standardised `z` (up to a constant).
fn log_likelihood(z: &[f64], lambda: f64) -> f64 {
    let n = z.len() as f64;
    let t: Vec<f64> = z.iter().map(|&x| yeo_johnson(x, lambda)).collect();
    let mean = t.iter().sum::<f64>() / n;
    let var = t.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    if !(var > 0.0 && var.is_finite()) {
        return f64::NEG_INFINITY;
    }
    let jacobian: f64 = z.iter().map(|&x| x.signum() * x.abs().ln_1p()).sum();
    -0.5 * n * var.ln() + (lambda - 1.0) * jacobian
}

/// The maximum-likelihood exponent for standardised `z`, in [`LAMBDA_RANGE`]: the best of a
/// grid of 33, refined by golden-section search between its neighbours.
pub(crate) fn fit_lambda(z: &[f64]) -> f64 {
    let (lo, hi) = LAMBDA_RANGE;
    let step = (hi - lo) / 32.0;
    let grid = (0..=32).map(|i| lo + step * i as f64);
    let (mut best, mut best_ll) = (1.0, log_likelihood(z, 1.0));
    for l in grid {
        let ll = log_likelihood(z, l);
        if ll > best_ll {
            (best, best_ll) = (l, ll);
        }
    }
    if !best_ll.is_finite() {
        return 1.0;
    }
    let (mut a, mut b) = ((best - step).max(lo), (best + step).min(hi));
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..40 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if log_likelihood(z, c) >= log_likelihood(z, d) {
            b = d;
        } else {
            a = c;
        }
    }
    let l = 0.5 * (a + b);
    if log_likelihood(z, l) >= best_ll {
        l
    } else {
        best
    }
}

/// Scores as the GP's targets: standardised, warped by the fitted exponent, standardised again.
pub(crate) fn warp(scores: &[f64]) -> Vec<f64> {
    let z = standardise(scores);
    if z.len() < 3 || z.iter().all(|&v| v == 0.0) {
        return z;
    }
    let lambda = fit_lambda(&z);
    standardise(&z.iter().map(|&x| yeo_johnson(x, lambda)).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardise_handles_constant_and_huge_scores() {
        assert_eq!(standardise(&[3.0, 3.0, 3.0]), vec![0.0; 3]);
        let y = standardise(&[1.0, 2.0, 3.0]);
        let want = [-(1.5f64).sqrt(), 0.0, (1.5f64).sqrt()];
        assert!(y.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{y:?}");
        let y = standardise(&[1e300, -1e300]);
        assert_eq!(y, vec![1.0, -1.0]);
        assert_eq!(standardise(&[5.0]), vec![0.0]);
    }

    #[test]
    fn yeo_johnson_by_hand() {
        // λ = 1 is the identity on both sides.
        for x in [-3.0, -0.5, 0.0, 0.7, 4.0] {
            assert!((yeo_johnson(x, 1.0) - x).abs() < 1e-12);
        }
        // λ = 0: ln(1 + x) for x ≥ 0; for x < 0, -((1 - x)^2 - 1) / 2.
        assert!((yeo_johnson(1.0, 0.0) - 2f64.ln()).abs() < 1e-12);
        assert!((yeo_johnson(-1.0, 0.0) - -1.5).abs() < 1e-12);
        // λ = 2: ((1 + x)^2 - 1) / 2 for x ≥ 0; -ln(1 - x) for x < 0.
        assert!((yeo_johnson(1.0, 2.0) - 1.5).abs() < 1e-12);
        assert!((yeo_johnson(-1.0, 2.0) - -(2f64.ln())).abs() < 1e-12);
        // λ = 0.5 at x = 3: (2 - 1) / 0.5 = 2.
        assert!((yeo_johnson(3.0, 0.5) - 2.0).abs() < 1e-12);
        // Monotone in x for any λ.
        for l in [-3.0, -1.0, 0.0, 0.5, 2.0, 5.0] {
            let xs: Vec<f64> = (-40..=40).map(|i| i as f64 / 8.0).collect();
            assert!(xs.windows(2).all(|w| yeo_johnson(w[0], l) < yeo_johnson(w[1], l)), "λ = {l}");
        }
    }

    #[test]
    fn fitted_exponent_undoes_a_known_warp() {
        // Gaussian quantiles pushed through the inverse transform of λ = 0.3 (a long right tail)
        // are best made Gaussian again by a λ near 0.3; Gaussian ones need none (λ near 1).
        let normal: Vec<f64> = (1..200).map(|i| probit(i as f64 / 200.0)).collect();
        let inv = |y: f64, l: f64| -> f64 {
            // The inverse of the x ≥ 0 branch with λ, and of the x < 0 branch with 2 - λ.
            if y >= 0.0 {
                (l * y + 1.0).powf(1.0 / l) - 1.0
            } else {
                1.0 - (1.0 - (2.0 - l) * y).powf(1.0 / (2.0 - l))
            }
        };
        let skewed: Vec<f64> = normal.iter().map(|&y| inv(y, 0.3)).collect();
        let l = fit_lambda(&skewed);
        assert!((l - 0.3).abs() < 0.15, "λ = {l}");
        let l = fit_lambda(&normal);
        assert!((l - 1.0).abs() < 0.15, "λ = {l}");
    }

    #[test]
    fn warp_keeps_the_order_and_tames_a_long_tail() {
        // Rosenbrock-like scores (higher is better): most middling, a few disastrous.
        let scores: Vec<f64> = (0..60).map(|i| -((i as f64 / 6.0).exp())).collect();
        let w = warp(&scores);
        assert!(w.windows(2).all(|p| p[0] > p[1]));
        let mean = w.iter().sum::<f64>() / 60.0;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 60.0;
        assert!(mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-9);
        // The worst score, 8 standard deviations out in the raw scale, is far less extreme.
        let z = standardise(&scores);
        assert!(z[59] < -4.0 && w[59] > -2.6, "{} → {}", z[59], w[59]);
        // Too few, or constant, scores are only standardised.
        assert_eq!(warp(&[1.0, 2.0]), standardise(&[1.0, 2.0]));
        assert_eq!(warp(&[4.0; 5]), vec![0.0; 5]);
    }

    /// The standard normal quantile of `p`, by bisection on the normal CDF.
    fn probit(p: f64) -> f64 {
        let (mut a, mut b) = (-10.0, 10.0);
        for _ in 0..200 {
            let m = 0.5 * (a + b);
            if crate::tpe::ndtr(m) < p {
                a = m
            } else {
                b = m
            }
        }
        0.5 * (a + b)
    }
}
