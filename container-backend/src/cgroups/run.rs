//! The cgroup of one isolab run: every trial of the run, whatever its backend, is a sibling below
//! it, so each competes with the rest of the host on the same terms. The layout, in every
//! hierarchy the run uses (v2: the unified one; v1: memory, cpu, cpuacct, pids, devices, blkio):
//!
//! ```text
//! <hierarchy root>/
//!   isolab-run-<id>/            one per run (a random id), created fresh when the run starts, in the
//!                               run's registry entry; holds no process itself
//!     isolab-<pid>-<n>/         a container trial: its memory, CPU and pids limits, the device
//!                               filter, CPU weight 100 (v2 cpu.weight) / 1024 (v1 cpu.shares)
//!     native-<pid>-<n>/         a native trial: the same CPU weight, no limits
//!     vmm-<pid>-<n>/            a VMM process (one per VM): the same CPU weight, memory limit =
//!                               the guest's RAM plus a recorded allowance for the VMM itself
//! ```
//!
//! On v2 the run's cgroup enables memory, cpu, pids and io for its children (it holds no process,
//! so the "no internal processes" rule is kept) and a trial is born inside its cgroup
//! (`CLONE_INTO_CGROUP`); on v1 a trial joins by writing `0` to `tasks` before it execs. isolab
//! itself stays where it was started.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use super::{
    detect_version, kill_members, remove_dirs, CgroupLimits, CgroupSettings, CgroupVersion,
    Hierarchy, TrialCgroup,
};
use crate::error::ContainerError;

/// Prefix of run cgroups (`isolab-run-<id>`).
pub const RUN_CGROUP_PREFIX: &str = "isolab-run-";

/// A run's parent cgroup, in every hierarchy the run uses.
#[derive(Debug)]
pub struct RunCgroup {
    version: CgroupVersion,
    /// Relative to each hierarchy's root.
    rel: PathBuf,
    /// One directory per hierarchy (deduplicated).
    dirs: Vec<PathBuf>,
    /// The settings, with `parent` = `rel`, for runtimes and siblings.
    settings: CgroupSettings,
    /// For siblings (native trials): no limits, no device filter.
    siblings: Hierarchy,
}

impl RunCgroup {
    /// The directories [`RunCgroup::create`] would make for `name`, to record before making them.
    pub fn planned_dirs(
        name: &str,
        settings: &CgroupSettings,
    ) -> Result<Vec<PathBuf>, ContainerError> {
        let rel = settings.parent.join(name);
        let version = settings
            .version
            .unwrap_or_else(|| detect_version(&settings.v2_root));
        Ok(match version {
            CgroupVersion::V1 => super::v1::Hierarchy::detect(Path::new(""))?.dirs_of(&rel),
            CgroupVersion::V2 => vec![settings.v2_root.join(&rel)],
        })
    }

    /// Creates `<root>/<name>` in every hierarchy isolab uses. The directory must not exist
    /// ([`ContainerError::RunCgroupExists`]): a run never adopts a cgroup it did not create. On
    /// error nothing is left.
    pub fn create(name: &str, settings: &CgroupSettings) -> Result<Self, ContainerError> {
        let rel = settings.parent.join(name);
        let version = settings
            .version
            .unwrap_or_else(|| detect_version(&settings.v2_root));
        let dirs = Self::planned_dirs(name, settings)?;
        let mut made = Vec::with_capacity(dirs.len());
        for d in &dirs {
            match std::fs::create_dir(d) {
                Ok(()) => made.push(d.clone()),
                Err(e) => {
                    let _ = remove_dirs(&made);
                    return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                        ContainerError::RunCgroupExists { path: d.clone() }
                    } else {
                        ContainerError::cgroup("create", d, e)
                    });
                }
            }
        }
        let mut mine = settings.clone();
        mine.version = Some(version);
        mine.parent = rel.clone();
        match Hierarchy::detect(&mine, &CgroupLimits::default(), false) {
            Ok(siblings) => Ok(Self {
                version,
                rel,
                dirs,
                settings: mine,
                siblings,
            }),
            Err(e) => {
                let _ = remove_dirs(&made);
                Err(e)
            }
        }
    }

    /// The hierarchy version.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The run cgroup's directories, one per hierarchy.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Its path relative to each hierarchy's root.
    pub fn relative(&self) -> &Path {
        &self.rel
    }

    /// Settings for a container runtime whose trial cgroups go below this one.
    pub fn settings(&self) -> CgroupSettings {
        self.settings.clone()
    }

    /// A cgroup for a native trial, a sibling of the containers' with the same CPU weight and no
    /// limit.
    pub fn create_sibling(&self, name: &str) -> Result<SiblingCgroup, ContainerError> {
        self.create_sibling_limited(name, &CgroupLimits::default())
    }

    /// A sibling with `limits` (a VMM process: its memory limit is the guest's RAM plus the
    /// VMM's allowance). No device filter: the VMM opens `/dev/kvm`.
    pub fn create_sibling_limited(
        &self,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<SiblingCgroup, ContainerError> {
        self.siblings
            .create(name, limits, false)
            .map(|cg| SiblingCgroup { cg })
    }

    /// Removes the run's cgroup and everything below it (killing what still runs there).
    /// Idempotent.
    pub fn remove(&self) -> Result<(), ContainerError> {
        let mut first = None;
        for d in &self.dirs {
            if let Err(e) = remove_tree(d) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// A native trial's cgroup. Removed with [`SiblingCgroup::remove`] (or with the run's).
#[derive(Debug)]
pub struct SiblingCgroup {
    cg: TrialCgroup,
}

impl SiblingCgroup {
    /// v1: the `tasks` files (open for writing) a child writes `0` to, to join before it execs.
    pub fn tasks_fds(&self) -> Vec<RawFd> {
        self.cg.join_fds()
    }

    /// v2: the directory to give `clone3` (`CLONE_INTO_CGROUP`).
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        self.cg.clone_into().map(|fd| {
            // SAFETY: the fd is owned by `self.cg`, which outlives the borrow.
            unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) }
        })
    }

    /// Its directories.
    pub fn dirs(&self) -> &[PathBuf] {
        self.cg.dirs()
    }

    /// What it accounted so far: peak memory, memory by kind, CPU time, I/O.
    pub fn usage(&self) -> super::ResourceUsage {
        self.cg.usage(self.cg.sample_memory())
    }

    /// Removes it (killing what is left inside).
    pub fn remove(&self) -> Result<(), ContainerError> {
        self.cg.remove()
    }
}

/// Removes a cgroup directory and every cgroup below it, deepest first, killing their processes.
/// A missing directory is already removed.
pub fn remove_tree(dir: &Path) -> Result<(), ContainerError> {
    let mut first = None;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if let Err(err) = remove_tree(&e.path()) {
                    first.get_or_insert(err);
                }
            }
        }
    }
    kill_members(dir);
    if let Err(e) = remove_dirs(std::slice::from_ref(&dir.to_path_buf())) {
        first.get_or_insert(e);
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run cgroup with a container-like and a native-like sibling, on this host's hierarchy:
    /// created fresh, never adopted, removed with everything below it. Needs root.
    #[test]
    fn run_cgroup_holds_siblings_and_is_removed_whole() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "cgroups need root; run the tests as root"
        );
        let name = format!("{RUN_CGROUP_PREFIX}unit-{}", std::process::id());
        let settings = CgroupSettings::default();
        let run = RunCgroup::create(&name, &settings).expect("run cgroup");
        assert!(run.dirs().iter().all(|d| d.is_dir()));
        assert!(matches!(
            RunCgroup::create(&name, &settings),
            Err(ContainerError::RunCgroupExists { .. })
        ));
        let native = run.create_sibling("native-1").expect("sibling");
        for d in native.dirs() {
            assert!(d.starts_with(run.dirs().iter().find(|r| d.starts_with(r)).expect("below")));
        }
        match run.version() {
            CgroupVersion::V1 => {
                assert!(!native.tasks_fds().is_empty());
                let cpu = native
                    .dirs()
                    .iter()
                    .find(|d| d.join("cpu.shares").exists())
                    .expect("a cpu hierarchy");
                let shares = std::fs::read_to_string(cpu.join("cpu.shares")).expect("shares");
                assert_eq!(shares.trim(), "1024");
            }
            CgroupVersion::V2 => assert!(native.clone_into().is_some()),
        }
        // A VMM-like sibling with a memory limit: written, and its accounting readable.
        let vmm = run
            .create_sibling_limited(
                "vmm-1",
                &CgroupLimits {
                    memory_bytes: Some(96 << 20),
                    ..CgroupLimits::default()
                },
            )
            .expect("limited sibling");
        let limit_file = match run.version() {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        };
        let limit = vmm
            .dirs()
            .iter()
            .find_map(|d| std::fs::read_to_string(d.join(limit_file)).ok())
            .expect("a memory limit file");
        assert_eq!(limit.trim(), (96u64 << 20).to_string());
        assert_eq!(vmm.usage().oom_kills, 0);
        // Left in place: the run's removal takes it.
        run.remove().expect("remove");
        assert!(run.dirs().iter().all(|d| !d.exists()));
        run.remove().expect("idempotent");
    }
}
