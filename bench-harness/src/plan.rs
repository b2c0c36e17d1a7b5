//! Planning: the suite becomes an ordered list of trials.
//!
//! Warm-up rounds come first. Then, for each repetition and each workload, every backend runs
//! once, in an order shuffled anew each time, so slow drift of the machine (thermal state, page
//! cache, other tenants) falls on all backends alike instead of on whichever runs last.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::suite::Suite;

/// One planned trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedTrial {
    /// Position in the plan.
    pub index: usize,
    /// Which backend.
    pub backend: BackendKind,
    /// Index into `Suite::workloads`.
    pub workload: usize,
    /// Repetition (or warm-up round).
    pub repetition: u32,
    /// Warm-up trial.
    pub warmup: bool,
}

/// Plans the trials of `suite`; `seed` makes the shuffle reproducible (it is stored in the manifest).
pub fn plan(suite: &Suite, seed: u64) -> Vec<PlannedTrial> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut trials = Vec::new();
    let rounds = (0..suite.warmup)
        .map(|r| (r, true))
        .chain((0..suite.reps).map(|r| (r, false)));
    for (repetition, warmup) in rounds {
        for workload in 0..suite.workloads.len() {
            let mut order = suite.backends.clone();
            order.shuffle(&mut rng);
            for backend in order {
                trials.push(PlannedTrial {
                    index: trials.len(),
                    backend,
                    workload,
                    repetition,
                    warmup,
                });
            }
        }
    }
    trials
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> Suite {
        let mut s = Suite::default_suite().unwrap();
        s.reps = 20;
        s.warmup = 2;
        s
    }

    #[test]
    fn warmup_first_then_every_backend_once_per_repetition_and_workload() {
        let s = suite();
        let p = plan(&s, 7);
        let per_round = s.workloads.len() * s.backends.len();
        assert_eq!(p.len(), (s.reps + s.warmup) as usize * per_round);
        assert!(p[..2 * per_round].iter().all(|t| t.warmup));
        assert!(p[2 * per_round..].iter().all(|t| !t.warmup));
        for chunk in p.chunks(s.backends.len()) {
            let mut b: Vec<_> = chunk.iter().map(|t| t.backend).collect();
            b.sort();
            assert_eq!(b, BackendKind::ALL.to_vec());
            assert!(chunk.iter().all(|t| t.workload == chunk[0].workload));
        }
        assert!(p.iter().enumerate().all(|(i, t)| t.index == i));
    }

    #[test]
    fn order_is_shuffled_and_reproducible() {
        let s = suite();
        assert_eq!(plan(&s, 1), plan(&s, 1));
        let firsts: std::collections::BTreeSet<_> = plan(&s, 1)
            .chunks(s.backends.len())
            .map(|c| c[0].backend)
            .collect();
        assert_eq!(firsts.len(), 3, "every backend should sometimes go first");
    }
}
