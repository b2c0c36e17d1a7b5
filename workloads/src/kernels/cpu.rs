//! CPU: SHA-256 over a buffer (MB/s) and a dense f64 matrix multiply (GFLOP/s).

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `cpu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CpuParams {
    /// MiB hashed with SHA-256.
    pub hash_mib: u32,
    /// Side of the square matrices multiplied (f64).
    pub matrix_n: u32,
}

impl Default for CpuParams {
    fn default() -> Self {
        Self {
            hash_mib: 64,
            matrix_n: 256,
        }
    }
}

/// Runs `cpu`. (Kernel not written yet.)
pub fn run(params: &CpuParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "cpu",
        name: "-",
        why: "not implemented yet".into(),
    })
}
