//! The host's limits that can stop a density run before memory does: open files (isolab holds a
//! few descriptors per instance), processes, cgroups and namespaces. Each is checked before an N
//! starts, and a start that fails anyway is matched to the limit it hit; either way the report
//! names the limit and how to raise it.

use serde::{Deserialize, Serialize};

/// A host limit that stops (or would stop) an N.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// Which limit: `open files`, `processes`, `cgroups`, `namespaces`, `memory`.
    pub what: String,
    /// What was needed and what the limit is.
    pub detail: String,
    /// How to raise it.
    pub fix: String,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} limit: {}. Fix: {}", self.what, self.detail, self.fix)
    }
}

/// What one instance of a backend takes of each limited resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// File descriptors isolab holds per instance (marker pipe, pidfd, cgroup directory).
    pub fds: u64,
    /// Processes (and threads) per instance.
    pub processes: u64,
    /// cgroups per instance (in each hierarchy).
    pub cgroups: u64,
    /// Whether each instance has its own namespaces.
    pub namespaces: bool,
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (a thousand instances need a few
/// thousand descriptors); returns the limits now in force (soft, hard).
pub fn raise_open_files() -> (u64, u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return (0, 0);
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return (hard, hard);
    }
    (soft, hard)
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Descriptors this process has open now.
fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Tasks (processes and threads) on the host now: the 4th field of /proc/loadavg.
fn host_tasks() -> u64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().nth(3)?.split('/').nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// cgroups in the v1 memory hierarchy now (/proc/cgroups), if it has one.
fn v1_memory_cgroups() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/cgroups").ok()?;
    let line = text.lines().find(|l| l.starts_with("memory\t"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    // subsys_name hierarchy num_cgroups enabled; hierarchy 0 means it is on cgroup2.
    (f.get(1) != Some(&"0")).then(|| f.get(2)?.parse().ok())?
}

/// The v1 memory controller's cgroup ids are 16-bit (`MEM_CGROUP_ID_MAX`).
pub const V1_MEMORY_CGROUPS_MAX: u64 = 65_535;

/// Checks the host's limits for `n` instances of a backend that needs `needs` each, with `fd_soft`
/// the open-files limit in force.
pub fn precheck(n: u64, needs: Needs, fd_soft: u64) -> Result<(), Limit> {
    let fds = open_fds() + n * needs.fds + 64;
    if needs.fds > 0 && fds > fd_soft {
        return Err(Limit {
            what: "open files".into(),
            detail: format!(
                "{n} instances need about {fds} descriptors in isolab ({} each), its limit is \
                 {fd_soft}",
                needs.fds
            ),
            fix: format!(
                "raise it before running isolab: `ulimit -n {fds}` (and the hard limit: \
                 LimitNOFILE= in a systemd unit, or nofile in /etc/security/limits.conf)"
            ),
        });
    }
    let tasks = host_tasks() + n * needs.processes + 64;
    for (path, name) in [
        ("/proc/sys/kernel/pid_max", "kernel.pid_max"),
        ("/proc/sys/kernel/threads-max", "kernel.threads-max"),
    ] {
        if let Some(max) = read_u64(path) {
            if tasks > max {
                return Err(Limit {
                    what: "processes".into(),
                    detail: format!(
                        "{n} instances bring the host to about {tasks} tasks, {name} is {max}"
                    ),
                    fix: format!("`sysctl -w {name}={}`", tasks.next_power_of_two()),
                });
            }
        }
    }
    if needs.cgroups > 0 {
        if let Some(now) = v1_memory_cgroups() {
            let want = now + n * needs.cgroups;
            if want > V1_MEMORY_CGROUPS_MAX {
                return Err(Limit {
                    what: "cgroups".into(),
                    detail: format!(
                        "{n} instances bring the v1 memory hierarchy to {want} cgroups; it holds \
                         at most {V1_MEMORY_CGROUPS_MAX} (16-bit ids), {now} exist"
                    ),
                    fix: "use fewer instances, remove unused cgroups (`isolab doctor --clean` for \
                          isolab's), or move the host to cgroup v2"
                        .into(),
                });
            }
        }
    }
    if needs.namespaces {
        for kind in ["pid", "net", "mnt", "uts", "ipc", "cgroup"] {
            let path = format!("/proc/sys/user/max_{kind}_namespaces");
            if let Some(max) = read_u64(&path) {
                if n + 16 > max {
                    return Err(Limit {
                        what: "namespaces".into(),
                        detail: format!(
                            "{n} instances need {n} {kind} namespaces, user.max_{kind}_namespaces \
                             is {max}"
                        ),
                        fix: format!("`sysctl -w user.max_{kind}_namespaces={}`", 2 * n + 64),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The limit a start that failed with `errno` most likely hit; `None` if it is not a limit.
pub fn classify(errno: i32, what: &str) -> Option<Limit> {
    let (name, fix) = match errno {
        libc::EMFILE => (
            "open files",
            "raise isolab's open-files limit (`ulimit -n`, hard limit via LimitNOFILE= or \
             /etc/security/limits.conf)",
        ),
        libc::ENFILE => (
            "open files",
            "the host's file table is full: raise fs.file-max (`sysctl -w fs.file-max=...`)",
        ),
        libc::EAGAIN => (
            "processes",
            "raise kernel.pid_max and kernel.threads-max (`sysctl -w`), or the pids limit of \
             the cgroup isolab runs in",
        ),
        libc::ENOSPC if what.contains("clone") => (
            "namespaces",
            "raise user.max_*_namespaces (`sysctl -w user.max_net_namespaces=...`) or \
             kernel.pid_max",
        ),
        libc::ENOSPC => (
            "cgroups",
            "the cgroup hierarchy is full (v1 memory: 65535 cgroups; v2: cgroup.max.descendants); \
             use fewer instances",
        ),
        libc::ENOMEM => (
            "memory",
            "the host ran out of memory for the kernel's part of an instance; use fewer instances",
        ),
        _ => return None,
    };
    Some(Limit {
        what: name.into(),
        detail: format!(
            "{what} failed with {}",
            nix::errno::Errno::from_raw(errno).desc()
        ),
        fix: fix.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_files_are_checked_first_with_the_fix() {
        let needs = Needs {
            fds: 3,
            processes: 1,
            cgroups: 1,
            namespaces: true,
        };
        let e = precheck(1000, needs, 1024).expect_err("3000 descriptors do not fit in 1024");
        assert_eq!(e.what, "open files");
        assert!(e.fix.contains("ulimit -n"), "{e}");
        assert!(precheck(2, needs, 1 << 20).is_ok(), "a handful fits");
        let e = precheck(10_000_000, Needs { fds: 0, ..needs }, 1 << 20).expect_err("pids");
        assert_eq!(e.what, "processes", "{e}");
    }

    #[test]
    fn start_errors_name_their_limit() {
        assert_eq!(
            classify(libc::EMFILE, "pipe2").map(|l| l.what),
            Some("open files".into())
        );
        assert_eq!(
            classify(libc::ENOSPC, "clone3 into new namespaces").map(|l| l.what),
            Some("namespaces".into())
        );
        assert_eq!(
            classify(libc::ENOSPC, "create cgroup").map(|l| l.what),
            Some("cgroups".into())
        );
        assert!(classify(libc::EINVAL, "mount").is_none());
        assert!(raise_open_files().0 > 0);
    }
}
