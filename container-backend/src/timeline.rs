//! The start timeline of one container on the host's CLOCK_MONOTONIC.
//!
//! The child records its own phases (cgroup joined, namespaces ready, root pivoted, exec) with the
//! same clock: a container shares the host's clock (no time namespace), so every phase of a run,
//! whether the host or the child saw it, lands on one axis.
//!
//! The cgroup is created first; on v2 the child is born inside it, on v1 it joins first thing,
//! before it mounts its root. The run is timed from `Start` to `InitReady` with all of it inside.

use serde::{Deserialize, Serialize};

/// A phase boundary of a container run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The run began (nothing of it exists yet).
    Start,
    /// The trial's cgroup exists with its limits (before the clone).
    CgroupCreated,
    /// `clone3` returned in the parent.
    CloneReturned,
    /// The child's first instruction after `clone3` (its side of "clone returned").
    ChildStarted,
    /// The child is in its cgroup and cgroup namespace (at birth on v2, by its own writes first
    /// thing on v1).
    CgroupJoined,
    /// Hostname set, loopback up.
    NamespacesReady,
    /// The rootfs is mounted and the child's root is it; the host's root is detached.
    RootPivoted,
    /// Capabilities dropped; the child calls `execve`.
    Exec,
    /// The first marker byte arrived from the init process: it runs.
    InitReady,
    /// The init process (PID 1 of the container) ended, and with it every process inside.
    Exited,
    /// The exit status was collected.
    Reaped,
    /// The cgroup is removed and nothing of the run is left.
    CleanedUp,
}

impl Phase {
    /// Name used in samples and reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::CgroupCreated => "cgroup_created",
            Phase::CloneReturned => "clone_returned",
            Phase::ChildStarted => "child_started",
            Phase::CgroupJoined => "cgroup_joined",
            Phase::NamespacesReady => "namespaces_ready",
            Phase::RootPivoted => "root_pivoted",
            Phase::Exec => "exec",
            Phase::InitReady => "agent_ready",
            Phase::Exited => "exited",
            Phase::Reaped => "reaped",
            Phase::CleanedUp => "cleaned_up",
        }
    }
}

/// One marker byte the init process sent, with the host time it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The byte as sent.
    pub byte: u8,
    /// Nanoseconds since [`Phase::Start`].
    pub at_ns: u64,
}

/// Phases and markers of one run, as nanoseconds since [`Phase::Start`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// CLOCK_MONOTONIC at [`Phase::Start`], nanoseconds (to place agent-side timestamps).
    pub start_monotonic_ns: u64,
    /// Phases in time order.
    pub phases: Vec<(Phase, u64)>,
    /// Marker bytes in arrival order.
    pub markers: Vec<Marker>,
}

impl Timeline {
    /// A timeline starting now.
    pub(crate) fn start() -> Self {
        let now = monotonic_ns();
        Self {
            start_monotonic_ns: now,
            phases: vec![(Phase::Start, 0)],
            markers: Vec::new(),
        }
    }

    /// Records `phase` at the current time.
    pub(crate) fn mark(&mut self, phase: Phase) {
        let now = monotonic_ns();
        self.mark_at(phase, now);
    }

    /// Records `phase` at an absolute CLOCK_MONOTONIC time (as the child measured it).
    pub(crate) fn mark_at(&mut self, phase: Phase, monotonic: u64) {
        let at = monotonic.saturating_sub(self.start_monotonic_ns);
        self.phases.push((phase, at));
        // Child phases arrive after the parent's own; keep the list in time order for readers.
        self.phases.sort_by_key(|&(p, t)| (t, p));
    }

    /// Records a marker byte read now.
    pub(crate) fn marker(&mut self, byte: u8, monotonic: u64) {
        self.markers.push(Marker {
            byte,
            at_ns: monotonic.saturating_sub(self.start_monotonic_ns),
        });
    }

    /// When `phase` happened (ns since start), if it did.
    pub fn at(&self, phase: Phase) -> Option<u64> {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|&(_, t)| t)
    }

    /// Start to the first marker from the init process: what starting a container costs.
    pub fn start_to_ready_ns(&self) -> Option<u64> {
        self.at(Phase::InitReady)
    }

    /// From the init's exit to everything removed: what tearing a container down costs.
    pub fn teardown_ns(&self) -> Option<u64> {
        Some(
            self.at(Phase::CleanedUp)?
                .saturating_sub(self.at(Phase::Exited)?),
        )
    }
}

/// The host's CLOCK_MONOTONIC in nanoseconds. Async-signal-safe (vDSO `clock_gettime`), so the
/// child may call it between clone and exec.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // Monotonic time is never negative.
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_stay_sorted_and_spans_are_computed() {
        let mut t = Timeline {
            start_monotonic_ns: 1_000,
            phases: vec![(Phase::Start, 0)],
            markers: vec![],
        };
        t.mark_at(Phase::CloneReturned, 1_500);
        t.mark_at(Phase::CgroupJoined, 1_200);
        t.mark_at(Phase::InitReady, 3_000);
        t.mark_at(Phase::Exited, 5_000);
        t.mark_at(Phase::CleanedUp, 5_700);
        let order: Vec<Phase> = t.phases.iter().map(|p| p.0).collect();
        assert_eq!(
            order,
            [
                Phase::Start,
                Phase::CgroupJoined,
                Phase::CloneReturned,
                Phase::InitReady,
                Phase::Exited,
                Phase::CleanedUp
            ]
        );
        assert_eq!(t.start_to_ready_ns(), Some(2_000));
        assert_eq!(t.teardown_ns(), Some(700));
    }

    #[test]
    fn clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
    }
}
