//! Maximising the acquisition over the cube: quasi-random candidates, then local searches from
//! the best of them.
//!
//! `n_candidates` snapped points of a scrambled Sobol' sequence (scrambled afresh from the
//! suggestion's generator; uniformly random points beyond Sobol's dimension limit) are scored; the best observed point and the
//! `n_local` best candidates start local searches. A local search alternates (at most
//! [`ROUNDS`] times, while it gains) a gradient search over the continuous coordinates (argmin's
//! L-BFGS on `x = (1 - cos πz) / 2`, so the box is never left and its faces are reachable, at
//! most [`LOCAL_ITERS`] iterations and [`LOCAL_EVALS`] evaluations) with a discrete search over each discrete dimension in turn
//! (every other value of a `choice` or of a small lattice, else the values 1, 2, 4, ... steps
//! away and the two ends; the best move is taken). Discrete coordinates are never relaxed: the
//! GP always sees the point that will run.

use super::acq::LogEi;
use super::encode::Encoding;
use crate::lbfgs;
use crate::Rng;
use std::f64::consts::PI;

/// Alternations of continuous and discrete moves per local search, at most.
const ROUNDS: usize = 8;

/// L-BFGS iterations per continuous move, at most.
const LOCAL_ITERS: u64 = 50;

/// Acquisition evaluations per continuous move, at most.
const LOCAL_EVALS: u64 = 100;

/// The point of the cube with the highest acquisition found, or `None` when it is undefined
/// everywhere tried. `extra` are further starts (the best observed point).
pub(crate) fn maximise(
    enc: &Encoding,
    acq: &LogEi<'_>,
    rng: &mut Rng,
    n_candidates: usize,
    n_local: usize,
    extra: &[Vec<f64>],
) -> Option<Vec<f64>> {
    let cands: Vec<Vec<f64>> = match crate::qmc::Sobol::scrambled(enc.n_axes(), rng) {
        Ok(sobol) => (0..n_candidates as u64).map(|i| enc.point_of_unit(&sobol.point(i))).collect(),
        Err(_) => (0..n_candidates).map(|_| enc.random(rng)).collect(),
    };
    let vals: Vec<f64> = cands.iter().map(|x| acq.value(x)).collect();
    let mut order: Vec<usize> = (0..cands.len()).filter(|&i| vals[i].is_finite()).collect();
    // Best first; the sort is stable, so ties keep the draw order.
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
    let mut best: Option<(f64, Vec<f64>)> = order.first().map(|&i| (vals[i], cands[i].clone()));
    let cont = enc.continuous_cols();
    let discrete = enc.discrete_axes();
    let starts = extra.iter().cloned().chain(order.iter().take(n_local).map(|&i| cands[i].clone()));
    for start in starts {
        let (v, x) = local_search(enc, acq, &cont, &discrete, start);
        if v.is_finite() && best.as_ref().map_or(true, |(b, _)| v > *b) {
            best = Some((v, x));
        }
    }
    best.map(|(_, x)| x)
}

/// Climbs from `x`: continuous and discrete moves in turn while they gain.
fn local_search(
    enc: &Encoding,
    acq: &LogEi<'_>,
    cont: &[usize],
    discrete: &[usize],
    mut x: Vec<f64>,
) -> (f64, Vec<f64>) {
    enc.snap(&mut x);
    let mut v = acq.value(&x);
    if !v.is_finite() {
        return (v, x);
    }
    for _ in 0..ROUNDS {
        let before = v;
        if !cont.is_empty() {
            if let Some((w, y)) = continuous(acq, cont, &x) {
                if w > v {
                    (v, x) = (w, y);
                }
            }
        }
        for &a in discrete {
            let mut moved: Option<(f64, Vec<f64>)> = None;
            for y in enc.neighbours(a, &x) {
                let w = acq.value(&y);
                if w > moved.as_ref().map_or(v, |m| m.0) {
                    moved = Some((w, y));
                }
            }
            if let Some((w, y)) = moved {
                (v, x) = (w, y);
            }
        }
        let gained = v > before + 1e-10 * (1.0 + before.abs());
        if discrete.is_empty() || !gained {
            break;
        }
    }
    (v, x)
}

/// The cube coordinate of `z`.
fn to_box(z: f64) -> f64 {
    ((1.0 - (PI * z).cos()) / 2.0).clamp(0.0, 1.0)
}

/// L-BFGS over the continuous coordinates `cont` of `x`, the others held.
fn continuous(acq: &LogEi<'_>, cont: &[usize], x: &[f64]) -> Option<(f64, Vec<f64>)> {
    let z0: Vec<f64> = cont.iter().map(|&c| (1.0 - 2.0 * x[c].clamp(0.0, 1.0)).acos() / PI).collect();
    let at = |z: &[f64]| {
        let mut p = x.to_vec();
        for (&c, &zc) in cont.iter().zip(z) {
            p[c] = to_box(zc);
        }
        p
    };
    let f = |z: &[f64]| {
        let (v, g) = acq.value_grad(&at(z), cont);
        Some((-v, g.iter().zip(z).map(|(g, zc)| -g * PI / 2.0 * (PI * zc).sin()).collect()))
    };
    let (v, z) = lbfgs::minimize(&f, z0, LOCAL_ITERS, LOCAL_EVALS, 1e-6, 1e-9)?;
    Some((-v, at(&z)))
}
