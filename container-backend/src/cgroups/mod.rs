//! cgroups: one trial cgroup per container run, with limits and accounting, on v1 or v2.
//!
//! Layout mirrors the kernel: one module per controller ([`memory`], [`cpu`], [`pids`], [`io`])
//! says which files to write and how to read them, as pure functions the unit tests check for both
//! versions; `v1` and `v2` know where the hierarchies are and how a process joins. The hot path
//! writes files directly (a handful of `open`+`write`), which is what keeps a start near a
//! millisecond; `cgroups-rs` finds the v1 mount points and helps cleaning leftovers.
//!
//! Trial cgroups are named `isolab-<pid>-<n>` (the pid of the isolab process that owns them) and
//! created below [`CgroupSettings::parent`]: the run's cgroup ([`run::RunCgroup`], where the
//! harness puts every trial of a run side by side), or the top of each hierarchy for a runtime
//! used on its own.

pub mod cpu;
pub mod devices;
pub mod io;
pub mod memory;
pub mod pids;
pub mod run;
pub(crate) mod v1;
pub(crate) mod v2;

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::ContainerError;

pub use cpu::CpuTime;
pub use io::IoBytes;
pub use memory::MemoryBreakdown;

/// Prefix of every cgroup isolab creates.
pub const CGROUP_PREFIX: &str = "isolab-";
/// Where cgroup hierarchies are mounted on every mainstream distribution.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// cgroup hierarchy version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// One hierarchy per controller (legacy and hybrid hosts).
    V1,
    /// The unified hierarchy.
    V2,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        })
    }
}

/// Which cgroup hierarchy to use and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupSettings {
    /// `None` detects: v2 when `<root>/cgroup.controllers` exists (a pure v2 host), else v1.
    pub version: Option<CgroupVersion>,
    /// The cgroup2 mount point for v2 (v1 mount points come from /proc/self/mountinfo).
    pub v2_root: PathBuf,
    /// Use a v2 hierarchy even when it lacks the memory, cpu or pids controller (as the cgroup2
    /// mount of a hybrid host, `/sys/fs/cgroup/unified`): limits that need a missing controller
    /// are still refused, and accounting is what cgroup2 keeps by itself (`cpu.stat`).
    pub v2_allow_missing_controllers: bool,
    /// Where trial cgroups are created, relative to each hierarchy's root (empty: at the top).
    /// It must exist; [`run::RunCgroup::settings`] gives the settings for a run's cgroup.
    pub parent: PathBuf,
}

impl Default for CgroupSettings {
    fn default() -> Self {
        Self {
            version: None,
            v2_root: PathBuf::from(DEFAULT_CGROUP_ROOT),
            v2_allow_missing_controllers: false,
            parent: PathBuf::new(),
        }
    }
}

/// Limits of one container. `None` leaves the kernel's default (unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupLimits {
    /// Memory hard limit, bytes (swap is held at zero when set).
    pub memory_bytes: Option<u64>,
    /// CPU bandwidth in cores.
    pub cpus: Option<f64>,
    /// Maximum number of processes and threads.
    pub pids_max: Option<u64>,
}

/// What a container used, read from its cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// High-water mark of memory charged (anon + page cache + kernel), bytes.
    pub peak_memory_bytes: u64,
    /// Largest anon/file/kernel values seen while the container ran.
    pub memory: MemoryBreakdown,
    /// CPU time.
    pub cpu: CpuTime,
    /// Block I/O (0 when the host has no I/O controller).
    pub io: IoBytes,
    /// Processes the OOM killer killed.
    pub oom_kills: u64,
    /// Forks refused at the pids limit.
    pub pids_limit_hits: u64,
}

/// One file write of a controller's configuration: pure data, so tests can check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    pub file: &'static str,
    pub value: String,
}

impl Write {
    pub(crate) fn new(file: &'static str, value: impl Into<String>) -> Self {
        Self {
            file,
            value: value.into(),
        }
    }

    fn apply(&self, dir: &Path) -> Result<(), ContainerError> {
        let path = dir.join(self.file);
        // O_TRUNC is ignored by cgroupfs but makes the same code right for the plain files the
        // unit tests use.
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| f.write_all(self.value.as_bytes()))
            .map_err(|e| ContainerError::cgroup(format!("write {:?}", self.value), &path, e))
    }
}

/// Applies writes in order.
pub(crate) fn apply_all(dir: &Path, writes: &[Write]) -> Result<(), ContainerError> {
    writes.iter().try_for_each(|w| w.apply(dir))
}

/// `key value` lines, as in memory.stat, cpu.stat, memory.events, pids.events.
pub(crate) fn parse_flat_keyed(text: &str) -> Vec<(&str, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let key = f.next()?;
            let value = f.next()?.parse().ok()?;
            Some((key, value))
        })
        .collect()
}

/// Reads a cgroup file; missing or unreadable files read as empty (accounting is best-effort and
/// never fails a run).
pub(crate) fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

/// The hierarchy this runtime uses, found once.
#[derive(Debug)]
pub(crate) enum Hierarchy {
    V1(v1::Hierarchy),
    V2(v2::Hierarchy),
}

impl Hierarchy {
    /// Finds the hierarchy and checks the controllers the runtime needs. `confine_devices`
    /// prepares the device filter of container trials (on v2, loads its program).
    pub(crate) fn detect(
        settings: &CgroupSettings,
        limits: &CgroupLimits,
        confine_devices: bool,
    ) -> Result<Self, ContainerError> {
        let version = settings
            .version
            .unwrap_or_else(|| detect_version(&settings.v2_root));
        match version {
            CgroupVersion::V1 => Ok(Hierarchy::V1(v1::Hierarchy::detect(&settings.parent)?)),
            CgroupVersion::V2 => Ok(Hierarchy::V2(v2::Hierarchy::detect(
                &settings.v2_root,
                &settings.parent,
                settings.v2_allow_missing_controllers,
                limits,
                confine_devices,
            )?)),
        }
    }

    /// v1: makes the devices cgroup `name` that this runtime's containers share, with the
    /// device rules written once ([`v1::SharedDevices`]). v2 attaches its device program to each
    /// trial cgroup instead (one system call), so nothing is shared there.
    pub(crate) fn share_devices(self, name: &str) -> Result<Self, ContainerError> {
        match self {
            Hierarchy::V1(h) => h.with_shared_devices(name).map(Hierarchy::V1),
            v2 @ Hierarchy::V2(_) => Ok(v2),
        }
    }

    /// A container's trial cgroup, with the device filter but without its limits, which the
    /// caller writes with [`TrialCgroup::write_limits`] (before the clone, or on v1 once the
    /// child has joined). v1 leaves the CPU weight to that call too.
    pub(crate) fn create_for_container(&self, name: &str) -> Result<TrialCgroup, ContainerError> {
        match self {
            Hierarchy::V1(h) => h.create_with(name, None, true).map(TrialCgroup::V1),
            Hierarchy::V2(h) => h
                .create(name, &CgroupLimits::default(), true)
                .map(TrialCgroup::V2),
        }
    }

    /// Gives up the shared devices cgroup (removed now, or by the last container holding it).
    pub(crate) fn release_shared_devices(&mut self) -> Result<(), ContainerError> {
        match self {
            Hierarchy::V1(h) => h.release_shared_devices(),
            Hierarchy::V2(_) => Ok(()),
        }
    }

    /// The devices cgroup this runtime's containers share, if any.
    pub(crate) fn shared_devices_dir(&self) -> Option<&Path> {
        match self {
            Hierarchy::V1(h) => h.shared_devices_dir(),
            Hierarchy::V2(_) => None,
        }
    }

    pub(crate) fn version(&self) -> CgroupVersion {
        match self {
            Hierarchy::V1(_) => CgroupVersion::V1,
            Hierarchy::V2(_) => CgroupVersion::V2,
        }
    }

    /// Creates a trial cgroup with the run's CPU weight, its limits and, with
    /// `confine_devices`, the device filter. On error nothing is left.
    pub(crate) fn create(
        &self,
        name: &str,
        limits: &CgroupLimits,
        confine_devices: bool,
    ) -> Result<TrialCgroup, ContainerError> {
        match self {
            Hierarchy::V1(h) => h.create(name, limits, confine_devices).map(TrialCgroup::V1),
            Hierarchy::V2(h) => h.create(name, limits, confine_devices).map(TrialCgroup::V2),
        }
    }
}

/// A pure v2 host has `cgroup.controllers` at the top of /sys/fs/cgroup; a hybrid or v1 host has
/// a tmpfs there with one directory per controller.
pub fn detect_version(v2_root: &Path) -> CgroupVersion {
    if v2_root.join("cgroup.controllers").exists() {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}

/// The cgroup of one container run.
#[derive(Debug)]
pub(crate) enum TrialCgroup {
    V1(v1::TrialCgroup),
    V2(v2::TrialCgroup),
}

impl TrialCgroup {
    /// `tasks` files the child writes `0` (itself) to, to join (v1).
    pub(crate) fn join_fds(&self) -> Vec<RawFd> {
        match self {
            TrialCgroup::V1(c) => c.join_fds(),
            TrialCgroup::V2(_) => Vec::new(),
        }
    }

    /// Writes the limits of a cgroup made without them ([`Hierarchy::create_for_container`]).
    pub(crate) fn write_limits(&self, limits: &CgroupLimits) -> Result<(), ContainerError> {
        match self {
            TrialCgroup::V1(c) => c.write_limits(limits),
            TrialCgroup::V2(c) => {
                let has_swap = c.dir.join(memory::V2_SWAP_MAX).exists();
                apply_all(&c.dir, &v2::limit_writes(limits, has_swap))
            }
        }
    }

    /// Closes the `tasks` fds once the child has joined (a running container does not need them).
    pub(crate) fn close_join_fds(&mut self) {
        if let TrialCgroup::V1(c) = self {
            c.procs.clear();
        }
    }

    /// The processes in the cgroup now (v1: its memory hierarchy's `cgroup.procs`).
    pub(crate) fn processes(&self) -> Vec<i32> {
        let dir = match self {
            TrialCgroup::V1(c) => c.memory_dir(),
            TrialCgroup::V2(c) => &c.dir,
        };
        read(dir, "cgroup.procs")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// What the memory controller charges to the cgroup now (not its peak), bytes, with the
    /// breakdown.
    pub(crate) fn charged_now(&self) -> (u64, MemoryBreakdown) {
        match self {
            TrialCgroup::V1(c) => (
                read(c.memory_dir(), memory::V1_USAGE)
                    .trim()
                    .parse()
                    .unwrap_or(0),
                c.memory_breakdown(),
            ),
            TrialCgroup::V2(c) => (
                read(&c.dir, memory::V2_CURRENT).trim().parse().unwrap_or(0),
                c.memory_breakdown(),
            ),
        }
    }

    /// A cgroup2 directory to give `clone3` (`CLONE_INTO_CGROUP`): the child is born inside (v2).
    pub(crate) fn clone_into(&self) -> Option<&OwnedFd> {
        match self {
            TrialCgroup::V1(_) => None,
            TrialCgroup::V2(c) => Some(&c.dir_fd),
        }
    }

    /// Samples the memory breakdown (a gauge) while the container runs.
    pub(crate) fn sample_memory(&self) -> MemoryBreakdown {
        match self {
            TrialCgroup::V1(c) => c.memory_breakdown(),
            TrialCgroup::V2(c) => c.memory_breakdown(),
        }
    }

    /// Everything the cgroup accounted. `sampled` is the largest breakdown seen while running.
    pub(crate) fn usage(&self, sampled: MemoryBreakdown) -> ResourceUsage {
        let mut u = match self {
            TrialCgroup::V1(c) => c.usage(),
            TrialCgroup::V2(c) => c.usage(),
        };
        u.memory = u.memory.max(sampled);
        u
    }

    /// Paths of the cgroup directories (one per v1 hierarchy, one on v2).
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        match self {
            TrialCgroup::V1(c) => &c.dirs,
            TrialCgroup::V2(c) => std::slice::from_ref(&c.dir),
        }
    }

    /// Removes the cgroup. Processes still inside (there should be none: the container's PID 1 is
    /// reaped first, and its exit kills its namespace) are killed first.
    pub(crate) fn remove(&self) -> Result<(), ContainerError> {
        remove_dirs(self.dirs())
    }
}

/// Removes cgroup directories, killing what is still in them. Idempotent: a missing directory is
/// already removed.
pub(crate) fn remove_dirs(dirs: &[PathBuf]) -> Result<(), ContainerError> {
    let mut first_error = None;
    for dir in dirs {
        if let Err(e) = remove_dir(dir) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn remove_dir(dir: &Path) -> Result<(), ContainerError> {
    // A cgroup whose last task just exited can stay busy for a moment (its css goes offline
    // asynchronously); retry briefly rather than leave it.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut killed = false;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                if !killed {
                    kill_members(dir);
                    killed = true;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => {
                return Err(ContainerError::cgroup("remove", dir, e));
            }
        }
    }
}

/// SIGKILLs every process in a cgroup directory (v2 `cgroup.kill` when present; else one by one).
pub(crate) fn kill_members(dir: &Path) {
    let kill_file = dir.join("cgroup.kill");
    if kill_file.exists() && std::fs::write(&kill_file, "1").is_ok() {
        return;
    }
    for pid in read(dir, "cgroup.procs")
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
    {
        // Errors mean the process is already gone, which is what we want.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_skips_malformed_lines() {
        let kv = parse_flat_keyed("a 1\nb x\n\nc 3 extra\nd\n");
        assert_eq!(kv, [("a", 1), ("c", 3)]);
    }

    #[test]
    fn version_detection_looks_for_cgroup_controllers() {
        let dir = std::env::temp_dir().join(format!("isolab-cg-detect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        assert_eq!(detect_version(&dir), CgroupVersion::V1);
        std::fs::write(dir.join("cgroup.controllers"), "cpu memory pids\n").expect("write");
        assert_eq!(detect_version(&dir), CgroupVersion::V2);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
