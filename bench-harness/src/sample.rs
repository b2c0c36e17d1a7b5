//! A sample: one trial's complete record, one line of `samples.jsonl`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use workloads::{Metric, WorkloadResult};

use crate::backend::{Phase, TrialFailure};

/// Everything measured in one trial, with its identity. Nothing is dropped: a failed trial is a
/// sample too, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Position in the plan (0-based); warm-up trials come first.
    pub trial: usize,
    /// Backend name (`native`, `container`, `vm`).
    pub backend: String,
    /// The values of the factors of the trial's column (`userns` = `on`, ...; `aa` = `A'` for
    /// the copy of an A/A check). Empty when the run varied nothing (and in older runs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub factors: BTreeMap<String, String>,
    /// The suite entry's name (the workload kind unless the suite named it).
    pub workload: String,
    /// The workload kind.
    pub kind: String,
    /// Repetition number within measured trials, or warm-up round.
    pub repetition: u32,
    /// Warm-up samples are kept but not summarised.
    pub warmup: bool,
    /// UTC time the trial started.
    pub started_at: String,
    /// `None` when the trial produced a valid result.
    pub failure: Option<TrialFailure>,
    /// Ran in an emulated machine: correctness only, never a performance figure.
    pub emulated: bool,
    /// The agent's metrics followed by the host's (`host.*`).
    pub metrics: Vec<Metric>,
    /// Phases on the host clock.
    pub timeline: Vec<Phase>,
    /// The agent's full result (inspect report, clocks, memory inside).
    pub agent: Option<WorkloadResult>,
    /// Last lines of console or stderr, kept for failed trials.
    pub log_tail: Option<String>,
}

impl Sample {
    /// The column this sample belongs to, as reports label it: the backend and its factor values
    /// (`container userns=on`), with ` (emulated)` for samples taken in an emulated machine.
    pub fn label(&self) -> String {
        let l = crate::factors::label(&self.backend, &self.factors);
        if self.emulated {
            format!("{l} (emulated)")
        } else {
            l
        }
    }

    /// Whether this sample counts in summaries.
    pub fn is_measured_ok(&self) -> bool {
        !self.warmup && self.failure.is_none() && !self.emulated
    }
}
