//! A vCPU: its boot state and the run loop that dispatches its exits to the devices.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::arch::x86_64::cpuid::{filter_cpuid, VcpuTopology};
use crate::arch::x86_64::{msr, regs};
use crate::devices::marker::{MarkerEvent, PHASE_BYTES, WORKLOAD_END, WORKLOAD_START};
use crate::devices::virtio::block::{BlockShared, BlockStats};
use crate::devices::virtio::lock;
use crate::devices::virtio::net::{NetShared, NetStats};
use crate::devices::{BusAction, MmioBus, PioBus};
use crate::error::{Result, VmError};
use crate::hooks::VmmHooks;
use crate::vstate::kvm_stats::{KvmStats, KvmStatsError, StatsFd};

/// Counts of the exits the run loop handled, by reason (`io_out.serial`, `io_in.i8042`, `mmio_read`,
/// `intr`, ...). Exits KVM handles in the kernel never reach it: see KVM's own statistics for those.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitCounts(
    #[serde(with = "crate::process::wire::static_keys")] pub BTreeMap<&'static str, u64>,
);

impl ExitCounts {
    fn bump(&mut self, reason: &'static str) {
        *self.0.entry(reason).or_insert(0) += 1;
    }

    /// Total exits.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The count for one reason.
    pub fn get(&self, reason: &str) -> u64 {
        self.0.get(reason).copied().unwrap_or(0)
    }

    /// The counts of several vCPUs added up.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a ExitCounts>) -> ExitCounts {
        let mut out = ExitCounts::default();
        for counts in all {
            for (reason, n) in &counts.0 {
                let e = out.0.entry(reason).or_insert(0);
                *e = e.saturating_add(*n);
            }
        }
        out
    }

    /// The exits between two snapshots of the same counters (reasons with none left out).
    pub fn delta(start: &ExitCounts, end: &ExitCounts) -> ExitCounts {
        ExitCounts(
            end.0
                .iter()
                .map(|(reason, n)| (*reason, n.saturating_sub(start.get(reason))))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }
}

/// The state of every vCPU at one moment: the run loops' exit counts and KVM's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When it was taken, ns since the origin.
    pub at_ns: u64,
    /// Exits each vCPU's run loop handled so far.
    pub exits: Vec<ExitCounts>,
    /// KVM's statistics of each vCPU so far (None where they could not be read).
    pub kvm: Vec<Option<KvmStats>>,
    /// What the virtio-blk disk did so far, when the VM has one.
    pub disk: Option<BlockStats>,
    /// What the virtio-net card did so far, when the VM has one.
    pub net: Option<NetStats>,
}

impl Snapshot {
    /// The exits of all vCPUs together.
    pub fn exits_sum(&self) -> ExitCounts {
        ExitCounts::sum(&self.exits)
    }

    /// KVM's statistics of all vCPUs together; None unless every vCPU's could be read.
    pub fn kvm_sum(&self) -> Option<KvmStats> {
        let all: Option<Vec<&KvmStats>> = self.kvm.iter().map(Option::as_ref).collect();
        all.map(KvmStats::sum)
    }
}

/// Most workload phases snapshotted in one run; the agent's workloads have at most three, and a
/// guest that writes more must not make the VMM read every vCPU's statistics without end.
pub const MAX_PHASE_SNAPSHOTS: usize = 8;

/// The marker-triggered snapshots of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarkerSnapshots {
    /// At the first marker write (the agent's start).
    pub first_marker: Option<Snapshot>,
    /// At the first [`WORKLOAD_START`] marker.
    pub workload_start: Option<Snapshot>,
    /// At the first [`WORKLOAD_END`] marker.
    pub workload_end: Option<Snapshot>,
    /// At each phase marker ([`PHASE_BYTES`]) between those two, with its byte, in order: at most
    /// [`MAX_PHASE_SNAPSHOTS`]; a repeat of the running phase's byte takes none (the phase goes
    /// on).
    pub phases: Vec<(u8, Snapshot)>,
    /// Phase markers of the workload window past [`MAX_PHASE_SNAPSHOTS`], not snapshotted.
    pub phases_over_limit: u64,
    /// The byte of the phase running now, snapshotted or not.
    current_phase: Option<u8>,
}

impl MarkerSnapshots {
    /// Whether a marker `byte` begins a new phase of the workload now.
    fn phase_begins(&self, byte: u8) -> bool {
        PHASE_BYTES.contains(&byte)
            && self.workload_start.is_some()
            && self.workload_end.is_none()
            && self.current_phase != Some(byte)
    }

    /// The workload's phases as windows: each from its marker to the next phase marker or the
    /// workload's end. A phase whose end was not snapshotted (the guest never ended the workload,
    /// or the next phase marker was past the limit) has no window.
    pub fn phase_windows(&self) -> Vec<PhaseWindow> {
        let mut out = Vec::with_capacity(self.phases.len());
        for (i, (byte, start)) in self.phases.iter().enumerate() {
            let end = match (self.phases.get(i + 1), &self.workload_end) {
                (Some((_, next)), _) => next,
                (None, Some(end)) if self.phases_over_limit == 0 => end,
                _ => break,
            };
            out.push(PhaseWindow {
                byte: *byte,
                window_ns: end.at_ns.saturating_sub(start.at_ns),
                exits: ExitCounts::delta(&start.exits_sum(), &end.exits_sum()),
                kvm_stats: start
                    .kvm_sum()
                    .zip(end.kvm_sum())
                    .map(|(a, b)| KvmStats::delta(&a, &b)),
                disk: start
                    .disk
                    .zip(end.disk)
                    .map(|(a, b)| BlockStats::delta(&a, &b)),
            });
        }
        out
    }
}

/// What happened during one phase of the workload (all vCPUs together).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseWindow {
    /// The phase's marker byte (`workloads::protocol::WorkloadPhase::from_byte` names it).
    pub byte: u8,
    /// From its marker to the next phase marker or the workload's end, host clock.
    pub window_ns: u64,
    /// Exits the run loops handled, by reason.
    pub exits: ExitCounts,
    /// KVM's statistics; None unless every vCPU's could be read at both ends.
    pub kvm_stats: Option<KvmStats>,
    /// The virtio-blk disk's counters, when the VM has one.
    pub disk: Option<BlockStats>,
}

/// What every vCPU thread shares: per-vCPU exit counters, KVM stats fds, and the snapshots taken
/// when the agent writes its markers. Any vCPU thread may take a snapshot of all of them (the one
/// whose `out` to the marker port exited), so the counters sit behind one lock per vCPU, taken
/// once per exit by its own thread and uncontended except during a snapshot.
#[derive(Debug)]
pub struct VcpuObserver {
    exits: Vec<Mutex<ExitCounts>>,
    kvm: Vec<Option<StatsFd>>,
    marker_port: u16,
    origin: Instant,
    snapshots: Mutex<MarkerSnapshots>,
    disk: Option<Arc<BlockShared>>,
    net: Option<Arc<NetShared>>,
    /// Told of every marker (the VMM process forwards them to the host as they come).
    hooks: Option<Arc<dyn VmmHooks>>,
}

impl VcpuObserver {
    /// An observer of `stats.len()` vCPUs; `stats` holds each one's KVM stats fd, where it opened.
    /// `disk` is the virtio-blk device's shared state, whose counters go into every snapshot.
    pub fn new(
        stats: Vec<Option<StatsFd>>,
        marker_port: u16,
        origin: Instant,
        disk: Option<Arc<BlockShared>>,
    ) -> Self {
        Self {
            exits: stats.iter().map(|_| Mutex::default()).collect(),
            kvm: stats,
            marker_port,
            origin,
            snapshots: Mutex::default(),
            disk,
            net: None,
            hooks: None,
        }
    }

    /// The same, with the virtio-net card's counters in every snapshot.
    pub fn with_net(mut self, net: Option<Arc<NetShared>>) -> Self {
        self.net = net;
        self
    }

    /// The same, telling `hooks` of every marker write ([`VmmHooks::marker`]).
    pub fn with_hooks(mut self, hooks: Arc<dyn VmmHooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    fn bump(&self, index: usize, reason: &'static str) {
        if let Some(m) = self.exits.get(index) {
            lock(m).bump(reason);
        }
    }

    /// The state of all vCPUs now. Takes one vCPU's lock at a time (never two), so it cannot
    /// deadlock with the run loops. The disk's statistics lock comes last, alone too: the device
    /// thread holds it only to publish its counters after a pass (never while serving), so a
    /// snapshot never waits for a request.
    pub fn snapshot(&self) -> Snapshot {
        let at_ns = ns_since(self.origin);
        let exits = self.exits.iter().map(|m| lock(m).clone()).collect();
        let kvm = self
            .kvm
            .iter()
            .map(|fd| fd.as_ref().and_then(|fd| fd.read().ok()))
            .collect();
        let disk = self.disk.as_ref().map(|d| d.stats());
        let net = self.net.as_ref().map(|n| n.stats());
        Snapshot {
            at_ns,
            exits,
            kvm,
            disk,
            net,
        }
    }

    /// KVM's statistics of each vCPU now, or why they cannot be read.
    pub fn kvm_stats(&self) -> Vec<std::result::Result<KvmStats, KvmStatsError>> {
        self.kvm
            .iter()
            .map(|fd| match fd {
                Some(fd) => fd.read(),
                None => Err(KvmStatsError::Unsupported("no stats fd".into())),
            })
            .collect()
    }

    /// A marker write: the snapshots it calls for, then the hooks are told.
    fn marker(&self, byte: u8) {
        self.take_snapshots(byte);
        if let Some(hooks) = &self.hooks {
            hooks.marker(MarkerEvent {
                byte,
                at_ns: ns_since(self.origin),
            });
        }
    }

    /// Takes the snapshots a marker write calls for: the first marker of all, the first
    /// workload start and end, and each new phase in between, up to [`MAX_PHASE_SNAPSHOTS`].
    /// Later repeats (a guest may write anything) take none, which also bounds the work a guest
    /// can cause here.
    fn take_snapshots(&self, byte: u8) {
        let wanted = {
            let mut s = lock(&self.snapshots);
            let phase = s.phase_begins(byte);
            if phase && s.phases.len() >= MAX_PHASE_SNAPSHOTS {
                s.phases_over_limit = s.phases_over_limit.saturating_add(1);
                s.current_phase = Some(byte);
            }
            s.first_marker.is_none()
                || (byte == WORKLOAD_START && s.workload_start.is_none())
                || (byte == WORKLOAD_END && s.workload_end.is_none())
                || (phase && s.phases.len() < MAX_PHASE_SNAPSHOTS)
        };
        if !wanted {
            return;
        }
        // Taken without holding the snapshots lock: reading KVM's stats is a syscall per vCPU.
        let snap = self.snapshot();
        let mut s = lock(&self.snapshots);
        if s.first_marker.is_none() {
            s.first_marker = Some(snap.clone());
        }
        match byte {
            WORKLOAD_START if s.workload_start.is_none() => s.workload_start = Some(snap),
            WORKLOAD_END if s.workload_end.is_none() => s.workload_end = Some(snap),
            // Checked again: another vCPU may have moved the window on meanwhile.
            _ if s.phase_begins(byte) && s.phases.len() < MAX_PHASE_SNAPSHOTS => {
                s.current_phase = Some(byte);
                s.phases.push((byte, snap));
            }
            _ => {}
        }
    }

    /// The snapshots taken so far.
    pub fn marker_snapshots(&self) -> MarkerSnapshots {
        lock(&self.snapshots).clone()
    }
}

/// Why the run loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopEnd {
    /// The guest pulsed the i8042 reset line (Linux `reboot` with `reboot=k`).
    Reset,
    /// The guest triple-faulted (KVM_EXIT_SHUTDOWN).
    Shutdown,
    /// The guest asked for a power-off or reset through a KVM system event.
    SystemEvent(u32),
    /// The guest halted with nothing to wake it (only without an in-kernel LAPIC).
    Halted,
    /// The VMM asked the loop to stop (timeout).
    Stopped,
    /// KVM returned an exit this VMM never asks for (named, with where the guest was): resuming
    /// the guest could repeat it forever, so the VM stops.
    UnexpectedExit(String),
    /// KVM could not run the vCPU.
    Failed(String),
}

/// What one vCPU's run loop observed (its exits are in the [`VcpuObserver`]).
#[derive(Debug, Clone)]
pub struct RunStats {
    /// When KVM_RUN was first entered, ns since the origin.
    pub first_run_ns: Option<u64>,
    /// When the loop saw the end, ns since the origin.
    pub end_ns: u64,
    /// Why it ended.
    pub end: LoopEnd,
}

/// Creates vCPU `index` of `count` and sets its CPUID (with its APIC id and the topology),
/// MSRs and LAPIC LINT pins. The boot vCPU (index 0, KVM's BSP) also gets the 64-bit boot state
/// (registers at `entry`, FPU, long-mode sregs); the others stay in the wait-for-SIPI state KVM's
/// in-kernel LAPIC gives them, and the guest kernel starts them with INIT/SIPI, which resets
/// whatever registers we would set.
pub fn create_vcpu(kvm: &Kvm, vm: &VmFd, index: u8, count: u8, entry: u64) -> Result<VcpuFd> {
    let kerr = |what: &'static str| move |source| VmError::Kvm { what, source };
    let vcpu = vm
        .create_vcpu(u64::from(index))
        .map_err(kerr("create a vCPU"))?;
    let mut cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kerr("report the supported CPUID"))?;
    filter_cpuid(cpuid.as_mut_slice(), VcpuTopology { index, count });
    vcpu.set_cpuid2(&cpuid)
        .map_err(kerr("set the vCPU's CPUID"))?;

    // MSRs on every vCPU: INIT does not reset MISC_ENABLE or the MTRRs, and the guest expects
    // the same values on all CPUs.
    let msrs = msr::boot_msrs()?;
    let written = vcpu.set_msrs(&msrs).map_err(kerr("set the boot MSRs"))?;
    if written != msrs.as_slice().len() {
        return Err(VmError::KvmCapability(
            "one of the boot MSRs (SYSENTER, STAR/LSTAR, TSC, MISC_ENABLE, MTRRdefType)",
        ));
    }
    if index == 0 {
        vcpu.set_regs(&regs::boot_regs(entry))
            .map_err(kerr("set the vCPU registers"))?;
        vcpu.set_fpu(&regs::boot_fpu())
            .map_err(kerr("set the vCPU FPU state"))?;
        let mut sregs = vcpu.get_sregs().map_err(kerr("read the vCPU sregs"))?;
        regs::set_long_mode_sregs(&mut sregs);
        vcpu.set_sregs(&sregs).map_err(kerr("set the vCPU sregs"))?;
    }
    let mut lapic = vcpu.get_lapic().map_err(kerr("read the LAPIC"))?;
    regs::set_lint_pins(&mut lapic);
    vcpu.set_lapic(&lapic).map_err(kerr("set the LAPIC"))?;
    Ok(vcpu)
}

fn io_reason(port: u16, write: bool, marker_port: u16) -> &'static str {
    use crate::devices::cmos::{CMOS_DATA_PORT, CMOS_INDEX_PORT};
    use crate::devices::{I8042_COMMAND_PORT, I8042_DATA_PORT, SERIAL_PORT_BASE, SERIAL_PORT_LEN};
    let dev = if (SERIAL_PORT_BASE..SERIAL_PORT_BASE + SERIAL_PORT_LEN).contains(&port) {
        0
    } else if port == I8042_DATA_PORT || port == I8042_COMMAND_PORT {
        1
    } else if port == marker_port {
        2
    } else if port == CMOS_INDEX_PORT || port == CMOS_DATA_PORT {
        3
    } else {
        4
    };
    const NAMES: [[&str; 5]; 2] = [
        [
            "io_in.serial",
            "io_in.i8042",
            "io_in.marker",
            "io_in.rtc",
            "io_in.other",
        ],
        [
            "io_out.serial",
            "io_out.i8042",
            "io_out.marker",
            "io_out.rtc",
            "io_out.other",
        ],
    ];
    NAMES[usize::from(write)][dev]
}

fn ns_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The name of an exit the run loop does not handle, for the report.
fn exit_name(exit: &VcpuExit<'_>) -> String {
    let name = match exit {
        VcpuExit::Unknown => "KVM_EXIT_UNKNOWN",
        VcpuExit::Exception => "KVM_EXIT_EXCEPTION",
        VcpuExit::Hypercall(_) => "KVM_EXIT_HYPERCALL",
        VcpuExit::Debug(_) => "KVM_EXIT_DEBUG",
        VcpuExit::IrqWindowOpen => "KVM_EXIT_IRQ_WINDOW_OPEN",
        VcpuExit::SetTpr => "KVM_EXIT_SET_TPR",
        VcpuExit::TprAccess => "KVM_EXIT_TPR_ACCESS",
        VcpuExit::Nmi => "KVM_EXIT_NMI",
        VcpuExit::Epr => "KVM_EXIT_EPR",
        VcpuExit::Watchdog => "KVM_EXIT_WATCHDOG",
        VcpuExit::IoapicEoi(_) => "KVM_EXIT_IOAPIC_EOI",
        VcpuExit::Hyperv => "KVM_EXIT_HYPERV",
        VcpuExit::X86Rdmsr(_) => "KVM_EXIT_X86_RDMSR",
        VcpuExit::X86Wrmsr(_) => "KVM_EXIT_X86_WRMSR",
        VcpuExit::MemoryFault { gpa, size, .. } => {
            return format!("KVM_EXIT_MEMORY_FAULT ({size} bytes at guest address {gpa:#x})")
        }
        VcpuExit::Unsupported(reason) => {
            return format!("exit reason {reason} (unknown to this VMM's KVM bindings)")
        }
        other => return format!("{other:?}"),
    };
    name.to_owned()
}

/// A KVM internal error as the report gives it: the sub-error by name, and the data KVM passed.
pub fn describe_internal_error(suberror: u32, data: &[u64]) -> String {
    let what = match suberror {
        kvm_bindings::KVM_INTERNAL_ERROR_EMULATION => {
            "emulation failure: the guest ran an instruction KVM could not emulate"
        }
        kvm_bindings::KVM_INTERNAL_ERROR_SIMUL_EX => {
            "simultaneous exceptions: an exception occurred while delivering another"
        }
        kvm_bindings::KVM_INTERNAL_ERROR_DELIVERY_EV => {
            "event delivery failed (an interrupt or exception could not be delivered)"
        }
        kvm_bindings::KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON => {
            "the hardware exited for a reason KVM does not handle"
        }
        _ => "unknown sub-error",
    };
    let words: Vec<String> = data.iter().map(|d| format!("{d:#x}")).collect();
    format!(
        "KVM internal error, sub-error {suberror} ({what}); data [{}]",
        words.join(", ")
    )
}

/// The internal error KVM just reported in `run`.
fn internal_error(run: &kvm_bindings::kvm_run) -> String {
    if run.exit_reason != kvm_bindings::KVM_EXIT_INTERNAL_ERROR {
        return describe_internal_error(u32::MAX, &[]);
    }
    // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR (checked above), so KVM filled the
    // `internal` member of the exit union; it is plain integers, valid for any bit pattern.
    let internal = unsafe { run.__bindgen_anon_1.internal };
    let n = (internal.ndata as usize).min(internal.data.len());
    describe_internal_error(internal.suberror, &internal.data[..n])
}

/// What to do after one exit.
enum Step {
    Continue,
    End(LoopEnd),
    /// An exit the loop does not handle: stop, naming it and where the guest was.
    Unexpected(String),
    InternalError,
}

/// Runs vCPU `index` until the guest stops, KVM fails, or `stop` is set (and the thread kicked
/// out of KVM_RUN with a signal). Every exit is counted in `observer`; port I/O goes to `bus`
/// (shared by all vCPUs), MMIO to `mmio`; a marker write snapshots all vCPUs' counters. An exit
/// this VMM does not expect ends the loop (resuming could repeat it forever). `fail_first_run`
/// makes the first KVM_RUN fail as if KVM had returned EIO (fault injection for tests).
pub fn run_loop(
    index: usize,
    vcpu: &mut VcpuFd,
    bus: &Mutex<PioBus>,
    mmio: &MmioBus,
    stop: &AtomicBool,
    observer: &VcpuObserver,
    fail_first_run: bool,
) -> RunStats {
    let origin = observer.origin;
    let marker_port = observer.marker_port;
    let exits = |reason| observer.bump(index, reason);
    let mut first_run_ns = None;
    let end = loop {
        if stop.load(Ordering::Acquire) {
            break LoopEnd::Stopped;
        }
        if first_run_ns.is_none() {
            first_run_ns = Some(ns_since(origin));
            if fail_first_run {
                break LoopEnd::Failed(format!(
                    "KVM_RUN failed on vCPU {index}: {} (injected)",
                    std::io::Error::from_raw_os_error(libc::EIO)
                ));
            }
        }
        let step = match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                exits(io_reason(port, true, marker_port));
                let action = lock(bus).write(port, data);
                // After the bus lock is released: the snapshot reads every vCPU's counters.
                if let (true, [byte]) = (port == marker_port, data) {
                    observer.marker(*byte);
                }
                if action == BusAction::Reset {
                    Step::End(LoopEnd::Reset)
                } else {
                    Step::Continue
                }
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                exits(io_reason(port, false, marker_port));
                lock(bus).read(port, data);
                Step::Continue
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                // Reads of addresses no device claims see all ones.
                exits(mmio.read(addr, data).unwrap_or("mmio_read"));
                Step::Continue
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                exits(mmio.write(addr, data).unwrap_or("mmio_write"));
                Step::Continue
            }
            Ok(VcpuExit::Hlt) => {
                exits("hlt");
                Step::End(LoopEnd::Halted)
            }
            Ok(VcpuExit::Shutdown) => {
                exits("shutdown");
                Step::End(LoopEnd::Shutdown)
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => {
                exits("system_event");
                Step::End(LoopEnd::SystemEvent(kind))
            }
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                exits("fail_entry");
                Step::End(LoopEnd::Failed(format!(
                    "KVM could not enter the guest (hardware entry failure reason {reason:#x} on CPU {cpu})"
                )))
            }
            Ok(VcpuExit::InternalError) => {
                exits("internal_error");
                Step::InternalError
            }
            Ok(VcpuExit::Intr) => {
                exits("intr");
                Step::Continue
            }
            Ok(other) => {
                exits("unexpected");
                Step::Unexpected(exit_name(&other))
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                exits("intr");
                Step::Continue
            }
            Err(e) => Step::End(LoopEnd::Failed(format!(
                "KVM_RUN failed on vCPU {index}: {e}"
            ))),
        };
        match step {
            Step::Continue => {}
            Step::End(end) => break end,
            Step::Unexpected(name) => {
                let at = vcpu
                    .get_regs()
                    .map(|r| format!(" at rip {:#x}", r.rip))
                    .unwrap_or_default();
                break LoopEnd::UnexpectedExit(format!(
                    "vCPU {index} got {name}{at}, an exit this VMM does not expect"
                ));
            }
            Step::InternalError => {
                break LoopEnd::Failed(format!(
                    "vCPU {index}: {}",
                    internal_error(vcpu.get_kvm_run())
                ))
            }
        }
    };
    RunStats {
        first_run_ns,
        end_ns: ns_since(origin),
        end,
    }
}

/// Where a vCPU was when the VM was stopped from outside (a guest that hung): enough to tell a
/// lost interrupt (halted with interrupts on) from a spin with interrupts off, and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VcpuState {
    /// The vCPU's index.
    pub index: usize,
    /// Its instruction pointer.
    pub rip: u64,
    /// Its stack pointer.
    pub rsp: u64,
    /// RFLAGS.IF: interrupts enabled.
    pub interrupts_enabled: bool,
    /// KVM's multiprocessing state (`runnable`, `halted`, `init_received`, ...).
    pub mp_state: &'static str,
    /// Values on the top of its stack that look like kernel addresses (the kernel-text mapping
    /// at 0xffffffff80000000 and up): return addresses, roughly a backtrace. Resolve them with
    /// `nm vmlinux`; isolab's micro kernel is not relocatable, so its addresses are exact.
    pub stack_kernel_addresses: Vec<u64>,
}

/// A [`VcpuState`] read back from the VMM process (its state name interned).
#[derive(serde::Deserialize)]
struct VcpuStateWire {
    index: usize,
    rip: u64,
    rsp: u64,
    interrupts_enabled: bool,
    mp_state: String,
    stack_kernel_addresses: Vec<u64>,
}

impl<'de> serde::Deserialize<'de> for VcpuState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = VcpuStateWire::deserialize(d)?;
        Ok(Self {
            index: w.index,
            rip: w.rip,
            rsp: w.rsp,
            interrupts_enabled: w.interrupts_enabled,
            mp_state: crate::process::wire::intern(&w.mp_state),
            stack_kernel_addresses: w.stack_kernel_addresses,
        })
    }
}

/// Where Linux maps its kernel image (`__START_KERNEL_map`).
const KERNEL_TEXT_MAP: u64 = 0xffff_ffff_8000_0000;
/// Stack bytes looked at for return addresses (never past the stack pointer's page).
const STACK_BYTES: u64 = 512;
/// Most stack addresses kept.
const STACK_ADDRESSES: usize = 16;

impl VcpuState {
    /// Reads the state of a vCPU that has left KVM_RUN. The stack is read through KVM's own
    /// translation and vm-memory's bounds checks: a guest's stack pointer can be anything.
    pub fn capture(index: usize, vcpu: &VcpuFd, mem: &GuestMemoryMmap) -> Option<VcpuState> {
        let regs = vcpu.get_regs().ok()?;
        let mp_state = vcpu
            .get_mp_state()
            .map(|m| mp_state_name(m.mp_state))
            .unwrap_or("unknown");
        let stack_kernel_addresses = vcpu
            .translate_gva(regs.rsp)
            .ok()
            .filter(|t| t.valid != 0)
            .map(|t| {
                let page_left = 4096 - (t.physical_address & 4095);
                let len = STACK_BYTES.min(page_left) & !7;
                let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
                if mem
                    .read_slice(&mut bytes, GuestAddress(t.physical_address))
                    .is_err()
                {
                    return Vec::new();
                }
                bytes
                    .chunks_exact(8)
                    .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
                    .filter(|v| *v >= KERNEL_TEXT_MAP)
                    .take(STACK_ADDRESSES)
                    .collect()
            })
            .unwrap_or_default();
        Some(VcpuState {
            index,
            rip: regs.rip,
            rsp: regs.rsp,
            interrupts_enabled: regs.rflags & (1 << 9) != 0,
            mp_state,
            stack_kernel_addresses,
        })
    }
}

impl std::fmt::Display for VcpuState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "vCPU {}: {}, rip {:#x}, rsp {:#x}, interrupts {}",
            self.index,
            self.mp_state,
            self.rip,
            self.rsp,
            if self.interrupts_enabled { "on" } else { "off" }
        )?;
        if !self.stack_kernel_addresses.is_empty() {
            f.write_str(", kernel addresses on the stack:")?;
            for a in &self.stack_kernel_addresses {
                write!(f, " {a:#x}")?;
            }
        }
        Ok(())
    }
}

fn mp_state_name(state: u32) -> &'static str {
    match state {
        kvm_bindings::KVM_MP_STATE_RUNNABLE => "runnable",
        kvm_bindings::KVM_MP_STATE_UNINITIALIZED => "uninitialized",
        kvm_bindings::KVM_MP_STATE_INIT_RECEIVED => "waiting for SIPI",
        kvm_bindings::KVM_MP_STATE_HALTED => "halted",
        kvm_bindings::KVM_MP_STATE_SIPI_RECEIVED => "SIPI received",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpected_exits_are_named_and_internal_errors_carry_their_sub_error() {
        assert_eq!(exit_name(&VcpuExit::Unknown), "KVM_EXIT_UNKNOWN");
        assert_eq!(
            exit_name(&VcpuExit::Debug(Default::default())),
            "KVM_EXIT_DEBUG"
        );
        assert!(exit_name(&VcpuExit::Unsupported(77)).contains("exit reason 77"));
        let m = exit_name(&VcpuExit::MemoryFault {
            flags: 0,
            gpa: 0x1000,
            size: 4096,
        });
        assert!(
            m.contains("KVM_EXIT_MEMORY_FAULT") && m.contains("0x1000"),
            "{m}"
        );
        let e = describe_internal_error(1, &[0x1, 0x2, 0xf00d]);
        assert!(
            e.contains("sub-error 1") && e.contains("emulation failure") && e.contains("0xf00d"),
            "{e}"
        );
        let e = describe_internal_error(3, &[]);
        assert!(e.contains("sub-error 3") && e.contains("delivery"), "{e}");
        assert!(describe_internal_error(99, &[7]).contains("unknown sub-error"));
        // Read from a kvm_run as KVM leaves it.
        let mut run = kvm_bindings::kvm_run {
            exit_reason: kvm_bindings::KVM_EXIT_INTERNAL_ERROR,
            ..Default::default()
        };
        // SAFETY: writing plain integers into the union member the test then reads.
        unsafe {
            run.__bindgen_anon_1.internal.suberror = 2;
            run.__bindgen_anon_1.internal.ndata = 40;
            run.__bindgen_anon_1.internal.data[0] = 0xabc;
        }
        let e = internal_error(&run);
        assert!(e.contains("sub-error 2") && e.contains("0xabc"), "{e}");
        assert_eq!(
            e.matches("0x").count(),
            16,
            "ndata is capped at the array: {e}"
        );
    }

    const PREFILL: u8 = 16;
    const READ: u8 = 17;
    const WRITE: u8 = 18;

    fn observer(vcpus: usize) -> VcpuObserver {
        VcpuObserver::new(
            (0..vcpus).map(|_| None).collect(),
            0x490,
            Instant::now(),
            None,
        )
    }

    fn bump(o: &VcpuObserver, vcpu: usize, reason: &'static str, n: usize) {
        for _ in 0..n {
            o.bump(vcpu, reason);
        }
    }

    #[test]
    fn phases_are_snapshotted_inside_the_workload_window_only() {
        let o = observer(2);
        o.marker(1);
        // Before the workload: nothing to measure yet.
        o.marker(PREFILL);
        o.marker(WORKLOAD_START);
        bump(&o, 0, "mmio_read", 2);
        o.marker(READ);
        bump(&o, 0, "mmio_write.virtio_blk", 3);
        bump(&o, 1, "io_out.serial", 1);
        // The running phase again: it goes on.
        o.marker(READ);
        bump(&o, 1, "mmio_write.virtio_blk", 4);
        o.marker(WRITE);
        bump(&o, 0, "mmio_write.virtio_blk", 5);
        // A byte outside the phase range is no phase.
        o.marker(99);
        bump(&o, 0, "mmio_write.virtio_blk", 1);
        o.marker(WORKLOAD_END);
        o.marker(PREFILL);
        let s = o.marker_snapshots();
        assert_eq!(
            s.phases.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
            [READ, WRITE]
        );
        assert_eq!(s.phases_over_limit, 0);
        let w = s.phase_windows();
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].byte, w[1].byte), (READ, WRITE));
        assert_eq!(w[0].exits.get("mmio_write.virtio_blk"), 7);
        assert_eq!(w[0].exits.get("io_out.serial"), 1);
        assert_eq!(
            w[0].exits.total(),
            8,
            "the exits before the phase are not its own"
        );
        assert_eq!(
            w[1].exits.total(),
            6,
            "the last phase ends at the workload's end"
        );
        // No KVM statistics or disk here: none in the windows either.
        assert!(w.iter().all(|w| w.kvm_stats.is_none() && w.disk.is_none()));
        assert!(w[0].window_ns <= s.workload_end.as_ref().unwrap().at_ns);
    }

    #[test]
    fn a_flood_of_phases_is_bounded_and_the_unended_phase_dropped() {
        let o = observer(1);
        o.marker(WORKLOAD_START);
        for i in 0..100 {
            o.marker(if i % 2 == 0 { READ } else { WRITE });
            bump(&o, 0, "mmio_read", 1);
        }
        o.marker(WORKLOAD_END);
        let s = o.marker_snapshots();
        assert_eq!(s.phases.len(), MAX_PHASE_SNAPSHOTS);
        assert_eq!(s.phases_over_limit, 100 - MAX_PHASE_SNAPSHOTS as u64);
        // The last snapshotted phase ended at a marker past the limit: its end is unknown.
        let w = s.phase_windows();
        assert_eq!(w.len(), MAX_PHASE_SNAPSHOTS - 1);
        assert!(w.iter().all(|w| w.exits.total() == 1), "{w:?}");
    }

    #[test]
    fn phase_windows_carry_the_disk_counters_of_their_phase() {
        use crate::devices::virtio::block::{Block, MemDisk};
        use crate::devices::virtio::Interrupt;
        let block = Block::new(
            Box::new(MemDisk::new(1 << 20, false)),
            std::sync::Arc::new(Interrupt::new(None)),
            None,
        );
        let shared = block.shared();
        let o = VcpuObserver::new(vec![None], 0x490, Instant::now(), Some(shared.clone()));
        let served = |n: u64| {
            let mut s = shared.stats();
            s.requests += n;
            s.interrupts += n;
            s.notifies += 2 * n;
            shared.set_stats(s);
        };
        served(100);
        o.marker(WORKLOAD_START);
        o.marker(PREFILL);
        served(10);
        o.marker(READ);
        served(3);
        o.marker(WORKLOAD_END);
        let w = o.marker_snapshots().phase_windows();
        let disk: Vec<_> = w
            .iter()
            .map(|w| w.disk.map(|d| (d.requests, d.notifies)))
            .collect();
        assert_eq!(disk, [Some((10, 20)), Some((3, 6))]);
    }

    #[test]
    fn a_workload_that_never_ends_has_only_its_finished_phases() {
        let o = observer(1);
        o.marker(WORKLOAD_START);
        o.marker(WRITE);
        bump(&o, 0, "mmio_read", 1);
        o.marker(READ);
        bump(&o, 0, "mmio_read", 1);
        let w = o.marker_snapshots().phase_windows();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].byte, WRITE);
        // And without a workload start, phase markers take no snapshot at all.
        let o = observer(1);
        o.marker(READ);
        o.marker(WRITE);
        let s = o.marker_snapshots();
        assert!(s.phases.is_empty() && s.first_marker.is_some());
    }
}
