//! Memory latency: a dependent random pointer chase (ns per access).

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `mem-lat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemLatParams {
    /// Working set in KiB.
    pub working_set_kib: u32,
    /// Dependent loads to time.
    pub accesses: u64,
}

impl Default for MemLatParams {
    fn default() -> Self {
        Self {
            working_set_kib: 64 * 1024,
            accesses: 1_000_000,
        }
    }
}

/// Runs `mem-lat`. (Kernel not written yet.)
pub fn run(params: &MemLatParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "mem-lat",
        name: "-",
        why: "not implemented yet".into(),
    })
}
