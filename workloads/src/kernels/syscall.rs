//! System call cost: a null system call in a loop (ns per call).

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::kernels::{check_range, WorkloadError};
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

const KIND: &str = "syscall";
const MAX_ITERATIONS: u64 = 10_000_000_000;

/// Runs `syscall`: `iterations` getppid calls.
pub fn run(params: &SyscallParams) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "iterations", params.iterations, 1, MAX_ITERATIONS)?;
    // Warm the path (and the branch predictors) outside the timing.
    for _ in 0..1000 {
        black_box(getppid_raw());
    }
    let start = Instant::now();
    for _ in 0..params.iterations {
        black_box(getppid_raw());
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(vec![Metric::lower(
        "null_syscall",
        "ns/call",
        secs * 1e9 / params.iterations as f64,
    )])
}

/// getppid through `syscall(2)`, so no libc can answer from a cache: every call enters the kernel.
fn getppid_raw() -> libc::c_long {
    // SAFETY: getppid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::syscall(libc::SYS_getppid) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_getppid_is_the_real_parent() {
        assert_eq!(
            getppid_raw(),
            libc::c_long::from(std::os::unix::process::parent_id())
        );
    }

    #[test]
    fn small_run_reports_a_cost() {
        let m = run(&SyscallParams { iterations: 10_000 }).unwrap();
        assert_eq!(m[0].name, "null_syscall");
        // A kernel entry is more than 5 ns and (even under heavy virtualisation) under 100 µs.
        assert!(m[0].value > 5.0 && m[0].value < 100_000.0, "{m:?}");
        assert!(run(&SyscallParams { iterations: 0 }).is_err());
    }
}
