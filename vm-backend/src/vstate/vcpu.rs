//! A vCPU: its boot state and the run loop that dispatches its exits to the devices.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

use crate::arch::x86_64::cpuid::{filter_cpuid, VcpuTopology};
use crate::arch::x86_64::{msr, regs};
use crate::devices::{BusAction, MmioBus, PioBus};
use crate::error::{Result, VmError};

/// Counts of the exits the run loop handled, by reason (`io_out.serial`, `io_in.i8042`, `mmio_read`,
/// `intr`, ...). Exits KVM handles in the kernel never reach it: see KVM's own statistics for those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitCounts(pub BTreeMap<&'static str, u64>);

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
    /// KVM could not run the vCPU.
    Failed(String),
}

/// What the run loop observed.
#[derive(Debug, Clone)]
pub struct RunStats {
    /// Exits by reason.
    pub exits: ExitCounts,
    /// Exits by reason up to the first marker write (the agent's start), if there was one.
    pub exits_to_first_marker: Option<ExitCounts>,
    /// When KVM_RUN was first entered, ns since the origin.
    pub first_run_ns: Option<u64>,
    /// When the loop saw the end, ns since the origin.
    pub end_ns: u64,
    /// Why it ended.
    pub end: LoopEnd,
}

/// Creates vCPU `index` of `count` and sets its CPUID, MSRs, registers, FPU, sregs and LAPIC.
pub fn create_boot_vcpu(kvm: &Kvm, vm: &VmFd, index: u8, count: u8, entry: u64) -> Result<VcpuFd> {
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

    let msrs = msr::boot_msrs()?;
    let written = vcpu.set_msrs(&msrs).map_err(kerr("set the boot MSRs"))?;
    if written != msrs.as_slice().len() {
        return Err(VmError::KvmCapability(
            "one of the boot MSRs (SYSENTER, STAR/LSTAR, TSC, MISC_ENABLE, MTRRdefType)",
        ));
    }
    vcpu.set_regs(&regs::boot_regs(entry))
        .map_err(kerr("set the vCPU registers"))?;
    vcpu.set_fpu(&regs::boot_fpu())
        .map_err(kerr("set the vCPU FPU state"))?;
    let mut sregs = vcpu.get_sregs().map_err(kerr("read the vCPU sregs"))?;
    regs::set_long_mode_sregs(&mut sregs);
    vcpu.set_sregs(&sregs).map_err(kerr("set the vCPU sregs"))?;
    let mut lapic = vcpu.get_lapic().map_err(kerr("read the LAPIC"))?;
    regs::set_lint_pins(&mut lapic);
    vcpu.set_lapic(&lapic).map_err(kerr("set the LAPIC"))?;
    Ok(vcpu)
}

fn io_reason(port: u16, write: bool, bus: &PioBus) -> &'static str {
    use crate::devices::cmos::{CMOS_DATA_PORT, CMOS_INDEX_PORT};
    use crate::devices::{I8042_COMMAND_PORT, I8042_DATA_PORT, SERIAL_PORT_BASE, SERIAL_PORT_LEN};
    let dev = if (SERIAL_PORT_BASE..SERIAL_PORT_BASE + SERIAL_PORT_LEN).contains(&port) {
        0
    } else if port == I8042_DATA_PORT || port == I8042_COMMAND_PORT {
        1
    } else if port == bus.marker.port() {
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

/// Runs the vCPU until the guest stops, KVM fails, or `stop` is set (and the thread kicked out of
/// KVM_RUN with a signal). Every exit is counted; port I/O goes to `bus`, MMIO to `mmio`.
pub fn run_loop(
    vcpu: &mut VcpuFd,
    bus: &mut PioBus,
    mmio: &MmioBus,
    stop: &AtomicBool,
    origin: Instant,
) -> RunStats {
    let mut exits = ExitCounts::default();
    let mut exits_to_first_marker = None;
    let mut first_run_ns = None;
    let end = loop {
        if stop.load(Ordering::Acquire) {
            break LoopEnd::Stopped;
        }
        if first_run_ns.is_none() {
            first_run_ns = Some(ns_since(origin));
        }
        match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                exits.bump(io_reason(port, true, bus));
                let was_first_marker = port == bus.marker.port() && bus.marker.events().is_empty();
                let action = bus.write(port, data);
                if was_first_marker && !bus.marker.events().is_empty() {
                    exits_to_first_marker = Some(exits.clone());
                }
                if action == BusAction::Reset {
                    break LoopEnd::Reset;
                }
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                exits.bump(io_reason(port, false, bus));
                bus.read(port, data);
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                // Reads of addresses no device claims see all ones.
                exits.bump(mmio.read(addr, data).unwrap_or("mmio_read"));
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                exits.bump(mmio.write(addr, data).unwrap_or("mmio_write"));
            }
            Ok(VcpuExit::Hlt) => {
                exits.bump("hlt");
                break LoopEnd::Halted;
            }
            Ok(VcpuExit::Shutdown) => {
                exits.bump("shutdown");
                break LoopEnd::Shutdown;
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => {
                exits.bump("system_event");
                break LoopEnd::SystemEvent(kind);
            }
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                exits.bump("fail_entry");
                break LoopEnd::Failed(format!(
                    "KVM could not enter the guest (hardware entry failure reason {reason:#x} on CPU {cpu})"
                ));
            }
            Ok(VcpuExit::InternalError) => {
                exits.bump("internal_error");
                break LoopEnd::Failed(
                    "KVM internal error (emulation failure): the guest ran an instruction KVM could not emulate"
                        .to_owned(),
                );
            }
            Ok(VcpuExit::Intr) | Ok(VcpuExit::IrqWindowOpen) => exits.bump("intr"),
            Ok(other) => {
                exits.bump("other");
                // Unknown exits are counted and the guest resumed; a flood of them is bounded by
                // the trial's timeout.
                let _ = other;
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => exits.bump("intr"),
            Err(e) => break LoopEnd::Failed(format!("KVM_RUN failed: {e}")),
        }
    };
    RunStats {
        exits,
        exits_to_first_marker,
        first_run_ns,
        end_ns: ns_since(origin),
        end,
    }
}
