//! Unconstrained minimisation with argmin's L-BFGS (More-Thuente line search), keeping the best
//! point evaluated: a failed line search or an undefined value ends a run early but never loses
//! progress. Deterministic; argmin's timer is off, so no clock is read. Used by GP-BO here and by
//! PB2 in the scheduler crate.

use argmin::core::{CostFunction, Error, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use std::cell::{Cell, RefCell};

/// A value and gradient oracle; `None` where the function is undefined.
pub type Oracle<'a> = dyn Fn(&[f64]) -> Option<(f64, Vec<f64>)> + 'a;

/// A point with its value and gradient.
type Eval = (Vec<f64>, f64, Vec<f64>);

struct Problem<'a, 'b> {
    f: &'b Oracle<'a>,
    /// The solver works on `w = z / scale`.
    scale: f64,
    /// Evaluations left (line searches may evaluate many times per iteration).
    evals_left: Cell<u64>,
    best: RefCell<Option<(f64, Vec<f64>)>>,
    /// The last evaluation: argmin asks for the cost and the gradient at a point separately.
    last: RefCell<Option<Eval>>,
}

impl Problem<'_, '_> {
    fn eval(&self, z: &[f64]) -> Result<(f64, Vec<f64>), Error> {
        if let Some((at, v, g)) = self.last.borrow().as_ref() {
            if at.as_slice() == z {
                return Ok((*v, g.clone()));
            }
        }
        if self.evals_left.get() == 0 {
            return Err(Error::msg("evaluation budget spent"));
        }
        self.evals_left.set(self.evals_left.get() - 1);
        let at: Vec<f64> = z.iter().map(|w| w * self.scale).collect();
        let (v, mut g) = (self.f)(&at)
            .filter(|(v, g)| v.is_finite() && g.iter().all(|x| x.is_finite()))
            .ok_or_else(|| Error::msg("undefined at this point"))?;
        g.iter_mut().for_each(|x| *x *= self.scale);
        *self.last.borrow_mut() = Some((z.to_vec(), v, g.clone()));
        let mut best = self.best.borrow_mut();
        if best.as_ref().map_or(true, |(b, _)| v < *b) {
            *best = Some((v, z.to_vec()));
        }
        Ok((v, g))
    }
}

/// Lends the problem to the executor, which takes it by value.
struct Borrowed<'p, 'a, 'b>(&'p Problem<'a, 'b>);

impl CostFunction for Borrowed<'_, '_, '_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, z: &Vec<f64>) -> Result<f64, Error> {
        Ok(self.0.eval(z)?.0)
    }
}

impl Gradient for Borrowed<'_, '_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, z: &Vec<f64>) -> Result<Vec<f64>, Error> {
        Ok(self.0.eval(z)?.1)
    }
}

/// Minimises `f` from `z0` for at most `max_iters` iterations and `max_evals` evaluations of
/// `f`, stopping when the gradient norm falls below `tol_grad` or an iteration gains less than
/// `tol_cost`; returns the best value and point evaluated (`None` when `f` is undefined at `z0`).
///
/// The first L-BFGS step is plain gradient descent with step length 1 (argmin's line search
/// starts there), which overshoots wildly where the gradient is large. So the solver works on
/// `w = z / scale`, `scale = 1 / sqrt(max(1, |∇f(z0)|))`: its first trial step moves `z` by at
/// most 1. Later steps are scaled by the curvature L-BFGS has seen, so this changes nothing else.
pub fn minimize(
    f: &Oracle<'_>,
    z0: Vec<f64>,
    max_iters: u64,
    max_evals: u64,
    tol_grad: f64,
    tol_cost: f64,
) -> Option<(f64, Vec<f64>)> {
    run(f, z0, max_iters, max_evals, tol_grad, tol_cost, true)
}

/// As [`minimize`], without the rescaling of the first step and without an evaluation budget.
pub fn minimize_unscaled(
    f: &Oracle<'_>,
    z0: Vec<f64>,
    max_iters: u64,
    tol_grad: f64,
    tol_cost: f64,
) -> Option<(f64, Vec<f64>)> {
    run(f, z0, max_iters, u64::MAX, tol_grad, tol_cost, false)
}

fn run(
    f: &Oracle<'_>,
    z0: Vec<f64>,
    max_iters: u64,
    max_evals: u64,
    tol_grad: f64,
    tol_cost: f64,
    rescale: bool,
) -> Option<(f64, Vec<f64>)> {
    let (v0, g0) = f(&z0).filter(|(v, g)| v.is_finite() && g.iter().all(|x| x.is_finite()))?;
    let norm = g0.iter().map(|g| g * g).sum::<f64>().sqrt();
    if rescale && norm < tol_grad {
        return Some((v0, z0));
    }
    let scale = if rescale { 1.0 / norm.max(1.0).sqrt() } else { 1.0 };
    let w0: Vec<f64> = z0.iter().map(|z| z / scale).collect();
    let problem = Problem {
        f,
        scale,
        evals_left: Cell::new(max_evals.saturating_sub(1)),
        best: RefCell::new(Some((v0, w0.clone()))),
        last: RefCell::new(Some((w0.clone(), v0, g0.iter().map(|g| g * scale).collect()))),
    };
    let solver: LBFGS<_, Vec<f64>, Vec<f64>, f64> = LBFGS::new(MoreThuenteLineSearch::new(), 7);
    let solver = solver.with_tolerance_grad(tol_grad * scale).and_then(|s| s.with_tolerance_cost(tol_cost));
    let run = || -> Result<(), Error> {
        Executor::new(Borrowed(&problem), solver?)
            .configure(|s| s.param(w0).max_iters(max_iters))
            .timer(false)
            .run()?;
        Ok(())
    };
    // Errors (line search failures, undefined points) just end the run: the best point stands.
    let _ = run();
    let (v, w) = problem.best.into_inner()?;
    Some((v, w.iter().map(|w| w * scale).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_quadratic() {
        let f = |z: &[f64]| {
            Some(((z[0] - 1.0).powi(2) + 3.0 * (z[1] + 2.0).powi(2), vec![2.0 * (z[0] - 1.0), 6.0 * (z[1] + 2.0)]))
        };
        let (v, z) = minimize(&f, vec![5.0, 5.0], 100, 1000, 1e-9, 1e-14).unwrap();
        assert!(v < 1e-10 && (z[0] - 1.0).abs() < 1e-5 && (z[1] + 2.0).abs() < 1e-5, "{v} {z:?}");
    }

    #[test]
    fn unscaled_finds_the_minimum_of_a_quadratic() {
        let f = |z: &[f64]| {
            Some(((z[0] - 1.0).powi(2) + 3.0 * (z[1] + 2.0).powi(2), vec![2.0 * (z[0] - 1.0), 6.0 * (z[1] + 2.0)]))
        };
        let (v, z) = minimize_unscaled(&f, vec![5.0, 5.0], 100, 1e-7, 1e-14).unwrap();
        assert!(v < 1e-10 && (z[0] - 1.0).abs() < 1e-5 && (z[1] + 2.0).abs() < 1e-5, "{v} {z:?}");
        let broken = |z: &[f64]| (z[0] < 0.5).then(|| (-z[0], vec![-1.0]));
        let (v, z) = minimize_unscaled(&broken, vec![0.0], 50, 1e-7, 1e-12).unwrap();
        assert!(v <= 0.0 && z[0] < 0.5);
        assert_eq!(minimize_unscaled(&broken, vec![1.0], 50, 1e-7, 1e-12), None);
    }

    #[test]
    fn keeps_the_best_point_when_the_function_breaks() {
        // Undefined beyond z = 0.5: the run stops, the best defined point is returned.
        let f = |z: &[f64]| (z[0] < 0.5).then(|| (-z[0], vec![-1.0]));
        let (v, z) = minimize(&f, vec![0.0], 50, 1000, 1e-9, 1e-12).unwrap();
        assert!(v <= 0.0 && z[0] < 0.5);
        assert_eq!(minimize(&f, vec![1.0], 50, 1000, 1e-9, 1e-12), None);
    }

    #[test]
    fn stops_when_the_evaluations_are_spent() {
        let count = Cell::new(0u64);
        let f = |z: &[f64]| {
            count.set(count.get() + 1);
            let v: f64 = z.iter().enumerate().map(|(i, x)| (i as f64 + 1.0) * (x - 1.0).powi(4)).sum();
            Some((v, z.iter().enumerate().map(|(i, x)| 4.0 * (i as f64 + 1.0) * (x - 1.0).powi(3)).collect()))
        };
        let (v, _) = minimize(&f, vec![-3.0; 6], 1000, 12, 1e-12, 0.0).unwrap();
        assert!(count.get() <= 12, "{}", count.get());
        // Progress from the start (21 · 4⁴), within the budget.
        assert!(v < 21.0 * 256.0, "{v}");
    }
}
