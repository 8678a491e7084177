//! The little linear algebra CMA-ES needs: a symmetric eigendecomposition by cyclic Jacobi
//! rotations (accurate to rounding for the dimensions searched here, a hundred or so).

/// A square matrix, row-major.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Matrix {
    pub(crate) n: usize,
    pub(crate) a: Vec<f64>,
}

impl Matrix {
    /// The `n x n` identity.
    pub(crate) fn identity(n: usize) -> Matrix {
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            a[i * n + i] = 1.0;
        }
        Matrix { n, a }
    }

    /// Entry `(i, j)`.
    pub(crate) fn at(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.n + j]
    }

    /// `self * x`.
    pub(crate) fn mul(&self, x: &[f64]) -> Vec<f64> {
        self.a.chunks(self.n).map(|row| row.iter().zip(x).map(|(r, v)| r * v).sum()).collect()
    }

    /// `selfᵀ * x`.
    pub(crate) fn mul_t(&self, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n];
        for (row, &xi) in self.a.chunks(self.n).zip(x) {
            for (o, r) in out.iter_mut().zip(row) {
                *o += r * xi;
            }
        }
        out
    }
}

/// Eigenvalues and eigenvectors (the columns of the matrix) of a symmetric matrix, by cyclic
/// Jacobi sweeps until the off-diagonal part is negligible (at most 64 sweeps).
pub(crate) fn symmetric_eigen(m: &Matrix) -> (Vec<f64>, Matrix) {
    let n = m.n;
    let mut a = m.a.clone();
    // Symmetrise against accumulated rounding.
    for i in 0..n {
        for j in 0..i {
            let v = 0.5 * (a[i * n + j] + a[j * n + i]);
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
    let mut v = Matrix::identity(n);
    for _ in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        let diag: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum();
        if off <= 1e-30 * diag || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- A P (columns p, q), then A <- Pᵀ A (rows p, q); V <- V P.
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                a[p * n + q] = 0.0;
                a[q * n + p] = 0.0;
                for k in 0..n {
                    let (vkp, vkq) = (v.a[k * n + p], v.a[k * n + q]);
                    v.a[k * n + p] = c * vkp - s * vkq;
                    v.a[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;
    use rand::{RngCore, SeedableRng};

    #[test]
    fn decomposes_random_symmetric_matrices() {
        let mut rng = Rng::seed_from_u64(1);
        for n in [1, 2, 3, 7, 30, 100] {
            // A = G Gᵀ + diagonal: symmetric positive definite with spread eigenvalues.
            let g: Vec<f64> = (0..n * n).map(|_| (rng.next_u32() as f64 / u32::MAX as f64) - 0.5).collect();
            let mut m = Matrix::identity(n);
            for i in 0..n {
                for j in 0..n {
                    m.a[i * n + j] =
                        (0..n).map(|k| g[i * n + k] * g[j * n + k]).sum::<f64>() + if i == j { 1e-3 } else { 0.0 };
                }
            }
            let (vals, vecs) = symmetric_eigen(&m);
            let scale = m.a.iter().fold(0.0f64, |s, x| s.max(x.abs()));
            for i in 0..n {
                for j in 0..n {
                    let back: f64 = (0..n).map(|k| vecs.at(i, k) * vals[k] * vecs.at(j, k)).sum();
                    assert!((back - m.at(i, j)).abs() <= 1e-12 * scale * n as f64, "n = {n}: ({i}, {j})");
                    let dot: f64 = (0..n).map(|k| vecs.at(k, i) * vecs.at(k, j)).sum();
                    assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() <= 1e-12 * n as f64, "n = {n}: orthogonality");
                }
            }
            assert!(vals.iter().all(|&v| v > 0.0));
        }
    }
}
