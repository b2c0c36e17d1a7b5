//! Timers: clock_gettime cost and nanosleep(1 ms) overshoot.

use std::hint::black_box;
use std::time::{Duration, Instant};

use nix::time::{clock_gettime, ClockId};
use serde::{Deserialize, Serialize};

use crate::kernels::io::percentile;
use crate::kernels::{check_range, WorkloadError};
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

const KIND: &str = "timer";
const MAX_CALLS: u64 = 10_000_000_000;
/// 100 000 sleeps of 1 ms are already 100 s.
const MAX_SLEEPS: u64 = 100_000;
const SLEEP: Duration = Duration::from_millis(1);

/// Runs `timer`: the cost of reading CLOCK_MONOTONIC, then how late a 1 ms sleep wakes up.
pub fn run(params: &TimerParams) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "calls", params.calls, 1, MAX_CALLS)?;
    check_range(KIND, "sleeps", params.sleeps.into(), 1, MAX_SLEEPS)?;

    let start = Instant::now();
    for _ in 0..params.calls {
        black_box(
            clock_gettime(ClockId::CLOCK_MONOTONIC)
                .map_err(|e| WorkloadError::sys("clock_gettime(CLOCK_MONOTONIC)", e.into()))?,
        );
    }
    let per_call_ns = start.elapsed().as_secs_f64() * 1e9 / params.calls as f64;

    let mut overshoot_us: Vec<f64> = Vec::with_capacity(params.sleeps as usize);
    for _ in 0..params.sleeps {
        let start = Instant::now();
        // std's sleep is nanosleep(2), restarted on EINTR with the time left.
        std::thread::sleep(SLEEP);
        let slept = start.elapsed();
        overshoot_us.push((slept.as_secs_f64() - SLEEP.as_secs_f64()) * 1e6);
    }
    overshoot_us.sort_by(f64::total_cmp);
    let p50 = percentile(&overshoot_us, 50.0).unwrap_or(f64::NAN);
    let p99 = percentile(&overshoot_us, 99.0).unwrap_or(f64::NAN);

    Ok(vec![
        Metric::lower("clock_gettime_cost", "ns/call", per_call_ns),
        Metric::lower("nanosleep_overshoot", "µs", p50),
        Metric::lower("nanosleep_overshoot_p99", "µs", p99),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_reports_cost_and_overshoot() {
        let m = run(&TimerParams {
            calls: 10_000,
            sleeps: 5,
        })
        .unwrap();
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "clock_gettime_cost",
                "nanosleep_overshoot",
                "nanosleep_overshoot_p99"
            ]
        );
        assert!(m[0].value > 0.0 && m[0].value < 100_000.0, "{m:?}");
        // nanosleep never returns early, so the overshoot is not negative; p99 >= p50.
        assert!(m[1].value >= 0.0 && m[2].value >= m[1].value, "{m:?}");
    }

    #[test]
    fn zero_counts_are_refused() {
        assert!(run(&TimerParams {
            calls: 0,
            sleeps: 1
        })
        .is_err());
        assert!(run(&TimerParams {
            calls: 1,
            sleeps: 0
        })
        .is_err());
    }
}
