//! Random I/O: 4 KiB O_DIRECT reads and writes at queue depth 1 (IOPS, p50/p99).

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `io-rand`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoRandParams {
    /// Directory (a scratch file is made inside and removed) or block device.
    pub path: String,
    /// MiB of the region read and written at random.
    pub file_mib: u32,
    /// Operations timed for reads and for writes each.
    pub ops: u32,
}

impl Default for IoRandParams {
    fn default() -> Self {
        Self {
            path: "/var/tmp".into(),
            file_mib: 64,
            ops: 2000,
        }
    }
}

/// Runs `io-rand`. (Kernel not written yet.)
pub fn run(params: &IoRandParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "io-rand",
        name: "-",
        why: "not implemented yet".into(),
    })
}
