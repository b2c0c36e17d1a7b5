//! `--vm-in-emulator`: the VM backend run inside the HVM test machine (QEMU TCG emulating an
//! AMD-V CPU, Debian's cloud kernel with kvm-amd as L1), for hosts whose `/dev/kvm` cannot boot a
//! Linux guest (PVM) or that have none.
//!
//! Booting L1 takes a minute of emulation, so the VM's trials run as one batch: after `prepare`,
//! [`Backend::plan_trials`] boots L1 once with `isolab`, the agent and the guest kernel in its
//! initramfs and runs `isolab emulated-trials` there, which runs each trial with the ordinary
//! [`VmBackend`] and prints its outcome as one framed line on L1's console. `run_trial` then hands
//! those outcomes out in the run's own order. Every outcome is marked emulated: it shows that the
//! VM boots and the workloads give valid results, never how fast.
//!
//! A guest very rarely hangs in the emulated machine (about once in a few hundred 2-vCPU boots,
//! cause not yet established; see [`MAX_HANG_RETRIES`]). Such a trial is stopped at its timeout
//! with where its vCPUs were, and run once more; its sample keeps the hang in its log.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_backend::{CgroupSettings, RunCgroup};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use vm_backend::hvm::{HvmFile, HvmMachine, HvmSession};
use vm_backend::kernel::{boot_kernel, BootKernel, KernelChoice};
use vm_backend::process::protocol::VMM_BINARY;
use vm_backend::seccomp::SeccompMode;
use vm_backend::vmm::{self, AcpiMode, VmConfig};
use vm_backend::vstate::memory::MemoryBacking;
use workloads::protocol::DiskMode;

use crate::backend::{
    Backend, BackendError, BackendKind, PrepareContext, SandboxLimits, Trial, TrialFailure,
    TrialOutcome,
};
use crate::backends::tail_lines;
use crate::backends::vm::VmBackend;
use crate::backends::vm_disk::{image_mib, DiskImages};

/// The prefix of an outcome line on L1's console.
pub const OUTCOME_PREFIX: &str = "ISOLAB-TRIAL:";
/// L1's console lines kept for errors.
const TAIL_LINES: usize = 30;
/// Where things go inside L1.
pub(crate) const L1_ISOLAB: &str = "/hvm/isolab";
/// The VMM binary, next to `isolab` in L1 (where the VM backend looks for it).
pub(crate) const L1_VMM: &str = "/hvm/isolab-vmm";
pub(crate) const L1_AGENT: &str = "/hvm/isolab-agent";
pub(crate) const L1_KERNEL: &str = "/hvm/guest-kernel";
const L1_BATCH: &str = "/hvm/trials.json";
/// Time L1 needs to boot and load kvm-amd under TCG, generously.
pub(crate) const L1_BOOT: Duration = Duration::from_secs(300);

/// What the host hands `isolab emulated-trials` inside L1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The sandbox size of every trial.
    pub limits: SandboxLimits,
    /// Per-trial timeout, seconds.
    pub trial_timeout_s: f64,
    /// Echo each guest's console on L1's console.
    pub live_console: bool,
    /// Modules the guest kernel needs, in L1, in load order (Debian's kernel).
    #[serde(default)]
    pub modules: Vec<PathBuf>,
    /// The guest kernel finds its devices only through ACPI tables (Debian's kernel).
    #[serde(default)]
    pub acpi: bool,
    /// How the VMs describe their devices (`--vm-acpi`).
    #[serde(default)]
    pub acpi_mode: AcpiMode,
    /// How the VMs' guest RAM is backed (`--vm-memory`); L1 reserves huge pages for hugetlbfs.
    #[serde(default)]
    pub memory: MemoryBacking,
    /// How I/O trials use their disk: `raw` or `ext4`.
    pub disk_mode: String,
    /// Formatted ext4 images in L1 (by size in MiB): L1 has no mkfs.ext4.
    pub disk_templates: BTreeMap<u64, PathBuf>,
    /// The VMM threads' seccomp filters in L1.
    #[serde(default)]
    pub vm_seccomp: SeccompMode,
    /// Jail each VMM process in L1.
    #[serde(default)]
    pub vm_jail: bool,
    /// Offloads on the VMs' network cards (`--vm-net-offload`; None: on).
    #[serde(default)]
    pub net_offload: Option<bool>,
    /// The trials, in the order they are to run.
    pub trials: Vec<Trial>,
}

/// One outcome as a console line: prefix, trial index, byte length of the JSON, base64url JSON.
/// The length lets the host reject a line that kernel messages were spliced into.
pub fn frame_outcome(index: usize, outcome: &TrialOutcome) -> String {
    let json = serde_json::to_vec(outcome).unwrap_or_default();
    format!(
        "{OUTCOME_PREFIX}{index}:{}:{}",
        json.len(),
        URL_SAFE_NO_PAD.encode(&json)
    )
}

/// Reads a line made by [`frame_outcome`]: None if the line is not one, an error if it is but
/// was damaged on the way.
pub fn parse_outcome(line: &str) -> Option<Result<(usize, TrialOutcome), String>> {
    let rest = line.trim().strip_prefix(OUTCOME_PREFIX)?;
    let parse = || -> Result<(usize, TrialOutcome), String> {
        let mut parts = rest.splitn(3, ':');
        let index: usize = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or("no trial index")?;
        let len: usize = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or("no length")?;
        let json = URL_SAFE_NO_PAD
            .decode(parts.next().unwrap_or("").trim())
            .map_err(|e| format!("not base64: {e}"))?;
        if json.len() != len {
            return Err(format!(
                "{} bytes instead of {len}: console output was mixed into it",
                json.len()
            ));
        }
        let outcome = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
        Ok((index, outcome))
    };
    Some(parse())
}

/// Inside L1: runs a batch with the ordinary VM backend and prints each outcome framed on stdout
/// (L1's console), as soon as it exists.
pub fn run_batch(batch_file: &Path, kernel: &Path, agent: &Path) -> Result<(), BackendError> {
    let err = |message: String| BackendError::Prepare {
        backend: BackendKind::Vm,
        message,
    };
    let text = std::fs::read(batch_file)
        .map_err(|e| err(format!("reading {}: {e}", batch_file.display())))?;
    let batch: Batch = serde_json::from_slice(&text).map_err(|e| {
        err(format!(
            "{} is not a trial batch: {e}",
            batch_file.display()
        ))
    })?;
    let work = std::env::temp_dir().join("isolab-emulated");
    // The same process model as on a host: each VMM process below a run cgroup (L1's cgroup2,
    // mounted here if its init did not), jails in a state folder.
    let run_cgroup = l1_run_cgroup();
    // The network trials' peer and taps: a lab of L1's own, as on a host.
    let (lab, lab_unavailable) = if batch
        .trials
        .iter()
        .any(|t| t.spec.workload.peer().is_some())
    {
        match crate::lab_net::LabNet::create(agent, |_| {}) {
            Ok(l) => (Some(Arc::new(l)), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let ctx = PrepareContext {
        agent: agent.to_owned(),
        work_dir: work.join("work"),
        io_scratch_dir: work.join("io"),
        limits: batch.limits,
        trial_timeout: Duration::from_secs_f64(batch.trial_timeout_s.clamp(1.0, 86_400.0)),
        live_console: batch.live_console,
        state_dir: work.join("state"),
        run_cgroup: run_cgroup.clone(),
        lab,
        lab_unavailable,
    };
    for d in [&ctx.work_dir, &ctx.io_scratch_dir, &ctx.state_dir] {
        std::fs::create_dir_all(d).map_err(|e| err(format!("{}: {e}", d.display())))?;
    }
    let mode = DiskMode::parse(&batch.disk_mode)
        .ok_or_else(|| err(format!("unknown disk mode {:?}", batch.disk_mode)))?;
    let mut backend = VmBackend::with_boot_kernel(BootKernel {
        kernel: kernel.to_owned(),
        modules: batch.modules.clone(),
        acpi: batch.acpi,
    })
    .with_disk_mode(mode)
    .with_disk_templates(batch.disk_templates.clone())
    .with_confinement(batch.vm_seccomp, batch.vm_jail)
    .with_memory(batch.memory)
    .with_acpi(batch.acpi_mode)
    .with_net_offload(batch.net_offload.unwrap_or(true));
    backend.prepare(&ctx)?;
    let mut stdout = std::io::stdout().lock();
    run_retrying_hangs(&mut backend, &batch.trials, |index, outcome| {
        // One write per line, so the kernel's own messages can only land between lines.
        let line = format!("\n{}\n", frame_outcome(index, outcome));
        let _ = stdout.write_all(line.as_bytes());
        let _ = stdout.flush();
    });
    let cleaned = backend.cleanup();
    if let Some(cg) = run_cgroup {
        let _ = cg.remove();
    }
    cleaned
}

/// Inside L1: a run cgroup on L1's cgroup2 (mounted at /sys/fs/cgroup first when L1's init did
/// not), or None with a note when there is none to be had.
fn l1_run_cgroup() -> Option<Arc<RunCgroup>> {
    let root = Path::new(container_backend::cgroups::DEFAULT_CGROUP_ROOT);
    if !root.join("cgroup.controllers").exists() {
        let _ = std::fs::create_dir_all(root);
        let ok = std::process::Command::new("mount")
            .args(["-t", "cgroup2", "cgroup2"])
            .arg(root)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("vm (emulated): no cgroup2 in the emulated machine; VMM processes run without cgroups");
            return None;
        }
    }
    let name = format!(
        "{}emulated-{}",
        container_backend::RUN_CGROUP_PREFIX,
        std::process::id()
    );
    match RunCgroup::create(&name, &CgroupSettings::default()) {
        Ok(cg) => Some(Arc::new(cg)),
        Err(e) => {
            eprintln!("vm (emulated): no run cgroup ({e}); VMM processes run without cgroups");
            None
        }
    }
}

/// Runs `trials` in order and hands each outcome to `emit` as soon as it exists. A trial that
/// times out runs once more, at most [`MAX_HANG_RETRIES`] times per batch.
fn run_retrying_hangs(
    backend: &mut dyn Backend,
    trials: &[Trial],
    mut emit: impl FnMut(usize, &TrialOutcome),
) {
    let mut retries_left = MAX_HANG_RETRIES;
    for trial in trials {
        let mut outcome = backend.run_trial(trial);
        if retries_left > 0 && matches!(outcome.result, Err(TrialFailure::Timeout { .. })) {
            retries_left -= 1;
            outcome = retry_after_hang(backend, trial, outcome);
        }
        emit(trial.index, &outcome);
    }
}

/// Trials of one batch that may be run again after hanging in the emulator. A rare hang of a
/// guest in the HVM test machine (its cause not established: QEMU's SVM emulation, L1's kvm-amd on
/// one emulated CPU, or the guest) must not cost a whole batch; more than this many is no fluke,
/// and the trials fail.
pub const MAX_HANG_RETRIES: u32 = 2;

/// Runs a trial that timed out once more. The new outcome counts; the hung attempt's console
/// tail and vCPU states stay in its log, so the sample says it was retried and why.
fn retry_after_hang(backend: &mut dyn Backend, trial: &Trial, hung: TrialOutcome) -> TrialOutcome {
    let failure = hung
        .result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    println!(
        "\nvm (emulated): trial {} hung ({failure}); running it again once. Where it hung:\n{}",
        trial.index, hung.log_tail
    );
    let mut again = backend.run_trial(trial);
    let mut log = format!(
        "{RETRIED_NOTE} {failure}. Its last console lines and vCPU states:\n{}",
        hung.log_tail
    );
    if !again.log_tail.is_empty() {
        log.push_str("\n--- the second attempt ---\n");
        log.push_str(&again.log_tail);
    }
    again.log_tail = log;
    again
}

/// How a retried trial's log begins (tests and reports look for it).
pub const RETRIED_NOTE: &str =
    "[isolab] retried: the first attempt of this trial hung in the emulated machine:";

/// The VM backend, run in the HVM test machine.
#[derive(Debug, Default)]
pub struct EmulatedVmBackend {
    kernel_override: Option<PathBuf>,
    disk_mode: Option<DiskMode>,
    vm_seccomp: SeccompMode,
    vm_jail: bool,
    memory: MemoryBacking,
    acpi: AcpiMode,
    net_offload: Option<bool>,
    prepared: Option<Prepared>,
    outcomes: BTreeMap<usize, TrialOutcome>,
    /// Why trials have no outcome, when the session ended early.
    session_problem: Option<String>,
    /// The guest kernel's hashes, for the manifest.
    kernel_facts: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Prepared {
    machine: HvmMachine,
    boot: BootKernel,
    ctx: PrepareContext,
    isolab: PathBuf,
    vmm: PathBuf,
}

fn prepare_err(message: String) -> BackendError {
    BackendError::Prepare {
        backend: BackendKind::Vm,
        message,
    }
}

/// The `isolab` binary to put into L1: this program when it is `isolab`, else one next to it.
pub(crate) fn locate_isolab() -> Result<PathBuf, BackendError> {
    let exe = std::env::current_exe()
        .map_err(|e| prepare_err(format!("cannot find this program's path: {e}")))?;
    let mut candidates = vec![exe.clone()];
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join("isolab"));
        if let Some(up) = dir.parent() {
            candidates.push(up.join("isolab"));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "isolab") && p.is_file())
        .ok_or_else(|| {
            prepare_err(format!(
                "--vm-in-emulator needs the `isolab` binary next to {}; build it with \
                 `cargo build -p bench_harness --bin isolab`",
                exe.display()
            ))
        })
}

/// A copy of `binary` without debug information (a debug `isolab` is ~200 MiB, which L1 would
/// have to unpack under emulation); the original when `strip` is not there.
pub(crate) fn stripped(binary: &Path, work_dir: &Path) -> PathBuf {
    let name = binary
        .file_name()
        .map_or_else(|| "binary".into(), |n| n.to_string_lossy().into_owned());
    let out = work_dir.join(format!("{name}-stripped"));
    let ok = std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(binary)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        out
    } else {
        binary.to_owned()
    }
}

impl EmulatedVmBackend {
    /// Boots the default micro kernel in the emulated machine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Boots `kernel` (a bzImage or ELF vmlinux) instead.
    pub fn with_kernel(kernel: PathBuf) -> Self {
        Self {
            kernel_override: Some(kernel),
            ..Self::default()
        }
    }

    /// I/O trials use their disk this way (default: ext4).
    pub fn with_disk_mode(mut self, mode: DiskMode) -> Self {
        self.disk_mode = Some(mode);
        self
    }

    /// The VMM processes' seccomp filters and jail in L1.
    pub fn with_confinement(mut self, seccomp: SeccompMode, jail: bool) -> Self {
        self.vm_seccomp = seccomp;
        self.vm_jail = jail;
        self
    }

    /// Guest RAM is backed this way (default: transparent huge pages).
    pub fn with_memory(mut self, memory: MemoryBacking) -> Self {
        self.memory = memory;
        self
    }

    /// Devices are described to the guest this way (default: ACPI and the command line).
    pub fn with_acpi(mut self, acpi: AcpiMode) -> Self {
        self.acpi = acpi;
        self
    }

    /// The VMs' network cards offer offloads (default: on).
    pub fn with_net_offload(mut self, offload: bool) -> Self {
        self.net_offload = Some(offload);
        self
    }
}

impl Backend for EmulatedVmBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Vm
    }

    fn prepare(&mut self, ctx: &PrepareContext) -> Result<(), BackendError> {
        let start = Instant::now();
        let mut say =
            |msg: &str| eprintln!("[vm (emulated) {:>4}s] {msg}", start.elapsed().as_secs());
        // `micro` (built on first use), `debian` (fetched with apt, modules and ACPI), or a file.
        let choice = match &self.kernel_override {
            Some(k) => KernelChoice::parse(&k.to_string_lossy()),
            None => KernelChoice::Micro,
        };
        let boot = boot_kernel(&choice, &mut say)
            .map_err(|e| prepare_err(format!("{e}; or pass a kernel with --kernel")))?;
        // Refuse a bad kernel here, not after minutes of emulation.
        vmm::validate(&VmConfig::new(&boot.kernel, ctx.limits.memory_mib))
            .map_err(|e| prepare_err(e.to_string()))?;
        if !ctx.agent.is_file() {
            return Err(prepare_err(format!(
                "agent {} is missing; build it with `cargo build --release -p workloads --bin \
                 isolab-agent`",
                ctx.agent.display()
            )));
        }
        let isolab = locate_isolab()?;
        let vmm = vm_backend::process::client::locate_vmm()
            .map_err(|e| prepare_err(format!("--vm-in-emulator: {e}")))?;
        let machine = HvmMachine::prepare(&mut say).map_err(|e| BackendError::Unavailable {
            backend: BackendKind::Vm,
            reason: format!("the emulated AMD-V machine cannot be set up: {e}"),
            fix: "check that apt can install qemu-system-x86 and busybox-static and reach the \
                  Debian archive (`apt-get update`)"
                .into(),
        })?;
        std::fs::create_dir_all(&ctx.work_dir)
            .map_err(|e| prepare_err(format!("{}: {e}", ctx.work_dir.display())))?;
        self.kernel_facts = super::guest_kernel::facts(&choice, &boot.kernel);
        self.prepared = Some(Prepared {
            machine,
            boot,
            ctx: ctx.clone(),
            isolab,
            vmm,
        });
        Ok(())
    }

    fn facts(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        f.insert(
            "emulated".into(),
            "true: QEMU TCG with AMD-V, kvm-amd in L1; correctness only".into(),
        );
        if let Some(p) = &self.prepared {
            f.insert("kernel".into(), p.boot.kernel.display().to_string());
            f.insert(
                "l1_kernel".into(),
                format!("{} {}", p.machine.l1.package, p.machine.l1.version),
            );
        }
        f.insert(
            "disk".into(),
            self.disk_mode.unwrap_or(DiskMode::Ext4).name().into(),
        );
        f.insert("vm_seccomp".into(), self.vm_seccomp.name().into());
        f.insert(
            "vm_jail".into(),
            if self.vm_jail { "on" } else { "off" }.into(),
        );
        f.insert(
            "vmm_memory_allowance_mib".into(),
            crate::backends::vm::VMM_MEMORY_ALLOWANCE_MIB.to_string(),
        );
        f.insert(
            "vmm_process".into(),
            "isolab-vmm, one process per VM".into(),
        );
        f.insert("memory".into(), self.memory.name().into());
        f.insert("acpi".into(), self.acpi.name().into());
        f.extend(self.kernel_facts.clone());
        f
    }

    fn plan_trials(&mut self, trials: &[Trial]) -> Result<(), BackendError> {
        let Some(p) = &self.prepared else {
            return Err(prepare_err("plan_trials() before prepare()".into()));
        };
        if trials.is_empty() {
            return Ok(());
        }
        // L1 has no e2fsprogs: the ext4 images the I/O trials need are formatted here.
        let mode = self.disk_mode.unwrap_or(DiskMode::Ext4);
        let mut disks = DiskImages::new(&p.ctx.work_dir, mode);
        let mut templates = Vec::new();
        if mode == DiskMode::Ext4 {
            let mut sizes: Vec<u64> = trials
                .iter()
                .filter_map(|t| t.spec.workload.io_data_mib())
                .map(image_mib)
                .collect();
            sizes.sort_unstable();
            sizes.dedup();
            for size in sizes {
                let host = disks.template(size).map_err(prepare_err)?;
                templates.push((
                    size,
                    host,
                    PathBuf::from(format!("/hvm/ext4-{size}MiB.img")),
                ));
            }
        }
        let l1_module = |i: usize, m: &Path| {
            let name = m.file_name().map_or_else(
                || format!("module-{i}.ko"),
                |n| n.to_string_lossy().into_owned(),
            );
            PathBuf::from(format!("/hvm/modules/{name}"))
        };
        let batch = Batch {
            limits: p.ctx.limits,
            trial_timeout_s: p.ctx.trial_timeout.as_secs_f64(),
            live_console: p.ctx.live_console,
            modules: p
                .boot
                .modules
                .iter()
                .enumerate()
                .map(|(i, m)| l1_module(i, m))
                .collect(),
            acpi: p.boot.acpi,
            acpi_mode: self.acpi,
            memory: self.memory,
            disk_mode: mode.name().to_owned(),
            disk_templates: templates
                .iter()
                .map(|(size, _, l1)| (*size, l1.clone()))
                .collect(),
            trials: trials.to_vec(),
            vm_seccomp: self.vm_seccomp,
            vm_jail: self.vm_jail,
            net_offload: self.net_offload,
        };
        let batch_json = serde_json::to_vec(&batch).map_err(|e| prepare_err(e.to_string()))?;
        let file = |guest: &str, host: &Path, mode: u32| {
            HvmFile::from_host(guest, host, mode).map_err(|e| prepare_err(e.to_string()))
        };
        let files = vec![
            file(L1_ISOLAB, &stripped(&p.isolab, &p.ctx.work_dir), 0o755)?,
            file(L1_VMM, &stripped(&p.vmm, &p.ctx.work_dir), 0o755)?,
            file(L1_AGENT, &p.ctx.agent, 0o755)?,
            file(L1_KERNEL, &p.boot.kernel, 0o644)?,
            HvmFile::bytes(L1_BATCH, batch_json, 0o644),
        ];
        let mut files = files;
        for (i, m) in p.boot.modules.iter().enumerate() {
            files.push(file(&l1_module(i, m).display().to_string(), m, 0o644)?);
        }
        let mut image_mib_total = 0;
        for (size, host, l1) in &templates {
            files.push(file(&l1.display().to_string(), host, 0o644)?);
            image_mib_total += size;
        }
        drop(disks);
        let per_trial = p.ctx.trial_timeout + Duration::from_secs(30);
        // One VM runs at a time in L1: its RAM in 2 MiB pages, and a few for slack.
        let huge_pages = match self.memory {
            MemoryBacking::Hugetlbfs => p.ctx.limits.memory_mib.div_ceil(2) + 4,
            _ => 0,
        };
        let session = HvmSession {
            files,
            commands: vec![format!(
                "{L1_ISOLAB} emulated-trials {L1_BATCH} --kernel {L1_KERNEL} --agent {L1_AGENT}"
            )],
            // The guest, L1 itself, and the disk images in L1's RAM (templates and one copy);
            // with hugetlbfs, the guest's RAM is reserved in L1 on top.
            memory_mib: (p.ctx.limits.memory_mib + 1536 + 2 * image_mib_total).max(2048)
                + huge_pages * 2,
            huge_pages_2m: huge_pages,
            // Room for every trial and the retries a hang may cost.
            timeout: L1_BOOT
                + per_trial
                    * u32::try_from(trials.len())
                        .unwrap_or(u32::MAX)
                        .saturating_add(MAX_HANG_RETRIES),
        };
        let total = trials.len();
        let names: BTreeMap<usize, String> = trials
            .iter()
            .map(|t| (t.index, t.spec.workload.kind().to_owned()))
            .collect();
        let start = Instant::now();
        eprintln!(
            "vm (emulated): booting the emulated AMD-V machine for {total} VM trial{}; emulation \
             is slow (minutes), and these samples show correctness, not speed",
            if total == 1 { "" } else { "s" }
        );
        let live = p.ctx.live_console;
        let mut outcomes = BTreeMap::new();
        let mut damaged = 0usize;
        let mut on_line = |line: &str| match parse_outcome(line) {
            Some(Ok((index, outcome))) => {
                let mut verdict = match &outcome.result {
                    Ok(_) => "ok".to_owned(),
                    Err(f) => f.to_string(),
                };
                if outcome.log_tail.starts_with(RETRIED_NOTE) {
                    verdict
                        .push_str(" (on a second attempt: the first hung; see the sample's log)");
                }
                outcomes.insert(index, outcome);
                eprintln!(
                    "[vm (emulated) {:>4}s] trial {}/{total} ({}): {verdict}",
                    start.elapsed().as_secs(),
                    outcomes.len(),
                    names.get(&index).map_or("?", String::as_str),
                );
            }
            Some(Err(why)) => {
                damaged += 1;
                eprintln!("vm (emulated): an outcome line was damaged ({why}); that trial fails");
            }
            None if live => eprintln!("[L1] {line}"),
            None => {}
        };
        let out = p
            .machine
            .run_with(&session, &mut on_line, &crate::interrupt::requested)
            .map_err(|e| prepare_err(format!("the emulated machine did not run: {e}")))?;
        if !out.kvm_ready {
            return Err(BackendError::Unavailable {
                backend: BackendKind::Vm,
                reason: format!(
                    "kvm-amd did not load in the emulated machine; its console ended with:\n{}",
                    tail_lines(&out.console, TAIL_LINES)
                ),
                fix: "QEMU must emulate AMD-V (`-cpu EPYC,+svm,+npt`); check `isolab doctor`"
                    .into(),
            });
        }
        if outcomes.len() < total {
            let status = out.commands.first().and_then(|c| c.status);
            self.session_problem = Some(if crate::interrupt::requested() {
                "interrupted".into()
            } else if out.timed_out {
                format!(
                    "the emulated machine was stopped after {:.0} s",
                    out.duration.as_secs_f64()
                )
            } else {
                format!(
                    "`isolab emulated-trials` in the emulated machine ended with status {}{}; its \
                     output ended with:\n{}",
                    status.map_or("none".into(), |s| s.to_string()),
                    if damaged > 0 {
                        format!(" ({damaged} damaged outcome lines)")
                    } else {
                        String::new()
                    },
                    tail_lines(
                        out.commands.first().map_or(&out.console, |c| &c.output),
                        TAIL_LINES
                    )
                )
            });
        }
        self.outcomes = outcomes;
        Ok(())
    }

    fn run_trial(&mut self, trial: &Trial) -> TrialOutcome {
        match self.outcomes.remove(&trial.index) {
            Some(mut outcome) => {
                outcome.emulated = true;
                outcome
            }
            None => TrialOutcome {
                result: Err(TrialFailure::Crashed {
                    reason: format!(
                        "the emulated machine returned no outcome for this trial: {}",
                        self.session_problem
                            .as_deref()
                            .unwrap_or("it was not part of the batch")
                    ),
                }),
                timeline: Vec::new(),
                host_metrics: Vec::new(),
                log_tail: String::new(),
                emulated: true,
            },
        }
    }

    fn cleanup(&mut self) -> Result<(), BackendError> {
        if let Some(p) = &self.prepared {
            for binary in ["isolab", VMM_BINARY] {
                let _ = std::fs::remove_file(p.ctx.work_dir.join(format!("{binary}-stripped")));
            }
        }
        self.outcomes.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workloads::{Workload, WorkloadSpec};

    fn outcome() -> TrialOutcome {
        TrialOutcome {
            result: Err(TrialFailure::Timeout { after_s: 2.5 }),
            timeline: vec![crate::backend::Phase {
                name: "start".into(),
                at_ns: 7,
            }],
            host_metrics: vec![workloads::Metric::lower("exits.total", "exits", 223.0)],
            log_tail: "last line".into(),
            emulated: true,
        }
    }

    #[test]
    fn outcome_lines_round_trip_and_damage_is_caught() {
        let o = outcome();
        let line = frame_outcome(42, &o);
        assert!(line.starts_with(OUTCOME_PREFIX));
        let (index, back) = parse_outcome(&line).expect("a frame").expect("intact");
        assert_eq!(index, 42);
        assert_eq!(back, o);
        assert!(parse_outcome("[    1.2] random kernel line").is_none());
        // Kernel output spliced into the middle of the line.
        let mid = line.len() / 2;
        let spliced = format!("{}[ 3.1] oops{}", &line[..mid], &line[mid..]);
        assert!(parse_outcome(&spliced).expect("a frame").is_err());
        // Cut short.
        assert!(parse_outcome(&line[..line.len() - 10])
            .expect("a frame")
            .is_err());
        assert!(parse_outcome("ISOLAB-TRIAL:x:y:z")
            .expect("a frame")
            .is_err());
    }

    /// A backend whose trials end as scripted, in order.
    struct Scripted(Vec<TrialOutcome>);

    impl Backend for Scripted {
        fn kind(&self) -> BackendKind {
            BackendKind::Vm
        }
        fn prepare(&mut self, _: &PrepareContext) -> Result<(), BackendError> {
            Ok(())
        }
        fn run_trial(&mut self, _: &Trial) -> TrialOutcome {
            self.0.remove(0)
        }
        fn cleanup(&mut self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    #[test]
    fn a_hung_trial_runs_again_with_its_hang_on_record_and_retries_are_bounded() {
        let ok = || TrialOutcome {
            result: Err(TrialFailure::WorkloadError {
                message: "stands in for a result".into(),
            }),
            log_tail: String::new(),
            ..outcome()
        };
        let hung = |n: u32| TrialOutcome {
            log_tail: format!("hang {n}\nvCPU 1: halted, rip 0xffffffff81000000"),
            ..outcome()
        };
        // Trial 0 hangs then works; 1 works; 2 and 3 hang: 2 is retried (the last retry) and
        // hangs again, 3 gets none.
        let mut backend = Scripted(vec![hung(1), ok(), ok(), hung(2), hung(3), hung(4)]);
        let trials: Vec<Trial> = (0..4)
            .map(|index| Trial {
                index,
                repetition: 0,
                warmup: false,
                spec: WorkloadSpec::new(Workload::default_of_kind("noop").expect("noop")),
            })
            .collect();
        let mut got = Vec::new();
        run_retrying_hangs(&mut backend, &trials, |i, o| got.push((i, o.clone())));
        assert!(backend.0.is_empty(), "six runs for four trials");
        assert_eq!(
            got.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let first = &got[0].1;
        assert!(matches!(
            first.result,
            Err(TrialFailure::WorkloadError { .. })
        ));
        assert!(
            first.log_tail.starts_with(RETRIED_NOTE),
            "{}",
            first.log_tail
        );
        assert!(first.log_tail.contains("hang 1") && first.log_tail.contains("vCPU 1: halted"));
        assert!(got[1].1.log_tail.is_empty(), "no retry, no note");
        let second_hang = &got[2].1;
        assert!(matches!(
            second_hang.result,
            Err(TrialFailure::Timeout { .. })
        ));
        assert!(second_hang.log_tail.contains("hang 2") && second_hang.log_tail.contains("hang 3"));
        assert_eq!(
            got[3].1.log_tail,
            "hang 4\nvCPU 1: halted, rip 0xffffffff81000000"
        );
    }

    #[test]
    fn batches_survive_the_trip_into_l1() {
        let batch = Batch {
            limits: SandboxLimits::default(),
            trial_timeout_s: 60.0,
            live_console: false,
            modules: vec![PathBuf::from("/hvm/modules/virtio.ko")],
            acpi: true,
            acpi_mode: AcpiMode::On,
            memory: MemoryBacking::Hugetlbfs,
            disk_mode: "ext4".into(),
            disk_templates: BTreeMap::from([(80, PathBuf::from("/hvm/ext4-80MiB.img"))]),
            vm_seccomp: SeccompMode::On,
            vm_jail: true,
            net_offload: Some(false),
            trials: vec![Trial {
                index: 3,
                repetition: 1,
                warmup: false,
                spec: WorkloadSpec::new(Workload::default_of_kind("cpu").expect("cpu")),
            }],
        };
        let json = serde_json::to_vec(&batch).expect("serialise");
        let back: Batch = serde_json::from_slice(&json).expect("parse");
        assert_eq!(back, batch);
    }

    #[test]
    fn a_trial_without_outcome_fails_with_the_sessions_reason() {
        let mut b = EmulatedVmBackend {
            session_problem: Some("the emulated machine was stopped after 900 s".into()),
            ..EmulatedVmBackend::default()
        };
        b.outcomes.insert(1, outcome());
        let trial = |index| Trial {
            index,
            repetition: 0,
            warmup: false,
            spec: WorkloadSpec::new(Workload::default_of_kind("noop").expect("noop")),
        };
        let got = b.run_trial(&trial(1));
        assert_eq!(got.log_tail, "last line");
        assert!(got.emulated);
        let missing = b.run_trial(&trial(2));
        assert!(missing.emulated);
        let Err(TrialFailure::Crashed { reason }) = missing.result else {
            panic!("{missing:?}")
        };
        assert!(reason.contains("stopped after 900 s"), "{reason}");
    }
}
