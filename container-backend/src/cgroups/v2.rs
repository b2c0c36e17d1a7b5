//! cgroup v2: one unified hierarchy. The trial cgroup is one directory at the top; the child is
//! born inside it with `clone3(CLONE_INTO_CGROUP)` (Linux 5.7+), so every page and every
//! nanosecond of the container is charged to it from the first instruction, and
//! `CLONE_NEWCGROUP` in the same call makes that cgroup the root of the container's view.
//!
//! Controllers must be enabled in the parent's `cgroup.subtree_control` for their files to appear
//! in a child. Trial cgroups live under the run's cgroup ([`super::run::RunCgroup`]), which holds
//! no process itself (the "no internal processes" rule), never under isolab's own cgroup.

use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::devices::DeviceFilterProgram;
use super::{
    apply_all, cpu, io, memory, pids, read, remove_dirs, CgroupLimits, CgroupVersion, Write,
};
use crate::error::ContainerError;

/// Controllers the runtime cannot work without (limits and accounting the comparison relies on).
pub(crate) const REQUIRED: [&str; 3] = ["memory", "cpu", "pids"];
/// Controllers used when present (I/O accounting).
pub(crate) const OPTIONAL: [&str; 1] = ["io"];

/// The unified hierarchy.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    /// Where trial cgroups go: the root, or the run's cgroup below it.
    base: PathBuf,
    /// The io controller is enabled for children.
    io: bool,
    /// The cpu controller is enabled for children (`cpu.weight` exists).
    cpu: bool,
    /// The device program, loaded once, attached to every container's trial cgroup.
    devices: Option<Arc<DeviceFilterProgram>>,
}

/// Which controllers to enable in the root's subtree_control: those wanted and available but not
/// yet enabled. Pure, so the exact line written is unit-tested.
pub(crate) fn subtree_enable(available: &str, enabled: &str, wanted: &[&str]) -> Option<Write> {
    let avail: Vec<&str> = available.split_ascii_whitespace().collect();
    let on: Vec<&str> = enabled.split_ascii_whitespace().collect();
    let add: Vec<String> = wanted
        .iter()
        .filter(|c| avail.contains(c) && !on.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    (!add.is_empty()).then(|| Write::new("cgroup.subtree_control", add.join(" ")))
}

/// Whether a limit is set that `controller` enforces.
fn limit_needs(controller: &str, limits: &CgroupLimits) -> bool {
    match controller {
        "memory" => limits.memory_bytes.is_some(),
        "cpu" => limits.cpus.is_some(),
        "pids" => limits.pids_max.is_some(),
        _ => false,
    }
}

/// The limit files of a v2 trial cgroup, in the order they are written.
pub(crate) fn limit_writes(limits: &CgroupLimits, has_swap: bool) -> Vec<Write> {
    let mut w = Vec::new();
    if let Some(bytes) = limits.memory_bytes {
        w.extend(memory::v2_limit(bytes, has_swap));
    }
    if let Some(cores) = limits.cpus {
        w.extend(cpu::v2_limit(cores));
    }
    if let Some(max) = limits.pids_max {
        w.extend(pids::limit(max));
    }
    w
}

impl Hierarchy {
    /// Checks the controllers at `root` and enables the missing ones for children (at `root`, then
    /// at `root/parent`, which must exist). With `allow_missing`, a missing controller is
    /// accepted unless one of `limits` needs it. `confine_devices` loads the device program.
    pub(crate) fn detect(
        root: &Path,
        parent: &Path,
        allow_missing: bool,
        limits: &CgroupLimits,
        confine_devices: bool,
    ) -> Result<Self, ContainerError> {
        let controllers = root.join("cgroup.controllers");
        let available = std::fs::read_to_string(&controllers).map_err(|e| {
            ContainerError::CgroupNotMounted {
                path: root.to_path_buf(),
                why: format!("cannot read {}: {e}", controllers.display()),
            }
        })?;
        for c in REQUIRED {
            let needed = !allow_missing || limit_needs(c, limits);
            if needed && !available.split_ascii_whitespace().any(|a| a == c) {
                return Err(ContainerError::MissingController {
                    controller: c,
                    version: CgroupVersion::V2,
                    fix: format!(
                        "{} does not list `{c}`: on a hybrid host the controller is bound to its \
                         v1 hierarchy (use v1, or boot with systemd.unified_cgroup_hierarchy=1); \
                         otherwise enable it in the kernel",
                        controllers.display()
                    ),
                });
            }
        }
        let base = root.join(parent);
        enable_controllers(root, &available, allow_missing, limits)?;
        if base != root {
            let available = read(&base, "cgroup.controllers");
            enable_controllers(&base, &available, allow_missing, limits)?;
        }
        let enabled = read(&base, "cgroup.subtree_control");
        let on = |c: &str| enabled.split_ascii_whitespace().any(|e| e == c);
        let devices = if confine_devices {
            Some(Arc::new(DeviceFilterProgram::load()?))
        } else {
            None
        };
        Ok(Self {
            io: on("io"),
            cpu: on("cpu"),
            base,
            devices,
        })
    }
}

/// Enables the controllers isolab uses for the children of `dir`.
fn enable_controllers(
    dir: &Path,
    available: &str,
    allow_missing: bool,
    limits: &CgroupLimits,
) -> Result<(), ContainerError> {
    let wanted: Vec<&str> = REQUIRED.iter().chain(OPTIONAL.iter()).copied().collect();
    let enabled = read(dir, "cgroup.subtree_control");
    let Some(w) = subtree_enable(available, &enabled, &wanted) else {
        return Ok(());
    };
    // One write per controller, so a refused optional controller does not block the required
    // ones.
    for one in w.value.split_ascii_whitespace() {
        let single = Write {
            file: w.file,
            value: one.to_owned(),
        };
        if let Err(e) = apply_all(dir, std::slice::from_ref(&single)) {
            let name = one.trim_start_matches('+');
            let required = REQUIRED
                .iter()
                .find(|&&c| c == name && (!allow_missing || limit_needs(c, limits)));
            if let Some(&c) = required {
                return Err(ContainerError::MissingController {
                    controller: c,
                    version: CgroupVersion::V2,
                    fix: format!(
                        "enabling it for child cgroups failed ({e}); run \
                         `echo +{c} > {}/cgroup.subtree_control` as root",
                        dir.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

impl Hierarchy {
    /// Creates `<base>/<name>` with the run's CPU weight, `limits` and (with `confine_devices`)
    /// the device program attached, and opens it for `CLONE_INTO_CGROUP`.
    pub(crate) fn create(
        &self,
        name: &str,
        limits: &CgroupLimits,
        confine_devices: bool,
    ) -> Result<TrialCgroup, ContainerError> {
        let dir = self.base.join(name);
        std::fs::create_dir(&dir).map_err(|e| ContainerError::cgroup("create", &dir, e))?;
        let made = (|| {
            let has_swap = dir.join(memory::V2_SWAP_MAX).exists();
            let mut writes = limit_writes(limits, has_swap);
            if self.cpu {
                writes.push(cpu::v2_weight());
            }
            apply_all(&dir, &writes)?;
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(&dir)
                .map_err(|e| ContainerError::cgroup("open", &dir, e))?;
            let fd = OwnedFd::from(f);
            if confine_devices {
                match &self.devices {
                    Some(p) => p.attach(&fd)?,
                    None => {
                        return Err(ContainerError::DeviceFilter {
                            what: "attaching the device program",
                            source: nix::errno::Errno::ENOENT,
                            hint: "the runtime was made without it; report this",
                        })
                    }
                }
            }
            Ok(fd)
        })();
        match made {
            Ok(dir_fd) => Ok(TrialCgroup {
                dir,
                dir_fd,
                io: self.io,
            }),
            Err(e) => {
                let _ = remove_dirs(std::slice::from_ref(&dir));
                Err(e)
            }
        }
    }
}

/// The trial cgroup on v2.
#[derive(Debug)]
pub(crate) struct TrialCgroup {
    pub(crate) dir: PathBuf,
    /// The directory, open for `CLONE_INTO_CGROUP`.
    pub(crate) dir_fd: OwnedFd,
    io: bool,
}

impl TrialCgroup {
    pub(crate) fn memory_breakdown(&self) -> memory::MemoryBreakdown {
        memory::parse_v2_stat(&read(&self.dir, memory::STAT))
    }

    pub(crate) fn usage(&self) -> super::ResourceUsage {
        super::ResourceUsage {
            peak_memory_bytes: read(&self.dir, memory::V2_PEAK).trim().parse().unwrap_or(0),
            memory: self.memory_breakdown(),
            cpu: cpu::parse_v2(&read(&self.dir, cpu::V2_STAT)),
            io: if self.io {
                io::parse_v2(&read(&self.dir, io::V2_STAT))
            } else {
                io::IoBytes::default()
            },
            oom_kills: memory::parse_oom_kills(&read(&self.dir, memory::V2_EVENTS)),
            pids_limit_hits: pids::parse_limit_hits(&read(&self.dir, pids::EVENTS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_control_enables_only_what_is_missing_and_available() {
        let w = subtree_enable(
            "cpuset cpu io memory pids",
            "cpu",
            &["memory", "cpu", "pids", "io"],
        );
        assert_eq!(
            w,
            Some(Write::new("cgroup.subtree_control", "+memory +pids +io"))
        );
        assert_eq!(
            subtree_enable(
                "cpu memory pids",
                "cpu memory pids",
                &["memory", "cpu", "pids"]
            ),
            None
        );
        // io is not available: not requested.
        assert_eq!(
            subtree_enable("memory", "", &["memory", "io"]),
            Some(Write::new("cgroup.subtree_control", "+memory"))
        );
    }

    #[test]
    fn limit_files_for_a_vm_sized_container() {
        let limits = CgroupLimits {
            memory_bytes: Some(512 << 20),
            cpus: Some(2.0),
            pids_max: Some(256),
        };
        assert_eq!(
            limit_writes(&limits, true),
            [
                Write::new("memory.max", "536870912"),
                Write::new("memory.swap.max", "0"),
                Write::new("cpu.max", "200000 100000"),
                Write::new("pids.max", "256"),
            ]
        );
        assert!(limit_writes(&CgroupLimits::default(), true).is_empty());
    }

    #[test]
    fn create_writes_limits_into_a_fake_hierarchy() {
        // A plain directory stands in for cgroupfs: files the kernel would create are made by hand.
        let root = std::env::temp_dir().join(format!("isolab-v2-fake-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("temp dir");
        let h = Hierarchy {
            base: root.clone(),
            io: false,
            cpu: false,
            devices: None,
        };
        // create_dir fails if the dir exists, so pre-creating files needs the dir first: emulate by
        // writing into a pre-made directory through limit_writes and apply_all instead.
        let dir = root.join("isolab-test-1");
        std::fs::create_dir(&dir).expect("mkdir");
        for f in ["memory.max", "memory.swap.max", "cpu.max", "pids.max"] {
            std::fs::write(dir.join(f), "max\n").expect("seed");
        }
        let limits = CgroupLimits {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            pids_max: Some(8),
        };
        apply_all(&dir, &limit_writes(&limits, true)).expect("apply");
        assert_eq!(read(&dir, "memory.max"), "67108864");
        assert_eq!(read(&dir, "memory.swap.max"), "0");
        assert_eq!(read(&dir, "cpu.max"), "50000 100000");
        assert_eq!(read(&dir, "pids.max"), "8");
        assert_eq!(h.base, root);
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
