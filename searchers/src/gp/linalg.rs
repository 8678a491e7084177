//! The dense linear algebra the GP needs: Cholesky factorisation, triangular solves and the
//! inverse from a factor. Matrices are square, row-major `Vec<f64>`s of side `n`.

/// The lower Cholesky factor `L` of the symmetric matrix `a` (`a = L Lᵀ`; only its lower
/// triangle is read); `None` when `a` is not numerically positive definite.
pub(crate) fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let (li, lj) = (&l[i * n..i * n + j], &l[j * n..j * n + j]);
            let s = a[i * n + j] - li.iter().zip(lj).map(|(x, y)| x * y).sum::<f64>();
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves `L x = b` in place (forward substitution).
pub(crate) fn solve_lower(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let row = &l[i * n..i * n + i];
        let s: f64 = row.iter().zip(&b[..i]).map(|(x, y)| x * y).sum();
        b[i] = (b[i] - s) / l[i * n + i];
    }
}

/// Solves `Lᵀ x = b` in place (back substitution).
pub(crate) fn solve_upper(l: &[f64], n: usize, b: &mut [f64]) {
    for i in (0..n).rev() {
        b[i] /= l[i * n + i];
        let bi = b[i];
        // Column i of Lᵀ above the diagonal is row i of L left of it.
        for (bk, lik) in b[..i].iter_mut().zip(&l[i * n..i * n + i]) {
            *bk -= lik * bi;
        }
    }
}

/// `(L Lᵀ)⁻¹`, the full symmetric matrix, from the factor `L`.
pub(crate) fn inverse_from_cholesky(l: &[f64], n: usize) -> Vec<f64> {
    // Row j of `t` is column j of L⁻¹ (entries j..n; the rest are zero).
    let mut t = vec![0.0; n * n];
    for j in 0..n {
        let row = &mut t[j * n..(j + 1) * n];
        for i in j..n {
            let s: f64 = l[i * n + j..i * n + i].iter().zip(&row[j..i]).map(|(x, y)| x * y).sum();
            let rhs = if i == j { 1.0 } else { 0.0 };
            row[i] = (rhs - s) / l[i * n + i];
        }
    }
    // (L⁻ᵀ L⁻¹)_ab = Σ_k (L⁻¹)_ka (L⁻¹)_kb = Σ_{k ≥ max(a, b)} t_ak t_bk.
    let mut inv = vec![0.0; n * n];
    for a in 0..n {
        for b in 0..=a {
            let s: f64 = t[a * n + a..(a + 1) * n].iter().zip(&t[b * n + a..(b + 1) * n]).map(|(x, y)| x * y).sum();
            inv[a * n + b] = s;
            inv[b * n + a] = s;
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for k in 0..n {
                for j in 0..n {
                    c[i * n + j] += a[i * n + k] * b[k * n + j];
                }
            }
        }
        c
    }

    #[test]
    fn factor_solve_and_invert() {
        let a = [4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        assert_eq!(l[0], 2.0);
        assert_eq!(l[3], 1.0);
        assert_eq!(l[4], 2.0);
        let mut lt = vec![0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                lt[i * 3 + j] = l[j * 3 + i];
            }
        }
        let back = matmul(&l, &lt, 3);
        assert!(back.iter().zip(&a).all(|(x, y)| (x - y).abs() < 1e-12));
        let inv = inverse_from_cholesky(&l, 3);
        let id = matmul(&a, &inv, 3);
        for i in 0..3 {
            for j in 0..3 {
                assert!((id[i * 3 + j] - f64::from(u8::from(i == j))).abs() < 1e-12, "{id:?}");
            }
        }
        let mut x = vec![1.0, -2.0, 0.5];
        solve_lower(&l, 3, &mut x);
        solve_upper(&l, 3, &mut x);
        let ax: Vec<f64> = (0..3).map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum()).collect();
        assert!(ax.iter().zip([1.0, -2.0, 0.5]).all(|(x, y)| (x - y).abs() < 1e-12), "{ax:?}");
        assert_eq!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2), None);
        assert_eq!(cholesky(&[f64::NAN], 1), None);
    }
}
