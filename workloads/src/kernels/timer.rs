//! Timers: clock_gettime cost and nanosleep(1 ms) overshoot.

use serde::{Deserialize, Serialize};

use crate::kernels::WorkloadError;
use crate::result::Metric;

/// Parameters of `timer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimerParams {
    /// clock_gettime calls timed.
    pub calls: u64,
    /// nanosleep(1 ms) calls timed.
    pub sleeps: u32,
}

impl Default for TimerParams {
    fn default() -> Self {
        Self {
            calls: 1_000_000,
            sleeps: 50,
        }
    }
}

/// Runs `timer`. (Kernel not written yet.)
pub fn run(params: &TimerParams) -> Result<Vec<Metric>, WorkloadError> {
    let _ = params;
    Err(WorkloadError::BadParameter {
        workload: "timer",
        name: "-",
        why: "not implemented yet".into(),
    })
}
