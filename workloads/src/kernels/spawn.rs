//! Process creation: fork + exec + wait of a tiny child (µs per process).

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `spawn`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpawnParams {
    /// Processes created.
    pub count: u32,
}

impl Default for SpawnParams {
    fn default() -> Self {
        Self { count: 50 }
    }
}

/// Runs `spawn`. (Kernel not written yet.)
pub fn run(params: &SpawnParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "spawn",
        name: "-",
        why: "not implemented yet".into(),
    })
}
