//! Removing what a killed program using the runtime on its own left: top-level trial cgroups and
//! rootfs directories. Names carry the pid of the process that made them, so the leftovers of a
//! dead one are told apart from the live containers of one that is still running (those are
//! skipped), and a name that carries no pid is never touched. The `isolab` harness does not rely
//! on names: its runs record their places (`isolab doctor --clean` reads the records).

use std::path::{Path, PathBuf};

use crate::cgroups::{kill_members, remove_dirs, CGROUP_PREFIX, DEFAULT_CGROUP_ROOT};
use crate::error::ContainerError;
use crate::rootfs::ROOTFS_PREFIX;

/// What [`clean_leftovers`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// cgroup directories removed (processes in them were killed first).
    pub cgroups_removed: Vec<PathBuf>,
    /// rootfs directories removed.
    pub rootfs_removed: Vec<PathBuf>,
    /// Left alone because the isolab process that owns them is alive.
    pub skipped_live: Vec<PathBuf>,
}

/// The owner pid in `isolab-<pid>-<n>` or `rootfs-<pid>-<n>`.
fn owner_pid(name: &str, prefix: &str) -> Option<i32> {
    name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
}

fn owner_alive(pid: i32) -> bool {
    // Our own objects are live by definition; for others, signal 0 tests existence. A reused pid
    // makes us skip a leftover, the safe mistake.
    pid == std::process::id() as i32
        || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Every mounted cgroup hierarchy (v1 controllers, named hierarchies, cgroup2).
fn cgroup_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = cgroups_rs::fs::hierarchies::mountinfo_self()
        .into_iter()
        .filter(|m| m.fs_type.0 == "cgroup" || m.fs_type.0 == "cgroup2")
        .map(|m| m.mount_point)
        .collect();
    if roots.is_empty() {
        roots.push(PathBuf::from(DEFAULT_CGROUP_ROOT));
    }
    roots.sort();
    roots.dedup();
    roots
}

fn entries_with_prefix(dir: &Path, prefix: &str) -> Vec<(PathBuf, String)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            (name.starts_with(prefix) && e.file_type().ok()?.is_dir()).then(|| (e.path(), name))
        })
        .collect()
}

/// Removes trial cgroups (in every mounted hierarchy) and rootfs directories (in `state_dir`) left
/// by isolab processes that no longer run. Processes still in such cgroups are killed. Safe to run
/// at any time, also while another isolab runs.
pub fn clean_leftovers(state_dir: &Path) -> Result<CleanReport, ContainerError> {
    let mut report = CleanReport::default();
    let mut first_error = None;
    for root in cgroup_roots() {
        for (path, name) in entries_with_prefix(&root, CGROUP_PREFIX) {
            match owner_pid(&name, CGROUP_PREFIX) {
                Some(pid) if owner_alive(pid) => report.skipped_live.push(path),
                // Not one of ours (or a run cgroup, which its run's record covers).
                None => {}
                Some(_) => {
                    kill_members(&path);
                    match remove_dirs(std::slice::from_ref(&path)) {
                        Ok(()) => report.cgroups_removed.push(path),
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
    }
    for (path, name) in entries_with_prefix(state_dir, ROOTFS_PREFIX) {
        match owner_pid(&name, ROOTFS_PREFIX) {
            Some(pid) if owner_alive(pid) => report.skipped_live.push(path),
            None => {}
            Some(_) => match std::fs::remove_dir_all(&path) {
                Ok(()) => report.rootfs_removed.push(path),
                Err(source) => {
                    first_error.get_or_insert(ContainerError::Rootfs { path, source });
                }
            },
        }
    }
    first_error.map_or(Ok(report), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pids_are_parsed_from_names() {
        assert_eq!(owner_pid("isolab-123-7", CGROUP_PREFIX), Some(123));
        assert_eq!(owner_pid("rootfs-9-1", ROOTFS_PREFIX), Some(9));
        assert_eq!(owner_pid("isolab-x", CGROUP_PREFIX), None);
        assert_eq!(owner_pid("other-1-1", CGROUP_PREFIX), None);
    }

    #[test]
    fn dead_owners_rootfs_is_removed_live_is_kept() {
        let state = std::env::temp_dir().join(format!("isolab-leftover-{}", std::process::id()));
        let dead = state.join("rootfs-999999999-1");
        let mine = state.join(format!("rootfs-{}-1", std::process::id()));
        std::fs::create_dir_all(dead.join("proc")).expect("mkdir");
        std::fs::create_dir_all(&mine).expect("mkdir");
        let r = clean_leftovers(&state).expect("clean");
        assert!(r.rootfs_removed.contains(&dead));
        assert!(r.skipped_live.contains(&mine));
        assert!(!dead.exists() && mine.exists());
        std::fs::remove_dir_all(&state).expect("cleanup");
    }
}
