//! Memory bandwidth: STREAM-style copy and triad (GB/s).

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `mem-bw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemBwParams {
    /// MiB per array (three arrays); far above the last-level cache.
    pub array_mib: u32,
    /// Passes of each kernel; the best pass is reported, as STREAM does.
    pub passes: u32,
}

impl Default for MemBwParams {
    fn default() -> Self {
        Self {
            array_mib: 64,
            passes: 3,
        }
    }
}

/// Runs `mem-bw`. (Kernel not written yet.)
pub fn run(params: &MemBwParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "mem-bw",
        name: "-",
        why: "not implemented yet".into(),
    })
}
