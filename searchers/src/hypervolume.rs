//! Hypervolumes, non-dominated sorting and greedy hypervolume subset selection, computed as
//! Optuna 5.0.0 computes them (`optuna._hypervolume` and `optuna.study._multi_objective`).
//!
//! Every objective is minimised here (Optuna's "loss values"): a point dominates another when it
//! is no worse in every objective and differs from it. Points are rows, all of the same length.
//! The hypervolume of a set is the volume of the region between the reference point and the set
//! (exact: a sweep in 2-D, Optuna's `O(n^2)` grid in 3-D, WFG beyond).

use std::cmp::Ordering;

/// What Optuna puts in place of a zero coordinate of a reference point.
const EPS: f64 = 1e-12;

/// NumPy's `np.minimum`: NaN if either is NaN.
fn np_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b < a {
        b
    } else {
        a
    }
}

/// NumPy's `np.maximum`: NaN if either is NaN.
fn np_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b > a {
        b
    } else {
        a
    }
}

/// NumPy's `np.argmax`: the first maximum, or the first NaN if there is one.
fn argmax(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x.is_nan() {
            return i;
        }
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// `prod(r - v)`, left to right.
fn box_volume(reference: &[f64], v: &[f64]) -> f64 {
    reference.iter().zip(v).fold(1.0, |acc, (r, x)| acc * (r - x))
}

/// Lexicographic order of rows (NaN compares equal: it never reaches here from the searchers).
fn lex_cmp(a: &[f64], b: &[f64]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.partial_cmp(y) {
            Some(Ordering::Equal) | None => {}
            Some(o) => return o,
        }
    }
    Ordering::Equal
}

/// `np.unique(rows, axis=0, return_index=True, return_inverse=True)`: the distinct rows in
/// lexicographic order, the position of each one's first occurrence, and each row's distinct row.
fn unique_rows<R: AsRef<[f64]>>(rows: &[R]) -> (Vec<Vec<f64>>, Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| lex_cmp(rows[a].as_ref(), rows[b].as_ref()));
    let mut unique: Vec<Vec<f64>> = Vec::new();
    let mut first = Vec::new();
    let mut inverse = vec![0; rows.len()];
    for &i in &order {
        let row = rows[i].as_ref();
        if unique.last().map_or(true, |u| u.as_slice() != row) {
            unique.push(row.to_vec());
            first.push(i);
        }
        inverse[i] = unique.len() - 1;
    }
    (unique, first, inverse)
}

/// Optuna's `_is_pareto_front(rows, assume_unique_lexsorted=True)`: which rows no other row
/// dominates, for rows sorted by their first objective (a repeated row counts as dominated by
/// its earlier copy).
fn pareto_front_lexsorted<R: AsRef<[f64]>>(rows: &[R]) -> Vec<bool> {
    let n = rows.len();
    let mut on_front = vec![false; n];
    if n == 0 {
        return on_front;
    }
    match rows[0].as_ref().len() {
        1 => on_front[0] = true,
        2 => {
            let mut cummin = rows[0].as_ref()[1];
            on_front[0] = true;
            for (i, row) in rows.iter().enumerate().skip(1) {
                let next = np_min(cummin, row.as_ref()[1]);
                on_front[i] = next < cummin;
                cummin = next;
            }
        }
        _ => {
            let mut remaining: Vec<usize> = (0..n).collect();
            while let Some(&top) = remaining.first() {
                on_front[top] = true;
                let t = &rows[top].as_ref()[1..];
                remaining.retain(|&i| rows[i].as_ref()[1..].iter().zip(t).any(|(a, b)| a < b));
            }
        }
    }
    on_front
}

/// Which points no other point dominates (duplicates are all on the front if one is).
pub fn pareto_front<R: AsRef<[f64]>>(points: &[R]) -> Vec<bool> {
    let (unique, _, inverse) = unique_rows(points);
    let on_front = pareto_front_lexsorted(&unique);
    inverse.iter().map(|&u| on_front[u]).collect()
}

/// Optuna's `_fast_non_domination_rank(points, n_below=n_below)`: the 0-based non-domination
/// rank (front) of each point, exact for the fronts that hold the best `n_below` distinct
/// points (all when `None` or 0); every later point gets the rank after those.
pub fn non_domination_ranks<R: AsRef<[f64]>>(points: &[R], n_below: Option<usize>) -> Vec<usize> {
    let n = points.len();
    if n == 0 {
        return Vec::new();
    }
    let n_below = n_below.filter(|&k| k > 0).unwrap_or(n);
    let (unique, _, inverse) = unique_rows(points);
    if points[0].as_ref().len() == 1 {
        return inverse;
    }
    let n_unique = unique.len();
    let n_below = n_below.min(n_unique);
    let mut ranks = vec![0; n_unique];
    let mut rank = 0;
    let mut remaining: Vec<usize> = (0..n_unique).collect();
    while n_unique - remaining.len() < n_below {
        let rows: Vec<&[f64]> = remaining.iter().map(|&i| unique[i].as_slice()).collect();
        let on_front = pareto_front_lexsorted(&rows);
        let mut rest = Vec::with_capacity(remaining.len());
        for (&i, &front) in remaining.iter().zip(&on_front) {
            if front {
                ranks[i] = rank;
            } else {
                rest.push(i);
            }
        }
        remaining = rest;
        rank += 1;
    }
    for &i in &remaining {
        ranks[i] = rank;
    }
    inverse.iter().map(|&u| ranks[u]).collect()
}

/// Optuna's `_get_reference_point` for TPE's tie-break: per objective the worst value `w`, then
/// `max(1.1 w, 0.9 w)` (10% beyond it, whatever its sign), a zero replaced by `1e-12`.
pub fn reference_point<R: AsRef<[f64]>>(points: &[R]) -> Vec<f64> {
    let m = points.first().map_or(0, |p| p.as_ref().len());
    (0..m)
        .map(|j| {
            let worst = points.iter().map(|p| p.as_ref()[j]).fold(f64::NEG_INFINITY, np_max);
            let r = np_max(1.1 * worst, 0.9 * worst);
            if r == 0.0 {
                EPS
            } else {
                r
            }
        })
        .collect()
}

/// Optuna's `_compute_2d` on Pareto points sorted by the first objective.
fn hv_2d(sorted: &[&[f64]], r: &[f64]) -> f64 {
    let mut diag_y = r[1];
    let mut total = 0.0;
    for p in sorted {
        total += (r[0] - p[0]) * (diag_y - p[1]);
        diag_y = p[1];
    }
    total
}

/// Optuna's `_compute_3d` on Pareto points sorted by the first objective.
fn hv_3d(sorted: &[&[f64]], r: &[f64]) -> f64 {
    let n = sorted.len();
    let mut y_order: Vec<usize> = (0..n).collect();
    y_order.sort_by(|&a, &b| sorted[a][1].partial_cmp(&sorted[b][1]).unwrap_or(Ordering::Equal));
    let mut z = vec![0.0; n * n];
    for (j, &i) in y_order.iter().enumerate() {
        z[i * n + j] = r[2] - sorted[i][2];
    }
    for i in 1..n {
        for j in 0..n {
            z[i * n + j] = np_max(z[(i - 1) * n + j], z[i * n + j]);
        }
    }
    for i in 0..n {
        for j in 1..n {
            z[i * n + j] = np_max(z[i * n + j - 1], z[i * n + j]);
        }
    }
    let delta = |vals: &[f64], end: f64| -> Vec<f64> {
        (0..vals.len()).map(|k| vals.get(k + 1).copied().unwrap_or(end) - vals[k]).collect()
    };
    let x_delta = delta(&sorted.iter().map(|p| p[0]).collect::<Vec<_>>(), r[0]);
    let y_delta = delta(&y_order.iter().map(|&i| sorted[i][1]).collect::<Vec<_>>(), r[1]);
    (0..n).map(|i| (0..n).map(|j| z[i * n + j] * y_delta[j]).sum::<f64>() * x_delta[i]).sum()
}

/// Optuna's `_compute_hv` (WFG) on points sorted by the first objective.
fn hv_wfg(sorted: &[Vec<f64>], r: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => box_volume(r, &sorted[0]),
        2 => {
            let (mut hv1, mut hv2, mut inter) = (1.0, 1.0, 1.0);
            for ((rk, a), b) in r.iter().zip(&sorted[0]).zip(&sorted[1]) {
                hv1 *= rk - a;
                hv2 *= rk - b;
                inter *= rk - a.max(*b);
            }
            hv1 + hv2 - inter
        }
        n => {
            let inclusive: Vec<f64> = sorted.iter().map(|p| box_volume(r, p)).collect();
            let mut total = inclusive[n - 1];
            for i in 0..n - 1 {
                let limited: Vec<Vec<f64>> = sorted[i + 1..]
                    .iter()
                    .map(|q| sorted[i].iter().zip(q).map(|(a, b)| np_max(*a, *b)).collect())
                    .collect();
                let exclusive = if limited.len() <= 3 {
                    inclusive[i] - hv_wfg(&limited, r)
                } else {
                    let on_front = pareto_front_lexsorted(&limited);
                    let front: Vec<Vec<f64>> =
                        limited.into_iter().zip(on_front).filter(|(_, f)| *f).map(|(p, _)| p).collect();
                    inclusive[i] - hv_wfg(&front, r)
                };
                total += exclusive;
            }
            total
        }
    }
}

/// Optuna's `compute_hypervolume` after its checks, `assume_pareto` as there.
fn hv_unchecked<R: AsRef<[f64]>>(points: &[R], r: &[f64], assume_pareto: bool) -> f64 {
    if r.iter().any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    if points.is_empty() {
        return 0.0;
    }
    let sorted: Vec<Vec<f64>> = if assume_pareto {
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by(|&a, &b| points[a].as_ref()[0].partial_cmp(&points[b].as_ref()[0]).unwrap_or(Ordering::Equal));
        order.into_iter().map(|i| points[i].as_ref().to_vec()).collect()
    } else {
        let (unique, _, _) = unique_rows(points);
        let on_front = pareto_front_lexsorted(&unique);
        unique.into_iter().zip(on_front).filter(|(_, f)| *f).map(|(p, _)| p).collect()
    };
    let rows: Vec<&[f64]> = sorted.iter().map(|p| p.as_slice()).collect();
    let hv = match r.len() {
        2 => hv_2d(&rows, r),
        3 => hv_3d(&rows, r),
        _ => hv_wfg(&sorted, r),
    };
    if hv.is_finite() {
        hv
    } else {
        f64::INFINITY
    }
}

/// The hypervolume that `points` dominate up to `reference` (all minimised), exactly as Optuna's
/// `compute_hypervolume`: `+inf` for a non-finite reference, 0 for no points; `None` (where
/// Optuna raises) when some coordinate of a point is above the reference's or NaN.
pub fn hypervolume<R: AsRef<[f64]>>(points: &[R], reference: &[f64]) -> Option<f64> {
    let ok = points
        .iter()
        .all(|p| p.as_ref().len() == reference.len() && p.as_ref().iter().zip(reference).all(|(x, r)| x <= r));
    ok.then(|| hv_unchecked(points, reference, false))
}

/// Optuna's `_solve_hssp_2d` on distinct rows in lexicographic order.
fn hssp_2d(vals: &[Vec<f64>], indices: &[usize], k: usize, r: &[f64]) -> Vec<usize> {
    let mut sorted: Vec<usize> = (0..vals.len()).collect();
    let mut vals: Vec<Vec<f64>> = vals.to_vec();
    let mut diags: Vec<[f64; 2]> = vec![[r[0], r[1]]; vals.len()];
    let mut selected = Vec::with_capacity(k);
    for _ in 0..k {
        let contribs: Vec<f64> = diags.iter().zip(&vals).map(|(d, v)| (d[0] - v[0]) * (d[1] - v[1])).collect();
        let m = argmax(&contribs);
        selected.push(indices[sorted[m]]);
        let lv = vals.remove(m);
        sorted.remove(m);
        diags.remove(m);
        for d in &mut diags[..m] {
            d[0] = np_min(lv[0], d[0]);
        }
        for d in &mut diags[m..] {
            d[1] = np_min(lv[1], d[1]);
        }
    }
    selected
}

/// Optuna's `_lazy_contribs_update`: the contributions of `pareto` to the selected set, exact
/// where they could be the largest (upper bounds elsewhere).
fn lazy_contribs(mut contribs: Vec<f64>, pareto: &[Vec<f64>], selected: &[Vec<f64>], r: &[f64], hv: f64) -> Vec<f64> {
    if hv.is_infinite() {
        return vec![f64::INFINITY; contribs.len()];
    }
    let last = &selected[selected.len() - 1];
    let inclusive: Vec<f64> = pareto.iter().map(|p| box_volume(r, p)).collect();
    for (i, p) in pareto.iter().enumerate() {
        let meet: Vec<f64> = p.iter().zip(last).map(|(a, b)| np_max(*a, *b)).collect();
        contribs[i] = np_min(contribs[i], inclusive[i] - box_volume(r, &meet));
    }
    let mut order: Vec<usize> = (0..contribs.len()).collect();
    // np.argsort(-contribs): descending, NaN last.
    order.sort_by(|&a, &b| {
        let (x, y) = (-contribs[a], -contribs[b]);
        x.partial_cmp(&y).unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()))
    });
    let fast = r.len() <= 3;
    let mut max_contrib = 0.0;
    for i in order {
        if inclusive[i].is_infinite() {
            contribs[i] = f64::INFINITY;
            max_contrib = f64::INFINITY;
            continue;
        }
        if contribs[i] < max_contrib {
            continue;
        }
        contribs[i] = if fast {
            let mut with: Vec<&[f64]> = selected.iter().map(|s| s.as_slice()).collect();
            with.push(&pareto[i]);
            hv_unchecked(&with, r, true) - hv
        } else {
            let meets: Vec<Vec<f64>> =
                selected.iter().map(|s| pareto[i].iter().zip(s).map(|(a, b)| np_max(*a, *b)).collect()).collect();
            inclusive[i] - hv_unchecked(&meets, r, false)
        };
        if contribs[i] > max_contrib {
            max_contrib = contribs[i];
        }
    }
    contribs
}

/// Optuna's `_solve_hssp_on_unique_loss_vals`.
fn hssp_unique(vals: Vec<Vec<f64>>, indices: &[usize], k: usize, r: &[f64]) -> Vec<usize> {
    if r.iter().any(|x| !x.is_finite()) {
        return indices[..k].to_vec();
    }
    if indices.len() == k {
        return indices.to_vec();
    }
    if r.len() == 2 {
        return hssp_2d(&vals, indices, k, r);
    }
    let mut vals = vals;
    let mut contribs: Vec<f64> = vals.iter().map(|v| box_volume(r, v)).collect();
    let mut left: Vec<usize> = (0..vals.len()).collect();
    let mut selected = Vec::with_capacity(k);
    let mut selected_vecs: Vec<Vec<f64>> = Vec::with_capacity(k);
    let mut hv = 0.0;
    for step in 0..k {
        let m = argmax(&contribs);
        hv += contribs[m];
        selected.push(left.remove(m));
        selected_vecs.push(vals.remove(m));
        contribs.remove(m);
        if step + 1 == k {
            break;
        }
        contribs = lazy_contribs(contribs, &vals, &selected_vecs, r, hv);
    }
    selected.into_iter().map(|i| indices[i]).collect()
}

/// Optuna's `_solve_hssp`: greedily picks `subset_size` of `points` (labelled by `labels`, one
/// each) that together dominate the most hypervolume up to `reference`, each step taking the
/// point of largest contribution (the first in lexicographic order of ties); repeated points
/// are taken after all distinct ones, in order. Returns the labels picked, in Optuna's order.
pub fn solve_hssp<R: AsRef<[f64]>>(
    points: &[R],
    labels: &[usize],
    subset_size: usize,
    reference: &[f64],
) -> Vec<usize> {
    assert_eq!(points.len(), labels.len(), "one label per point");
    assert!(subset_size <= points.len(), "subset_size {subset_size} > {} points", points.len());
    if subset_size == labels.len() {
        return labels.to_vec();
    }
    let (unique, first, _) = unique_rows(points);
    if unique.len() < subset_size {
        let mut chosen = vec![false; labels.len()];
        for &i in &first {
            chosen[i] = true;
        }
        let extra: Vec<usize> = (0..labels.len()).filter(|&i| !chosen[i]).take(subset_size - unique.len()).collect();
        for i in extra {
            chosen[i] = true;
        }
        return labels.iter().zip(chosen).filter(|(_, c)| *c).map(|(l, _)| *l).collect();
    }
    hssp_unique(unique, &first, subset_size, reference).into_iter().map(|i| labels[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn hypervolume_2d_by_hand() {
        // (1, 3), (2, 2), (3, 1) under (4, 4): a staircase of 3 + 2 + 1 = 6 unit squares.
        let pts = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]];
        assert_eq!(hypervolume(&pts, &[4.0, 4.0]), Some(6.0));
        // Order, a dominated point and a duplicate change nothing.
        let more = [[3.0, 1.0], [2.5, 2.5], [1.0, 3.0], [2.0, 2.0], [3.0, 1.0]];
        assert_eq!(hypervolume(&more, &[4.0, 4.0]), Some(6.0));
        // Under (5, 4.5): widths 4, 3, 2 over heights 1.5, 1, 1 -> 6 + 3 + 2 = 11.
        assert_eq!(hypervolume(&pts, &[5.0, 4.5]), Some(11.0));
        assert_eq!(hypervolume(&[[0.0; 2]; 0], &[1.0, 1.0]), Some(0.0));
        assert_eq!(hypervolume(&pts, &[2.0, 4.0]), None, "a point beyond the reference");
        assert_eq!(hypervolume(&pts, &[f64::INFINITY, 4.0]), Some(f64::INFINITY));
    }

    #[test]
    fn hypervolume_3d_and_wfg_agree_with_boxes() {
        // Two boxes in 3-D: [0,2]x[0,2]x[1,2] from (0,0,1) and [1,2]^2x[0,2] from (1,1,0):
        // 4 + 2 - 1 = 5.
        let pts = [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]];
        assert_eq!(hypervolume(&pts, &[2.0, 2.0, 2.0]), Some(5.0));
        let three = [[0.0, 1.0, 2.0], [1.0, 2.0, 0.0], [2.0, 0.0, 1.0]];
        let hv3 = hypervolume(&three, &[3.0, 3.0, 3.0]).unwrap();
        // The same in 4-D with a fourth objective constant at 0 under 1: WFG must agree.
        let four: Vec<Vec<f64>> = three.iter().map(|p| vec![p[0], p[1], p[2], 0.0]).collect();
        let hv4 = hypervolume(&four, &[3.0, 3.0, 3.0, 1.0]).unwrap();
        assert!(close(hv3, hv4), "{hv3} vs {hv4}");
        // Integer corners under (3, 3, 3): the volume is the number of unit voxels dominated.
        let mut voxels = 0;
        for x in 0..3 {
            for y in 0..3 {
                for z in 0..3 {
                    if three.iter().any(|p| p[0] <= x as f64 && p[1] <= y as f64 && p[2] <= z as f64) {
                        voxels += 1;
                    }
                }
            }
        }
        assert_eq!(hv3, voxels as f64);
    }

    #[test]
    fn ranks_by_hand() {
        // Front 0: (1,4), (2,2), (4,1) and the repeat of (2,2); front 1: (3,3), (2,5), (5,2);
        // front 2: (4,4), which (3,3) dominates.
        let pts = [[1.0, 4.0], [3.0, 3.0], [2.0, 2.0], [4.0, 4.0], [2.0, 5.0], [4.0, 1.0], [5.0, 2.0], [2.0, 2.0]];
        assert_eq!(non_domination_ranks(&pts, None), vec![0, 1, 0, 2, 1, 0, 1, 0]);
        // Only the best 3 distinct points wanted: front 0 has them, all later points share rank 1.
        assert_eq!(non_domination_ranks(&pts, Some(3)), vec![0, 1, 0, 1, 1, 0, 1, 0]);
        assert_eq!(pareto_front(&pts), vec![true, false, true, false, false, true, false, true]);
        // Three objectives.
        let p3 = [[1.0, 1.0, 1.0], [0.0, 2.0, 2.0], [2.0, 2.0, 2.0]];
        assert_eq!(non_domination_ranks(&p3, None), vec![0, 0, 1]);
    }

    #[test]
    fn hssp_takes_the_larger_contribution() {
        // Under (4, 4): (1, 3) alone covers 3, (2, 2) covers 4, (3, 1) covers 3: pick (2, 2).
        let pts = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]];
        assert_eq!(solve_hssp(&pts, &[10, 11, 12], 1, &[4.0, 4.0]), vec![11]);
        // Then (1, 3) and (3, 1) each add 1: the first in lexicographic order wins the tie.
        assert_eq!(solve_hssp(&pts, &[10, 11, 12], 2, &[4.0, 4.0]), vec![11, 10]);
        // Alone, (1, 3.9) and (3.9, 1) cover 0.3, (2.5, 2.5) 2.25 and (1.5, 3) 2.5: pick (1.5, 3).
        // Next to it, (2.5, 2.5) adds 2.25 - 1.5 = 0.75, (3.9, 1) 0.2, (1, 3.9) 0.05.
        let pts = [[1.0, 3.9], [2.5, 2.5], [1.5, 3.0], [3.9, 1.0]];
        assert_eq!(solve_hssp(&pts, &[0, 1, 2, 3], 1, &[4.0, 4.0]), vec![2]);
        assert_eq!(solve_hssp(&pts, &[0, 1, 2, 3], 2, &[4.0, 4.0]), vec![2, 1]);
        // The same in 3-D (third objective 0 under 1) goes through the lazy greedy.
        let p3: Vec<Vec<f64>> = pts.iter().map(|p| vec![p[0], p[1], 0.0]).collect();
        assert_eq!(solve_hssp(&p3, &[0, 1, 2, 3], 2, &[4.0, 4.0, 1.0]), vec![2, 1]);
        // And in 4-D (the decremental update).
        let p4: Vec<Vec<f64>> = pts.iter().map(|p| vec![p[0], p[1], 0.0, 0.0]).collect();
        assert_eq!(solve_hssp(&p4, &[0, 1, 2, 3], 3, &[4.0, 4.0, 1.0, 1.0]), vec![2, 1, 3]);
        // Fewer distinct points than wanted: all distinct ones, then repeats in order.
        let dup = [[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [1.0, 2.0]];
        assert_eq!(solve_hssp(&dup, &[5, 6, 7, 8], 3, &[3.0, 3.0]), vec![5, 6, 7]);
    }

    #[test]
    fn reference_point_is_ten_percent_beyond_the_worst() {
        let pts = [[1.0, -2.0, 0.0], [3.0, -4.0, 0.0]];
        let r = reference_point(&pts);
        assert!(close(r[0], 3.3) && close(r[1], -1.8) && r[2] == 1e-12, "{r:?}");
    }
}
