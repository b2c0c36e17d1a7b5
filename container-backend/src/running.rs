//! A container that stays up: started by [`crate::Runtime::start`], watched by its caller (which
//! polls the marker pipe of many at once), ended with [`RunningContainer::kill`] and
//! [`RunningContainer::finish`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::cgroups::{MemoryBreakdown, TrialCgroup};
use crate::error::ContainerError;
use crate::process::Spawned;
use crate::timeline::{monotonic_ns, Phase, Timeline};
use crate::{exit_kind, live, CgroupVersion, ExitKind};

/// What the memory controller charges to one container now, as the cgroup sees it: the
/// container's pages and the kernel memory charged to it. It is the cgroup's view, not what the
/// host loses (page-cache pages are charged to whoever touched them first, and v1 charges move
/// in per-CPU batches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMemory {
    /// `memory.usage_in_bytes` (v1) or `memory.current` (v2).
    pub charged_bytes: u64,
    /// The memory.stat breakdown.
    pub breakdown: MemoryBreakdown,
}

/// How a started container ended, once reaped and removed.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How its init ended.
    pub exit: ExitKind,
    /// Its phases and markers, `reaped` and `cleaned_up` included.
    pub timeline: Timeline,
    /// The cgroup directories it had (removed, unless `cleanup_error` says otherwise).
    pub cgroup_dirs: Vec<PathBuf>,
    /// Removing the cgroup failed (`isolab doctor --clean` removes the rest).
    pub cleanup_error: Option<String>,
    /// The step of the child's setup that failed, if it never reached exec.
    pub setup_failure: Option<String>,
}

/// What reading a container's marker pipe gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerRead {
    /// These bytes arrived (possibly none).
    Bytes(Vec<u8>),
    /// The pipe reached its end: every process that could write to it has exited.
    Closed,
}

/// Reads what a non-blocking pipe holds now; the flag says it reached its end.
pub(crate) fn read_available(fd: &OwnedFd) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return (got, false),
            Ok(0) | Err(_) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A container started by [`crate::Runtime::start`] and still up. Dropping it kills, reaps and
/// removes it.
#[derive(Debug)]
pub struct RunningContainer {
    pub(crate) id: u64,
    pub(crate) spawned: Option<Spawned>,
    pub(crate) cg: Option<TrialCgroup>,
    pub(crate) timeline: Timeline,
    pub(crate) marker: Option<OwnedFd>,
    pub(crate) version: CgroupVersion,
}

impl RunningContainer {
    /// The init's pid on the host.
    pub fn pid(&self) -> i32 {
        self.spawned.as_ref().map_or(0, |s| s.pid.as_raw())
    }

    /// A pidfd of the init (readable once it has exited).
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.spawned.as_ref().map(|s| s.pidfd.as_fd())
    }

    /// The read end of the marker pipe (non-blocking), to poll; `None` once it has closed.
    pub fn marker_fd(&self) -> Option<BorrowedFd<'_>> {
        self.marker.as_ref().map(AsFd::as_fd)
    }

    /// Reads the marker bytes that have arrived, stamps them with the time now and records them
    /// on the timeline (the first one is also `agent_ready`). Never blocks.
    pub fn read_markers(&mut self) -> MarkerRead {
        let Some(fd) = self.marker.as_ref() else {
            return MarkerRead::Closed;
        };
        let (got, closed) = read_available(fd);
        self.record(&got);
        if closed {
            self.marker = None;
            if got.is_empty() {
                return MarkerRead::Closed;
            }
        }
        MarkerRead::Bytes(got)
    }

    fn record(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let now = monotonic_ns();
        if self.timeline.markers.is_empty() {
            // The child wrote its phases before it exec'd: they are all there now.
            if let Some(s) = &self.spawned {
                let _ = s.collect_child_report(&mut self.timeline);
            }
            self.timeline.mark_at(Phase::InitReady, now);
        }
        for &b in bytes {
            self.timeline.marker(b, now);
        }
    }

    /// Phases and markers so far.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// The host pids of every process of the container now (from its cgroup; without cgroups,
    /// the init alone).
    pub fn processes(&self) -> Vec<i32> {
        match &self.cg {
            Some(cg) => cg.processes(),
            None => vec![self.pid()],
        }
    }

    /// What its memory cgroup charges to it now; `None` without cgroups.
    pub fn cgroup_memory(&self) -> Option<CgroupMemory> {
        self.cg.as_ref().map(|cg| {
            let (charged_bytes, breakdown) = cg.charged_now();
            CgroupMemory {
                charged_bytes,
                breakdown,
            }
        })
    }

    /// Its cgroup directories.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.cg
            .as_ref()
            .map(|c| c.dirs().to_vec())
            .unwrap_or_default()
    }

    /// The cgroup hierarchy version of the runtime that started it.
    pub fn cgroup_version(&self) -> CgroupVersion {
        self.version
    }

    /// SIGKILLs the init (and with it everything in its PID namespace). Does not wait.
    pub fn kill(&self) {
        if let Some(s) = &self.spawned {
            s.kill();
        }
    }

    /// Waits for the init to end (kill it first, or it waits for as long as the init runs),
    /// reaps it and removes its cgroup.
    pub fn finish(mut self) -> Result<Finished, ContainerError> {
        self.end()
    }

    fn end(&mut self) -> Result<Finished, ContainerError> {
        let Some(spawned) = self.spawned.take() else {
            return Err(ContainerError::Interrupted);
        };
        self.marker = None;
        // Deregister before reaping (see `Runtime::run`).
        live().retain(|l| l.id != self.id);
        let status = spawned.reap();
        self.timeline.mark(Phase::Reaped);
        let failure = spawned.collect_child_report(&mut self.timeline);
        let cgroup_dirs = self.cgroup_dirs();
        let removal = self.cg.take().map_or(Ok(()), |c| c.remove());
        self.timeline.mark(Phase::CleanedUp);
        let status = status?;
        Ok(Finished {
            exit: exit_kind(status),
            timeline: std::mem::take(&mut self.timeline),
            cgroup_dirs,
            cleanup_error: removal.err().map(|e| e.to_string()),
            setup_failure: failure
                .map(|(step, errno)| format!("{step} failed: {errno}; {}", step.hint())),
        })
    }
}

impl Drop for RunningContainer {
    fn drop(&mut self) {
        if self.spawned.is_some() {
            self.kill();
            let _ = self.end();
        }
    }
}
