//! Unconstrained minimisation with argmin's L-BFGS (More-Thuente line search), keeping the
//! best point evaluated: a failed line search or a non-finite value ends a run early but never
//! loses progress. Deterministic; argmin's timer is off, so no clock is read.

use argmin::core::{CostFunction, Error, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use std::cell::RefCell;

/// A value and gradient oracle; `None` where the function is undefined.
pub(crate) type Oracle<'a> = dyn Fn(&[f64]) -> Option<(f64, Vec<f64>)> + 'a;

/// A point with its value and gradient.
type Eval = (Vec<f64>, f64, Vec<f64>);

struct Problem<'a, 'b> {
    f: &'b Oracle<'a>,
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
        let (v, g) = (self.f)(z)
            .filter(|(v, g)| v.is_finite() && g.iter().all(|x| x.is_finite()))
            .ok_or_else(|| Error::msg("undefined at this point"))?;
        *self.last.borrow_mut() = Some((z.to_vec(), v, g.clone()));
        let mut best = self.best.borrow_mut();
        let better = match best.as_ref() {
            Some((b, _)) => v < *b,
            None => true,
        };
        if better {
            *best = Some((v, z.to_vec()));
        }
        Ok((v, g))
    }
}

impl CostFunction for Problem<'_, '_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, z: &Vec<f64>) -> Result<f64, Error> {
        Ok(self.eval(z)?.0)
    }
}

impl Gradient for Problem<'_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, z: &Vec<f64>) -> Result<Vec<f64>, Error> {
        Ok(self.eval(z)?.1)
    }
}

/// Minimises `f` from `z0` for at most `max_iters` iterations, stopping when the gradient norm
/// falls below 1e-7 or an iteration gains less than `tol_cost`; returns the best value and
/// point evaluated (`None` when `f` is undefined at `z0`).
pub(crate) fn minimize(f: &Oracle<'_>, z0: Vec<f64>, max_iters: u64, tol_cost: f64) -> Option<(f64, Vec<f64>)> {
    let problem = Problem { f, best: RefCell::new(None), last: RefCell::new(None) };
    problem.eval(&z0).ok()?;
    let solver: LBFGS<_, Vec<f64>, Vec<f64>, f64> = LBFGS::new(MoreThuenteLineSearch::new(), 7);
    let solver = solver.with_tolerance_grad(1e-7).and_then(|s| s.with_tolerance_cost(tol_cost));
    let run = |problem: &Problem| -> Result<(), Error> {
        let wrapper = Borrowed(problem);
        Executor::new(wrapper, solver?).configure(|s| s.param(z0).max_iters(max_iters)).timer(false).run()?;
        Ok(())
    };
    // Errors (line search failures, undefined points) just end the run: the best point stands.
    let _ = run(&problem);
    problem.best.into_inner()
}

/// Lends the problem to the executor, which takes it by value.
struct Borrowed<'p, 'a, 'b>(&'p Problem<'a, 'b>);

impl CostFunction for Borrowed<'_, '_, '_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, z: &Vec<f64>) -> Result<f64, Error> {
        self.0.cost(z)
    }
}

impl Gradient for Borrowed<'_, '_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, z: &Vec<f64>) -> Result<Vec<f64>, Error> {
        self.0.gradient(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_quadratic() {
        let f = |z: &[f64]| {
            Some(((z[0] - 1.0).powi(2) + 3.0 * (z[1] + 2.0).powi(2), vec![2.0 * (z[0] - 1.0), 6.0 * (z[1] + 2.0)]))
        };
        let (v, z) = minimize(&f, vec![5.0, 5.0], 100, 1e-14).unwrap();
        assert!(v < 1e-10 && (z[0] - 1.0).abs() < 1e-5 && (z[1] + 2.0).abs() < 1e-5, "{v} {z:?}");
    }

    #[test]
    fn keeps_the_best_point_when_the_function_breaks() {
        // Undefined beyond z = 0.5: the run stops, the best defined point is returned.
        let f = |z: &[f64]| (z[0] < 0.5).then(|| (-z[0], vec![-1.0]));
        let (v, z) = minimize(&f, vec![0.0], 50, 1e-12).unwrap();
        assert!(v <= 0.0 && z[0] < 0.5);
        assert_eq!(minimize(&f, vec![1.0], 50, 1e-12), None);
    }
}
