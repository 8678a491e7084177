//! Search spaces and searchers: pure, deterministic given a seed; no IO, no clock, no async.
//!
//! A [`Space`] is parsed from nested JSON (canonical `{"$domain": ...}` leaves or the TOML
//! shorthand `{ uniform = [0, 1] }`), and a [`Searcher`] turns it into configs, one trial at a
//! time, drawing randomness only from the [`Rng`] it is handed. [`BasicVariantGenerator`] is
//! Ray Tune's default searcher (grid expansion times `num_samples`); [`TpeSearch`] is Optuna's
//! TPE; [`QmcSearch`] walks a scrambled Sobol' or Halton sequence; [`CmaesSearch`] is CMA-ES
//! with IPOP restarts; [`GpSearch`] is Gaussian-process Bayesian optimisation (log expected
//! improvement); [`ConcurrencyLimiter`] caps how many trials any searcher keeps live.
//! [`BohbSearch`] is BOHB's model (per-budget kernel densities), paired with the HyperBand scheduler.
//!
//! The same seed always gives the same configs (grid leaf `layers` walked, the rest sampled):
//!
//! ```
//! use hyperfleet_searchers::{trial_rng, BasicVariantGenerator, Searcher, Space, Suggestion, TrialId};
//! use serde_json::json;
//!
//! let space = Space::parse(&json!({
//!     "layers": {"grid_search": [2, 4]},
//!     "optimizer": {
//!         "batch": {"qrandint": [16, 128, 16]},
//!         "dropout": {"$domain": {"kind": "uniform", "low": 0.0, "high": 0.5}},
//!         "name": "adam",
//!     },
//! }))?;
//! let mut gen = BasicVariantGenerator::new(space, 1)?;
//! let mut configs = Vec::new();
//! for t in 0.. {
//!     let trial = TrialId(t);
//!     match gen.suggest(trial, &mut trial_rng(42, trial)) {
//!         Suggestion::Config(config) => {
//!             gen.on_trial_add(trial, &config);
//!             configs.push(serde_json::Value::Object(config));
//!         }
//!         other => {
//!             assert_eq!(other, Suggestion::Exhausted);
//!             break;
//!         }
//!     }
//! }
//! assert_eq!(configs, [
//!     json!({"layers": 2, "optimizer": {"batch": 96, "dropout": 0.475137703836242, "name": "adam"}}),
//!     json!({"layers": 4, "optimizer": {"batch": 96, "dropout": 0.08345516988146107, "name": "adam"}}),
//! ]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod bohb;
pub mod cmaes;
pub mod domain;
pub mod gp;
pub mod hypervolume;
pub mod lbfgs;
pub mod limiter;
mod numeric;
mod path;
pub mod qmc;
mod repeater;
mod sample;
pub mod searcher;
mod shorthand;
pub mod space;
pub mod tpe;
pub mod variant;

pub use bohb::{BohbConfig, BohbSearch};
pub use cmaes::{CmaesConfig, CmaesRestart, CmaesSearch, CmaesStop};
pub use domain::Domain;
pub use gp::{GpConfig, GpSearch};
pub use limiter::{ConcurrencyLimiter, LimiterError};
pub use path::{get_path, set_path};
pub use qmc::{QmcConfig, QmcKind, QmcSearch};
pub use repeater::{Repeater, TRIAL_INDEX};
pub use searcher::{Observation, Outcome, Searcher, Suggestion, TrialId};
pub use space::{Config, Param, Space, SpaceError};
pub use tpe::{TpeConfig, TpeSearch};
pub use variant::{BasicVariantConfig, BasicVariantGenerator};

use rand::SeedableRng;

/// The random generator every algorithm takes: stable across `rand` releases.
pub type Rng = rand_chacha::ChaCha8Rng;

/// The generator for one trial: seeded by the experiment seed, on the stream of the trial id.
pub fn trial_rng(seed: u64, trial: TrialId) -> Rng {
    let mut rng = Rng::seed_from_u64(seed);
    rng.set_stream(trial.0);
    rng
}
