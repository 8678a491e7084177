//! BOHB's product-kernel density estimators: statsmodels' `KDEMultivariate` with
//! `bw = "normal_reference"`, as hpbandster fits them (Gaussian kernels for continuous
//! dimensions, Aitchison–Aitken kernels for categorical ones).

/// How a dimension of the encoded space is smoothed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A value in `[0, 1]`: Gaussian kernel.
    Continuous,
    /// A choice index in `0..levels`: Aitchison–Aitken kernel.
    Categorical(usize),
}

/// statsmodels' normal-reference rule for one column of `d`-dimensional data:
/// `1.06 σ n^(-1 / (4 + d))`, σ the population standard deviation (`ddof = 0`).
pub(crate) fn normal_reference(column: &[f64], d: usize) -> f64 {
    let n = column.len() as f64;
    let mean = column.iter().sum::<f64>() / n;
    let var = column.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    1.06 * var.sqrt() * n.powf(-1.0 / (4.0 + d as f64))
}

/// The Aitchison–Aitken kernel with smoothing `lambda` over `levels` categories: `1 - λ` at the
/// data point's own category, `λ / (levels - 1)` at each other one.
pub(crate) fn aitchison_aitken(lambda: f64, levels: usize, xi: f64, x: f64) -> f64 {
    if xi == x {
        1.0 - lambda
    } else {
        lambda / (levels.max(2) - 1) as f64
    }
}

/// A fitted estimator: its data rows and one bandwidth per dimension.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Kde {
    pub(crate) rows: Vec<Vec<f64>>,
    pub(crate) bw: Vec<f64>,
    kinds: Vec<Kind>,
}

impl Kde {
    /// Fits to `rows` (at least one, every value finite): normal-reference bandwidths floored at
    /// `min_bw`; a categorical λ is also capped at `(levels - 1) / levels`, where the kernel is
    /// uniform (beyond it the kernel would favour the other categories, or go negative).
    pub(crate) fn fit(rows: Vec<Vec<f64>>, kinds: &[Kind], min_bw: f64) -> Kde {
        let d = kinds.len();
        let bw = kinds
            .iter()
            .enumerate()
            .map(|(j, kind)| {
                let column: Vec<f64> = rows.iter().map(|r| r[j]).collect();
                let h = normal_reference(&column, d).max(min_bw);
                match *kind {
                    Kind::Continuous => h,
                    Kind::Categorical(levels) => h.min((levels.max(2) - 1) as f64 / levels.max(2) as f64),
                }
            })
            .collect();
        Kde { rows, bw, kinds: kinds.to_vec() }
    }

    /// `ln p(x)`, `p(x) = (1/n) Σ_i Π_j K_j(x_j; row_ij) / Π_{continuous j} h_j` (statsmodels'
    /// `pdf`), summed in log space so that it neither underflows nor overflows.
    pub(crate) fn log_pdf(&self, x: &[f64]) -> f64 {
        const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
        let logs: Vec<f64> = self
            .rows
            .iter()
            .map(|row| {
                let mut s = 0.0;
                for (j, kind) in self.kinds.iter().enumerate() {
                    let h = self.bw[j];
                    s += match *kind {
                        Kind::Continuous => {
                            let z = (x[j] - row[j]) / h;
                            -0.5 * z * z - LN_SQRT_2PI - h.ln()
                        }
                        Kind::Categorical(levels) => aitchison_aitken(h, levels, row[j], x[j]).ln(),
                    };
                }
                s
            })
            .collect();
        let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            return max;
        }
        max + logs.iter().map(|l| (l - max).exp()).sum::<f64>().ln() - (self.rows.len() as f64).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_reference_by_hand() {
        // [0, 0.5, 1]: mean 0.5, population σ = sqrt(1/6); d = 1, n = 3: 3^(-1/5).
        let h = normal_reference(&[0.0, 0.5, 1.0], 1);
        let want = 1.06 * (1.0f64 / 6.0).sqrt() * 3f64.powf(-0.2);
        assert!((h - want).abs() < 1e-15, "{h} vs {want}");
        assert!((h - 0.347_380_942_489).abs() < 1e-11, "{h}");
        // Four points, d = 2: σ of [0.1, 0.2, 0.3, 0.4] is sqrt(0.0125), 4^(-1/6).
        let h = normal_reference(&[0.1, 0.2, 0.3, 0.4], 2);
        assert!((h - 1.06 * 0.0125f64.sqrt() * 4f64.powf(-1.0 / 6.0)).abs() < 1e-15);
        // A constant column has σ = 0; the fit floors it.
        assert_eq!(normal_reference(&[0.3, 0.3], 1), 0.0);
        let kde = Kde::fit(vec![vec![0.3], vec![0.3]], &[Kind::Continuous], 1e-3);
        assert_eq!(kde.bw, vec![1e-3]);
    }

    #[test]
    fn aitchison_aitken_by_hand() {
        assert_eq!(aitchison_aitken(0.2, 3, 1.0, 1.0), 0.8);
        assert!((aitchison_aitken(0.2, 3, 1.0, 2.0) - 0.1).abs() < 1e-16);
        assert!((aitchison_aitken(0.2, 3, 1.0, 0.0) - 0.1).abs() < 1e-16);
        assert_eq!(aitchison_aitken(0.5, 2, 0.0, 1.0), 0.5);
        // Summed over the categories, a kernel is a distribution.
        let total: f64 = (0..4).map(|c| aitchison_aitken(0.3, 4, 2.0, f64::from(c))).sum();
        assert!((total - 1.0).abs() < 1e-15);
    }

    #[test]
    fn pdf_by_hand_and_categorical_cap() {
        // One continuous and one categorical dimension, two rows.
        let rows = vec![vec![0.2, 0.0], vec![0.6, 1.0]];
        let kde = Kde::fit(rows, &[Kind::Continuous, Kind::Categorical(3)], 1e-3);
        // Column 1 is [0, 1]: σ = 0.5, h = 1.06 · 0.5 · 2^(-1/6) = 0.472..., below the cap 2/3.
        let h0 = 1.06 * 0.2 * 2f64.powf(-1.0 / 6.0);
        let h1 = 1.06 * 0.5 * 2f64.powf(-1.0 / 6.0);
        assert!((kde.bw[0] - h0).abs() < 1e-15 && (kde.bw[1] - h1).abs() < 1e-15, "{:?}", kde.bw);
        let phi = |z: f64| (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let x = [0.3, 1.0];
        let want = (phi((0.3 - 0.2) / h0) / h0 * (h1 / 2.0) + phi((0.3 - 0.6) / h0) / h0 * (1.0 - h1)) / 2.0;
        assert!((kde.log_pdf(&x) - want.ln()).abs() < 1e-12, "{} vs {}", kde.log_pdf(&x), want.ln());
        // Indices 0 and 3 of four levels: σ = 1.5, h = 1.27 > 3/4, capped there.
        let kde = Kde::fit(vec![vec![0.0], vec![3.0]], &[Kind::Categorical(4)], 1e-3);
        assert_eq!(kde.bw, vec![0.75]);
        for c in 0..4 {
            assert!((kde.log_pdf(&[f64::from(c)]) - 0.25f64.ln()).abs() < 1e-15);
        }
    }
}
