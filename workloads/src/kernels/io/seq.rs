//! Sequential I/O: O_DIRECT write then read in 1 MiB blocks (MB/s).

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `io-seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoSeqParams {
    /// Directory (a scratch file is made inside and removed) or block device.
    pub path: String,
    /// MiB written then read.
    pub size_mib: u32,
}

impl Default for IoSeqParams {
    fn default() -> Self {
        Self {
            path: "/var/tmp".into(),
            size_mib: 64,
        }
    }
}

/// Runs `io-seq`. (Kernel not written yet.)
pub fn run(params: &IoSeqParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "io-seq",
        name: "-",
        why: "not implemented yet".into(),
    })
}
