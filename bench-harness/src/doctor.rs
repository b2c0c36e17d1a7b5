//! `isolab doctor`: what this host can do, each problem with its fix, and which backends are
//! usable (also as the exit code, so scripts can ask).

use std::path::{Path, PathBuf};

use crate::backend::BackendKind;
use crate::host::{self, CgroupLayout, KvmFlavour};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but worth knowing.
    Note,
    /// Makes at least one backend unusable.
    Problem,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Check {
    /// Severity.
    pub level: Level,
    /// What was checked and found.
    pub what: String,
    /// What to do, for notes and problems.
    pub fix: Option<String>,
    /// Backends this finding makes unusable.
    pub blocks: Vec<BackendKind>,
}

impl Check {
    fn ok(what: impl Into<String>) -> Self {
        Self {
            level: Level::Ok,
            what: what.into(),
            fix: None,
            blocks: Vec::new(),
        }
    }
    fn note(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            level: Level::Note,
            what: what.into(),
            fix: Some(fix.into()),
            blocks: Vec::new(),
        }
    }
    fn problem(what: impl Into<String>, fix: impl Into<String>, blocks: &[BackendKind]) -> Self {
        Self {
            level: Level::Problem,
            what: what.into(),
            fix: Some(fix.into()),
            blocks: blocks.to_vec(),
        }
    }
}

/// Bit of the exit code set when a backend is unusable: native 1, container 2, vm 4,
/// qemu-tcg 8.
pub fn exit_bit(kind: BackendKind) -> i32 {
    match kind {
        BackendKind::Native => 1,
        BackendKind::Container => 2,
        BackendKind::Vm => 4,
        BackendKind::QemuTcg => 8,
    }
}

/// Runs every check. `agent` is where the agent was looked for; `results` is the results folder.
pub fn checks(agent: Result<PathBuf, String>, results: &Path) -> Vec<Check> {
    use BackendKind::{Container, Native, QemuTcg, Vm};
    let mut out = Vec::new();

    let root = nix::unistd::geteuid().is_root();
    out.push(if root {
        Check::ok("running as root")
    } else {
        Check::problem(
            "not running as root",
            "run isolab as root (sudo): the container backend creates namespaces, mounts and cgroups (or use `isolab run --userns` for rootless containers, without cgroup limits), \
             and the VM backend opens /dev/kvm",
            &[Container, Vm],
        )
    });

    out.push(match agent {
        Ok(p) => Check::ok(format!("agent: {}", p.display())),
        Err(e) => Check::problem(format!("agent missing: {e}"), "build it: `cargo build --release -p workloads --bin isolab-agent` (./isolab does this)", &[Native, Container, Vm, QemuTcg]),
    });

    // The container runtime knows best what it needs; root is reported once, above.
    let problems = crate::backends::container::check_host();
    for p in problems
        .iter()
        .filter(|p| !matches!(p, crate::backends::container::HostProblem::NotRoot { .. }))
    {
        out.push(if p.is_fatal() {
            Check::problem(format!("container: {p}"), p.fix(), &[Container])
        } else {
            Check::note(format!("container: {p}"), p.fix())
        });
    }
    if !problems.iter().any(|p| p.is_fatal()) {
        out.push(Check::ok("namespaces: pid mnt net uts ipc cgroup"));
    }
    let layout = host::cgroup_layout();
    let controllers = host::cgroup_controllers(layout);
    out.push(match layout {
        CgroupLayout::Hybrid => Check::note(
            format!(
                "cgroups: hybrid (v1 controllers {}, v2 tree without controllers)",
                controllers.join(" ")
            ),
            "supported: isolab uses the v1 controllers here. Most current hosts are pure v2, \
             which isolab supports too",
        ),
        _ => Check::ok(format!(
            "cgroups {layout:?}: controllers {}",
            controllers.join(" ")
        )),
    });

    let kvm = host::kvm_flavour();
    out.push(match kvm {
        KvmFlavour::HardwareIntel | KvmFlavour::HardwareAmd => {
            match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
                Ok(_) => Check::ok(format!("/dev/kvm: {}", kvm.describe())),
                Err(e) => Check::problem(
                    format!("/dev/kvm: {} but cannot be opened: {e}", kvm.describe()),
                    "run as root, or add your user to the kvm group (`sudo usermod -aG kvm $USER`, then log in again)",
                    &[Vm],
                ),
            }
        }
        KvmFlavour::Pvm => Check::problem(
            format!("/dev/kvm: {}", kvm.describe()),
            "run on a host with hardware virtualization (Intel VT-x or AMD-V) and kvm_intel or kvm_amd loaded; \
             meanwhile `isolab run --vm-in-emulator` (and `./run-tests`) run the VM for correctness inside an emulated AMD-V machine (QEMU), which is not a performance figure",
            &[Vm],
        ),
        KvmFlavour::Unknown => Check::note(
            "/dev/kvm present but neither kvm_intel, kvm_amd nor kvm_pvm is loaded",
            "isolab will try it; if guests fail to boot, load kvm_intel or kvm_amd",
        ),
        KvmFlavour::None => Check::problem(
            "no /dev/kvm",
            "enable virtualization in the firmware and `modprobe kvm_intel` or `modprobe kvm_amd`; in a cloud VM, choose an instance type with nested virtualization; \
             meanwhile `isolab run --vm-in-emulator` runs the VM for correctness inside an emulated AMD-V machine (QEMU)",
            &[Vm],
        ),
    });
    if matches!(kvm, KvmFlavour::Pvm | KvmFlavour::None) {
        let qemu = vm_backend::hvm::which("qemu-system-x86_64").is_some();
        out.push(Check::note(
            format!(
                "emulated VM: `isolab run --vm-in-emulator` can run the VM here inside QEMU TCG with AMD-V ({})",
                if qemu { "QEMU is installed" } else { "QEMU is installed from apt on first use" }
            ),
            "its samples are labelled emulated: they show the VM works, not how fast; expect minutes per suite",
        ));
    }
    out.push(match vm_backend::process::client::locate_vmm() {
        Ok(p) => Check::ok(format!(
            "VMM process: {} (one per VM; seccomp filters per thread{})",
            p.display(),
            match vm_backend::seccomp::ThreadFilters::compile(
                vm_backend::seccomp::SeccompMode::On,
                vm_backend::vmm::kick_signal(),
            ) {
                Ok(f) => format!(
                    ", {} BPF instructions in all",
                    f.instructions().values().sum::<usize>()
                ),
                Err(e) => format!(" cannot be built: {e}"),
            }
        )),
        Err(e) => Check::problem(
            format!("VMM process: {e}"),
            "build it: `cargo build --release -p vm_backend --bin isolab-vmm` (./isolab does this)",
            &[Vm],
        ),
    });
    out.push(
        match vm_backend::hvm::which(crate::backends::qemu_tcg::QEMU) {
            Some(q) => Check::ok(format!(
                "emulation: `--backend qemu-tcg` runs the guest under QEMU TCG ({})",
                q.display()
            )),
            None => Check::note(
                "emulation: QEMU is not installed yet",
                "`--backend qemu-tcg` installs qemu-system-x86 from apt on first use",
            ),
        },
    );
    out.push(match vm_backend::kernel::build::find_cached_micro() {
        Some(k) => Check::ok(format!("guest kernel: micro kernel cached in {}", k.dir.display())),
        None => {
            let deps = vm_backend::kernel::build::missing_build_deps();
            Check::note(
                "guest kernel: no micro kernel cached yet",
                format!(
                    "`isolab run` builds it on first VM use (5-10 minutes), or build it now with `isolab kernel build`{}; or pass your own with --kernel",
                    if deps.is_empty() {
                        String::new()
                    } else {
                        format!(" (it installs {} from apt first)", deps.join(", "))
                    }
                ),
            )
        }
    });

    out.push(guest_memory_check());

    for (what, path) in [("results", results), ("scratch", Path::new("/var/tmp"))] {
        let probe = if path.exists() {
            path
        } else {
            path.parent().unwrap_or(Path::new("/"))
        };
        match host::free_bytes(probe) {
            Some(b) if b >= 2 << 30 => out.push(Check::ok(format!(
                "disk: {:.1} GiB free for {what} ({})",
                b as f64 / (1u64 << 30) as f64,
                path.display()
            ))),
            Some(b) => out.push(Check::problem(
                format!(
                    "disk: only {} MiB free for {what} ({})",
                    b >> 20,
                    path.display()
                ),
                "free at least 2 GiB there, or choose another place with --out / --io-dir",
                &[Native, Container, Vm, QemuTcg],
            )),
            None => out.push(Check::note(
                format!("disk: cannot read free space of {}", path.display()),
                "check that the folder exists",
            )),
        }
    }
    out
}

/// The exit code for a set of checks: a bit per unusable backend.
pub fn exit_code(checks: &[Check]) -> i32 {
    let mut code = 0;
    for c in checks {
        for b in &c.blocks {
            code |= exit_bit(*b);
        }
    }
    code
}

/// Renders the checks and the per-backend verdict.
pub fn render(checks: &[Check]) -> String {
    let mut s = String::from("isolab doctor: what this host can do\n\n");
    for c in checks {
        let mark = match c.level {
            Level::Ok => "✓",
            Level::Note => "!",
            Level::Problem => "✗",
        };
        s.push_str(&format!("  {mark} {}\n", c.what));
        if let Some(fix) = &c.fix {
            s.push_str(&format!(
                "      {}: {fix}\n",
                if c.level == Level::Problem {
                    "fix"
                } else {
                    "note"
                }
            ));
        }
    }
    s.push_str("\nBackends:\n");
    for kind in BackendKind::ALL {
        let why: Vec<&str> = checks
            .iter()
            .filter(|c| c.blocks.contains(&kind))
            .map(|c| c.what.as_str())
            .collect();
        if why.is_empty() {
            s.push_str(&format!("  {:<10} usable\n", kind.name()));
        } else {
            s.push_str(&format!(
                "  {:<10} not usable: {}\n",
                kind.name(),
                why.join("; ")
            ));
        }
    }
    s.push_str("\nExit code: 0 when every backend is usable; otherwise the sum of 1 (native), 2 (container), 4 (vm), 8 (qemu-tcg) for those that are not.\n");
    s
}

/// Whether the VM's guest RAM can have huge pages here: transparent ones (`--vm-memory thp`, the
/// default) need the host's THP mode to be `madvise` or `always`; `--vm-memory hugetlbfs` needs
/// reserved 2 MiB pages.
fn guest_memory_check() -> Check {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let thp = read("/sys/kernel/mm/transparent_hugepage/enabled");
    let mode = thp
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
        .unwrap_or("unavailable")
        .to_owned();
    let reserved = read("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
    let reserved = reserved.trim().parse::<u64>().unwrap_or(0);
    let pool = format!(
        "{reserved} reserved 2 MiB pages for --vm-memory hugetlbfs{}",
        if reserved == 0 {
            " (`sysctl vm.nr_hugepages=N` reserves N)"
        } else {
            ""
        }
    );
    if mode == "madvise" || mode == "always" {
        Check::ok(format!(
            "guest RAM: transparent huge pages `{mode}`, so the VM's 2 MiB-aligned guest RAM gets huge pages; {pool}"
        ))
    } else {
        Check::note(
            format!("guest RAM: transparent huge pages are `{mode}`: the VM's guest RAM gets small pages (more nested page faults); {pool}"),
            "as root: `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled`, or use --vm-memory hugetlbfs with reserved pages",
        )
    }
}
