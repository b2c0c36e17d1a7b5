//! Durable writes: 4 KiB write + fsync latency (p50/p99).

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `io-fsync`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoFsyncParams {
    /// Directory (a scratch file is made inside and removed) or block device.
    pub path: String,
    /// 4 KiB write + fsync pairs timed.
    pub ops: u32,
}

impl Default for IoFsyncParams {
    fn default() -> Self {
        Self {
            path: "/var/tmp".into(),
            ops: 200,
        }
    }
}

/// Runs `io-fsync`. (Kernel not written yet.)
pub fn run(params: &IoFsyncParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "io-fsync",
        name: "-",
        why: "not implemented yet".into(),
    })
}
