//! One microVM from configuration to report: check the inputs, create the VM, load the guest, run
//! the vCPUs (one thread each) until the guest stops on any of them or the timeout hits, measure
//! (the run loops' exits, KVM's statistics and the disk's counters, snapshotted at the agent's
//! workload and phase markers), tear down.
//!
//! Devices: every virtio-mmio device gets its register window and interrupt line from one
//! [`SlotAllocator`], in creation order (the disk, the console, the network card), and is
//! described to the guest as [`AcpiMode`] says.
//!
//! Everything that can be checked without KVM (kernel format and completeness, initramfs, sizes,
//! command line) is checked first, so a bad input never costs a VM.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_ioctls::{IoEventAddress, VcpuFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use crate::arch::x86_64::{acpi, mptable, regs, CMDLINE_START};
use crate::boot::cmdline::Cmdline;
use crate::boot::loader::{KernelFormat, KernelImage};
use crate::boot::params::{
    build_boot_params, e820_map, initrd_address, write_boot_params, BootParamsConfig,
};
use crate::devices::marker::{MarkerEvent, MarkerPort};
use crate::devices::serial::{ConsoleLog, Serial, SERIAL_IRQ};
use crate::devices::slots::{DeviceSlot, SlotAllocator};
use crate::devices::virtio::block::{
    Block, BlockShared, BlockStats, DiskBackend, FileDisk, SlowDisk,
};
use crate::devices::virtio::console::{Console, ConsoleOutput, ConsoleStats};
use crate::devices::virtio::mmio::{MmioTransport, TransportStats, QUEUE_NOTIFY_OFFSET};
use crate::devices::virtio::net::{Net, NetShared, NetStats, Tap};
use crate::devices::virtio::{
    self as virtio, DeviceThread, Interrupt, ThreadEnd, MMIO_REGION_SIZE,
};
use crate::devices::{MmioBus, PioBus, SharedClaim, WindowClaim};
use crate::error::{Result, VmError};
use crate::hooks::{InProcess, StopHandle, VmmHooks, VmmThread, HOST_STOP};
use crate::vstate::kvm_stats::{KvmStats, StatsFd};
use crate::vstate::memory::{self, GuestRam, MemoryBacking, MemoryUsage};
use crate::vstate::vcpu::{
    self, ExitCounts, LoopEnd, PhaseWindow, RunStats, VcpuObserver, VcpuState,
};
use crate::vstate::vm::Vm;

/// Stack size of every thread the VMM starts (vCPUs, devices, the VMM process's control thread):
/// below 2 MiB, so that no stack can hold an aligned 2 MiB extent. On a host whose transparent
/// huge pages are `always` (Debian's and RHEL's default), a thread's stack of Rust's default
/// 2 MiB that happens to be 2 MiB-aligned (likely next to 2 MiB-aligned guest RAM) is backed by
/// one huge page at its first touch: 2 MiB of host memory per vCPU instead of the few pages it
/// uses (seen in the HVM test machine, whose kernel has them `always`).
pub const THREAD_STACK_BYTES: usize = 1 << 20;

/// Default I/O port for progress markers (the agent protocol's `MARKER_PORT`).
pub const DEFAULT_MARKER_PORT: u16 = 0x490;
/// Most vCPUs a VM gets (the micro kernel's NR_CPUS, and what the MP table describes).
pub const MAX_VCPUS: u8 = 64;
/// How long the VMM gives its threads, from the moment it stops the VM, to end: the vCPU threads
/// to leave KVM_RUN and the device thread to finish or give up its request. The report comes
/// back within it, whatever the guest or the disk does.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A fault a test can inject into [`run`], to check the paths that give up part-way and those a
/// slow disk or an unexpected exit takes. Not for normal use.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fault {
    /// Spawning the thread of this vCPU fails (after the vCPUs before it started running).
    SpawnVcpu(u8),
    /// Spawning the virtio-blk device thread fails.
    SpawnDeviceThread,
    /// The first KVM_RUN of this vCPU fails (as if KVM returned EIO).
    KvmRun(u8),
    /// Every operation of the disk takes this long (a [`SlowDisk`] over the image).
    SlowDisk(Duration),
    /// vCPU 0 single-steps, so its first KVM_RUN ends in KVM_EXIT_DEBUG, an exit the VMM never
    /// asks for otherwise.
    SingleStep,
    /// The virtio-blk device thread, once confined, opens an internet socket: a system call
    /// its seccomp filter forbids (what a device thread taken over by a guest might try).
    ForbiddenSyscall,
}

impl Fault {
    /// Parses `spawn-vcpu:N`, `device-thread`, `kvm-run:N`, `slow-disk-ms:MS`, `single-step`,
    /// `forbidden-syscall`.
    pub fn parse(text: &str) -> Option<Fault> {
        let (name, arg) = text.split_once(':').unwrap_or((text, ""));
        Some(match name {
            "spawn-vcpu" => Fault::SpawnVcpu(arg.parse().ok()?),
            "device-thread" => Fault::SpawnDeviceThread,
            "kvm-run" => Fault::KvmRun(arg.parse().ok()?),
            "slow-disk-ms" => Fault::SlowDisk(Duration::from_millis(arg.parse().ok()?)),
            "single-step" => Fault::SingleStep,
            "forbidden-syscall" => Fault::ForbiddenSyscall,
            _ => return None,
        })
    }
}

/// What to run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VmConfig {
    /// A bzImage or ELF vmlinux.
    pub kernel: PathBuf,
    /// An initramfs (newc, uncompressed or in a format the kernel can decompress).
    pub initrd: Option<PathBuf>,
    /// Guest RAM, MiB.
    pub memory_mib: u64,
    /// vCPUs, 1 to [`MAX_VCPUS`].
    pub vcpus: u8,
    /// Words appended to the microVM base command line (`console=ttyS0 reboot=k panic=1 ...`).
    pub extra_cmdline: Vec<String>,
    /// Add `quiet` (serial output costs one exit per byte: keep it quiet when timing).
    pub quiet: bool,
    /// The marker port.
    pub marker_port: u16,
    /// Stop the guest after this long.
    pub timeout: Duration,
    /// Mirror the console to stderr as it comes.
    pub live_console: bool,
    /// Most console bytes kept in the report (older ones are dropped and counted).
    pub console_capacity: usize,
    /// A virtio-blk disk (the guest's `/dev/vda`), if any.
    pub disk: Option<DiskConfig>,
    /// How the guest learns about the machine: ACPI tables, the command line, or both.
    pub acpi: AcpiMode,
    /// How guest RAM is backed on the host.
    pub memory: MemoryBacking,
    /// A virtio console (`/dev/hvc0` in the guest) whose output the report keeps apart from the
    /// serial console: the channel the agent's result leaves through.
    pub channel: bool,
    /// Mark guest RAM mergeable (`MADV_MERGEABLE`), so that KSM, when the host runs it, may share
    /// pages that are equal across guests (a density run's `--ksm on`). Not with hugetlbfs.
    #[serde(default)]
    pub mergeable: bool,
    /// A virtio-net card on a tap device, if any.
    #[serde(default)]
    pub net: Option<NetConfig>,
    /// A fault to inject (tests only).
    #[doc(hidden)]
    pub fault: Option<Fault>,
}

/// How the VM describes its devices (and CPUs, IOAPIC) to the guest kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AcpiMode {
    /// ACPI tables and the command line, each device at two windows, the first one the guest
    /// probes claiming it ([`crate::devices::slots`]): any kernel finds its devices, whichever way
    /// it looks for them, and none registers a device twice.
    #[default]
    Auto,
    /// ACPI tables only (a kernel without ACPI finds no virtio devices).
    On,
    /// The MP table and `virtio_mmio.device=` words only, no ACPI tables (a kernel without
    /// `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` finds no virtio devices).
    Off,
}

impl AcpiMode {
    /// `auto`, `on` or `off`; None for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Auto, Self::On, Self::Off]
            .into_iter()
            .find(|m| m.name() == text)
    }

    /// Its name on the command line and in samples.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        }
    }

    /// Whether the VM has ACPI tables.
    pub fn tables(self) -> bool {
        self != Self::Off
    }

    /// The window a kernel that reads the command line is given for `slot`, if it is given one.
    fn cmdline_window(self, slot: &DeviceSlot) -> Option<u64> {
        match self {
            Self::Auto => Some(slot.alias_base()),
            Self::Off => Some(slot.base),
            Self::On => None,
        }
    }

    /// The alias window of `slot`, when the device has one.
    fn alias(self, slot: &DeviceSlot) -> Option<u64> {
        (self == Self::Auto).then(|| slot.alias_base())
    }

    /// How the guest found a device, from the window it claimed.
    fn found_via(self, claim: WindowClaim) -> &'static str {
        match (self, claim) {
            (_, WindowClaim::None) => "not found",
            (Self::Off, _) | (Self::Auto, WindowClaim::Alias) => "command line",
            (Self::On | Self::Auto, _) => "acpi",
        }
    }
}

/// Where a virtio device was and how the guest found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceReport {
    /// `virtio-blk`, `virtio-console`.
    pub name: &'static str,
    /// Its register window (and the alias, if it had one).
    pub slot: DeviceSlot,
    /// `acpi`, `command line` (the window the guest's driver probed first), or `not found` (the
    /// guest never touched it).
    pub found_via: &'static str,
}

/// A [`DeviceReport`] read back from the VMM process (its names interned).
#[derive(serde::Deserialize)]
struct DeviceReportWire {
    name: String,
    slot: DeviceSlot,
    found_via: String,
}

impl<'de> serde::Deserialize<'de> for DeviceReport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = DeviceReportWire::deserialize(d)?;
        Ok(Self {
            name: crate::process::wire::intern(&w.name),
            slot: w.slot,
            found_via: crate::process::wire::intern(&w.found_via),
        })
    }
}

/// What the virtio console carried.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChannelReport {
    /// What the guest wrote to it, with the device's counters.
    pub output: ConsoleOutput,
    /// Register-level misbehaviour of the driver.
    pub transport: TransportStats,
}

/// The virtio-net card of a VM: a tap device on the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetConfig {
    /// The tap's name. It must exist in `netns` (isolab makes it in the run's lab namespace);
    /// the VMM attaches to it with the virtio net header.
    pub tap: String,
    /// The network namespace the tap is in (`/proc/PID/ns/net`), entered by a short-lived thread
    /// to open it, before any jail or filter; None: the VMM's own.
    pub netns: Option<PathBuf>,
    /// Offer checksum and segmentation offloads (`--vm-net-offload on`).
    pub offload: bool,
}

/// What the virtio-net card did during a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetReport {
    /// The tap.
    pub tap: String,
    /// Offloads offered.
    pub offload: bool,
    /// Frames, notifications, interrupts, drops, for the whole run.
    pub stats: NetStats,
    /// The same between the agent's workload start and end markers.
    pub stats_workload: Option<NetStats>,
    /// Register-level misbehaviour of the driver.
    pub transport: TransportStats,
    /// Why the device marked itself broken (DEVICE_NEEDS_RESET), if it did.
    pub broken: Option<String>,
    /// The device thread panicked or was left running at the stop.
    pub thread_problem: Option<String>,
}

/// The virtio-blk disk of a VM: a raw image file on the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskConfig {
    /// The image: a regular file, a non-zero multiple of 512 bytes (its size is the disk's).
    pub path: PathBuf,
    /// Open it read-only and offer VIRTIO_BLK_F_RO: guest writes fail with I/O errors.
    pub read_only: bool,
}

/// What the virtio-blk disk did during a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskReport {
    /// The image.
    pub path: PathBuf,
    /// Opened read-only.
    pub read_only: bool,
    /// Requests, notifications, interrupts, bytes, errors.
    pub stats: BlockStats,
    /// Register-level misbehaviour of the driver.
    pub transport: TransportStats,
    /// Why the device marked itself broken (DEVICE_NEEDS_RESET), if it did.
    pub broken: Option<String>,
    /// The device thread panicked (a bug; the run's figures are then incomplete).
    pub thread_panicked: bool,
    /// The device thread did not end within [`STOP_GRACE`] and was left running.
    pub thread_left_running: bool,
}

impl VmConfig {
    /// A config with defaults: no initrd, 1 vCPU, verbose console, 60 s timeout.
    pub fn new(kernel: impl Into<PathBuf>, memory_mib: u64) -> Self {
        Self {
            kernel: kernel.into(),
            initrd: None,
            memory_mib,
            vcpus: 1,
            extra_cmdline: Vec::new(),
            quiet: false,
            marker_port: DEFAULT_MARKER_PORT,
            timeout: Duration::from_secs(60),
            live_console: false,
            console_capacity: 4 << 20,
            disk: None,
            acpi: AcpiMode::Auto,
            memory: MemoryBacking::Thp,
            channel: true,
            mergeable: false,
            net: None,
            fault: None,
        }
    }
}

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopReason {
    /// The guest reset itself through the i8042 (Linux `reboot`, or `panic=N` after a panic).
    GuestReset,
    /// The guest triple-faulted.
    GuestTripleFault,
    /// The guest powered off or reset through a KVM system event (type).
    GuestSystemEvent(u32),
    /// The guest halted for good.
    GuestHalted,
    /// The guest ran past the timeout and was stopped.
    Timeout(Duration),
    /// KVM returned an exit the VMM never asks for (named): the VM was stopped rather than
    /// resumed into a loop.
    UnexpectedExit(String),
    /// KVM could not run the guest.
    VmmError(String),
    /// The process that runs the VM asked it to stop ([`crate::hooks::StopHandle`]).
    HostRequest,
}

impl StopReason {
    /// True when the guest itself ended the VM.
    pub fn is_guest_stop(&self) -> bool {
        matches!(
            self,
            StopReason::GuestReset | StopReason::GuestSystemEvent(_) | StopReason::GuestHalted
        )
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::GuestReset => f.write_str("the guest reset itself (i8042)"),
            StopReason::GuestTripleFault => f.write_str("the guest triple-faulted"),
            StopReason::GuestSystemEvent(t) => write!(f, "the guest sent system event {t}"),
            StopReason::GuestHalted => f.write_str("the guest halted"),
            StopReason::Timeout(d) => write!(
                f,
                "the guest was stopped at the timeout of {:.1} s",
                d.as_secs_f64()
            ),
            StopReason::UnexpectedExit(e) => write!(f, "the VMM stopped the guest: {e}"),
            StopReason::VmmError(e) => write!(f, "the VMM could not run the guest: {e}"),
            StopReason::HostRequest => f.write_str("the host asked the VM to stop"),
        }
    }
}

/// One named point of the VM's timeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TimePoint {
    /// `start`, `vm_created`, `memory_ready`, `kernel_loaded`, `vcpu_configured`,
    /// `first_kvm_run`, `stop_requested`, `torn_down`.
    pub name: &'static str,
    /// Nanoseconds since the origin (host CLOCK_MONOTONIC).
    pub at_ns: u64,
}

/// A [`TimePoint`] read back from the VMM process (its name interned).
#[derive(serde::Deserialize)]
struct TimePointWire {
    name: String,
    at_ns: u64,
}

impl<'de> serde::Deserialize<'de> for TimePoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = TimePointWire::deserialize(d)?;
        Ok(Self {
            name: crate::process::wire::intern(&w.name),
            at_ns: w.at_ns,
        })
    }
}

/// Everything a finished VM leaves behind.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VmReport {
    /// Why it stopped.
    pub stop: StopReason,
    /// The serial console.
    pub console: ConsoleLog,
    /// Marker writes, timestamped on the vCPU thread.
    pub markers: Vec<MarkerEvent>,
    /// Marker writes dropped (malformed or too many).
    pub markers_dropped: u64,
    /// The VMM's timeline.
    pub timeline: Vec<TimePoint>,
    /// vCPUs the VM had.
    pub vcpus: u8,
    /// Exits the run loops handled, by reason, for the whole run (all vCPUs).
    pub exits: ExitCounts,
    /// The same per vCPU (index = vCPU id).
    pub exits_per_vcpu: Vec<ExitCounts>,
    /// The same from the first KVM_RUN to the first marker write (the agent's start).
    pub exits_to_first_marker: Option<ExitCounts>,
    /// KVM's statistics from the first KVM_RUN to the agent's start, summed over the vCPUs
    /// (every exit, nested page faults included: `exits`, `pf_taken`, `pf_fixed`, ...).
    pub kvm_stats_to_first_marker: Option<KvmStats>,
    /// Exits by reason between the agent's workload start and end markers (all vCPUs); None when
    /// the guest did not write both.
    pub exits_workload: Option<ExitCounts>,
    /// KVM's statistics (`KVM_GET_STATS_FD`) summed over the vCPUs, for the whole run: the exits
    /// KVM handled in the kernel as well as the ones it passed up. None when unavailable.
    pub kvm_stats: Option<KvmStats>,
    /// The same per vCPU.
    pub kvm_stats_per_vcpu: Vec<KvmStats>,
    /// KVM's statistics between the workload start and end markers, summed over the vCPUs.
    pub kvm_stats_workload: Option<KvmStats>,
    /// Why KVM's statistics are missing (an old host kernel), when they are.
    pub kvm_stats_unavailable: Option<String>,
    /// Nanoseconds between the workload start and end snapshots (host clock).
    pub workload_window_ns: Option<u64>,
    /// The workload's phases, in order (the agent's phase markers between its workload start
    /// and end, see [`crate::devices::marker::PHASE_BYTES`]): each one's exits, KVM statistics
    /// and disk counters, so reads and writes can be counted apart. Empty for a workload without
    /// phases.
    pub workload_phases: Vec<PhaseWindow>,
    /// Phase markers past [`vcpu::MAX_PHASE_SNAPSHOTS`], not measured (a misbehaving guest).
    pub phase_markers_over_limit: u64,
    /// Resident memory when the guest stopped.
    pub memory: Option<MemoryUsage>,
    /// The largest non-guest mappings then (what the VMM's overhead is made of).
    pub memory_top: Vec<(String, u64)>,
    /// Guest RAM size, bytes.
    pub guest_ram_bytes: u64,
    /// How guest RAM was backed.
    pub memory_backing: MemoryBacking,
    /// (host address, size) of each guest RAM mapping: 2 MiB-aligned unless backed by small
    /// pages.
    pub guest_ram_host_ranges: Vec<(u64, u64)>,
    /// How the devices were described to the guest.
    pub acpi: AcpiMode,
    /// Each virtio device's place and how the guest found it.
    pub devices: Vec<DeviceReport>,
    /// The virtio console, when the VM had one.
    pub channel: Option<ChannelReport>,
    /// The kernel's format.
    pub kernel_format: KernelFormat,
    /// The command line the guest got.
    pub cmdline: String,
    /// Port accesses no device claimed.
    pub unclaimed_io: u64,
    /// The virtio-blk disk's figures, when the VM had one.
    pub disk: Option<DiskReport>,
    /// The virtio-net card's figures, when the VM had one.
    #[serde(default)]
    pub net: Option<NetReport>,
    /// Where each vCPU was when the VM was stopped at the timeout (empty otherwise): what a
    /// hung guest was doing.
    pub vcpu_states: Vec<VcpuState>,
    /// What went wrong while stopping: threads that did not end within [`STOP_GRACE`] (left
    /// running, guest memory kept mapped for them) or that panicked. Empty normally; anything
    /// here is a VMM bug or a host that cannot finish an I/O.
    pub teardown_problems: Vec<String>,
}

impl VmReport {
    /// The last `n` console lines.
    pub fn console_tail(&self, n: usize) -> String {
        self.console.tail(n)
    }

    /// True when the console shows a kernel panic.
    pub fn kernel_panicked(&self) -> bool {
        self.console.text().contains("Kernel panic")
    }

    /// The time of a timeline point.
    pub fn at(&self, name: &str) -> Option<u64> {
        self.timeline
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.at_ns)
    }
}

fn ns_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// The real-time signal that kicks a vCPU thread out of KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

fn install_kick_handler() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_signal_handler(kick_signal(), kick_handler)
            .map_err(|e| VmError::Host(format!("installing the vCPU kick signal handler: {e}")));
    });
    result
}

/// Inputs checked without KVM.
struct Checked {
    kernel: KernelImage,
    initrd: Option<(PathBuf, u64)>,
    cmdline: Cmdline,
    ram_bytes: u64,
    disk: Option<FileDisk>,
    slots: DeviceSlots,
}

/// The slot of each virtio device the VM has, allocated in creation order.
#[derive(Debug, Clone, Copy)]
struct DeviceSlots {
    block: Option<DeviceSlot>,
    console: Option<DeviceSlot>,
    net: Option<DeviceSlot>,
}

impl DeviceSlots {
    fn allocate(config: &VmConfig) -> Result<Self> {
        let mut slots = SlotAllocator::new();
        let block = match config.disk {
            Some(_) => Some(slots.allocate("virtio-blk")?),
            None => None,
        };
        let console = match config.channel {
            true => Some(slots.allocate("virtio-console")?),
            false => None,
        };
        let net = match config.net {
            Some(_) => Some(slots.allocate("virtio-net")?),
            None => None,
        };
        Ok(Self {
            block,
            console,
            net,
        })
    }

    fn all(&self) -> impl Iterator<Item = DeviceSlot> {
        self.block.into_iter().chain(self.console).chain(self.net)
    }
}

fn check_inputs(config: &VmConfig) -> Result<Checked> {
    if !(1..=MAX_VCPUS).contains(&config.vcpus) {
        return Err(VmError::Config(format!(
            "{} vCPUs requested; this VMM runs 1 to {MAX_VCPUS}: pick a count in that range",
            config.vcpus
        )));
    }
    let kernel = KernelImage::from_file(&config.kernel)?;
    // The initrd is only measured here; it is read straight into guest memory later, so its
    // bytes never sit on the VMM's heap.
    let initrd = match &config.initrd {
        Some(path) => {
            let len = std::fs::metadata(path)
                .and_then(|m| {
                    if m.is_file() {
                        Ok(m.len())
                    } else {
                        Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "not a regular file",
                        ))
                    }
                })
                .map_err(|source| VmError::InitrdRead {
                    path: path.clone(),
                    source,
                })?;
            Some((path.clone(), len))
        }
        None => None,
    };
    let ram_bytes = config
        .memory_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| VmError::Layout(format!("{} MiB is too much", config.memory_mib)))?;
    let regions = memory::ram_regions(ram_bytes)?;
    memory::check_backing(ram_bytes, config.memory)?;
    let initrd_len = initrd.as_ref().map_or(0, |i| i.1);
    // min_ram is at most MAX_RAM_BYTES (the loader's checks); the initrd's size is whatever
    // the file system says, so the sum is checked.
    let need = initrd_len
        .checked_next_multiple_of(4096)
        .and_then(|n| n.checked_add(kernel.info.min_ram))
        .and_then(|n| n.checked_add(8 << 20))
        .unwrap_or(u64::MAX);
    if ram_bytes.min(crate::arch::x86_64::MMIO_GAP_START) < need {
        return Err(VmError::Layout(format!(
            "{} MiB of guest RAM is too little for this kernel and initramfs (need at least {} MiB); raise the VM's memory",
            config.memory_mib,
            need.div_ceil(1 << 20)
        )));
    }
    if initrd.is_some() {
        // Where the initramfs will go (below the kernel's initrd_addr_max): a refusal now
        // rather than after the VM exists.
        let low_ram_end = regions.first().map_or(0, |r| r.0 + r.1);
        initrd_address(
            low_ram_end,
            initrd_len,
            kernel.info.min_ram,
            kernel.info.initrd_addr_max,
        )?;
    }
    let mut cmdline = Cmdline::microvm();
    if config.quiet {
        cmdline.push("quiet")?;
    }
    // The disk is opened now so a missing or odd-sized image never costs a VM.
    let disk = match &config.disk {
        Some(d) => Some(FileDisk::open(&d.path, d.read_only)?),
        None => None,
    };
    // A kernel built with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES finds its devices here; with ACPI
    // the DSDT describes them at their own windows (see `AcpiMode`).
    let slots = DeviceSlots::allocate(config)?;
    for slot in slots.all() {
        if let Some(base) = config.acpi.cmdline_window(&slot) {
            cmdline.push_kv("virtio_mmio.device", &slot.cmdline_value(base))?;
        }
    }
    for word in &config.extra_cmdline {
        cmdline.push(word)?;
    }
    if cmdline.len() > kernel.info.cmdline_max {
        return Err(VmError::Cmdline(format!(
            "{} bytes, but this kernel accepts {}",
            cmdline.len(),
            kernel.info.cmdline_max
        )));
    }
    Ok(Checked {
        kernel,
        initrd,
        cmdline,
        ram_bytes,
        disk,
        slots,
    })
}

/// Checks that a kernel (and initrd) would be accepted, without touching KVM.
pub fn validate(config: &VmConfig) -> Result<KernelFormat> {
    check_inputs(config).map(|c| c.kernel.info.format)
}

/// Runs one VM. `origin` is the instant the caller's timeline counts from.
///
/// Errors mean the VM could not be set up; whatever the guest does (panic, hang, reset, an exit
/// the VMM does not expect) ends in a [`VmReport`] whose [`StopReason`] says so. Every thread the
/// VM started is stopped and joined within [`STOP_GRACE`] of the stop, on every path; one that
/// does not end in time is named in [`VmReport::teardown_problems`] and left running with its own
/// reference to guest memory, so the memory stays mapped for as long as it may touch it.
pub fn run(config: &VmConfig, origin: Instant) -> Result<VmReport> {
    run_with(config, origin, Arc::new(InProcess))
}

/// [`run`], with `hooks` called at the VMM's turning points (see [`crate::hooks`]): how the VMM
/// process opens `/dev/kvm` from its jail, drops privileges once its inputs are open, confines
/// each thread as it starts, reports its markers as they come and lets the host stop the VM.
pub fn run_with(config: &VmConfig, origin: Instant, hooks: Arc<dyn VmmHooks>) -> Result<VmReport> {
    let mut timeline = vec![TimePoint {
        name: "start",
        at_ns: ns_since(origin),
    }];
    let mark = |timeline: &mut Vec<TimePoint>, name| {
        timeline.push(TimePoint {
            name,
            at_ns: ns_since(origin),
        })
    };
    let mut checked = check_inputs(config)?;
    install_kick_handler()?;

    // Declared before the VM so that, on every return, the VM (and with it every KVM fd this
    // thread holds) is dropped before guest RAM is unmapped: locals drop in reverse order.
    let ram: GuestRam;
    let vm = Vm::with_kvm(hooks.open_kvm()?)?;
    mark(&mut timeline, "vm_created");

    ram = GuestRam::new(checked.ram_bytes, config.memory)?;
    if config.mergeable {
        ram.make_mergeable()?;
    }
    ram.register(&vm.fd)?;
    mark(&mut timeline, "memory_ready");

    let kernel_format = checked.kernel.info.format;
    let loaded = checked.kernel.load(&ram.mem)?;
    let min_ram = checked.kernel.info.min_ram;
    let initrd_max = checked.kernel.info.initrd_addr_max;
    drop(checked.kernel);
    let initrd = match &checked.initrd {
        Some((path, len)) => {
            let addr = initrd_address(
                ram.low_ram_end(),
                *len,
                loaded.kernel_end.max(min_ram),
                initrd_max,
            )?;
            let read_err = |source| VmError::InitrdRead {
                path: path.clone(),
                source,
            };
            let mut file = std::fs::File::open(path).map_err(read_err)?;
            let len_usize = usize::try_from(*len)
                .map_err(|_| VmError::Layout("the initramfs is too large".into()))?;
            ram.mem
                .read_exact_volatile_from(GuestAddress(addr), &mut file, len_usize)
                .map_err(|e| {
                    VmError::Memory(format!("reading the initramfs into guest memory: {e}"))
                })?;
            Some((addr, *len))
        }
        None => None,
    };
    let cmdline_bytes = checked.cmdline.to_bytes_with_nul();
    ram.mem
        .write_slice(&cmdline_bytes, GuestAddress(CMDLINE_START))
        .map_err(|e| VmError::Memory(format!("writing the command line: {e}")))?;
    let acpi_rsdp = if config.acpi.tables() {
        Some(acpi::write_acpi_tables(
            &ram.mem,
            config.vcpus,
            &virtio_regions(&checked.slots),
        )?)
    } else {
        None
    };
    let params = build_boot_params(&BootParamsConfig {
        setup_header: loaded.setup_header,
        cmdline_len: cmdline_bytes.len() - 1,
        initrd,
        e820: e820_map(&ram.regions)?,
        acpi_rsdp,
    })?;
    write_boot_params(&ram.mem, &params)?;
    regs::write_boot_tables(&ram.mem)?;
    mptable::write_mptable(&ram.mem, config.vcpus)?;
    mark(&mut timeline, "kernel_loaded");
    let tap = match &config.net {
        Some(n) => Some(hooks.open_tap(n)?),
        None => None,
    };
    // Everything this VM reads from the host's files is open (or already read): from here on a
    // confined VMM needs no privilege, and no thread of the VM exists yet.
    hooks.inputs_opened()?;

    let serial_irq = device_irq(&vm, SERIAL_IRQ, "serial")?;
    let serial = Serial::new(
        Some(serial_irq),
        ConsoleLog::new(config.console_capacity),
        config.live_console,
    )
    .map_err(|e| VmError::Host(format!("creating the serial port: {e}")))?;
    let bus = Arc::new(Mutex::new(PioBus::new(
        serial,
        MarkerPort::new(config.marker_port, origin),
    )));
    let mut mmio = MmioBus::new();
    // Dropped (its thread stopped) before the VM and RAM on any early return.
    let mut block = match (checked.disk.take(), checked.slots.block) {
        (Some(disk), Some(slot)) => Some(attach_block(
            &vm,
            &ram,
            disk,
            slot,
            config,
            &mut mmio,
            Arc::clone(&hooks),
        )?),
        _ => None,
    };
    let virtio_console = match checked.slots.console {
        Some(slot) => Some(attach_console(
            &vm,
            &ram,
            config.console_capacity,
            slot,
            config.acpi.alias(&slot),
            &mut mmio,
        )?),
        None => None,
    };
    let mut net = match (tap, &config.net, checked.slots.net) {
        (Some(tap), Some(net_config), Some(slot)) => Some(attach_net(
            &vm,
            &ram,
            tap,
            net_config.offload,
            slot,
            config.acpi.alias(&slot),
            &mut mmio,
            Arc::clone(&hooks),
        )?),
        _ => None,
    };
    let mut vcpu_fds = Vec::with_capacity(usize::from(config.vcpus));
    let mut stats_fds = Vec::with_capacity(usize::from(config.vcpus));
    let mut kvm_stats_unavailable = None;
    for index in 0..config.vcpus {
        let fd = vcpu::create_vcpu(&vm.kvm, &vm.fd, index, config.vcpus, loaded.entry)?;
        if index == 0 && config.fault == Some(Fault::SingleStep) {
            let debug = kvm_bindings::kvm_guest_debug {
                control: kvm_bindings::KVM_GUESTDBG_ENABLE | kvm_bindings::KVM_GUESTDBG_SINGLESTEP,
                ..Default::default()
            };
            fd.set_guest_debug(&debug).map_err(|source| VmError::Kvm {
                what: "enable single-stepping (injected fault)",
                source,
            })?;
        }
        // KVM's statistics are a bonus: a kernel without them (before 5.14) still runs the VM,
        // and the report says why they are missing.
        match StatsFd::open(&fd) {
            Ok(s) => stats_fds.push(Some(s)),
            Err(e) => {
                kvm_stats_unavailable.get_or_insert_with(|| e.to_string());
                stats_fds.push(None);
            }
        }
        vcpu_fds.push(fd);
    }
    let observer = Arc::new(
        VcpuObserver::new(
            stats_fds,
            config.marker_port,
            origin,
            block.as_ref().map(|b| Arc::clone(&b.shared)),
        )
        .with_net(net.as_ref().map(|n| Arc::clone(&n.shared)))
        .with_hooks(Arc::clone(&hooks)),
    );
    mark(&mut timeline, "vcpu_configured");

    // From here on the guard stops and joins every started vCPU thread (within STOP_GRACE) on
    // any return, before the VM and RAM go.
    let (done_tx, done_rx) = mpsc::channel::<usize>();
    let mut threads = VcpuThreads::new(done_rx);
    for (index, vcpu_fd) in vcpu_fds.into_iter().enumerate() {
        let fail_first_run = config.fault == Some(Fault::KvmRun(index as u8));
        let job = VcpuJob {
            index,
            vcpu: vcpu_fd,
            bus: Arc::clone(&bus),
            mmio: mmio.clone(),
            observer: Arc::clone(&observer),
            stop: Arc::clone(&threads.stop),
            capture_state: Arc::clone(&threads.capture_state),
            fail_first_run,
            hooks: Arc::clone(&hooks),
            // Last to go in the thread: guest RAM stays mapped while the thread lives.
            mem: ram.mem.clone(),
        };
        let done_tx = done_tx.clone();
        let spawned = if config.fault == Some(Fault::SpawnVcpu(index as u8)) {
            Err(std::io::Error::other("injected failure"))
        } else {
            std::thread::Builder::new()
                .name(format!("isolab-vcpu{index}"))
                .stack_size(THREAD_STACK_BYTES)
                .spawn(move || job.run(done_tx))
        };
        match spawned {
            Ok(h) => threads.push(index, h),
            Err(e) => {
                // `threads` (the vCPUs already running) and `block` stop on the way out.
                return Err(VmError::VcpuThread(format!(
                    "spawning the thread of vCPU {index} of {}: {e}. Check the process's thread limit (ulimit -u)",
                    config.vcpus
                )));
            }
        }
    }
    hooks.running(&ram.host_ranges, StopHandle::new(done_tx.clone()));
    drop(done_tx);
    // Every other thread runs: the main thread is confined last (it started them all).
    hooks
        .thread_started(VmmThread::Main)
        .map_err(|e| VmError::Host(format!("confining the VMM's main thread: {e}")))?;

    // The first vCPU to leave its loop (reset, shutdown, failure) ends the VM, as do the timeout
    // and a stop the host asked for; the rest are told to stop and kicked out of KVM_RUN.
    let (first, timed_out, host_stop) = match threads.done_rx.recv_timeout(config.timeout) {
        Ok(HOST_STOP) => (None, None, Some(ns_since(origin))),
        Ok(i) => {
            threads.mark_done(i);
            (Some(i), None, None)
        }
        Err(mpsc::RecvTimeoutError::Timeout) => (None, Some(ns_since(origin)), None),
        // Every vCPU thread ended without a word: they panicked (named below).
        Err(mpsc::RecvTimeoutError::Disconnected) => (None, None, None),
    };
    let stop_at = Instant::now();
    let deadline = stop_at + STOP_GRACE;
    if timed_out.is_some() {
        // A hung guest: each vCPU thread records where it was before it lets go of its fd.
        threads.capture_state.store(true, Ordering::Release);
    }
    let joined = threads.stop_and_join(deadline);
    let mut teardown_problems = joined.problems;
    let results = joined.results;
    // The stop reason is the first vCPU's; the others ended because they were told to.
    let first_stats = first
        .and_then(|i| results.get(i))
        .or_else(|| results.first())
        .and_then(|r| r.as_ref())
        .map(|r| r.0.clone());
    let first_run_ns = results
        .iter()
        .flatten()
        .filter_map(|r| r.0.first_run_ns)
        .min();

    if let Some(first) = first_run_ns {
        timeline.push(TimePoint {
            name: "first_kvm_run",
            at_ns: first,
        });
    }
    timeline.push(TimePoint {
        name: "stop_requested",
        at_ns: timed_out
            .or(host_stop)
            .or(first_stats.as_ref().map(|s| s.end_ns))
            .unwrap_or_else(|| ns_since(origin)),
    });
    let stop_reason = match (first_stats.as_ref().map(|s| &s.end), timed_out) {
        (_, Some(_)) => StopReason::Timeout(config.timeout),
        _ if host_stop.is_some() => StopReason::HostRequest,
        (Some(LoopEnd::Reset), None) => StopReason::GuestReset,
        (Some(LoopEnd::Shutdown), None) => StopReason::GuestTripleFault,
        (Some(LoopEnd::SystemEvent(t)), None) => StopReason::GuestSystemEvent(*t),
        (Some(LoopEnd::Halted), None) => StopReason::GuestHalted,
        (Some(LoopEnd::Stopped), None) => StopReason::VmmError("stopped without a request".into()),
        (Some(LoopEnd::UnexpectedExit(e)), None) => StopReason::UnexpectedExit(e.clone()),
        (Some(LoopEnd::Failed(e)), None) => StopReason::VmmError(e.clone()),
        (None, None) => StopReason::VmmError(match first {
            Some(i) => format!("vCPU {i} ended its run loop but its thread could not be joined"),
            None => "no vCPU thread said why it stopped (see the teardown problems)".into(),
        }),
    };

    // The whole run: the counters now (every vCPU has stopped), and the marker windows.
    let end = observer.snapshot();
    let snaps = observer.marker_snapshots();
    let exits_per_vcpu = end.exits.clone();
    let kvm_stats_per_vcpu: Vec<KvmStats> = end.kvm.iter().flatten().cloned().collect();
    let kvm_stats = end.kvm_sum();
    if kvm_stats.is_none() && kvm_stats_unavailable.is_none() {
        kvm_stats_unavailable = Some("reading a vCPU's KVM statistics at the end failed".into());
    }
    let window = snaps
        .workload_start
        .as_ref()
        .zip(snaps.workload_end.as_ref());
    let exits_workload = window.map(|(a, b)| ExitCounts::delta(&a.exits_sum(), &b.exits_sum()));
    let kvm_stats_workload =
        window.and_then(|(a, b)| Some(KvmStats::delta(&a.kvm_sum()?, &b.kvm_sum()?)));
    let workload_window_ns = window.map(|(a, b)| b.at_ns.saturating_sub(a.at_ns));
    let exits_to_first_marker = snaps.first_marker.as_ref().map(|s| s.exits_sum());
    let kvm_stats_to_first_marker = snaps.first_marker.as_ref().and_then(|s| s.kvm_sum());
    let workload_phases = snaps.phase_windows();
    let vcpu_states: Vec<VcpuState> = results
        .iter()
        .flatten()
        .filter_map(|r| r.1.clone())
        .collect();

    let (memory, memory_top) = match hooks.measure_memory(&ram.host_ranges) {
        Some((m, top)) => (Some(m), top),
        None => (None, Vec::new()),
    };
    let guest_ram_bytes = checked.ram_bytes;
    let ram_backing = ram.backing;
    let guest_ram_host_ranges = ram.host_ranges.clone();
    let (console, markers, markers_dropped, unclaimed_io) = {
        let mut bus = virtio::lock(&bus);
        (
            bus.serial.take_console(),
            bus.marker.events().to_vec(),
            bus.marker.dropped(),
            bus.unclaimed,
        )
    };
    let disk = block.as_mut().map(|b| b.finish(config, deadline));
    if let Some(d) = &disk {
        if d.thread_left_running {
            teardown_problems.push(format!(
                "the virtio-blk device thread did not end within {} s of the stop; it was left running (guest memory stays mapped for it)",
                STOP_GRACE.as_secs()
            ));
        }
        if d.thread_panicked {
            teardown_problems.push("the virtio-blk device thread panicked".into());
        }
    }
    let mut devices = Vec::new();
    if let (Some(b), Some(slot)) = (&block, checked.slots.block) {
        devices.push(DeviceReport {
            name: "virtio-blk",
            slot,
            found_via: config.acpi.found_via(b.claim.get()),
        });
    }
    let net_report = match (net.as_mut(), &config.net, checked.slots.net) {
        (Some(n), Some(net_config), Some(slot)) => {
            devices.push(DeviceReport {
                name: "virtio-net",
                slot,
                found_via: config.acpi.found_via(n.claim.get()),
            });
            let stats_workload =
                window.and_then(|(a, b)| Some(NetStats::delta(a.net.as_ref()?, b.net.as_ref()?)));
            let r = n.finish(net_config, stats_workload, deadline);
            if let Some(p) = &r.thread_problem {
                teardown_problems.push(p.clone());
            }
            Some(r)
        }
        _ => None,
    };
    let channel = match (&virtio_console, checked.slots.console) {
        (Some(c), Some(slot)) => {
            devices.push(DeviceReport {
                name: "virtio-console",
                slot,
                found_via: config.acpi.found_via(c.claim.get()),
            });
            Some(ChannelReport {
                output: virtio::lock(&c.output).clone(),
                transport: virtio::lock(&c.transport).stats,
            })
        }
        _ => None,
    };
    // Tear down in dependency order: the observer (its KVM stats fds hold the VM), devices
    // (irqfd, ioeventfd, device thread) and the MMIO bus, whose transports hold guest memory,
    // the VM, then the memory KVM mapped. `GuestRam` unmaps only when nothing else holds the
    // memory (its last mapping goes with the last thread that holds a reference), so everything
    // that does goes first.
    drop(threads);
    drop(observer);
    drop(bus);
    drop(mmio);
    drop(block);
    drop(net);
    drop(virtio_console);
    drop(vm);
    drop(ram);
    mark(&mut timeline, "torn_down");

    Ok(VmReport {
        stop: stop_reason,
        console,
        markers,
        markers_dropped,
        timeline,
        vcpus: config.vcpus,
        exits: ExitCounts::sum(&exits_per_vcpu),
        exits_per_vcpu,
        exits_to_first_marker,
        kvm_stats_to_first_marker,
        exits_workload,
        kvm_stats,
        kvm_stats_per_vcpu,
        kvm_stats_workload,
        kvm_stats_unavailable,
        workload_window_ns,
        workload_phases,
        phase_markers_over_limit: snaps.phases_over_limit,
        memory,
        memory_top,
        guest_ram_bytes,
        memory_backing: ram_backing,
        guest_ram_host_ranges,
        acpi: config.acpi,
        devices,
        channel,
        kernel_format,
        cmdline: checked.cmdline.as_string(),
        unclaimed_io,
        disk,
        net: net_report,
        vcpu_states,
        teardown_problems,
    })
}

/// What a vCPU thread owns. The KVM fds (its vCPU fd, the observer's stats fds) go before its
/// reference to guest memory, so the memory outlives every KVM fd of the thread, however long
/// the thread lives.
struct VcpuJob {
    index: usize,
    vcpu: VcpuFd,
    bus: Arc<Mutex<PioBus>>,
    mmio: MmioBus,
    observer: Arc<VcpuObserver>,
    stop: Arc<AtomicBool>,
    capture_state: Arc<AtomicBool>,
    fail_first_run: bool,
    hooks: Arc<dyn VmmHooks>,
    mem: GuestMemoryMmap,
}

impl VcpuJob {
    fn run(self, done: mpsc::Sender<usize>) -> VcpuOutcome {
        let VcpuJob {
            index,
            mut vcpu,
            bus,
            mmio,
            observer,
            stop,
            capture_state,
            fail_first_run,
            hooks,
            mem,
        } = self;
        // Confined before its first KVM_RUN; a vCPU that cannot be confined never runs.
        let stats = match hooks.thread_started(VmmThread::Vcpu(index)) {
            Ok(()) => vcpu::run_loop(
                index,
                &mut vcpu,
                &bus,
                &mmio,
                &stop,
                &observer,
                fail_first_run,
            ),
            Err(e) => vcpu::RunStats {
                first_run_ns: None,
                end_ns: 0,
                end: LoopEnd::Failed(format!("confining the thread of vCPU {index}: {e}")),
            },
        };
        drop(hooks);
        // Told to stop at the timeout: where the guest was, read before the fd goes.
        let state = capture_state
            .load(Ordering::Acquire)
            .then(|| VcpuState::capture(index, &vcpu, &mem))
            .flatten();
        drop(vcpu);
        drop(observer);
        drop(mmio);
        drop(bus);
        drop(mem);
        let _ = done.send(index);
        (stats, state)
    }
}

/// What a vCPU thread returns: its run, and where it was if it was stopped at the timeout.
type VcpuOutcome = (RunStats, Option<VcpuState>);

/// The vCPU threads of a running VM. Dropping it (an early return) stops and joins them within
/// [`STOP_GRACE`].
struct VcpuThreads {
    handles: Vec<(usize, JoinHandle<VcpuOutcome>)>,
    stop: Arc<AtomicBool>,
    capture_state: Arc<AtomicBool>,
    done_rx: mpsc::Receiver<usize>,
    done: Vec<usize>,
}

/// What stopping the vCPU threads came to.
struct Joined {
    /// Per vCPU index: its run and state, None if its thread could not be joined.
    results: Vec<Option<VcpuOutcome>>,
    /// Threads that did not end in time or panicked.
    problems: Vec<String>,
}

impl VcpuThreads {
    fn new(done_rx: mpsc::Receiver<usize>) -> Self {
        Self {
            handles: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            capture_state: Arc::new(AtomicBool::new(false)),
            done_rx,
            done: Vec::new(),
        }
    }

    fn push(&mut self, index: usize, handle: JoinHandle<VcpuOutcome>) {
        self.handles.push((index, handle));
    }

    fn mark_done(&mut self, index: usize) {
        if !self.done.contains(&index) {
            self.done.push(index);
        }
    }

    /// Sets the stop flag and kicks every thread not yet done out of KVM_RUN until it reports
    /// back or `deadline` passes (a signal that lands while a thread is outside KVM_RUN is
    /// lost, so it is repeated every 10 ms), then joins the threads that ended. The others are
    /// left running: each holds its own reference to guest memory.
    fn stop_and_join(&mut self, deadline: Instant) -> Joined {
        self.stop.store(true, Ordering::Release);
        let count = self.handles.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
        loop {
            while let Ok(i) = self.done_rx.try_recv() {
                self.mark_done(i);
            }
            let pending: Vec<&(usize, JoinHandle<_>)> = self
                .handles
                .iter()
                .filter(|(i, h)| !self.done.contains(i) && !h.is_finished())
                .collect();
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            for (_, h) in pending {
                let _ = h.kill(kick_signal());
            }
            if let Ok(i) = self.done_rx.recv_timeout(Duration::from_millis(10)) {
                self.mark_done(i);
            }
        }
        let mut results: Vec<Option<VcpuOutcome>> = (0..count).map(|_| None).collect();
        let mut problems = Vec::new();
        for (index, handle) in std::mem::take(&mut self.handles) {
            // A thread that sent `done` has only its return left to do.
            while self.done.contains(&index) && !handle.is_finished() {
                if Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            if !handle.is_finished() {
                problems.push(format!(
                    "vCPU {index} did not leave KVM_RUN within {} s of being told to stop; its thread was left running (guest memory stays mapped for it)",
                    STOP_GRACE.as_secs()
                ));
                continue;
            }
            match handle.join() {
                Ok(r) => {
                    if let Some(slot) = results.get_mut(index) {
                        *slot = Some(r);
                    }
                }
                Err(_) => problems.push(format!("the thread of vCPU {index} panicked")),
            }
        }
        Joined { results, problems }
    }
}

impl Drop for VcpuThreads {
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            self.stop_and_join(Instant::now() + STOP_GRACE);
        }
    }
}

/// The virtio-mmio regions of a VM, for its ACPI tables: each device at its own window.
fn virtio_regions(slots: &DeviceSlots) -> Vec<acpi::VirtioMmioRegion> {
    slots
        .all()
        .map(|slot| acpi::VirtioMmioRegion {
            base: slot.base,
            size: MMIO_REGION_SIZE,
            gsi: slot.gsi,
        })
        .collect()
}

/// The virtio-blk device of a running VM: its transport on the MMIO bus and its device thread.
struct AttachedBlock {
    transport: Arc<Mutex<MmioTransport>>,
    shared: Arc<BlockShared>,
    thread: DeviceThread,
    claim: SharedClaim,
}

impl AttachedBlock {
    /// Stops the device thread (by `deadline`) and collects the figures.
    fn finish(&mut self, config: &VmConfig, deadline: Instant) -> DiskReport {
        let end = self.thread.stop(deadline);
        let (path, read_only) = config
            .disk
            .as_ref()
            .map(|d| (d.path.clone(), d.read_only))
            .unwrap_or_default();
        DiskReport {
            path,
            read_only,
            stats: self.shared.stats(),
            transport: virtio::lock(&self.transport).stats,
            broken: self
                .shared
                .broken_reason()
                .as_ref()
                .map(ToString::to_string),
            thread_panicked: end == ThreadEnd::Panicked,
            thread_left_running: end == ThreadEnd::StillRunning,
        }
    }
}

/// A device's interrupt line: an eventfd registered as an irqfd on `gsi`.
fn device_irq(vm: &Vm, gsi: u32, what: &'static str) -> Result<EventFd> {
    let irq = EventFd::new(libc::EFD_NONBLOCK)
        .map_err(|e| VmError::Host(format!("creating the {what} interrupt eventfd: {e}")))?;
    vm.fd
        .register_irqfd(&irq, gsi)
        .map_err(|source| VmError::Kvm {
            what: "register a device's irqfd",
            source,
        })?;
    Ok(irq)
}

/// Puts a virtio-blk device on `disk` at `slot` (and its alias when `config.acpi` gives it one,
/// see [`AcpiMode::Auto`]): queue notifications arrive on an ioeventfd (KVM_IOEVENTFD on
/// QueueNotify of each window, queue 0) served by a device thread, which `hooks` confine before
/// it serves anything; interrupts leave through an irqfd on the slot's GSI.
fn attach_block(
    vm: &Vm,
    ram: &GuestRam,
    disk: FileDisk,
    slot: DeviceSlot,
    config: &VmConfig,
    mmio: &mut MmioBus,
    hooks: Arc<dyn VmmHooks>,
) -> Result<AttachedBlock> {
    let alias = config.acpi.alias(&slot);
    let fault = config.fault;
    let host = |what: &str| {
        let what = what.to_owned();
        move |e: std::io::Error| VmError::Host(format!("creating the virtio-blk {what}: {e}"))
    };
    let irq = device_irq(vm, slot.gsi, "virtio-blk")?;
    let notify = EventFd::new(libc::EFD_NONBLOCK).map_err(host("notify eventfd"))?;
    // Datamatch 0: only notifications of queue 0 (the only queue) skip userspace; any other
    // value exits to the transport, which counts and ignores it. Both windows get one: the guest
    // uses whichever it claimed.
    for base in std::iter::once(slot.base).chain(alias) {
        vm.fd
            .register_ioevent(
                &notify,
                &IoEventAddress::Mmio(base + QUEUE_NOTIFY_OFFSET),
                0u32,
            )
            .map_err(|source| VmError::Kvm {
                what: "register the virtio-blk ioeventfd",
                source,
            })?;
    }
    let control = EventFd::new(libc::EFD_NONBLOCK).map_err(host("control eventfd"))?;
    let interrupt = Arc::new(Interrupt::new(Some(irq)));
    let disk: Box<dyn DiskBackend> = match fault {
        Some(Fault::SlowDisk(delay)) => Box::new(SlowDisk::new(Box::new(disk), delay)),
        _ => Box::new(disk),
    };
    let mut block = Block::new(
        disk,
        Arc::clone(&interrupt),
        Some(control.try_clone().map_err(host("control eventfd clone"))?),
    );
    let shared = block.shared();
    let mut worker = block
        .take_worker()
        .ok_or_else(|| VmError::Host("the virtio-blk worker was already taken".into()))?;
    let transport = Arc::new(Mutex::new(MmioTransport::new(
        Box::new(block),
        ram.mem.clone(),
        interrupt,
        Some(notify.try_clone().map_err(host("notify eventfd clone"))?),
    )));
    if fault == Some(Fault::SpawnDeviceThread) {
        return Err(
            crate::devices::virtio::DeviceThreadError::Spawn(std::io::Error::other(
                "injected failure",
            ))
            .into(),
        );
    }
    // The worker moves into the thread: nothing else touches the disk or the running queue.
    let stop = Arc::clone(&shared.ctl.stop);
    let thread = DeviceThread::spawn(
        "isolab-virtio-blk",
        notify,
        control,
        stop,
        move || {
            hooks.thread_started(VmmThread::Device("virtio-blk"))?;
            if fault == Some(Fault::ForbiddenSyscall) {
                forbidden_syscall();
            }
            Ok(())
        },
        move |notifications| worker.serve(notifications),
    )?;
    let claim = mmio.add_device(
        slot.base,
        alias,
        MMIO_REGION_SIZE,
        ("mmio_read.virtio_blk", "mmio_write.virtio_blk"),
        Arc::clone(&transport),
    );
    Ok(AttachedBlock {
        transport,
        shared,
        thread,
        claim,
    })
}

/// The virtio-net card of a running VM.
struct AttachedNet {
    transport: Arc<Mutex<MmioTransport>>,
    shared: Arc<NetShared>,
    thread: DeviceThread,
    claim: SharedClaim,
}

impl AttachedNet {
    /// Stops the device thread (by `deadline`) and collects the figures.
    fn finish(
        &mut self,
        config: &NetConfig,
        stats_workload: Option<NetStats>,
        deadline: Instant,
    ) -> NetReport {
        let end = self.thread.stop(deadline);
        NetReport {
            tap: config.tap.clone(),
            offload: config.offload,
            stats: self.shared.stats(),
            stats_workload,
            transport: virtio::lock(&self.transport).stats,
            broken: self.shared.broken_reason().map(|e| e.to_string()),
            thread_problem: match end {
                ThreadEnd::Joined => None,
                ThreadEnd::Panicked => Some("the virtio-net device thread panicked".into()),
                ThreadEnd::StillRunning => Some(format!(
                    "the virtio-net device thread did not end within {} s of the stop; it was left running",
                    STOP_GRACE.as_secs()
                )),
            },
        }
    }
}

/// Puts a virtio-net card on `tap` at `slot` (and `alias`): both queues' notifications arrive
/// on one ioeventfd (KVM_IOEVENTFD on QueueNotify with datamatch 0 and 1), served with the tap's
/// readiness by a device thread, which `hooks` confine before it serves anything; interrupts
/// leave through an irqfd on the slot's GSI.
#[allow(clippy::too_many_arguments)]
fn attach_net(
    vm: &Vm,
    ram: &GuestRam,
    tap: Tap,
    offload: bool,
    slot: DeviceSlot,
    alias: Option<u64>,
    mmio: &mut MmioBus,
    hooks: Arc<dyn VmmHooks>,
) -> Result<AttachedNet> {
    let host = |what: &str| {
        let what = what.to_owned();
        move |e: std::io::Error| VmError::Host(format!("creating the virtio-net {what}: {e}"))
    };
    let irq = device_irq(vm, slot.gsi, "virtio-net")?;
    let notify = EventFd::new(libc::EFD_NONBLOCK).map_err(host("notify eventfd"))?;
    for base in std::iter::once(slot.base).chain(alias) {
        for queue in [0u32, 1] {
            vm.fd
                .register_ioevent(
                    &notify,
                    &IoEventAddress::Mmio(base + QUEUE_NOTIFY_OFFSET),
                    queue,
                )
                .map_err(|source| VmError::Kvm {
                    what: "register the virtio-net ioeventfd",
                    source,
                })?;
        }
    }
    let control = EventFd::new(libc::EFD_NONBLOCK).map_err(host("control eventfd"))?;
    let interrupt = Arc::new(Interrupt::new(Some(irq)));
    let mut device = Net::new(
        Box::new(tap),
        offload,
        Arc::clone(&interrupt),
        Some(control.try_clone().map_err(host("control eventfd clone"))?),
    );
    let shared = device.shared();
    let mut worker = device
        .take_worker()
        .ok_or_else(|| VmError::Host("the virtio-net worker was already taken".into()))?;
    // The tap moves into the thread with the worker, so the descriptor its epoll watches stays
    // open as long as the thread runs.
    let source = worker.wait_fd();
    let transport = Arc::new(Mutex::new(MmioTransport::new(
        Box::new(device),
        ram.mem.clone(),
        interrupt,
        Some(notify.try_clone().map_err(host("notify eventfd clone"))?),
    )));
    let stop = Arc::clone(&shared.ctl.stop);
    let thread = DeviceThread::spawn_with_source(
        "isolab-virtio-net",
        notify,
        control,
        source,
        stop,
        move || hooks.thread_started(VmmThread::Device("virtio-net")),
        move |notifications| worker.serve(notifications),
    )?;
    let claim = mmio.add_device(
        slot.base,
        alias,
        MMIO_REGION_SIZE,
        ("mmio_read.virtio_net", "mmio_write.virtio_net"),
        Arc::clone(&transport),
    );
    Ok(AttachedNet {
        transport,
        shared,
        thread,
        claim,
    })
}

/// The virtio console of a running VM.
struct AttachedConsole {
    transport: Arc<Mutex<MmioTransport>>,
    output: virtio::Shared<ConsoleOutput>,
    claim: SharedClaim,
}

/// Puts a virtio console at `slot` (and `alias`): no device thread and no ioeventfd, its
/// transmit queue is served on the vCPU thread whose notification exits (see
/// [`crate::devices::virtio::console`]); interrupts leave through an irqfd on the slot's GSI.
fn attach_console(
    vm: &Vm,
    ram: &GuestRam,
    capacity: usize,
    slot: DeviceSlot,
    alias: Option<u64>,
    mmio: &mut MmioBus,
) -> Result<AttachedConsole> {
    let irq = device_irq(vm, slot.gsi, "virtio-console")?;
    let interrupt = Arc::new(Interrupt::new(Some(irq)));
    let console = Console::new(capacity, Arc::clone(&interrupt));
    let output = console.output();
    let transport = Arc::new(Mutex::new(MmioTransport::new(
        Box::new(console),
        ram.mem.clone(),
        interrupt,
        None,
    )));
    let claim = mmio.add_device(
        slot.base,
        alias,
        MMIO_REGION_SIZE,
        ("mmio_read.virtio_console", "mmio_write.virtio_console"),
        Arc::clone(&transport),
    );
    Ok(AttachedConsole {
        transport,
        output,
        claim,
    })
}

/// What [`Fault::ForbiddenSyscall`] makes the device thread do: open an internet socket (and
/// close it again when its filter allowed it).
fn forbidden_syscall() {
    // SAFETY: socket(2) with constant arguments; the fd, if any, is closed at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    if fd >= 0 {
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        unsafe { libc::close(fd) };
    }
}

impl VmReport {
    /// The report as JSON (for logs, and for the HVM test machine to hand it out over a console).
    pub fn to_json(&self) -> serde_json::Value {
        let exits = |e: &ExitCounts| {
            serde_json::Value::Object(
                e.0.iter()
                    .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                    .collect(),
            )
        };
        let stop_kind = match &self.stop {
            StopReason::GuestReset => "guest_reset",
            StopReason::GuestTripleFault => "triple_fault",
            StopReason::GuestSystemEvent(_) => "system_event",
            StopReason::GuestHalted => "halted",
            StopReason::Timeout(_) => "timeout",
            StopReason::UnexpectedExit(_) => "unexpected_exit",
            StopReason::VmmError(_) => "vmm_error",
            StopReason::HostRequest => "host_request",
        };
        let mut v = serde_json::json!({
            "stop": self.stop.to_string(),
            "stop_kind": stop_kind,
            "kernel_panicked": self.kernel_panicked(),
            "kernel_format": self.kernel_format.name(),
            "cmdline": self.cmdline,
            "guest_ram_bytes": self.guest_ram_bytes,
            "console": self.console.text(),
            "console_dropped": self.console.dropped(),
            "markers": self.markers.iter().map(|m| serde_json::json!([m.byte, m.at_ns])).collect::<Vec<_>>(),
            "markers_dropped": self.markers_dropped,
            "timeline": self.timeline.iter().map(|p| serde_json::json!([p.name, p.at_ns])).collect::<Vec<_>>(),
            "exits": exits(&self.exits),
            "exits_to_first_marker": self.exits_to_first_marker.as_ref().map(exits),
            "memory": self.memory.map(|m| serde_json::json!({
                "guest_ram_resident": m.guest_ram_resident,
                "guest_ram_huge": m.guest_ram_huge,
                "other_resident": m.other_resident,
            })),
            "memory_top": self.memory_top.iter().map(|(n, b)| serde_json::json!([n, b])).collect::<Vec<_>>(),
            "vcpu_states": self.vcpu_states.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "unclaimed_io": self.unclaimed_io,
            "disk": self.disk.as_ref().map(|d| serde_json::json!({
                "path": d.path.display().to_string(),
                "read_only": d.read_only,
                "requests": d.stats.requests,
                "reads": d.stats.reads,
                "writes": d.stats.writes,
                "flushes": d.stats.flushes,
                "get_ids": d.stats.get_ids,
                "bytes_read": d.stats.bytes_read,
                "bytes_written": d.stats.bytes_written,
                "io_errors": d.stats.io_errors,
                "unsupported": d.stats.unsupported,
                "unanswerable": d.stats.unanswerable,
                "notifies": d.stats.notifies,
                "interrupts": d.stats.interrupts,
                "transport": {
                    "bad_access": d.transport.bad_access,
                    "ignored_writes": d.transport.ignored_writes,
                    "notifies_trapped": d.transport.notifies_trapped,
                    "needs_reset": d.transport.needs_reset,
                },
                "broken": d.broken,
                "thread_panicked": d.thread_panicked,
                "thread_left_running": d.thread_left_running,
                "abandoned": d.stats.abandoned,
                "passes_bounded": d.stats.passes_bounded,
                "late_publishes": d.stats.late_publishes,
            })),
            "teardown_problems": self.teardown_problems,
        });
        // SMP and KVM's statistics (a second object: one json! this size hits the macro
        // recursion limit).
        let smp = serde_json::json!({
            "vcpus": self.vcpus,
            "exits_per_vcpu": self.exits_per_vcpu.iter().map(exits).collect::<Vec<_>>(),
            "exits_workload": self.exits_workload.as_ref().map(exits),
            "workload_window_ns": self.workload_window_ns,
            "kvm_stats": self.kvm_stats.as_ref().map(KvmStats::to_json),
            "kvm_stats_per_vcpu": self.kvm_stats_per_vcpu.iter().map(KvmStats::to_json).collect::<Vec<_>>(),
            "kvm_stats_workload": self.kvm_stats_workload.as_ref().map(KvmStats::to_json),
            "kvm_stats_unavailable": self.kvm_stats_unavailable,
            "workload_phases": self.workload_phases.iter().map(|p| serde_json::json!({
                "byte": p.byte,
                "window_ns": p.window_ns,
                "exits": exits(&p.exits),
                "kvm_stats": p.kvm_stats.as_ref().map(KvmStats::to_json),
                "disk": p.disk.map(|d| serde_json::json!({
                    "requests": d.requests,
                    "reads": d.reads,
                    "writes": d.writes,
                    "flushes": d.flushes,
                    "notifies": d.notifies,
                    "interrupts": d.interrupts,
                })),
            })).collect::<Vec<_>>(),
            "phase_markers_over_limit": self.phase_markers_over_limit,
        });
        let stats = |s: &ConsoleStats| {
            serde_json::json!({
                "notifies": s.notifies,
                "chains": s.chains,
                "bytes": s.bytes,
                "bytes_dropped": s.bytes_dropped,
                "bad_descriptors": s.bad_descriptors,
                "interrupts": s.interrupts,
            })
        };
        let devices = serde_json::json!({
            "kvm_stats_to_first_marker": self.kvm_stats_to_first_marker.as_ref().map(KvmStats::to_json),
            "memory_backing": self.memory_backing.name(),
            "guest_ram_host_ranges": self.guest_ram_host_ranges.iter().map(|(a, l)| serde_json::json!([a, l])).collect::<Vec<_>>(),
            "acpi": self.acpi.name(),
            "devices": self.devices.iter().map(|d| serde_json::json!({
                "name": d.name,
                "base": d.slot.base,
                "gsi": d.slot.gsi,
                "found_via": d.found_via,
            })).collect::<Vec<_>>(),
            "channel": self.channel.as_ref().map(|c| serde_json::json!({
                "text": c.output.log.text(),
                "dropped": c.output.log.dropped(),
                "stats": stats(&c.output.stats),
                "broken": c.output.broken,
                "transport_bad_access": c.transport.bad_access,
                "transport_ignored_writes": c.transport.ignored_writes,
            })),
        });
        for more in [smp, devices] {
            if let (Some(all), serde_json::Value::Object(more)) = (v.as_object_mut(), more) {
                all.extend(more);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_get_slots_in_creation_order_and_each_mode_describes_them_its_way() {
        let mut config = VmConfig::new("/unused", 128);
        config.disk = Some(DiskConfig {
            path: "/unused.img".into(),
            read_only: false,
        });
        let slots = DeviceSlots::allocate(&config).expect("slots");
        let (block, console) = (slots.block.expect("disk"), slots.console.expect("console"));
        assert_eq!((block.base, block.gsi), (0xd000_0000, 5));
        assert_eq!((console.base, console.gsi), (0xd000_1000, 6));
        // Without a disk the console takes the first slot.
        config.disk = None;
        let slots = DeviceSlots::allocate(&config).expect("slots");
        assert!(slots.block.is_none());
        assert_eq!(slots.console.map(|s| s.base), Some(0xd000_0000));
        config.channel = false;
        assert_eq!(
            DeviceSlots::allocate(&config).expect("none").all().count(),
            0
        );

        // auto: ACPI tables at the own window, the command line at the alias.
        assert!(AcpiMode::Auto.tables());
        assert_eq!(AcpiMode::Auto.cmdline_window(&block), Some(0xd010_0000));
        assert_eq!(AcpiMode::Auto.alias(&block), Some(0xd010_0000));
        // on: tables only; off: the command line at the own window, no alias, no tables.
        assert_eq!(AcpiMode::On.cmdline_window(&block), None);
        assert_eq!(AcpiMode::On.alias(&block), None);
        assert!(!AcpiMode::Off.tables());
        assert_eq!(AcpiMode::Off.cmdline_window(&block), Some(0xd000_0000));
        assert_eq!(AcpiMode::Off.alias(&block), None);
        // How the guest found a device, from the window it used.
        assert_eq!(AcpiMode::Auto.found_via(WindowClaim::Own), "acpi");
        assert_eq!(AcpiMode::Auto.found_via(WindowClaim::Alias), "command line");
        assert_eq!(AcpiMode::Off.found_via(WindowClaim::Own), "command line");
        assert_eq!(AcpiMode::On.found_via(WindowClaim::Own), "acpi");
        assert_eq!(AcpiMode::Auto.found_via(WindowClaim::None), "not found");
        for m in [AcpiMode::Auto, AcpiMode::On, AcpiMode::Off] {
            assert_eq!(AcpiMode::parse(m.name()), Some(m));
        }
        assert_eq!(AcpiMode::parse("yes"), None);
    }
}
