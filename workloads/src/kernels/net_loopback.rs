//! Networking: TCP over the sandbox's own loopback (throughput, round-trip latency).

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `net-loopback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetLoopbackParams {
    /// MiB streamed over TCP loopback.
    pub mib: u32,
    /// One-byte ping-pongs timed.
    pub round_trips: u32,
}

impl Default for NetLoopbackParams {
    fn default() -> Self {
        Self {
            mib: 64,
            round_trips: 2000,
        }
    }
}

/// Runs `net-loopback`. (Kernel not written yet.)
pub fn run(params: &NetLoopbackParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "net-loopback",
        name: "-",
        why: "not implemented yet".into(),
    })
}
