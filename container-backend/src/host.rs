//! What `isolab doctor` asks the container runtime: can this host run containers, and if not,
//! what to do. Read-only: nothing is created or enabled here.

use std::path::Path;

use crate::cgroups::{detect_version, CgroupVersion, DEFAULT_CGROUP_ROOT};
use crate::namespaces::REQUIRED_NAMESPACES;

/// One thing in the way of running containers on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostProblem {
    /// Not running as root.
    NotRoot {
        /// Effective uid.
        euid: u32,
    },
    /// A namespace type is missing from the kernel.
    NamespaceMissing {
        /// Name as in /proc/self/ns.
        namespace: &'static str,
        /// Kernel option that provides it.
        config: &'static str,
    },
    /// No cgroup hierarchy found.
    CgroupsNotMounted,
    /// A controller the runtime needs is not available.
    ControllerMissing {
        /// Controller.
        controller: &'static str,
        /// Hierarchy version in use.
        version: CgroupVersion,
    },
    /// No I/O controller: runs work, but report no I/O bytes.
    NoIoAccounting {
        /// Hierarchy version in use.
        version: CgroupVersion,
    },
}

impl HostProblem {
    /// Whether containers cannot run at all (as opposed to running with less accounting).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, HostProblem::NoIoAccounting { .. })
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        match self {
            HostProblem::NotRoot { .. } => "run isolab as root (sudo)".into(),
            HostProblem::NamespaceMissing { config, .. } => {
                format!("use a kernel built with {config}")
            }
            HostProblem::CgroupsNotMounted => format!(
                "mount cgroup2 at {DEFAULT_CGROUP_ROOT} (`mount -t cgroup2 none {DEFAULT_CGROUP_ROOT}`)"
            ),
            HostProblem::ControllerMissing {
                controller,
                version: CgroupVersion::V1,
            } => format!(
                "mount the v1 `{controller}` controller: `mkdir -p /sys/fs/cgroup/{controller} && \
                 mount -t cgroup -o {controller} cgroup /sys/fs/cgroup/{controller}`"
            ),
            HostProblem::ControllerMissing {
                controller,
                version: CgroupVersion::V2,
            } => format!(
                "make `{controller}` available in {DEFAULT_CGROUP_ROOT}/cgroup.controllers (it may \
                 be bound to a v1 hierarchy: boot with systemd.unified_cgroup_hierarchy=1)"
            ),
            HostProblem::NoIoAccounting {
                version: CgroupVersion::V1,
            } => "mount the v1 blkio controller to get I/O bytes per container".into(),
            HostProblem::NoIoAccounting {
                version: CgroupVersion::V2,
            } => format!("make `io` available in {DEFAULT_CGROUP_ROOT}/cgroup.controllers"),
        }
    }
}

impl std::fmt::Display for HostProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostProblem::NotRoot { euid } => {
                write!(
                    f,
                    "not root (effective uid {euid}): namespaces and cgroups need root"
                )
            }
            HostProblem::NamespaceMissing { namespace, .. } => {
                write!(f, "the kernel has no {namespace} namespace")
            }
            HostProblem::CgroupsNotMounted => f.write_str("no cgroup hierarchy is mounted"),
            HostProblem::ControllerMissing {
                controller,
                version,
            } => write!(f, "cgroup {version} controller `{controller}` is missing"),
            HostProblem::NoIoAccounting { version } => {
                write!(
                    f,
                    "no cgroup {version} I/O controller: I/O bytes will not be reported"
                )
            }
        }
    }
}

/// Checks this host for the container runtime. Empty means containers can run with full
/// accounting; see [`HostProblem::is_fatal`] for the rest.
pub fn check_host() -> Vec<HostProblem> {
    let mut problems = Vec::new();
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 {
        problems.push(HostProblem::NotRoot { euid });
    }
    for (namespace, config) in REQUIRED_NAMESPACES {
        if !Path::new("/proc/self/ns").join(namespace).exists() {
            problems.push(HostProblem::NamespaceMissing { namespace, config });
        }
    }
    let root = Path::new(DEFAULT_CGROUP_ROOT);
    match detect_version(root) {
        CgroupVersion::V2 => {
            let available =
                std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| available.split_ascii_whitespace().any(|a| a == c);
            for controller in crate::cgroups::v2::REQUIRED {
                if !has(controller) {
                    problems.push(HostProblem::ControllerMissing {
                        controller,
                        version: CgroupVersion::V2,
                    });
                }
            }
            if !has("io") {
                problems.push(HostProblem::NoIoAccounting {
                    version: CgroupVersion::V2,
                });
            }
        }
        CgroupVersion::V1 => {
            let v1 = cgroups_rs::fs::hierarchies::V1::new();
            use cgroups_rs::fs::Controllers as C;
            let any = crate::cgroups::v1::Hierarchy::all_mount_points();
            if any.is_empty() {
                problems.push(HostProblem::CgroupsNotMounted);
            } else {
                for (c, name) in [
                    (C::Mem, "memory"),
                    (C::Cpu, "cpu"),
                    (C::CpuAcct, "cpuacct"),
                    (C::Pids, "pids"),
                    (C::Devices, "devices"),
                ] {
                    if v1.get_mount_point(c).is_none() {
                        problems.push(HostProblem::ControllerMissing {
                            controller: name,
                            version: CgroupVersion::V1,
                        });
                    }
                }
                if v1.get_mount_point(C::BlkIo).is_none() {
                    problems.push(HostProblem::NoIoAccounting {
                        version: CgroupVersion::V1,
                    });
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_has_a_fix() {
        let all = [
            HostProblem::NotRoot { euid: 1000 },
            HostProblem::NamespaceMissing {
                namespace: "net",
                config: "CONFIG_NET_NS",
            },
            HostProblem::CgroupsNotMounted,
            HostProblem::ControllerMissing {
                controller: "pids",
                version: CgroupVersion::V1,
            },
            HostProblem::ControllerMissing {
                controller: "memory",
                version: CgroupVersion::V2,
            },
            HostProblem::NoIoAccounting {
                version: CgroupVersion::V2,
            },
        ];
        for p in all {
            assert!(!p.fix().is_empty(), "{p}");
            assert!(!p.to_string().is_empty());
        }
        assert!(!HostProblem::NoIoAccounting {
            version: CgroupVersion::V1
        }
        .is_fatal());
    }
}
