//! What this host is: kernel, CPU, memory, KVM flavour, cgroup layout, and the platform settings
//! artifact-evaluation checklists ask for (microcode, CPU vulnerability mitigations, frequency
//! governor and boost, SMT, NUMA nodes, transparent huge pages, KSM, the kernel command line).
//! Read by the manifest (to record every factor that can change a result) and by `isolab doctor`
//! (to explain it).

use std::collections::BTreeMap;
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

/// Platform settings that change performance results, as artifact-evaluation checklists list
/// them. Each is `None` (or empty) when this host does not expose it (a virtual machine often has
/// no cpufreq or microcode of its own): not read is absent, never a guess.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Platform {
    /// CPU family, model and stepping (`/proc/cpuinfo`): which silicon, beyond its marketing name.
    pub cpu_signature: Option<String>,
    /// Microcode revision (`/proc/cpuinfo`); mitigations and errata depend on it.
    pub microcode: Option<String>,
    /// `/sys/devices/system/cpu/vulnerabilities/*`: each vulnerability and how the kernel deals
    /// with it (`Mitigation: ...`, `Vulnerable`, `Not affected`). System calls, context switches
    /// and VM exits cost more under some mitigations.
    pub mitigations: BTreeMap<String, String>,
    /// cpufreq scaling driver of cpu0 (`intel_pstate`, `acpi-cpufreq`, `amd-pstate`, ...).
    pub cpufreq_driver: Option<String>,
    /// Turbo/boost: `on` or `off`, and where it was read.
    pub boost: Option<String>,
    /// SMT (hyper-threading) control: `on`, `off`, `forceoff`, `notsupported`, `notimplemented`.
    pub smt: Option<String>,
    /// Whether sibling threads are active now.
    pub smt_active: Option<bool>,
    /// NUMA nodes with their CPUs and memory; `None` when the kernel exposes no NUMA topology.
    pub numa_nodes: Option<Vec<NumaNode>>,
    /// Transparent huge pages (`always`, `madvise`, `never`): the mode in brackets of
    /// `/sys/kernel/mm/transparent_hugepage/enabled`.
    pub thp_enabled: Option<String>,
    /// THP defrag policy, the mode in brackets of `.../transparent_hugepage/defrag`.
    pub thp_defrag: Option<String>,
    /// Kernel same-page merging settings and state when the run started.
    pub ksm: Option<Ksm>,
    /// The kernel command line (`/proc/cmdline`), with the values of arguments whose names
    /// suggest a secret (password, token, secret, key) replaced by `<redacted>`.
    pub kernel_cmdline: Option<String>,
    /// The kernel's build string (`uname -v`: preemption model, build date).
    pub kernel_build: Option<String>,
    /// The clock source (`tsc`, `kvm-clock`, `hpet`, ...): what every timer read costs.
    pub clocksource: Option<String>,
}

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaNode {
    /// Node number.
    pub node: u32,
    /// Its CPUs, as the kernel lists them (`0-7,16-23`).
    pub cpus: String,
    /// Its memory, MiB.
    pub memory_mib: Option<u64>,
}

/// KSM (`/sys/kernel/mm/ksm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ksm {
    /// `run`: 0 stopped, 1 merging, 2 unmerging.
    pub run: u32,
    /// Pages scanned per wake-up.
    pub pages_to_scan: Option<u64>,
    /// Sleep between scans, ms.
    pub sleep_millisecs: Option<u64>,
    /// Pages sharing a merged page when the run started.
    pub pages_sharing: Option<u64>,
}

impl Platform {
    /// Reads this host.
    pub fn collect() -> Self {
        let mut p = Self::collect_at(Path::new("/"));
        p.kernel_build = nix::sys::utsname::uname()
            .ok()
            .map(|u| u.version().to_string_lossy().into_owned());
        p
    }

    /// Reads the files under another root (`proc/`, `sys/`), for tests. `kernel_build` needs
    /// `uname` and is left out.
    pub fn collect_at(root: &Path) -> Self {
        let read = |rel: &str| {
            std::fs::read_to_string(root.join(rel))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        let cpuinfo = read("proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| cpuinfo_field(&cpuinfo, name);
        let cpu_signature = match (field("cpu family"), field("model"), field("stepping")) {
            (Some(f), Some(m), Some(s)) => Some(format!("family {f} model {m} stepping {s}")),
            _ => None,
        };
        let cpu = "sys/devices/system/cpu";
        let boost = read(&format!("{cpu}/cpufreq/boost"))
            .map(|v| format!("{} (cpufreq/boost = {v})", on_off(v == "1")))
            .or_else(|| {
                read(&format!("{cpu}/intel_pstate/no_turbo"))
                    .map(|v| format!("{} (intel_pstate/no_turbo = {v})", on_off(v == "0")))
            });
        Self {
            cpu_signature,
            microcode: field("microcode"),
            mitigations: read_dir_values(&root.join(cpu).join("vulnerabilities")),
            cpufreq_driver: read(&format!("{cpu}/cpu0/cpufreq/scaling_driver")),
            boost,
            smt: read(&format!("{cpu}/smt/control")),
            smt_active: read(&format!("{cpu}/smt/active")).map(|v| v == "1"),
            numa_nodes: numa_nodes(&root.join("sys/devices/system/node")),
            thp_enabled: read("sys/kernel/mm/transparent_hugepage/enabled")
                .and_then(|v| bracketed(&v)),
            thp_defrag: read("sys/kernel/mm/transparent_hugepage/defrag")
                .and_then(|v| bracketed(&v)),
            ksm: read("sys/kernel/mm/ksm/run")
                .and_then(|v| v.parse().ok())
                .map(|run| {
                    let num = |f: &str| read(&format!("sys/kernel/mm/ksm/{f}"))?.parse().ok();
                    Ksm {
                        run,
                        pages_to_scan: num("pages_to_scan"),
                        sleep_millisecs: num("sleep_millisecs"),
                        pages_sharing: num("pages_sharing"),
                    }
                }),
            kernel_cmdline: read("proc/cmdline").map(|c| redact_cmdline(&c)),
            kernel_build: None,
            clocksource: read("sys/devices/system/clocksource/clocksource0/current_clocksource"),
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// The first value of `name` in /proc/cpuinfo's text (the name must match exactly: `model` is
/// not `model name`).
fn cpuinfo_field(cpuinfo: &str, name: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_owned())
    })
}

/// The selected mode of a sysfs choice list: `always [madvise] never` gives `madvise`.
fn bracketed(choices: &str) -> Option<String> {
    let start = choices.find('[')?;
    let end = start + choices[start..].find(']')?;
    Some(choices[start + 1..end].to_owned())
}

/// Every file of a directory with its trimmed contents, by name.
fn read_dir_values(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let value = std::fs::read_to_string(e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                value.trim().to_owned(),
            ))
        })
        .collect()
}

/// NUMA nodes from `/sys/devices/system/node/node*/`, in node order.
fn numa_nodes(dir: &Path) -> Option<Vec<NumaNode>> {
    let mut nodes: Vec<NumaNode> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let node: u32 = name.strip_prefix("node")?.parse().ok()?;
            let cpus = std::fs::read_to_string(e.path().join("cpulist")).ok()?;
            let memory_mib = std::fs::read_to_string(e.path().join("meminfo"))
                .ok()
                .and_then(|m| {
                    m.lines().find_map(|l| {
                        let rest = l.split_once("MemTotal:")?.1;
                        rest.split_whitespace().next()?.parse::<u64>().ok()
                    })
                })
                .map(|kib| kib / 1024);
            Some(NumaNode {
                node,
                cpus: cpus.trim().to_owned(),
                memory_mib,
            })
        })
        .collect();
    nodes.sort_by_key(|n| n.node);
    (!nodes.is_empty()).then_some(nodes)
}

/// The kernel command line with the values of secret-looking arguments (names containing
/// `pass`, `token`, `secret` or `key`) replaced: a manifest is meant to be published.
pub fn redact_cmdline(cmdline: &str) -> String {
    cmdline
        .split(' ')
        .map(|arg| match arg.split_once('=') {
            Some((name, _))
                if ["pass", "token", "secret", "key"]
                    .iter()
                    .any(|w| name.to_ascii_lowercase().contains(w)) =>
            {
                format!("{name}=<redacted>")
            }
            _ => arg.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
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

    #[test]
    fn platform_settings_are_read_from_proc_and_sys() {
        let d = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &str| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        // Nothing exposed: every setting absent, none guessed.
        let empty = Platform::collect_at(d.path());
        assert_eq!(empty, Platform::default());

        put(
            "proc/cpuinfo",
            "processor\t: 0\ncpu family\t: 23\nmodel\t\t: 49\nmodel name\t: AMD EPYC\n\
             stepping\t: 0\nmicrocode\t: 0x830107a\n",
        );
        let cpu = "sys/devices/system/cpu";
        put(
            &format!("{cpu}/vulnerabilities/spectre_v2"),
            "Mitigation: Retpolines\n",
        );
        put(&format!("{cpu}/vulnerabilities/meltdown"), "Not affected\n");
        put(
            &format!("{cpu}/cpu0/cpufreq/scaling_driver"),
            "acpi-cpufreq\n",
        );
        put(&format!("{cpu}/cpufreq/boost"), "0\n");
        put(&format!("{cpu}/smt/control"), "on\n");
        put(&format!("{cpu}/smt/active"), "1\n");
        put("sys/devices/system/node/node1/cpulist", "8-15\n");
        put(
            "sys/devices/system/node/node1/meminfo",
            "Node 1 MemTotal:       2097152 kB\n",
        );
        put("sys/devices/system/node/node0/cpulist", "0-7\n");
        put(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never\n",
        );
        put(
            "sys/kernel/mm/transparent_hugepage/defrag",
            "always defer defer+madvise [madvise] never\n",
        );
        put("sys/kernel/mm/ksm/run", "1\n");
        put("sys/kernel/mm/ksm/pages_to_scan", "100\n");
        put("sys/kernel/mm/ksm/pages_sharing", "42\n");
        put(
            "proc/cmdline",
            "ro quiet mitigations=auto api_token=abc Password=x\n",
        );
        put(
            "sys/devices/system/clocksource/clocksource0/current_clocksource",
            "tsc\n",
        );

        let p = Platform::collect_at(d.path());
        assert_eq!(
            p.cpu_signature.as_deref(),
            Some("family 23 model 49 stepping 0")
        );
        assert_eq!(p.microcode.as_deref(), Some("0x830107a"));
        assert_eq!(p.mitigations.len(), 2);
        assert_eq!(p.mitigations["spectre_v2"], "Mitigation: Retpolines");
        assert_eq!(p.cpufreq_driver.as_deref(), Some("acpi-cpufreq"));
        assert_eq!(p.boost.as_deref(), Some("off (cpufreq/boost = 0)"));
        assert_eq!(p.smt.as_deref(), Some("on"));
        assert_eq!(p.smt_active, Some(true));
        let nodes = p.numa_nodes.unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!((nodes[0].node, nodes[0].cpus.as_str()), (0, "0-7"));
        assert_eq!(nodes[0].memory_mib, None);
        assert_eq!((nodes[1].node, nodes[1].memory_mib), (1, Some(2048)));
        assert_eq!(p.thp_enabled.as_deref(), Some("madvise"));
        assert_eq!(p.thp_defrag.as_deref(), Some("madvise"));
        let ksm = p.ksm.unwrap();
        assert_eq!(
            (ksm.run, ksm.pages_to_scan, ksm.sleep_millisecs),
            (1, Some(100), None)
        );
        assert_eq!(ksm.pages_sharing, Some(42));
        assert_eq!(
            p.kernel_cmdline.as_deref(),
            Some("ro quiet mitigations=auto api_token=<redacted> Password=<redacted>")
        );
        assert_eq!(p.clocksource.as_deref(), Some("tsc"));
    }

    #[test]
    fn intel_no_turbo_is_read_the_right_way_round() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sys/devices/system/cpu/intel_pstate");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("no_turbo"), "0\n").unwrap();
        assert_eq!(
            Platform::collect_at(d.path()).boost.as_deref(),
            Some("on (intel_pstate/no_turbo = 0)")
        );
    }

    #[test]
    fn this_hosts_platform_reads() {
        let p = Platform::collect();
        // Whatever else a kernel hides, it has a command line and a build string.
        assert!(p.kernel_cmdline.is_some());
        assert!(p.kernel_build.is_some());
    }
}
