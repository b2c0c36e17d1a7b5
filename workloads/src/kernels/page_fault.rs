//! Page faults: map, touch every page, unmap (ns per page).

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `page-fault`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageFaultParams {
    /// MiB of anonymous memory mapped and touched.
    pub mib: u32,
}

impl Default for PageFaultParams {
    fn default() -> Self {
        Self { mib: 128 }
    }
}

/// Runs `page-fault`. (Kernel not written yet.)
pub fn run(params: &PageFaultParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "page-fault",
        name: "-",
        why: "not implemented yet".into(),
    })
}
