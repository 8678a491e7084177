//! Low-discrepancy sequences over `[0, 1)^d`: Sobol' (Joe & Kuo's direction numbers) and Halton,
//! each plain or scrambled. Point `i` is computed directly from `i`, with no state to advance.

use super::sobol_table::JOE_KUO;
use crate::sample::below;
use crate::Rng;
use rand::RngCore;

/// How many dimensions the embedded Sobol' direction numbers cover.
pub const SOBOL_MAX_DIMS: usize = JOE_KUO.len();

/// Bits of each Sobol' coordinate (the top 53 become the `f64`).
const BITS: usize = 64;

/// A sequence that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QmcError {
    /// More dimensions than the embedded direction numbers cover.
    #[error("sobol supports at most {max} dimensions, got {dims}; use kind = \"halton\"")]
    TooManyDimensions {
        /// The dimensions asked for.
        dims: usize,
        /// The most the table covers.
        max: usize,
    },
}

/// The Sobol' sequence in Gray-code order (as SciPy's `qmc.Sobol`), optionally scrambled.
///
/// Unscrambled, point 0 is the origin and the points are SciPy's exactly (SciPy keeps 30 bits,
/// this keeps 64, so they agree for the first 2^30 points). Scrambled: a random linear matrix
/// scramble (a lower-triangular binary matrix with unit diagonal applied to every direction
/// number, Matoušek 1998) and a random digital shift, per dimension, which is what SciPy does.
/// Both keep the net property: the first `2^k` points put exactly one point in each of the
/// `2^k` intervals `[j / 2^k, (j + 1) / 2^k)` of every coordinate.
#[derive(Clone, Debug, PartialEq)]
pub struct Sobol {
    /// Per dimension, direction number `k` (`m_k` as the leading bits of a 64-bit fraction),
    /// scrambled when the sequence is.
    directions: Vec<[u64; BITS]>,
    /// Per dimension, the digital shift (0 unscrambled).
    shift: Vec<u64>,
}

impl Sobol {
    /// The plain sequence in `dims` dimensions.
    pub fn new(dims: usize) -> Result<Sobol, QmcError> {
        if dims > SOBOL_MAX_DIMS {
            return Err(QmcError::TooManyDimensions { dims, max: SOBOL_MAX_DIMS });
        }
        let directions = JOE_KUO[..dims].iter().map(|&(s, a, m)| directions(s, a, m)).collect();
        Ok(Sobol { directions, shift: vec![0; dims] })
    }

    /// The sequence scrambled with matrices and shifts drawn from `rng`, dimension after dimension.
    pub fn scrambled(dims: usize, rng: &mut Rng) -> Result<Sobol, QmcError> {
        let mut sobol = Sobol::new(dims)?;
        for (v, shift) in sobol.directions.iter_mut().zip(&mut sobol.shift) {
            // Row r gives output digit r (digit 0 is the most significant bit) from input digits 0..=r.
            let mut rows = [0u64; BITS];
            for (r, row) in rows.iter_mut().enumerate() {
                let higher = if r == 0 { 0 } else { !0u64 << (BITS - r) };
                *row = (rng.next_u64() & higher) | (1u64 << (BITS - 1 - r));
            }
            for vk in v.iter_mut() {
                let x = *vk;
                *vk = rows
                    .iter()
                    .enumerate()
                    .fold(0u64, |acc, (r, row)| acc | (u64::from((row & x).count_ones() & 1) << (BITS - 1 - r)));
            }
            *shift = rng.next_u64();
        }
        Ok(sobol)
    }

    /// How many dimensions.
    pub fn dims(&self) -> usize {
        self.directions.len()
    }

    /// Point `index` as 64-bit binary fractions (`x = bits / 2^64`).
    pub fn point_bits(&self, index: u64) -> Vec<u64> {
        let gray = index ^ (index >> 1);
        self.directions
            .iter()
            .zip(&self.shift)
            .map(|(v, &shift)| {
                let mut x = shift;
                let mut g = gray;
                while g != 0 {
                    let k = g.trailing_zeros() as usize;
                    x ^= v[k];
                    g &= g - 1;
                }
                x
            })
            .collect()
    }

    /// Point `index`, each coordinate in `[0, 1)` (the leading 53 bits, exactly).
    pub fn point(&self, index: u64) -> Vec<f64> {
        self.point_bits(index).into_iter().map(|x| (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)).collect()
    }
}

/// Direction numbers `v_1..v_64` of one dimension from its primitive polynomial's degree `s`,
/// inner coefficients `a` and initial `m_1..m_s` (Bratley & Fox's recurrence, as Joe & Kuo give it).
fn directions(s: u32, a: u32, m: &[u64]) -> [u64; BITS] {
    let mut v = [0u64; BITS];
    let s = s as usize;
    for k in 0..BITS {
        v[k] = if s == 0 {
            1u64 << (BITS - 1 - k)
        } else if k < s {
            m[k] << (BITS - 1 - k)
        } else {
            let mut x = v[k - s] ^ (v[k - s] >> s);
            for i in 1..s {
                if (a >> (s - 1 - i)) & 1 == 1 {
                    x ^= v[k - i];
                }
            }
            x
        };
    }
    v
}

/// The Halton sequence (radical inverses in the first `d` primes), optionally scrambled.
///
/// Unscrambled, point 0 is the origin and coordinate `j` of point `i` is the radical inverse of
/// `i` in the `j`-th prime (SciPy's `qmc.Halton(scramble=False)`). Scrambled, digit `r` of
/// every coordinate goes through its own random permutation of `0..base` (drawn from the rng,
/// dimension after dimension, digit after digit; Braaten & Weller's scramble with an independent
/// permutation per digit), over as many digits as 53 bits need; the first `base^k` points still
/// put exactly one point in each interval `[j / base^k, (j + 1) / base^k)` of their coordinate.
#[derive(Clone, Debug, PartialEq)]
pub struct Halton {
    bases: Vec<u64>,
    /// Per dimension, per digit (least significant first), the permutation; empty unscrambled.
    perms: Vec<Vec<Vec<u32>>>,
}

impl Halton {
    /// The plain sequence in `dims` dimensions.
    pub fn new(dims: usize) -> Halton {
        Halton { bases: primes(dims), perms: vec![Vec::new(); dims] }
    }

    /// The sequence scrambled with permutations drawn from `rng`.
    pub fn scrambled(dims: usize, rng: &mut Rng) -> Halton {
        let bases = primes(dims);
        let perms = bases
            .iter()
            .map(|&b| {
                (0..digits(b))
                    .map(|_| {
                        let mut p: Vec<u32> = (0..b as u32).collect();
                        for i in (1..p.len()).rev() {
                            p.swap(i, below(rng, i as u64 + 1) as usize);
                        }
                        p
                    })
                    .collect()
            })
            .collect();
        Halton { bases, perms }
    }

    /// How many dimensions.
    pub fn dims(&self) -> usize {
        self.bases.len()
    }

    /// The bases: the first `dims` primes.
    pub fn bases(&self) -> &[u64] {
        &self.bases
    }

    /// Point `index`, each coordinate in `[0, 1)`.
    pub fn point(&self, index: u64) -> Vec<f64> {
        self.bases
            .iter()
            .zip(&self.perms)
            .map(|(&b, perms)| {
                let n = digits(b);
                let mut ds = Vec::with_capacity(n);
                let mut i = index;
                for _ in 0..n {
                    ds.push(i % b);
                    i /= b;
                }
                let bf = b as f64;
                let x = ds.iter().enumerate().rev().fold(0.0, |x, (r, &d)| {
                    let d = if perms.is_empty() { d } else { u64::from(perms[r][d as usize]) };
                    (x + d as f64) / bf
                });
                x.min(1.0 - f64::EPSILON / 2.0)
            })
            .collect()
    }
}

/// Digits of a base-`b` fraction needed for 53 bits.
fn digits(b: u64) -> usize {
    let (mut n, mut p) = (0, 1.0f64);
    while p < 2f64.powi(53) {
        p *= b as f64;
        n += 1;
    }
    n
}

/// The first `n` primes.
fn primes(n: usize) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::with_capacity(n);
    let mut c = 2u64;
    while out.len() < n {
        if out.iter().take_while(|&&p| p * p <= c).all(|&p| c % p != 0) {
            out.push(c);
        }
        c += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_primes_and_digit_counts() {
        assert_eq!(primes(8), [2, 3, 5, 7, 11, 13, 17, 19]);
        assert_eq!((digits(2), digits(3), digits(541)), (53, 34, 6));
    }

    #[test]
    fn van_der_corput_in_the_first_dimensions() {
        let s = Sobol::new(2).unwrap();
        let pts: Vec<Vec<f64>> = (0..4).map(|i| s.point(i)).collect();
        assert_eq!(pts, [[0.0, 0.0], [0.5, 0.5], [0.75, 0.25], [0.25, 0.75]]);
        let h = Halton::new(2);
        assert_eq!(h.point(1), [0.5, 1.0 / 3.0]);
        assert_eq!(h.point(5), [0.625, 7.0 / 9.0]);
    }
}
