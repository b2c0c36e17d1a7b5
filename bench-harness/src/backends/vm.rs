//! The VM backend: the agent as `/init` of a KVM microVM run by isolab's own VMM (`vm_backend`).
//!
//! `prepare` finds the guest kernel (`--kernel PATH`, `--kernel debian` for Debian's stock kernel
//! with its virtio modules and ACPI tables, else the cached `micro` kernel, built on first use),
//! checks it without KVM, and writes the initramfs (the agent as `/init`, and the kernel's
//! modules if it needs any) once.
//! `run_trial` boots a fresh VM per trial with the spec on the kernel command line, reads the
//! agent's framed result from the serial console, and reports the VMM's timeline (host
//! CLOCK_MONOTONIC, markers timestamped by the vCPU thread), its memory (guest RAM touched vs the
//! VMM's own resident memory) and the VM exits its run loop handled, by reason.
//!
//! On a host whose `/dev/kvm` cannot boot Linux (PVM) or that has none, the backend is reported
//! unavailable with the reason and the fix; the HVM test machine runs it there (emulated: such
//! samples are correctness only).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vm_backend::image::initramfs::agent_image;
use vm_backend::kernel::{boot_kernel, KernelChoice};
use vm_backend::vmm::{self, StopReason, VmConfig, VmReport};
use vm_backend::VmError;
use workloads::protocol::{encode_spec, parse_framed_result, MarkerEvent, MARKER_PORT};
use workloads::result::Outcome;
use workloads::Metric;

use crate::backend::{
    Backend, BackendError, BackendKind, Phase, PrepareContext, Trial, TrialFailure, TrialOutcome,
};

/// Set (to 1) by the HVM test machine's L1 init: samples from there are emulated.
pub const EMULATED_ENV: &str = "ISOLAB_EMULATED";
/// Console lines kept in a failed trial's log tail.
const TAIL_LINES: usize = 40;

/// Why this host cannot run the VM backend, with the fix; None when it can (or might).
pub fn host_unavailable() -> Option<(String, String)> {
    let has = |p: &str| std::path::Path::new(p).exists();
    if !has("/dev/kvm") {
        return Some((
            "there is no /dev/kvm on this host".into(),
            "load kvm_intel or kvm_amd (`modprobe kvm_intel`), enable virtualization in the \
             firmware or nested virtualization in the cloud VM; `./run-tests` still checks the VM \
             for correctness in an emulated AMD-V machine"
                .into(),
        ));
    }
    if has("/sys/module/kvm_pvm") && !has("/sys/module/kvm_intel") && !has("/sys/module/kvm_amd") {
        return Some((
            "/dev/kvm is served by PVM (kvm_pvm), software virtualization that boots only \
             PVM-patched guest kernels, not a stock Linux guest"
                .into(),
            "run on a host with hardware KVM (kvm_intel or kvm_amd); `./run-tests` still checks \
             the VM for correctness in an emulated AMD-V machine"
                .into(),
        ));
    }
    None
}

/// Runs each trial in a fresh microVM.
#[derive(Debug, Default)]
pub struct VmBackend {
    /// A kernel given with `--kernel`; None: the cached (or freshly built) micro kernel.
    kernel_override: Option<PathBuf>,
    prepared: Option<Prepared>,
}

#[derive(Debug, Clone)]
struct Prepared {
    kernel: PathBuf,
    /// The kernel needs ACPI tables (the stock `debian` kernel).
    acpi: bool,
    initrd: PathBuf,
    memory_mib: u64,
    timeout: Duration,
    live_console: bool,
    emulated: bool,
}

fn prepare_err(message: String) -> BackendError {
    BackendError::Prepare {
        backend: BackendKind::Vm,
        message,
    }
}

impl VmBackend {
    /// A VM backend booting the default micro kernel.
    pub fn new() -> Self {
        Self::default()
    }

    /// A VM backend booting `kernel` (a bzImage or ELF vmlinux) instead.
    pub fn with_kernel(kernel: PathBuf) -> Self {
        Self {
            kernel_override: Some(kernel),
            prepared: None,
        }
    }
}

fn phase(name: &str, at_ns: u64) -> Phase {
    Phase {
        name: name.to_owned(),
        at_ns,
    }
}

/// The harness timeline of a VM run: the VMM's points, the agent's markers, and the names every
/// backend shares (`exited` = the guest asked to stop, `cleaned_up` = the VM is torn down).
fn timeline_of(report: &VmReport) -> Vec<Phase> {
    let mut t: Vec<Phase> = report
        .timeline
        .iter()
        .map(|p| phase(p.name, p.at_ns))
        .collect();
    for m in &report.markers {
        if let Some(e) = MarkerEvent::from_byte(m.byte) {
            if !t.iter().any(|p| p.name == e.name()) {
                t.push(phase(e.name(), m.at_ns));
            }
        }
    }
    if let Some(at) = report.at("stop_requested") {
        t.push(phase("exited", at));
    }
    if let Some(at) = report.at("torn_down") {
        t.push(phase("cleaned_up", at));
    }
    t.sort_by_key(|p| p.at_ns);
    t
}

fn metrics_of(report: &VmReport) -> Vec<Metric> {
    let ms = |ns: u64| ns as f64 / 1e6;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let marker = |e: MarkerEvent| {
        report
            .markers
            .iter()
            .find(|m| m.byte == e as u8)
            .map(|m| m.at_ns)
    };
    let mut m = Vec::new();
    let start = report.at("start").unwrap_or(0);
    let first_run = report.at("first_kvm_run");
    if let Some(first_run) = first_run {
        m.push(Metric::lower(
            "host.vmm_setup",
            "ms",
            ms(first_run.saturating_sub(start)),
        ));
    }
    if let Some(ready) = marker(MarkerEvent::AgentStart) {
        m.push(Metric::lower(
            "host.start_to_ready",
            "ms",
            ms(ready.saturating_sub(start)),
        ));
        if let Some(first_run) = first_run {
            m.push(Metric::lower(
                "host.boot_to_agent",
                "ms",
                ms(ready.saturating_sub(first_run)),
            ));
        }
    }
    if let (Some(done), Some(down)) = (marker(MarkerEvent::ResultWritten), report.at("torn_down")) {
        m.push(Metric::lower(
            "host.teardown",
            "ms",
            ms(down.saturating_sub(done)),
        ));
    }
    if let Some(down) = report.at("torn_down") {
        m.push(Metric::lower(
            "host.wall",
            "ms",
            ms(down.saturating_sub(start)),
        ));
    }
    if let Some(mem) = report.memory {
        m.push(Metric::lower(
            "host.vmm_overhead",
            "MiB",
            mib(mem.other_resident),
        ));
        m.push(Metric::lower(
            "host.guest_ram_touched",
            "MiB",
            mib(mem.guest_ram_resident),
        ));
    }
    m.push(Metric::lower(
        "exits.total",
        "exits",
        report.exits.total() as f64,
    ));
    for (reason, n) in &report.exits.0 {
        m.push(Metric::lower(
            &format!("exits.{reason}"),
            "exits",
            *n as f64,
        ));
    }
    if let Some(to_agent) = &report.exits_to_first_marker {
        m.push(Metric::lower(
            "exits.to_agent_start",
            "exits",
            to_agent.total() as f64,
        ));
    }
    m
}

/// The trial's result from the report: the agent's framed line, or why there is none.
fn result_of(report: &VmReport) -> Result<workloads::WorkloadResult, TrialFailure> {
    let console = report.console.text();
    match parse_framed_result(&console) {
        Ok(result) => match &result.outcome {
            Outcome::Ok => Ok(result),
            Outcome::Error { message } => Err(TrialFailure::WorkloadError {
                message: message.clone(),
            }),
        },
        Err(frame) => match &report.stop {
            StopReason::Timeout(d) => Err(TrialFailure::Timeout {
                after_s: d.as_secs_f64(),
            }),
            stop => Err(TrialFailure::Crashed {
                reason: format!(
                    "{stop}; {frame}{}; last console lines:\n{}",
                    if report.kernel_panicked() {
                        "; the guest kernel panicked"
                    } else {
                        ""
                    },
                    report.console_tail(TAIL_LINES)
                ),
            }),
        },
    }
}

impl Backend for VmBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Vm
    }

    fn prepare(&mut self, ctx: &PrepareContext) -> Result<(), BackendError> {
        if let Some((reason, fix)) = host_unavailable() {
            return Err(BackendError::Unavailable {
                backend: BackendKind::Vm,
                reason,
                fix,
            });
        }
        // `--kernel debian` (Debian's stock kernel: modules in the initramfs, ACPI), a file, or
        // the micro kernel, built or fetched on first use.
        let choice = match &self.kernel_override {
            Some(k) => KernelChoice::parse(&k.to_string_lossy()),
            None => KernelChoice::Micro,
        };
        let start = Instant::now();
        let boot = boot_kernel(&choice, &mut |msg| {
            eprintln!("[vm kernel {:>4}s] {msg}", start.elapsed().as_secs());
        })
        .map_err(|e| prepare_err(format!("{e}; or pass a kernel with --kernel")))?;
        let agent = std::fs::read(&ctx.agent).map_err(|e| {
            prepare_err(format!(
                "agent {} is not readable ({e}); build it with \
                 `cargo build --release -p workloads --bin isolab-agent`",
                ctx.agent.display()
            ))
        })?;
        std::fs::create_dir_all(&ctx.work_dir)
            .map_err(|e| prepare_err(format!("{}: {e}", ctx.work_dir.display())))?;
        let initrd = ctx.work_dir.join("vm-initramfs.cpio");
        let mut image = agent_image(agent);
        image
            .modules_from(&boot.modules)
            .map_err(|e| prepare_err(format!("the guest kernel's modules: {e}")))?;
        std::fs::write(&initrd, image.to_bytes())
            .map_err(|e| prepare_err(format!("writing {}: {e}", initrd.display())))?;
        let prepared = Prepared {
            kernel: boot.kernel,
            acpi: boot.acpi,
            initrd,
            memory_mib: ctx.limits.memory_mib,
            timeout: ctx.trial_timeout,
            live_console: ctx.live_console,
            emulated: std::env::var_os(EMULATED_ENV).is_some_and(|v| v == "1"),
        };
        if ctx.limits.vcpus != 1 {
            return Err(prepare_err(format!(
                "{} vCPUs asked for; the VMM runs one vCPU for now (several come with the VM I/O work): use --vcpus 1",
                ctx.limits.vcpus
            )));
        }
        // Refuse a bad kernel or a VM that cannot fit now, before any trial and any KVM call.
        vmm::validate(&config_for(&prepared, Vec::new()))
            .map_err(|e| prepare_err(e.to_string()))?;
        self.prepared = Some(prepared);
        Ok(())
    }

    fn run_trial(&mut self, trial: &Trial) -> TrialOutcome {
        let emulated = self.prepared.as_ref().is_some_and(|p| p.emulated);
        let failed = |f: TrialFailure| TrialOutcome {
            result: Err(f),
            timeline: Vec::new(),
            host_metrics: Vec::new(),
            log_tail: String::new(),
            emulated,
        };
        let Some(prepared) = self.prepared.clone() else {
            return failed(TrialFailure::Crashed {
                reason: "VM backend used before prepare()".into(),
            });
        };
        if trial.spec.workload.io_path().is_some() {
            return failed(TrialFailure::WorkloadError {
                message: "the VM has no block device yet (virtio-blk comes with the VM I/O work); \
                          run I/O workloads on native and container"
                    .into(),
            });
        }
        let spec = match encode_spec(&trial.spec) {
            Ok(s) => s,
            Err(e) => {
                return failed(TrialFailure::Crashed {
                    reason: e.to_string(),
                })
            }
        };
        let config = config_for(
            &prepared,
            vec![
                format!("isolab.marker=port:{MARKER_PORT:#x}"),
                format!("isolab.spec={spec}"),
            ],
        );
        let origin = Instant::now();
        let report = match vmm::run(&config, origin) {
            Ok(r) => r,
            Err(e @ (VmError::KvmOpen(_) | VmError::KvmCapability(_))) => {
                return failed(TrialFailure::Unavailable {
                    reason: e.to_string(),
                    fix: "use a host with hardware KVM (kvm_intel or kvm_amd), or the HVM test machine"
                        .into(),
                })
            }
            Err(e) => return failed(TrialFailure::Crashed { reason: e.to_string() }),
        };
        let result = result_of(&report);
        let log_tail = if result.is_err() {
            report.console_tail(TAIL_LINES)
        } else {
            String::new()
        };
        TrialOutcome {
            result,
            timeline: timeline_of(&report),
            host_metrics: metrics_of(&report),
            log_tail,
            emulated,
        }
    }

    fn cleanup(&mut self) -> Result<(), BackendError> {
        if let Some(p) = self.prepared.take() {
            match std::fs::remove_file(&p.initrd) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(BackendError::Cleanup {
                        backend: BackendKind::Vm,
                        message: format!("{}: {e}", p.initrd.display()),
                    })
                }
            }
        }
        Ok(())
    }
}

fn config_for(p: &Prepared, extra: Vec<String>) -> VmConfig {
    let mut c = VmConfig::new(&p.kernel, p.memory_mib);
    c.initrd = Some(p.initrd.clone());
    c.timeout = p.timeout;
    c.live_console = p.live_console;
    // Every console byte is a VM exit: keep the kernel quiet unless someone is watching.
    c.quiet = !p.live_console;
    c.extra_cmdline = extra;
    c.acpi = p.acpi;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_backend::devices::marker::MarkerEvent as Mark;
    use vm_backend::devices::serial::ConsoleLog;
    use vm_backend::vmm::TimePoint;
    use vm_backend::vstate::memory::MemoryUsage;
    use vm_backend::vstate::vcpu::ExitCounts;
    use workloads::protocol::frame_result;
    use workloads::result::AgentClock;

    fn report(console: &str, stop: StopReason) -> VmReport {
        let mut log = ConsoleLog::new(1 << 16);
        log.push(console.as_bytes());
        let mut exits = ExitCounts::default();
        exits.0.insert("io_out.serial", 10);
        exits.0.insert("io_out.marker", 4);
        VmReport {
            stop,
            console: log,
            markers: vec![
                Mark {
                    byte: 1,
                    at_ns: 5_000_000,
                },
                Mark {
                    byte: 2,
                    at_ns: 5_100_000,
                },
                Mark {
                    byte: 3,
                    at_ns: 5_200_000,
                },
                Mark {
                    byte: 4,
                    at_ns: 5_300_000,
                },
            ],
            markers_dropped: 0,
            timeline: [
                "start",
                "vm_created",
                "memory_ready",
                "kernel_loaded",
                "vcpu_configured",
                "first_kvm_run",
            ]
            .iter()
            .enumerate()
            .map(|(i, n)| TimePoint {
                name: n,
                at_ns: i as u64 * 100_000,
            })
            .chain([
                TimePoint {
                    name: "stop_requested",
                    at_ns: 6_000_000,
                },
                TimePoint {
                    name: "torn_down",
                    at_ns: 7_000_000,
                },
            ])
            .collect(),
            exits_to_first_marker: Some(exits.clone()),
            exits,
            memory_top: Vec::new(),
            memory: Some(MemoryUsage {
                guest_ram_resident: 64 << 20,
                other_resident: 2 << 20,
            }),
            guest_ram_bytes: 512 << 20,
            kernel_format: vm_backend::boot::loader::KernelFormat::BzImage,
            cmdline: String::new(),
            unclaimed_io: 0,
            disk: None,
        }
    }

    fn ok_line() -> String {
        frame_result(&workloads::WorkloadResult {
            protocol: workloads::PROTOCOL_VERSION,
            workload: "noop".into(),
            outcome: Outcome::Ok,
            metrics: vec![],
            inspect: None,
            clock: AgentClock::default(),
            memory_inside: None,
            was_pid1: true,
        })
        .expect("frame")
    }

    #[test]
    fn a_clean_run_gives_result_timeline_and_metrics() {
        let r = report(
            &format!("[ 0.1] Linux version 6.1\n{}[ 1.0] reboot\n", ok_line()),
            StopReason::GuestReset,
        );
        assert!(result_of(&r).is_ok());
        let t = timeline_of(&r);
        let names: Vec<&str> = t.iter().map(|p| p.name.as_str()).collect();
        for n in [
            "start",
            "first_kvm_run",
            "agent_ready",
            "workload_start",
            "workload_end",
            "exited",
            "cleaned_up",
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        assert!(t.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        let m = metrics_of(&r);
        let get = |n: &str| m.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get("host.boot_to_agent"), Some(4.5));
        assert_eq!(get("host.vmm_overhead"), Some(2.0));
        assert_eq!(get("host.guest_ram_touched"), Some(64.0));
        assert_eq!(get("exits.total"), Some(14.0));
        assert_eq!(get("exits.io_out.serial"), Some(10.0));
    }

    #[test]
    fn failures_say_why_with_the_console() {
        let r = report(
            "[ 0.5] Kernel panic - not syncing: No working init found.\n",
            StopReason::GuestReset,
        );
        match result_of(&r) {
            Err(TrialFailure::Crashed { reason }) => {
                assert!(
                    reason.contains("panicked") && reason.contains("No working init"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        let r = report("booting...\n", StopReason::Timeout(Duration::from_secs(3)));
        assert_eq!(result_of(&r), Err(TrialFailure::Timeout { after_s: 3.0 }));
    }
}
