//! What this host is: kernel, CPU, memory, KVM flavour, cgroup layout. Read by the manifest (to
//! record every factor that can change a result) and by `isolab doctor` (to explain it).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Which KVM serves `/dev/kvm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KvmFlavour {
    /// Hardware virtualization through kvm_intel (VT-x).
    HardwareIntel,
    /// Hardware virtualization through kvm_amd (AMD-V).
    HardwareAmd,
    /// PVM: software virtualization that boots only PVM-patched guests.
    Pvm,
    /// `/dev/kvm` exists but no known module is loaded.
    Unknown,
    /// No `/dev/kvm`.
    None,
}

impl KvmFlavour {
    /// Whether isolab's VMM can boot a stock Linux guest here.
    pub fn can_boot_linux(self) -> bool {
        matches!(self, KvmFlavour::HardwareIntel | KvmFlavour::HardwareAmd)
    }

    /// One-line description for people.
    pub fn describe(self) -> &'static str {
        match self {
            KvmFlavour::HardwareIntel => "hardware KVM (kvm_intel, VT-x)",
            KvmFlavour::HardwareAmd => "hardware KVM (kvm_amd, AMD-V)",
            KvmFlavour::Pvm => {
                "PVM (kvm_pvm): software virtualization, cannot boot stock Linux guests"
            }
            KvmFlavour::Unknown => "/dev/kvm present, provider unknown",
            KvmFlavour::None => "no /dev/kvm",
        }
    }
}

/// Detects the KVM flavour from the loaded modules (`/sys/module`).
pub fn kvm_flavour() -> KvmFlavour {
    kvm_flavour_at(Path::new("/"))
}

/// [`kvm_flavour`] against another root, for tests.
pub fn kvm_flavour_at(root: &Path) -> KvmFlavour {
    let has = |p: &str| root.join(p).exists();
    if !has("dev/kvm") {
        KvmFlavour::None
    } else if has("sys/module/kvm_pvm") {
        KvmFlavour::Pvm
    } else if has("sys/module/kvm_intel") {
        KvmFlavour::HardwareIntel
    } else if has("sys/module/kvm_amd") {
        KvmFlavour::HardwareAmd
    } else {
        KvmFlavour::Unknown
    }
}

/// How cgroups are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CgroupLayout {
    /// Pure cgroup v2 (unified) at /sys/fs/cgroup: most current distributions.
    V2,
    /// v1 controllers, with an (often empty) v2 hierarchy at /sys/fs/cgroup/unified.
    Hybrid,
    /// v1 only.
    V1,
    /// No cgroup filesystem found.
    None,
}

/// Detects the cgroup layout.
pub fn cgroup_layout() -> CgroupLayout {
    cgroup_layout_at(Path::new("/sys/fs/cgroup"))
}

/// [`cgroup_layout`] against another mount point, for tests.
pub fn cgroup_layout_at(base: &Path) -> CgroupLayout {
    if base.join("cgroup.controllers").exists() {
        CgroupLayout::V2
    } else if base.join("unified/cgroup.controllers").exists() {
        CgroupLayout::Hybrid
    } else if base.join("memory").is_dir() || base.join("cpu").is_dir() {
        CgroupLayout::V1
    } else {
        CgroupLayout::None
    }
}

/// Controllers available for a container's limits, by name.
pub fn cgroup_controllers(layout: CgroupLayout) -> Vec<String> {
    let base = Path::new("/sys/fs/cgroup");
    match layout {
        CgroupLayout::V2 => std::fs::read_to_string(base.join("cgroup.controllers"))
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        CgroupLayout::Hybrid | CgroupLayout::V1 => {
            ["cpu", "cpuacct", "memory", "pids", "blkio", "cpuset"]
                .iter()
                .filter(|c| base.join(c).join("tasks").exists())
                .map(|c| (*c).to_owned())
                .collect()
        }
        CgroupLayout::None => Vec::new(),
    }
}

/// `uname -r`.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The first `model name` in /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Online CPUs available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A field of /proc/meminfo in KiB.
pub fn meminfo_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// cpu0's frequency governor, if the host exposes one.
pub fn cpu_governor() -> Option<String> {
    std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The host's boot_id: the container shares it, a VM has its own.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Free bytes on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_flavour_from_modules() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(kvm_flavour_at(d.path()), KvmFlavour::None);
        std::fs::create_dir_all(d.path().join("dev")).unwrap();
        std::fs::write(d.path().join("dev/kvm"), "").unwrap();
        assert_eq!(kvm_flavour_at(d.path()), KvmFlavour::Unknown);
        std::fs::create_dir_all(d.path().join("sys/module/kvm_amd")).unwrap();
        assert_eq!(kvm_flavour_at(d.path()), KvmFlavour::HardwareAmd);
        std::fs::create_dir_all(d.path().join("sys/module/kvm_pvm")).unwrap();
        assert_eq!(kvm_flavour_at(d.path()), KvmFlavour::Pvm);
        assert!(!KvmFlavour::Pvm.can_boot_linux());
        assert!(KvmFlavour::HardwareAmd.can_boot_linux());
    }

    #[test]
    fn cgroup_layouts() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_layout_at(d.path()), CgroupLayout::None);
        std::fs::create_dir_all(d.path().join("memory")).unwrap();
        assert_eq!(cgroup_layout_at(d.path()), CgroupLayout::V1);
        std::fs::create_dir_all(d.path().join("unified")).unwrap();
        std::fs::write(d.path().join("unified/cgroup.controllers"), "").unwrap();
        assert_eq!(cgroup_layout_at(d.path()), CgroupLayout::Hybrid);
        std::fs::write(d.path().join("cgroup.controllers"), "cpu memory").unwrap();
        assert_eq!(cgroup_layout_at(d.path()), CgroupLayout::V2);
    }

    #[test]
    fn this_host_reads() {
        assert!(!kernel_release().is_empty());
        assert!(cores() >= 1);
        assert!(meminfo_kib("MemTotal").unwrap_or(0) > 0);
        assert!(free_bytes(Path::new("/")).is_some());
    }
}
