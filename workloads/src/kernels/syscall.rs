//! System call cost: a null system call in a loop (ns per call).

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `syscall`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyscallParams {
    /// Null system calls timed.
    pub iterations: u64,
}

impl Default for SyscallParams {
    fn default() -> Self {
        Self {
            iterations: 500_000,
        }
    }
}

/// Runs `syscall`. (Kernel not written yet.)
pub fn run(params: &SyscallParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "syscall",
        name: "-",
        why: "not implemented yet".into(),
    })
}
