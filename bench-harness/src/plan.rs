//! Planning: the suite becomes an ordered list of trials.
//!
//! Warm-up rounds come first. Then, for each repetition and each workload, every column (a
//! backend with its factor values, see [`crate::factors`]) runs once, in an order shuffled anew
//! each time, so slow drift of the machine (thermal state, page cache, other tenants) falls on
//! all columns alike instead of on whichever runs last. `--until-ci` adds rounds later with the
//! same generator, so a whole run's order follows from its seed.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::factors::Column;
use crate::suite::Suite;

/// One planned trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedTrial {
    /// Position in the plan.
    pub index: usize,
    /// Which backend.
    pub backend: BackendKind,
    /// Index into the run's columns.
    #[serde(default)]
    pub column: usize,
    /// Index into `Suite::workloads`.
    pub workload: usize,
    /// Repetition (or warm-up round).
    pub repetition: u32,
    /// Warm-up trial.
    pub warmup: bool,
}

/// Plans rounds of trials over a run's columns. It keeps its seeded generator, so rounds added
/// during the run continue the same reproducible shuffle.
#[derive(Debug)]
pub struct Planner {
    rng: rand::rngs::StdRng,
    backends: Vec<BackendKind>,
    next_index: usize,
}

impl Planner {
    /// A planner for `columns`, shuffling with `seed` (stored in the manifest).
    pub fn new(columns: &[Column], seed: u64) -> Self {
        Self {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            backends: columns.iter().map(|c| c.backend).collect(),
            next_index: 0,
        }
    }

    /// One round: for each of `workloads` (in the order given), each of `columns` once, in an
    /// order shuffled anew per workload.
    pub fn round(
        &mut self,
        workloads: &[usize],
        columns: &[usize],
        repetition: u32,
        warmup: bool,
    ) -> Vec<PlannedTrial> {
        let mut out = Vec::with_capacity(workloads.len() * columns.len());
        for &workload in workloads {
            let mut order = columns.to_vec();
            order.shuffle(&mut self.rng);
            for column in order {
                out.push(PlannedTrial {
                    index: self.next_index,
                    backend: self.backends[column],
                    column,
                    workload,
                    repetition,
                    warmup,
                });
                self.next_index += 1;
            }
        }
        out
    }

    /// The suite's plan: its warm-up rounds, then its repetitions, over every column.
    pub fn initial(&mut self, suite: &Suite) -> Vec<PlannedTrial> {
        let workloads: Vec<usize> = (0..suite.workloads.len()).collect();
        let columns: Vec<usize> = (0..self.backends.len()).collect();
        let rounds = (0..suite.warmup)
            .map(|r| (r, true))
            .chain((0..suite.reps).map(|r| (r, false)));
        let mut trials = Vec::new();
        for (repetition, warmup) in rounds {
            trials.extend(self.round(&workloads, &columns, repetition, warmup));
        }
        trials
    }
}

/// Plans the trials of `suite` over `columns`; `seed` makes the shuffle reproducible.
pub fn plan(suite: &Suite, columns: &[Column], seed: u64) -> Vec<PlannedTrial> {
    Planner::new(columns, seed).initial(suite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factors::FactorLevels;

    fn suite() -> Suite {
        let mut s = Suite::default_suite().unwrap();
        s.reps = 20;
        s.warmup = 2;
        s
    }

    #[test]
    fn warmup_first_then_every_backend_once_per_repetition_and_workload() {
        let s = suite();
        let p = plan(&s, &s.columns().unwrap(), 7);
        let per_round = s.workloads.len() * s.backends.len();
        assert_eq!(p.len(), (s.reps + s.warmup) as usize * per_round);
        assert!(p[..2 * per_round].iter().all(|t| t.warmup));
        assert!(p[2 * per_round..].iter().all(|t| !t.warmup));
        for chunk in p.chunks(s.backends.len()) {
            let mut b: Vec<_> = chunk.iter().map(|t| t.backend).collect();
            b.sort();
            assert_eq!(b, BackendKind::DEFAULT.to_vec());
            assert!(chunk.iter().all(|t| t.workload == chunk[0].workload));
        }
        assert!(p.iter().enumerate().all(|(i, t)| t.index == i));
    }

    #[test]
    fn order_is_shuffled_and_reproducible() {
        let s = suite();
        let cols = s.columns().unwrap();
        assert_eq!(plan(&s, &cols, 1), plan(&s, &cols, 1));
        let firsts: std::collections::BTreeSet<_> = plan(&s, &cols, 1)
            .chunks(s.backends.len())
            .map(|c| c[0].backend)
            .collect();
        assert_eq!(firsts.len(), 3, "every backend should sometimes go first");
    }

    #[test]
    fn factor_columns_are_interleaved_like_backends() {
        let mut s = suite();
        s.reps = 12;
        s.set_factor(FactorLevels {
            name: "userns".into(),
            values: vec!["off".into(), "on".into()],
        });
        let cols = s.columns().unwrap();
        assert_eq!(cols.len(), 4); // native, container ×2, vm
        let p = plan(&s, &cols, 5);
        let mut firsts = std::collections::BTreeSet::new();
        for chunk in p.chunks(cols.len()) {
            let mut c: Vec<usize> = chunk.iter().map(|t| t.column).collect();
            firsts.insert(c[0]);
            c.sort_unstable();
            assert_eq!(c, [0, 1, 2, 3]);
            assert!(chunk.iter().all(|t| t.backend == cols[t.column].backend));
        }
        assert_eq!(firsts.len(), 4, "every column should sometimes go first");
    }

    #[test]
    fn later_rounds_continue_the_sequence() {
        let s = suite();
        let cols = s.columns().unwrap();
        let mut a = Planner::new(&cols, 9);
        let first = a.initial(&s);
        let more = a.round(&[1, 4], &[0, 2], s.reps, false);
        assert_eq!(more.len(), 4);
        assert_eq!(more[0].index, first.len());
        assert!(more.iter().all(|t| t.repetition == s.reps && !t.warmup));
        assert!(more.iter().all(|t| [0, 2].contains(&t.column)));
        assert_eq!((more[0].workload, more[2].workload), (1, 4));
        // The same seed gives the same extra round.
        let mut b = Planner::new(&cols, 9);
        b.initial(&s);
        assert_eq!(b.round(&[1, 4], &[0, 2], s.reps, false), more);
    }
}
