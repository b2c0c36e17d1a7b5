//! The workload kernels, one module per workload. Each takes its parameters and returns named
//! metrics; the agent times the whole call and announces start and end with markers. A kernel
//! whose operations differ (the I/O workloads read, then write) also announces its phases
//! through a [`PhaseHook`], so the host can count each kind of operation on its own.

pub mod cpu;
pub mod inspect;
pub mod io;
pub mod mem_bw;
pub mod mem_lat;
pub mod net;
pub mod net_loopback;
pub mod noop;
pub mod page_fault;
mod prng;
pub mod random_access;
pub mod spawn;
pub mod syscall;
pub mod timer;
pub mod wait;

use thiserror::Error;

use crate::protocol::WorkloadPhase;
use crate::result::{InspectReport, Metric};
use crate::spec::Workload;

/// Announces the phase of a workload that begins now: the agent sends its marker; unit tests
/// record it or pass [`no_phases`]. Called between operations, never inside a timed one.
pub type PhaseHook<'a> = &'a dyn Fn(WorkloadPhase);

/// A [`PhaseHook`] that announces nothing.
pub fn no_phases(_: WorkloadPhase) {}

/// Why a workload could not produce its metrics. Messages say what to do.
#[derive(Debug, Error)]
pub enum WorkloadError {
    /// A parameter is out of range.
    #[error("parameter `{name}` of workload `{workload}` is invalid: {why}")]
    BadParameter {
        /// Workload kind.
        workload: &'static str,
        /// Parameter name.
        name: &'static str,
        /// What is wrong and the accepted range.
        why: String,
    },
    /// The I/O target is missing or unusable.
    #[error("I/O target {path:?} cannot be used: {why}")]
    IoTarget {
        /// The configured path.
        path: String,
        /// What is wrong and what to do.
        why: String,
    },
    /// The workload's own check of its result failed: the memory or the device returned
    /// something other than what was written.
    #[error("workload `{workload}` failed its verification: {why}")]
    Verification {
        /// Workload kind.
        workload: &'static str,
        /// What was wrong.
        why: String,
    },
    /// A system call failed while the workload ran.
    #[error("{what} failed: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl WorkloadError {
    /// Wraps an OS error with what was being attempted.
    pub fn sys(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Sys {
            what: what.into(),
            source,
        }
    }
}

/// Checks that a parameter lies in `min..=max`; the error names the accepted range so a suite
/// author can fix the value without reading the source.
pub(crate) fn check_range(
    workload: &'static str,
    name: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), WorkloadError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(WorkloadError::BadParameter {
            workload,
            name,
            why: format!("{value} is outside the accepted range {min}..={max}"),
        })
    }
}

/// What a workload produced.
#[derive(Debug, Default)]
pub struct KernelOutput {
    /// The metrics.
    pub metrics: Vec<Metric>,
    /// Only for `inspect`.
    pub inspect: Option<InspectReport>,
    /// Only for `wait`: the working set, kept while the agent waits to be told to exit.
    pub held: Option<wait::WorkingSet>,
}

impl From<Vec<Metric>> for KernelOutput {
    fn from(metrics: Vec<Metric>) -> Self {
        Self {
            metrics,
            inspect: None,
            held: None,
        }
    }
}

/// Runs one workload to completion; `phases` hears the phases of the workloads that have them.
pub fn run(workload: &Workload, phases: PhaseHook<'_>) -> Result<KernelOutput, WorkloadError> {
    Ok(match workload {
        Workload::Noop => noop::run().into(),
        Workload::Cpu(p) => cpu::run(p)?.into(),
        Workload::MemBw(p) => mem_bw::run(p)?.into(),
        Workload::MemLat(p) => mem_lat::run(p)?.into(),
        Workload::PageFault(p) => page_fault::run(p)?.into(),
        Workload::Syscall(p) => syscall::run(p)?.into(),
        Workload::Spawn(p) => spawn::run(p)?.into(),
        Workload::IoSeq(p) => io::seq::run(p, phases)?.into(),
        Workload::IoRand(p) => io::rand::run(p, phases)?.into(),
        Workload::IoFsync(p) => io::fsync::run(p)?.into(),
        Workload::NetLoopback(p) => net_loopback::run(p)?.into(),
        Workload::NetStream(p) => net::stream(p)?.into(),
        Workload::NetRr(p) => net::rr(p)?.into(),
        Workload::NetCrr(p) => net::crr(p)?.into(),
        Workload::NetUdpRr(p) => net::udp_rr(p)?.into(),
        Workload::Timer(p) => timer::run(p)?.into(),
        Workload::RandomAccess(p) => random_access::run(p)?.into(),
        Workload::Inspect => {
            let report = inspect::run()?;
            KernelOutput {
                metrics: inspect::metrics(&report),
                inspect: Some(report),
                held: None,
            }
        }
        Workload::Wait(p) => {
            let (metrics, set) = wait::prepare(p)?;
            KernelOutput {
                metrics,
                inspect: None,
                held: Some(set),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_check_accepts_bounds_and_names_the_range() {
        assert!(check_range("cpu", "x", 1, 1, 10).is_ok());
        assert!(check_range("cpu", "x", 10, 1, 10).is_ok());
        let err = check_range("cpu", "x", 0, 1, 10).unwrap_err().to_string();
        assert!(err.contains("1..=10") && err.contains("`x`"), "{err}");
        assert!(check_range("cpu", "x", 11, 1, 10).is_err());
    }
}
