//! The VM backend: the agent as `/init` of a KVM microVM run by isolab's own VMM (`vm_backend`).
//!
//! `prepare` finds the guest kernel (`--kernel PATH`, `--kernel debian` for Debian's stock kernel
//! with its virtio modules and ACPI tables, else the cached `micro` kernel, built on first use),
//! checks it without KVM, and writes the initramfs (the agent as `/init`, and the kernel's
//! modules if it needs any) once.
//! `run_trial` boots a fresh VM per trial in a VMM process of its own (`isolab-vmm`, see
//! [`vm_backend::process`]) with the spec on the kernel command line (an I/O trial also gets a
//! fresh virtio-blk disk image, see [`crate::backends::vm_disk`]), reads the agent's framed
//! result from the VM's virtio console (or, from a kernel without one, the serial console: the
//! result's `route` says which), and reports the VMM's timeline (host CLOCK_MONOTONIC, from the
//! process's start; markers timestamped by the vCPU thread), its memory (the VMM process's
//! proportional set size, guest RAM apart from the VMM's own; how much of the guest's on huge
//! pages), its CPU time, the VM exits its run loop handled, by reason, and KVM's own counts
//! (nested page faults included).
//!
//! Each VMM process runs below the run's cgroup (`vmm-<pid>-<n>`, the same CPU weight as every
//! trial, a memory limit of the guest's RAM plus [`VMM_MEMORY_ALLOWANCE_MIB`]), dies with isolab
//! (parent-death signal), runs each of its threads under its own seccomp filter (`--vm-seccomp`)
//! and, with `--vm-jail`, in new mount, PID and network namespaces, chrooted into a fresh folder
//! of the run's state folder holding only its kernel, initramfs and disk, as an unprivileged
//! user. A VMM process that dies (a refused system call: which thread made which call), hangs
//! or gives no report is killed and the trial reported with what it printed.
//!
//! On a host whose `/dev/kvm` cannot boot Linux (PVM) or that has none, the backend is reported
//! unavailable with the reason and the fix; the HVM test machine runs it there (emulated: such
//! samples are correctness only).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_backend::{CgroupLimits, CgroupVersion, RunCgroup, SiblingCgroup};
use vm_backend::process::client::{self, Exit, Placement, Spawn, VmmFailure, VmmRun};
use vm_backend::process::protocol::{FailureKind, JailConfig, StartRequest};
use vm_backend::seccomp::{SeccompMode, ThreadFilters};

use vm_backend::devices::virtio::block::BlockStats;
use vm_backend::image::initramfs::agent_image;
use vm_backend::kernel::{boot_kernel, BootKernel, KernelChoice};
use vm_backend::vmm::{
    self, AcpiMode, DiskConfig, NetConfig, StopReason, TimePoint, VmConfig, VmReport,
};
use vm_backend::vstate::kvm_stats::{KvmStats, StatKind};
use vm_backend::vstate::memory::MemoryBacking;
use vm_backend::vstate::vcpu::{ExitCounts, PhaseWindow};
use workloads::protocol::{
    encode_spec, parse_framed_result, DiskMode, FrameError, MarkerEvent, WorkloadPhase,
    DISK_CMDLINE_KEY, MARKER_PORT, NET_CMDLINE_KEY, RESULT_CMDLINE_KEY, RESULT_VIRTIO_CONSOLE,
};
use workloads::result::Outcome;
use workloads::{Metric, Workload};

use crate::timefmt::monotonic_ns;

use crate::backend::{
    Backend, BackendError, BackendKind, Phase, PrepareContext, Trial, TrialFailure, TrialOutcome,
};
use crate::backends::vm_disk::DiskImages;
use crate::lab_net::{LabNet, LabTap};

/// Set (to 1) by the HVM test machine's L1 init: samples from there are emulated.
pub const EMULATED_ENV: &str = "ISOLAB_EMULATED";
/// Console lines kept in a failed trial's log tail.
const TAIL_LINES: usize = 40;
/// What a VMM process may use besides its guest's RAM before its cgroup's memory limit: the
/// VMM's own memory (about 2 MiB), what KVM allocates for the VM and is charged to it (nested
/// page tables, vCPU state), and the host's page cache of the disk image. Recorded in the
/// manifest (`vmm_memory_allowance_mib`).
pub const VMM_MEMORY_ALLOWANCE_MIB: u64 = 128;
/// The VMM process is killed when it gives no report this long after its VM's own timeout and
/// stop grace (a VMM that hangs while starting or tearing down).
const PROCESS_GRACE: Duration = Duration::from_secs(30);
/// Jailed VMMs run as uid and gid `JAIL_ID_BASE + (isolab's pid % 100000) * 10000 + n`: ids no
/// account has, distinct for every VMM of a run and, mostly, of concurrent runs.
pub const JAIL_ID_BASE: u32 = 2_000_000_000;

/// Why this host cannot run the VM backend, with the fix; None when it can (or might).
pub fn host_unavailable() -> Option<(String, String)> {
    let has = |p: &str| std::path::Path::new(p).exists();
    if !has("/dev/kvm") {
        return Some((
            "there is no /dev/kvm on this host".into(),
            "load kvm_intel or kvm_amd (`modprobe kvm_intel`), enable virtualization in the \
             firmware or nested virtualization in the cloud VM; meanwhile `isolab run \
             --vm-in-emulator` runs the VM for correctness in an emulated AMD-V machine"
                .into(),
        ));
    }
    if has("/sys/module/kvm_pvm") && !has("/sys/module/kvm_intel") && !has("/sys/module/kvm_amd") {
        return Some((
            "/dev/kvm is served by PVM (kvm_pvm), software virtualization that boots only \
             PVM-patched guest kernels, not a stock Linux guest"
                .into(),
            "run on a host with hardware KVM (kvm_intel or kvm_amd); meanwhile `isolab run \
             --vm-in-emulator` runs the VM for correctness in an emulated AMD-V machine (slow, \
             labelled emulated)"
                .into(),
        ));
    }
    None
}

/// Runs each trial in a fresh microVM.
#[derive(Debug)]
pub struct VmBackend {
    /// A kernel given with `--kernel`; None: the cached (or freshly built) micro kernel.
    kernel_override: Option<PathBuf>,
    prepared: Option<Prepared>,
    /// A kernel ready to boot, given by the caller (inside the emulated machine): used as is.
    boot_override: Option<BootKernel>,
    /// How I/O trials use their disk.
    disk_mode: DiskMode,
    /// Formatted ext4 images to use instead of running mkfs.ext4 (by size, MiB).
    disk_templates: BTreeMap<u64, PathBuf>,
    disks: Option<DiskImages>,
    /// The VMM threads' seccomp filters.
    seccomp: SeccompMode,
    /// Jail each VMM process.
    jail: bool,
    /// The guest kernel's hashes, for the manifest.
    kernel_facts: BTreeMap<String, String>,
    /// How guest RAM is backed.
    memory: MemoryBacking,
    /// How devices are described to the guest.
    acpi: AcpiMode,
    /// Offer offloads on the network card.
    net_offload: bool,
    /// The tap the network trials' VMs attach to (made in the lab at the first one; one VM at
    /// a time uses it, and it goes with the lab).
    tap: Option<LabTap>,
}

#[derive(Debug, Clone)]
struct Prepared {
    kernel: PathBuf,
    acpi: AcpiMode,
    memory: MemoryBacking,
    initrd: PathBuf,
    memory_mib: u64,
    vcpus: u8,
    timeout: Duration,
    live_console: bool,
    emulated: bool,
    /// The `isolab-vmm` binary.
    vmm: PathBuf,
    /// The run's cgroup: each VMM process gets a sibling below it.
    run_cgroup: Option<Arc<RunCgroup>>,
    /// Where jails are made (the run's state folder).
    state_dir: PathBuf,
    /// BPF instructions of each thread kind's filter, for the manifest.
    filter_sizes: Vec<(String, usize)>,
    /// The run's lab network, for the network workloads (or why there is none).
    lab: Option<Arc<LabNet>>,
    lab_unavailable: Option<String>,
}

/// Numbers the VMM processes of this isolab process (cgroup names, jails, jail ids).
static NEXT_VMM: AtomicU64 = AtomicU64::new(1);

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
            ..Self::default()
        }
    }

    /// A VM backend booting `boot` exactly (kernel, modules, ACPI), with no build or fetch.
    pub fn with_boot_kernel(boot: BootKernel) -> Self {
        Self {
            boot_override: Some(boot),
            ..Self::default()
        }
    }

    /// I/O trials use their disk this way (default: ext4).
    pub fn with_disk_mode(mut self, mode: DiskMode) -> Self {
        self.disk_mode = mode;
        self
    }

    /// Formatted ext4 images (by size in MiB) to copy instead of running mkfs.ext4.
    pub fn with_disk_templates(mut self, templates: BTreeMap<u64, PathBuf>) -> Self {
        self.disk_templates = templates;
        self
    }

    /// The VMM threads' seccomp filters, and whether each VMM process is jailed.
    pub fn with_confinement(mut self, seccomp: SeccompMode, jail: bool) -> Self {
        self.seccomp = seccomp;
        self.jail = jail;
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

    /// The network card offers checksum and segmentation offloads (default: on).
    pub fn with_net_offload(mut self, offload: bool) -> Self {
        self.net_offload = offload;
        self
    }
}

impl Default for VmBackend {
    fn default() -> Self {
        Self {
            kernel_override: None,
            prepared: None,
            boot_override: None,
            disk_mode: DiskMode::Ext4,
            disk_templates: BTreeMap::new(),
            disks: None,
            seccomp: SeccompMode::default(),
            jail: false,
            kernel_facts: BTreeMap::new(),
            memory: MemoryBacking::default(),
            acpi: AcpiMode::default(),
            net_offload: true,
            tap: None,
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
        // Workload phases stay off the timeline, whose charts stack the start-up phases; their
        // counts are in `report.workload_phases`.
        if let Some(e) =
            MarkerEvent::from_byte(m.byte).filter(|e| !matches!(e, MarkerEvent::Phase(_)))
        {
            if !t.iter().any(|p| p.name == e.name()) {
                t.push(phase(e.name(), m.at_ns));
            }
        }
    }
    if let Some(at) = report.at("stop_requested") {
        t.push(phase("exited", at));
    }
    if !t.iter().any(|p| p.name == "cleaned_up") {
        if let Some(at) = report.at("torn_down") {
            t.push(phase("cleaned_up", at));
        }
    }
    t.sort_by_key(|p| p.at_ns);
    t
}

/// The host-side metrics of a VM sample.
///
/// - `host.*`: the VMM's timeline (setup, boot to agent, teardown, wall) and memory.
/// - `exits.total`, `exits.<reason>`, `exits.to_agent_start`: exits the VMM's run loops handled
///   (all vCPUs), whole run.
/// - `exits.workload.total`, `exits.workload.<reason>`: the same between the agent's workload
///   start and end markers.
/// - `kvm.<stat>` (whole run) and `kvm.workload.<stat>` (workload window): KVM's own per-vCPU
///   counters from `KVM_GET_STATS_FD`, summed over the vCPUs, every non-zero counter KVM offers
///   (`exits`, `io_exits`, `mmio_exits`, `halt_exits`, `irq_exits`, `irq_injections`,
///   `signal_exits`, `halt_successful_poll`, `halt_wait_ns`, ...). KVM's `exits` counts every
///   exit, also those it handled without the VMM.
/// - [`per_op_metrics`]: KVM exits and interrupt injections per workload operation, and
///   `exits.workload.per_s`.
/// - [`per_phase_metrics`]: the same per read and per write of the I/O workloads, from their
///   phases (`exits.per_4k_read`, `exits.per_mib_write`, ...).
/// - `disk.interrupts_per_request`, `disk.notifies_per_request`: the virtio-blk disk, whole run.
/// - [`net_metrics`]: the virtio-net card per packet, over the workload window.
fn metrics_of(report: &VmReport, workload: &Workload) -> Vec<Metric> {
    let ms = |ns: u64| ns as f64 / 1e6;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let marker = |e: MarkerEvent| {
        report
            .markers
            .iter()
            .find(|m| m.byte == e.byte())
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
    // Until everything is gone: the VM torn down, its process reaped, cgroup and jail removed
    // (`cleaned_up`), or the VM torn down for a report of the VMM alone.
    let down = report.at("cleaned_up").or(report.at("torn_down"));
    if let (Some(done), Some(down)) = (marker(MarkerEvent::ResultWritten), down) {
        m.push(Metric::lower(
            "host.teardown",
            "ms",
            ms(down.saturating_sub(done)),
        ));
    }
    if let Some(down) = down {
        m.push(Metric::lower(
            "host.wall",
            "ms",
            ms(down.saturating_sub(start)),
        ));
    }
    if let Some(mem) = report.memory {
        // The VMM process's proportional set size when the guest stopped: guest RAM apart
        // from the VMM's own memory (what one more VM costs beyond its guest's RAM).
        m.push(Metric::lower(
            "host.vmm_overhead",
            "MiB",
            mib(mem.other_pss),
        ));
        m.push(Metric::lower(
            "host.guest_ram_touched",
            "MiB",
            mib(mem.guest_ram_pss),
        ));
        m.push(Metric::lower(
            "host.vmm_pss",
            "MiB",
            mib(mem.guest_ram_pss + mem.other_pss),
        ));
        // The same by resident size, the meter of Firecracker's "VMM overhead" figure.
        m.push(Metric::lower(
            "host.vmm_overhead_rss",
            "MiB",
            mib(mem.other_resident),
        ));
        // How much of what the guest touched sits on huge pages (smaps' AnonHugePages of the
        // guest mapping, or its hugetlbfs pages): what lets KVM map it 2 MiB at a time.
        m.push(Metric::higher(
            "host.guest_ram_huge",
            "MiB",
            mib(mem.guest_ram_huge),
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
    if let Some(kvm) = &report.kvm_stats_to_first_marker {
        push_kvm_stats(&mut m, "kvm.to_agent_start", kvm);
    }
    // Nested page faults: every fault KVM's MMU handled (`pf_taken`, Linux 6.0+): on hardware with
    // nested paging, each is a guest page KVM had to map (or an MMIO access it had to learn).
    for (name, stats) in [
        ("npf.to_agent_start", &report.kvm_stats_to_first_marker),
        ("npf.workload", &report.kvm_stats_workload),
        ("npf.total", &report.kvm_stats),
    ] {
        if let Some(n) = stats.as_ref().and_then(|k| k.0.get("pf_taken")) {
            m.push(Metric::lower(name, "faults", n.value as f64));
        }
    }
    if let Some(window) = &report.exits_workload {
        m.push(Metric::lower(
            "exits.workload.total",
            "exits",
            window.total() as f64,
        ));
        for (reason, n) in &window.0 {
            m.push(Metric::lower(
                &format!("exits.workload.{reason}"),
                "exits",
                *n as f64,
            ));
        }
    }
    if let Some(kvm) = &report.kvm_stats {
        push_kvm_stats(&mut m, "kvm", kvm);
    }
    if let Some(kvm) = &report.kvm_stats_workload {
        push_kvm_stats(&mut m, "kvm.workload", kvm);
    }
    m.extend(per_op_metrics(report, workload));
    m.extend(per_phase_metrics(report, workload));
    m.extend(net_metrics(report));
    // The disk's own counts (per request too) come from `disk_metrics_of`.
    m
}

/// KVM's non-zero counters as `<prefix>.<name>` (histograms and current values left out: a
/// sample is about what happened, not where the vCPU stood at the end).
fn push_kvm_stats(m: &mut Vec<Metric>, prefix: &str, stats: &KvmStats) {
    for (name, s) in &stats.0 {
        if s.kind != StatKind::Cumulative || s.value == 0 {
            continue;
        }
        let unit = if name.ends_with("_ns") {
            "ns"
        } else {
            "events"
        };
        m.push(Metric::lower(
            &format!("{prefix}.{name}"),
            unit,
            s.value as f64,
        ));
    }
}

/// The operations a workload does between its start and end markers, from its spec: (name of
/// one operation, count). None for workloads without a natural unit of work (cpu, mem-*, net).
///
/// - io-rand: `4k_io`, a 4 KiB random read or write at queue depth 1 (`ops` of each); on a
///   scratch file the window also holds the prefill ([`phase_ops`] has reads and writes apart);
/// - io-seq: `mib_io`, one MiB written or read (`size_mib` of each, the fsync included);
/// - io-fsync: `fsync`, a 4 KiB write with its fsync;
/// - syscall: `syscall`, a null system call;
/// - page-fault: `page_fault`, one 4 KiB page mapped, touched and unmapped;
/// - spawn: `spawn`, one fork + exec + wait;
/// - timer: `sleep`, one nanosleep(1 ms) (the clock_gettime calls cost no exits with kvm-clock).
fn workload_ops(workload: &Workload) -> Option<(&'static str, f64)> {
    let (name, n) = match workload {
        Workload::IoRand(p) => ("4k_io", 2.0 * f64::from(p.ops)),
        Workload::IoSeq(p) => ("mib_io", 2.0 * f64::from(p.size_mib)),
        Workload::IoFsync(p) => ("fsync", f64::from(p.ops)),
        Workload::Syscall(p) => ("syscall", p.iterations as f64),
        Workload::PageFault(p) => ("page_fault", f64::from(p.mib) * 256.0),
        Workload::Spawn(p) => ("spawn", f64::from(p.count)),
        Workload::Timer(p) => ("sleep", f64::from(p.sleeps)),
        Workload::NetRr(p) | Workload::NetCrr(p) | Workload::NetUdpRr(p) => {
            ("transaction", f64::from(p.transactions))
        }
        _ => return None,
    };
    (n > 0.0).then_some((name, n))
}

/// The cost of the hypervisor per unit of work, over the workload window:
///
/// - `exits.per_<op>` (exits/op): KVM's `exits` (every VM exit, in-kernel ones included) per
///   operation, `<op>` from [`workload_ops`], e.g. `exits.per_4k_io`, `exits.per_mib_io`,
///   `exits.per_syscall`;
/// - `exits.userspace_per_<op>` (exits/op): the exits that reached the VMM per operation;
/// - `irq_injections.per_<op>` (interrupts/op): interrupts KVM injected per operation;
/// - `exits.workload.per_s` (exits/s): KVM's exits per second of the window, for every workload.
fn per_op_metrics(report: &VmReport, workload: &Workload) -> Vec<Metric> {
    let mut m = Vec::new();
    let kvm_exits = report.kvm_stats_workload.as_ref().map(|k| k.get("exits"));
    if let (Some(exits), Some(ns)) = (kvm_exits, report.workload_window_ns.filter(|n| *n > 0)) {
        m.push(Metric::lower(
            "exits.workload.per_s",
            "exits/s",
            exits as f64 * 1e9 / ns as f64,
        ));
    }
    let Some((op, n)) = workload_ops(workload) else {
        return m;
    };
    let kvm = report
        .kvm_stats_workload
        .as_ref()
        .map(|k| (k.get("exits"), k.get("irq_injections")));
    push_op_costs(
        &mut m,
        op,
        n,
        kvm,
        report.exits_workload.as_ref().map(ExitCounts::total),
    );
    // The whole window's disk notifications are not snapshotted (only each phase's are), so the
    // device share is given here only for a VM without a disk; the I/O workloads have it per phase.
    if report.disk.is_none() {
        // A network card's queue notifications are known for the window: counted as device
        // exits like the disk's in its phases.
        let net_notifies = report
            .net
            .as_ref()
            .and_then(|n| n.stats_workload)
            .map_or(0, |s| s.notifies);
        if let (Some(exits), Some(kvm)) = (&report.exits_workload, &report.kvm_stats_workload) {
            push_exit_causes(&mut m, op, n, device_exits(exits, net_notifies), kvm);
        }
    }
    m
}

/// The virtio-net card over the workload window (a network trial's VM), per packet (frames
/// both ways, as the device moved them: with offloads a frame can be a 64 KiB segment):
///
/// - `net.packets`, `net.tx_packets`, `net.rx_packets`;
/// - `exits.per_packet` (KVM's exits, in-kernel ones included), `exits.userspace_per_packet`
///   (those that reached the VMM), `irq_injections.per_packet`;
/// - `net.notifies_per_packet` (guest kicks, completed in KVM through the ioeventfd),
///   `net.interrupts_per_packet` (raised by the device);
/// - `net.interrupts_suppressed` (passes whose interrupt the driver did not want: event index),
///   `net.rx_no_buffer`, `net.tx_dropped`, `net.bad_chains`.
fn net_metrics(report: &VmReport) -> Vec<Metric> {
    let mut m = Vec::new();
    let Some(net) = report.net.as_ref().and_then(|n| n.stats_workload) else {
        return m;
    };
    let packets = net.tx_packets + net.rx_packets;
    for (name, unit, v) in [
        ("net.packets", "packets", packets),
        ("net.tx_packets", "packets", net.tx_packets),
        ("net.rx_packets", "packets", net.rx_packets),
        (
            "net.interrupts_suppressed",
            "passes",
            net.interrupts_suppressed,
        ),
        ("net.rx_no_buffer", "frames", net.rx_no_buffer),
        ("net.tx_dropped", "frames", net.tx_dropped),
        (
            "net.bad_chains",
            "chains",
            net.tx_bad_chains + net.rx_bad_chains,
        ),
    ] {
        m.push(Metric::lower(name, unit, v as f64));
    }
    if packets == 0 {
        return m;
    }
    let per = |v: u64| v as f64 / packets as f64;
    if let Some(k) = &report.kvm_stats_workload {
        m.push(Metric::lower(
            "exits.per_packet",
            "exits/packet",
            per(k.get("exits")),
        ));
        m.push(Metric::lower(
            "irq_injections.per_packet",
            "interrupts/packet",
            per(k.get("irq_injections")),
        ));
    }
    if let Some(e) = &report.exits_workload {
        m.push(Metric::lower(
            "exits.userspace_per_packet",
            "exits/packet",
            per(e.total()),
        ));
    }
    m.push(Metric::lower(
        "net.notifies_per_packet",
        "notifications/packet",
        per(net.notifies),
    ));
    m.push(Metric::lower(
        "net.interrupts_per_packet",
        "interrupts/packet",
        per(net.interrupts),
    ));
    m
}

/// Exits a workload's devices caused: the device accesses that reached the VMM (port and MMIO
/// exits, by reason) plus the virtqueue notifications KVM completed itself through an ioeventfd.
/// They follow from the guest driver's protocol, so a hardware host sees the same count.
fn device_exits(exits: &ExitCounts, queue_notifies: u64) -> u64 {
    let to_vmm: u64 = exits
        .0
        .iter()
        .filter(|(reason, _)| reason.starts_with("io_") || reason.starts_with("mmio_"))
        .map(|(_, n)| n)
        .sum();
    to_vmm + queue_notifies
}

/// KVM's exits driven by time rather than by the workload: external interrupts (the host's and
/// the guest's timer ticks among them), halts and interrupt windows. They grow with how long the
/// window lasted, so a slow (emulated) run counts many more than hardware would.
const TIME_DRIVEN_STATS: [&str; 4] = [
    "irq_exits",
    "halt_exits",
    "irq_window_exits",
    "nmi_window_exits",
];

/// `exits.device_per_<op>` and `exits.time_driven_per_<op>` (exits/op): the workload's device
/// exits ([`device_exits`]) and the time-driven ones ([`TIME_DRIVEN_STATS`]) per operation; the
/// rest of `exits.per_<op>` is mostly nested-page faults KVM handled itself.
fn push_exit_causes(m: &mut Vec<Metric>, op: &str, n: f64, device: u64, kvm: &KvmStats) {
    let time: u64 = TIME_DRIVEN_STATS.iter().map(|s| kvm.get(s)).sum();
    m.push(Metric::lower(
        &format!("exits.device_per_{op}"),
        "exits/op",
        device as f64 / n,
    ));
    m.push(Metric::lower(
        &format!("exits.time_driven_per_{op}"),
        "exits/op",
        time as f64 / n,
    ));
}

/// `exits.per_<op>` and `irq_injections.per_<op>` from KVM's (exits, interrupts injected) when
/// they could be read, and `exits.userspace_per_<op>` from the VMM's own count, over `n`
/// operations: one definition for the whole workload and for each of its phases.
fn push_op_costs(
    m: &mut Vec<Metric>,
    op: &str,
    n: f64,
    kvm: Option<(u64, u64)>,
    userspace: Option<u64>,
) {
    if let Some((exits, injections)) = kvm {
        m.push(Metric::lower(
            &format!("exits.per_{op}"),
            "exits/op",
            exits as f64 / n,
        ));
        m.push(Metric::lower(
            &format!("irq_injections.per_{op}"),
            "interrupts/op",
            injections as f64 / n,
        ));
    }
    if let Some(exits) = userspace {
        m.push(Metric::lower(
            &format!("exits.userspace_per_{op}"),
            "exits/op",
            exits as f64 / n,
        ));
    }
}

/// The windows of one phase of the workload (a phase the guest announced more than once has
/// several).
fn phase_windows(report: &VmReport, phase: WorkloadPhase) -> impl Iterator<Item = &PhaseWindow> {
    report
        .workload_phases
        .iter()
        .filter(move |w| w.byte == phase.byte())
}

/// The operations of each phase a workload announces, from its spec: (phase, name of one
/// operation, count). Empty for workloads without phases; the prefill has no operations of its
/// own (it only readies a scratch file).
///
/// - io-rand: `4k_read` (phase read) and `4k_write` (phase write), `ops` each;
/// - io-seq: `mib_write` (phase write, the fsync included) and `mib_read` (phase read),
///   `size_mib` each.
fn phase_ops(workload: &Workload) -> Vec<(WorkloadPhase, &'static str, f64)> {
    match workload {
        Workload::IoRand(p) => vec![
            (WorkloadPhase::Read, "4k_read", f64::from(p.ops)),
            (WorkloadPhase::Write, "4k_write", f64::from(p.ops)),
        ],
        Workload::IoSeq(p) => vec![
            (WorkloadPhase::Write, "mib_write", f64::from(p.size_mib)),
            (WorkloadPhase::Read, "mib_read", f64::from(p.size_mib)),
        ],
        _ => Vec::new(),
    }
}

/// The cost of the hypervisor per operation of one phase, over that phase's windows (a phase
/// the guest announced more than once counts all its windows): what [`per_op_metrics`] gives
/// for the whole workload, without mixing reads, writes and the prefill.
///
/// - `exits.per_<op>`, `irq_injections.per_<op>`, `exits.userspace_per_<op>` with `<op>` from
///   [`phase_ops`]: `exits.per_4k_read`, `exits.per_4k_write`, `exits.per_mib_write`,
///   `exits.per_mib_read`, ...
fn per_phase_metrics(report: &VmReport, workload: &Workload) -> Vec<Metric> {
    let mut m = Vec::new();
    for (phase, op, n) in phase_ops(workload) {
        if n <= 0.0 || phase_windows(report, phase).next().is_none() {
            continue;
        }
        let kvm: Option<Vec<&KvmStats>> = phase_windows(report, phase)
            .map(|w| w.kvm_stats.as_ref())
            .collect();
        let kvm = kvm.map(|kvm| {
            let sum = |stat: &str| kvm.iter().map(|k| k.get(stat)).sum::<u64>();
            (sum("exits"), sum("irq_injections"))
        });
        let userspace = phase_windows(report, phase).map(|w| w.exits.total()).sum();
        push_op_costs(&mut m, op, n, kvm, Some(userspace));
        let windows: Vec<&PhaseWindow> = phase_windows(report, phase).collect();
        let kvm: Option<Vec<&KvmStats>> = windows.iter().map(|w| w.kvm_stats.as_ref()).collect();
        if let Some(kvm) = kvm {
            let device = windows
                .iter()
                .map(|w| device_exits(&w.exits, w.disk.map_or(0, |d| d.notifies)))
                .sum();
            push_exit_causes(&mut m, op, n, device, &KvmStats::sum(kvm));
        }
    }
    m
}

/// What the virtio-blk disk did: requests by kind, the queue notifications the guest made (each
/// a VM exit, though one KVM completes in the kernel through the ioeventfd) and the interrupts the
/// device injected, per request: the paravirtual path's cost made visible. The same for each
/// phase of the workload (`prefill`, `read`, `write`): `disk.<phase>.requests`,
/// `disk.<phase>.notifies`, `disk.<phase>.interrupts`, `disk.<phase>.notifies_per_request`,
/// `disk.<phase>.interrupts_per_request`.
fn disk_metrics_of(report: &VmReport) -> Vec<Metric> {
    let Some(disk) = &report.disk else {
        return Vec::new();
    };
    let st = &disk.stats;
    let mut m = Vec::new();
    push_request_counts(&mut m, "disk", st.requests, st.notifies, st.interrupts);
    for (name, n) in [
        ("reads", st.reads),
        ("writes", st.writes),
        ("flushes", st.flushes),
        ("io_errors", st.io_errors),
    ] {
        m.push(Metric::lower(&format!("disk.{name}"), "requests", n as f64));
    }
    // How often the guest published while the device was looking at the ring (normal at a
    // queue depth above 1; the device goes round again), and passes cut at their budget.
    m.push(Metric::lower(
        "disk.late_publishes",
        "events",
        st.late_publishes as f64,
    ));
    m.push(Metric::lower(
        "disk.passes_bounded",
        "passes",
        st.passes_bounded as f64,
    ));
    for phase in WorkloadPhase::ALL {
        let disk: Option<Vec<BlockStats>> = phase_windows(report, phase).map(|w| w.disk).collect();
        let Some(disk) = disk.filter(|d| !d.is_empty()) else {
            continue;
        };
        let sum = |f: fn(&BlockStats) -> u64| disk.iter().map(f).sum::<u64>();
        push_request_counts(
            &mut m,
            &format!("disk.{}", phase.name()),
            sum(|d| d.requests),
            sum(|d| d.notifies),
            sum(|d| d.interrupts),
        );
    }
    m
}

/// `<prefix>.requests`, `.notifies`, `.interrupts`, and per request (when there were any)
/// `.notifies_per_request` and `.interrupts_per_request`: for the whole run and for each phase.
fn push_request_counts(
    m: &mut Vec<Metric>,
    prefix: &str,
    requests: u64,
    notifies: u64,
    interrupts: u64,
) {
    m.push(Metric::lower(
        &format!("{prefix}.requests"),
        "requests",
        requests as f64,
    ));
    m.push(Metric::lower(
        &format!("{prefix}.notifies"),
        "notifications",
        notifies as f64,
    ));
    m.push(Metric::lower(
        &format!("{prefix}.interrupts"),
        "interrupts",
        interrupts as f64,
    ));
    if requests > 0 {
        m.push(Metric::lower(
            &format!("{prefix}.notifies_per_request"),
            "notifications/request",
            notifies as f64 / requests as f64,
        ));
        m.push(Metric::lower(
            &format!("{prefix}.interrupts_per_request"),
            "interrupts/request",
            interrupts as f64 / requests as f64,
        ));
    }
}

/// The agent's framed line from the VM's virtio console, else from its serial console (a kernel
/// without the console device, or an agent that fell back).
fn framed_result(report: &VmReport) -> Result<workloads::WorkloadResult, FrameError> {
    let channel = report
        .channel
        .as_ref()
        .map(|c| parse_framed_result(&c.output.log.text()));
    match channel {
        Some(Ok(r)) => Ok(r),
        // A damaged line on the channel is the answer (the agent wrote there), unless the serial
        // console has an intact one.
        Some(Err(e @ FrameError::Damaged(_))) => {
            parse_framed_result(&report.console.text()).map_err(|_| e)
        }
        _ => parse_framed_result(&report.console.text()),
    }
}

/// The trial's result from the report: the agent's framed line, or why there is none.
fn result_of(report: &VmReport) -> Result<workloads::WorkloadResult, TrialFailure> {
    match framed_result(report) {
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
        let boot = match &self.boot_override {
            Some(b) => b.clone(),
            None => boot_kernel(&choice, &mut |msg| {
                eprintln!("[vm kernel {:>4}s] {msg}", start.elapsed().as_secs());
            })
            .map_err(|e| prepare_err(format!("{e}; or pass a kernel with --kernel")))?,
        };
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
        // The VMM checks the range (1..=64) in `validate` below, with a message naming it.
        let vcpus = u8::try_from(ctx.limits.vcpus).unwrap_or(u8::MAX);
        // Reserved huge pages are the host's to give: say it now, not in every trial.
        if self.memory == MemoryBacking::Hugetlbfs {
            vm_backend::vstate::memory::check_huge_pages(ctx.limits.memory_mib << 20)
                .map_err(|e| prepare_err(e.to_string()))?;
        }
        if boot.acpi && self.acpi == AcpiMode::Off {
            return Err(prepare_err(format!(
                "the guest kernel {} finds its devices only through ACPI tables, and --vm-acpi off \
                 leaves them out: use --vm-acpi auto (the default) or on",
                boot.kernel.display()
            )));
        }
        let prepared = Prepared {
            kernel: boot.kernel,
            acpi: self.acpi,
            memory: self.memory,
            initrd,
            memory_mib: ctx.limits.memory_mib,
            vcpus,
            timeout: ctx.trial_timeout,
            live_console: ctx.live_console,
            emulated: std::env::var_os(EMULATED_ENV).is_some_and(|v| v == "1"),
            vmm: client::locate_vmm().map_err(|e| prepare_err(e.to_string()))?,
            run_cgroup: ctx.run_cgroup.clone(),
            state_dir: ctx.state_dir.clone(),
            filter_sizes: ThreadFilters::compile(self.seccomp, vmm::kick_signal())
                .map_err(|e| prepare_err(e.to_string()))?
                .instructions()
                .into_iter()
                .map(|(k, n)| (k.name().to_owned(), n))
                .collect(),
            lab: ctx.lab.clone(),
            lab_unavailable: ctx.lab_unavailable.clone(),
        };
        if self.jail {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Err(prepare_err(
                    "--vm-jail needs root: the VMM process is started in new namespaces, \
                     mounts its jail and changes its user; run isolab as root, or leave \
                     --vm-jail out"
                        .into(),
                ));
            }
            if prepared.state_dir.as_os_str().is_empty() {
                return Err(prepare_err(
                    "--vm-jail needs the run's state folder for the jails".into(),
                ));
            }
        }
        // Refuse a bad kernel or a VM that cannot fit now, before any trial and any KVM call.
        vmm::validate(&config_for(&prepared, Vec::new()))
            .map_err(|e| prepare_err(e.to_string()))?;
        if self.boot_override.is_none() {
            // Inside the emulated machine the host records the kernel it handed in.
            self.kernel_facts = super::guest_kernel::facts(&choice, &prepared.kernel);
        }
        self.prepared = Some(prepared);
        self.disks = Some(
            DiskImages::new(&ctx.io_scratch_dir, self.disk_mode)
                .with_templates(self.disk_templates.clone()),
        );
        Ok(())
    }

    fn facts(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        if let Some(p) = &self.prepared {
            f.insert("kernel".into(), p.kernel.display().to_string());
            f.insert("memory_mib".into(), p.memory_mib.to_string());
            f.insert("emulated".into(), p.emulated.to_string());
            f.insert("vmm_binary".into(), p.vmm.display().to_string());
            for (kind, n) in &p.filter_sizes {
                f.insert(format!("vm_seccomp_bpf_instructions.{kind}"), n.to_string());
            }
            f.insert(
                "vmm_cgroup".into(),
                match &p.run_cgroup {
                    Some(_) => format!(
                        "a sibling below the run's cgroup, memory limit = guest RAM + {VMM_MEMORY_ALLOWANCE_MIB} MiB"
                    ),
                    None => "none (isolab runs without a run cgroup)".into(),
                },
            );
        }
        f.insert("disk".into(), self.disk_mode.name().into());
        f.insert("vm_seccomp".into(), self.seccomp.name().into());
        f.insert(
            "vm_jail".into(),
            if self.jail { "on" } else { "off" }.into(),
        );
        f.insert(
            "vmm_memory_allowance_mib".into(),
            VMM_MEMORY_ALLOWANCE_MIB.to_string(),
        );
        f.insert(
            "vmm_process".into(),
            "isolab-vmm, one process per VM".into(),
        );
        f.insert("memory".into(), self.memory.name().into());
        f.insert("acpi".into(), self.acpi.name().into());
        f.insert(
            "net_offload".into(),
            if self.net_offload { "on" } else { "off" }.into(),
        );
        if let Some(t) = &self.tap {
            f.insert(
                "net_tap".into(),
                format!("{} in the lab, guest {}", t.name, t.guest),
            );
        }
        f.extend(self.kernel_facts.clone());
        f
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
        // A network trial's VM gets a virtio-net card on the backend's tap in the lab; the
        // agent reaches the peer at the tap's address.
        let mut spec = trial.spec.clone();
        let mut net = None;
        if spec.workload.peer().is_some() {
            let Some(lab) = &prepared.lab else {
                return crate::backend::no_lab_outcome(prepared.lab_unavailable.as_deref());
            };
            if self.tap.is_none() {
                match lab.tap() {
                    Ok(t) => self.tap = Some(t),
                    Err(e) => {
                        return failed(TrialFailure::Unavailable {
                            reason: e.to_string(),
                            fix: "load the tun module (modprobe tun) and run as root".into(),
                        })
                    }
                }
            }
            if let Some(t) = &self.tap {
                spec.workload.set_peer(&t.peer);
                net = Some((
                    NetConfig {
                        tap: t.name.clone(),
                        netns: Some(t.netns.clone()),
                        offload: self.net_offload,
                    },
                    t.guest.clone(),
                ));
            }
        }
        // An I/O trial gets a fresh disk; the agent uses it as `isolab.disk=` says.
        let mut disk = None;
        if let Some(data_mib) = trial.spec.workload.io_data_mib() {
            let Some(disks) = self.disks.as_mut() else {
                return failed(TrialFailure::Crashed {
                    reason: "VM backend used before prepare()".into(),
                });
            };
            match disks.for_trial(trial.index, data_mib) {
                Ok(image) => disk = Some((image, disks.mode())),
                Err(reason) => return failed(TrialFailure::Crashed { reason }),
            }
        }
        let spec = match encode_spec(&spec) {
            Ok(s) => s,
            Err(e) => {
                return failed(TrialFailure::Crashed {
                    reason: e.to_string(),
                })
            }
        };
        let mut config = config_for(&prepared, Vec::new());
        let mut extra = agent_cmdline(&config, &spec);
        if let Some((image, mode)) = &disk {
            extra.push(format!("{DISK_CMDLINE_KEY}={}", mode.name()));
            config.disk = Some(DiskConfig {
                path: image.clone(),
                read_only: false,
            });
        }
        if let Some((net_config, guest)) = net {
            extra.push(format!("{NET_CMDLINE_KEY}={guest}"));
            config.net = Some(net_config);
        }
        config.extra_cmdline = extra;
        let outcome = self.run_in_process(&prepared, config, trial);
        if let (Some((image, _)), Some(disks)) = (&disk, &self.disks) {
            disks.discard(image);
        }
        outcome
    }

    fn cleanup(&mut self) -> Result<(), BackendError> {
        if let Some(mut disks) = self.disks.take() {
            disks.cleanup();
        }
        match self.prepared.take() {
            Some(p) => super::remove_made_file(BackendKind::Vm, &p.initrd),
            None => Ok(()),
        }
    }
}

/// The command-line words that tell the guest's agent its workload (`spec`, encoded), where its
/// markers go and where its result goes.
fn agent_cmdline(config: &VmConfig, spec: &str) -> Vec<String> {
    let mut extra = vec![format!("isolab.marker=port:{MARKER_PORT:#x}")];
    if config.channel {
        extra.push(format!("{RESULT_CMDLINE_KEY}={RESULT_VIRTIO_CONSOLE}"));
    }
    extra.push(format!("isolab.spec={spec}"));
    extra
}

/// What a density run needs to start VMs that hold until it stops them
/// ([`crate::density`]'s VM instances): the VMM binary, each VM's configuration, the VMM
/// threads' filters, and the run cgroup each VMM process goes below.
#[derive(Debug, Clone)]
pub struct HeldVmPlan {
    /// The `isolab-vmm` binary.
    pub vmm: PathBuf,
    /// The VM: the prepared kernel and initramfs, the workload on its command line.
    pub config: VmConfig,
    /// The VMM threads' seccomp filters.
    pub seccomp: SeccompMode,
    /// The run's cgroup.
    pub run_cgroup: Option<Arc<RunCgroup>>,
    /// Whether its instances run in the emulated machine.
    pub emulated: bool,
}

/// The guest's own view of its memory (the agent's `/proc/meminfo` when it wrote its result),
/// from a VM's report.
pub fn memory_inside(report: &VmReport) -> Option<workloads::result::MemoryInside> {
    framed_result(report).ok()?.memory_inside
}

impl VmBackend {
    /// The plan of held VMs running `spec`, after [`Backend::prepare`]; `mergeable` marks guest
    /// RAM for KSM.
    pub fn held_vm_plan(
        &self,
        spec: &workloads::WorkloadSpec,
        mergeable: bool,
    ) -> Result<HeldVmPlan, String> {
        let p = self
            .prepared
            .as_ref()
            .ok_or("VM backend used before prepare()")?;
        let spec = encode_spec(spec).map_err(|e| e.to_string())?;
        let mut config = config_for(p, Vec::new());
        config.extra_cmdline = agent_cmdline(&config, &spec);
        config.mergeable = mergeable;
        if mergeable && config.memory == MemoryBacking::Hugetlbfs {
            return Err(
                "--ksm on: guest RAM on hugetlbfs cannot be merged; use --vm-memory thp or small"
                    .into(),
            );
        }
        Ok(HeldVmPlan {
            vmm: p.vmm.clone(),
            config,
            seccomp: self.seccomp,
            run_cgroup: p.run_cgroup.clone(),
            emulated: p.emulated,
        })
    }

    /// One VM in a VMM process of its own: its cgroup and jail made, the process started,
    /// watched and reaped, cgroup and jail removed; the outcome from its report, or from how it
    /// ended without one.
    fn run_in_process(&self, p: &Prepared, config: VmConfig, trial: &Trial) -> TrialOutcome {
        let origin = monotonic_ns();
        let crashed = |reason: String| TrialOutcome {
            result: Err(TrialFailure::Crashed { reason }),
            timeline: Vec::new(),
            host_metrics: Vec::new(),
            log_tail: String::new(),
            emulated: p.emulated,
        };
        // Made before the process starts and removed after it is reaped: the timeline's
        // `cleaned_up` follows their removal.
        let jail_parent = self.jail.then_some(p.state_dir.as_path());
        let mut places = match VmmPlaces::create(p.run_cgroup.as_deref(), p.memory_mib, jail_parent)
        {
            Ok(places) => places,
            Err(e) => return crashed(e),
        };
        let request = StartRequest {
            config,
            origin_mono_ns: origin,
            seccomp: self.seccomp,
            jail: places.jail(),
            hold: false,
            probe_jail: false,
        };
        let timeout = p.timeout + vmm::STOP_GRACE + PROCESS_GRACE;
        let run = client::run(
            &places.spawn(p.vmm.clone(), p.live_console),
            &request,
            timeout,
            &crate::interrupt::requested,
        );
        let usage = places.usage();
        let problems = places.remove();
        let cleaned_ns = monotonic_ns().saturating_sub(origin);
        let mut outcome = outcome_of(run, usage, cleaned_ns, &trial.spec.workload);
        outcome.emulated = p.emulated;
        if !problems.is_empty() && outcome.result.is_ok() {
            outcome.result = Err(TrialFailure::Crashed {
                reason: format!(
                    "the VM ran, but its places could not be removed: {}; `isolab doctor \
                     --clean` removes them",
                    problems.join("; ")
                ),
            });
        }
        outcome
    }
}

/// The uid and gid of jailed VMM number `n` ([`JAIL_ID_BASE`]).
fn jail_id(n: u64) -> u32 {
    JAIL_ID_BASE + (std::process::id() % 100_000) * 10_000 + (n % 10_000) as u32
}

/// Where one VMM process lives on the host: its cgroup below the run's (the run's CPU weight,
/// memory limited to the guest's RAM plus [`VMM_MEMORY_ALLOWANCE_MIB`]) and, when it is jailed,
/// its jail folder (fresh, in the run's state folder) and unprivileged id. What a trial makes
/// around its VMM process, and what a run that holds many VMs at once makes around each.
/// Removed by [`VmmPlaces::remove`] or when dropped.
#[derive(Debug)]
pub struct VmmPlaces {
    cgroup: Option<SiblingCgroup>,
    /// cgroup v1: the `tasks` files the child joins through.
    join: Vec<std::os::fd::RawFd>,
    jail: Option<JailConfig>,
    removed: bool,
}

impl VmmPlaces {
    /// Makes the places of the next VMM process: a cgroup below `run_cgroup` (if any) and, with
    /// `jail_parent`, a jail folder in it.
    pub fn create(
        run_cgroup: Option<&RunCgroup>,
        memory_mib: u64,
        jail_parent: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let n = NEXT_VMM.fetch_add(1, Ordering::Relaxed);
        let cgroup = match run_cgroup {
            Some(run) => Some(vmm_cgroup(run, n, memory_mib)?),
            None => None,
        };
        let mut places = Self {
            join: cgroup
                .as_ref()
                .map(SiblingCgroup::tasks_fds)
                .unwrap_or_default(),
            cgroup,
            jail: None,
            removed: false,
        };
        if let Some(parent) = jail_parent {
            // Dropping `places` on an error removes the cgroup made above.
            let root = crate::run_places::make_fresh_folder(parent, "jail-")
                .map_err(|e| format!("making the VMM's jail: {e}"))?;
            let id = jail_id(n);
            places.jail = Some(JailConfig {
                root,
                uid: id,
                gid: id,
            });
        }
        Ok(places)
    }

    /// How to start the VMM process here (`isolab-vmm` at `binary`): in its cgroup, and in new
    /// namespaces when it is jailed.
    pub fn spawn(&self, binary: PathBuf, live_stderr: bool) -> Spawn<'_> {
        Spawn {
            binary,
            namespaces: self.jail.is_some(),
            placement: Placement {
                cgroup_dir: self.cgroup.as_ref().and_then(SiblingCgroup::clone_into),
                join_fds: &self.join,
            },
            live_stderr,
        }
    }

    /// Its cgroup's directories (none without a run cgroup).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.cgroup
            .as_ref()
            .map(|c| c.dirs().to_vec())
            .unwrap_or_default()
    }

    /// The jail for the start request, when jailed.
    pub fn jail(&self) -> Option<JailConfig> {
        self.jail.clone()
    }

    /// What its cgroup accounted so far (peak memory, CPU).
    pub fn usage(&self) -> Option<container_backend::cgroups::ResourceUsage> {
        self.cgroup.as_ref().map(SiblingCgroup::usage)
    }

    /// Removes the cgroup (killing what is left in it) and the jail folder (on the host it holds
    /// only empty files: its mounts died with the process). Returns what could not be removed.
    pub fn remove(&mut self) -> Vec<String> {
        if std::mem::replace(&mut self.removed, true) {
            return Vec::new();
        }
        let mut problems = Vec::new();
        if let Some(Err(e)) = self.cgroup.as_ref().map(SiblingCgroup::remove) {
            problems.push(format!("removing the VMM's cgroup: {e}"));
        }
        if let Some(j) = &self.jail {
            if let Err(e) = std::fs::remove_dir_all(&j.root) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    problems.push(format!("removing the jail {}: {e}", j.root.display()));
                }
            }
        }
        problems
    }
}

impl Drop for VmmPlaces {
    fn drop(&mut self) {
        for p in self.remove() {
            eprintln!("warning: {p}; `isolab doctor --clean` removes it");
        }
    }
}

/// The cgroup of VMM process `n`, below the run's: the run's CPU weight, memory limited to the
/// guest's RAM plus [`VMM_MEMORY_ALLOWANCE_MIB`].
fn vmm_cgroup(run: &RunCgroup, n: u64, memory_mib: u64) -> Result<SiblingCgroup, String> {
    let limits = CgroupLimits {
        memory_bytes: Some((memory_mib + VMM_MEMORY_ALLOWANCE_MIB) << 20),
        ..CgroupLimits::default()
    };
    let name = format!("vmm-{}-{n}", std::process::id());
    run.create_sibling_limited(&name, &limits).map_err(|e| {
        format!(
            "cannot create the VMM process's cgroup {name} below the run's ({}): {e}",
            match run.version() {
                CgroupVersion::V1 => "cgroup v1",
                CgroupVersion::V2 => "cgroup v2",
            }
        )
    })
}

/// The time of a process point, ns since the trial's origin.
fn point(name: &'static str, at_ns: u64) -> TimePoint {
    TimePoint { name, at_ns }
}

/// The trial's outcome from a VMM process's run: the VM's report with the process's own points
/// (spawned, its `main`, the request read, reaped, cleaned up) and its CPU time and cgroup
/// figures, or, without a report, why (what it printed goes to the log).
fn outcome_of(
    run: VmmRun,
    cgroup: Option<container_backend::cgroups::ResourceUsage>,
    cleaned_ns: u64,
    workload: &Workload,
) -> TrialOutcome {
    let mut points = vec![point("start", 0)];
    if let Some(at) = run.spawned_ns {
        points.push(point("vmm_spawned", at));
    }
    if let Some((started, read)) = run.ready {
        points.push(point("vmm_started", started));
        points.push(point("vmm_request_read", read));
    }
    if let Some(at) = run.reaped_ns {
        points.push(point("vmm_reaped", at));
    }
    points.push(point("cleaned_up", cleaned_ns));
    let stderr_tail = crate::backends::tail_lines(&run.stderr, TAIL_LINES);
    let mut process_metrics = Vec::new();
    let ms = |ns: u64| ns as f64 / 1e6;
    if let Some((started, _)) = run.ready {
        process_metrics.push(Metric::lower("host.vmm_process_start", "ms", ms(started)));
    }
    if let Some((_, usage)) = run.exit {
        process_metrics.push(Metric::lower(
            "host.cpu_user",
            "ms",
            usage.user_us as f64 / 1e3,
        ));
        process_metrics.push(Metric::lower(
            "host.cpu_sys",
            "ms",
            usage.sys_us as f64 / 1e3,
        ));
        process_metrics.push(Metric::lower(
            "host.peak_rss",
            "MiB",
            usage.max_rss_kib as f64 / 1024.0,
        ));
    }
    if let Some(u) = cgroup {
        // The VMM process's memory cgroup: the same meter as the container's `host.cgroup_peak`.
        process_metrics.push(Metric::lower(
            "host.cgroup_peak",
            "MiB",
            u.peak_memory_bytes as f64 / (1024.0 * 1024.0),
        ));
    }
    let Some(mut report) = run.report else {
        let failure = run
            .failure
            .clone()
            .unwrap_or(VmmFailure::Protocol("no report and no reason".into()));
        let result = match &failure {
            VmmFailure::Failed {
                message,
                kind: FailureKind::KvmUnavailable,
            } => TrialFailure::Unavailable {
                reason: message.clone(),
                fix: "use a host with hardware KVM (kvm_intel or kvm_amd), or the HVM test \
                      machine (--vm-in-emulator)"
                    .into(),
            },
            VmmFailure::TimedOut(d) => TrialFailure::Timeout {
                after_s: d.as_secs_f64(),
            },
            other => TrialFailure::Crashed {
                reason: match (other, stderr_tail.trim().is_empty()) {
                    (VmmFailure::Failed { .. } | VmmFailure::Seccomp(_), _) | (_, true) => {
                        other.to_string()
                    }
                    _ => format!("{other}; it printed:\n{stderr_tail}"),
                },
            },
        };
        let mut timeline: Vec<Phase> = points.iter().map(|p| phase(p.name, p.at_ns)).collect();
        timeline.sort_by_key(|p| p.at_ns);
        return TrialOutcome {
            result: Err(result),
            timeline,
            host_metrics: process_metrics,
            log_tail: stderr_tail,
            emulated: false,
        };
    };
    // The VMM's own start of work is `vm_setup`; the trial's `start` is the host's, before the
    // process was spawned, so setup and start-to-ready include the process's start.
    for p in &mut report.timeline {
        if p.name == "start" {
            p.name = "vm_setup";
        }
    }
    report.timeline.extend(points);
    report.timeline.sort_by_key(|p| p.at_ns);
    let mut result = result_of(&report);
    if !report.teardown_problems.is_empty() {
        // A VMM thread that would not stop is a VMM bug (or a host that cannot finish an
        // I/O): the trial must not pass as if nothing happened.
        result = Err(TrialFailure::Crashed {
            reason: format!(
                "the VMM could not tear the VM down cleanly: {}",
                report.teardown_problems.join("; ")
            ),
        });
    }
    if result.is_ok() && run.exit.is_some_and(|(e, _)| e != Exit::Code(0)) {
        result = Err(TrialFailure::Crashed {
            reason: format!(
                "the VMM process ended with {:?} after its report; it printed:\n{stderr_tail}",
                run.exit.map(|e| e.0)
            ),
        });
    }
    let log_tail = if result.is_err() {
        let mut tail = report.console_tail(TAIL_LINES);
        // A hung guest: where its vCPUs were is the first clue to why.
        if !report.vcpu_states.is_empty() {
            tail.push_str("\n--- where the vCPUs were when the VM was stopped ---\n");
            for state in &report.vcpu_states {
                tail.push_str(&format!("{state}\n"));
            }
        }
        if !stderr_tail.trim().is_empty() {
            tail.push_str("\n--- the VMM process's stderr ---\n");
            tail.push_str(&stderr_tail);
        }
        tail
    } else {
        String::new()
    };
    let mut host_metrics = metrics_of(&report, workload);
    host_metrics.extend(disk_metrics_of(&report));
    host_metrics.extend(process_metrics);
    TrialOutcome {
        result,
        timeline: timeline_of(&report),
        host_metrics,
        log_tail,
        emulated: false,
    }
}

fn config_for(p: &Prepared, extra: Vec<String>) -> VmConfig {
    let mut c = VmConfig::new(&p.kernel, p.memory_mib);
    c.vcpus = p.vcpus;
    c.initrd = Some(p.initrd.clone());
    c.timeout = p.timeout;
    c.live_console = p.live_console;
    // Every console byte is a VM exit: keep the kernel quiet unless someone is watching.
    c.quiet = !p.live_console;
    c.extra_cmdline = extra;
    c.acpi = p.acpi;
    c.memory = p.memory;
    c.channel = true;
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
            kvm_stats_to_first_marker: None,
            vcpus: 1,
            exits_per_vcpu: vec![exits.clone()],
            exits_workload: None,
            kvm_stats: None,
            kvm_stats_per_vcpu: Vec::new(),
            kvm_stats_workload: None,
            kvm_stats_unavailable: Some("test".into()),
            workload_window_ns: None,
            workload_phases: Vec::new(),
            phase_markers_over_limit: 0,
            exits,
            memory_top: Vec::new(),
            memory: Some(MemoryUsage {
                guest_ram_resident: 64 << 20,
                guest_ram_huge: 60 << 20,
                other_resident: 3 << 20,
                guest_ram_pss: 64 << 20,
                other_pss: 2 << 20,
            }),
            guest_ram_bytes: 512 << 20,
            memory_backing: MemoryBacking::Thp,
            guest_ram_host_ranges: vec![(0x7f00_0000_0000, 512 << 20)],
            acpi: AcpiMode::Auto,
            devices: Vec::new(),
            channel: None,
            kernel_format: vm_backend::boot::loader::KernelFormat::BzImage,
            cmdline: String::new(),
            unclaimed_io: 0,
            disk: None,
            net: None,
            teardown_problems: Vec::new(),
            vcpu_states: Vec::new(),
        }
    }

    fn kvm(pairs: &[(&str, u64)]) -> KvmStats {
        KvmStats(
            pairs
                .iter()
                .map(|(n, v)| {
                    let kind = if *n == "guest_mode" {
                        StatKind::Instant
                    } else {
                        StatKind::Cumulative
                    };
                    (
                        n.to_string(),
                        vm_backend::vstate::kvm_stats::Stat { value: *v, kind },
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn network_trials_count_exits_per_packet_and_per_transaction_in_the_window() {
        let mut r = report(&ok_line(), StopReason::GuestReset);
        let mut window = ExitCounts::default();
        window.0.insert("mmio_read.virtio_net", 300);
        r.exits_workload = Some(window);
        r.kvm_stats_workload = Some(kvm(&[("exits", 6_000), ("irq_injections", 1_000)]));
        r.net = Some(vm_backend::vmm::NetReport {
            tap: "tap0".into(),
            offload: true,
            stats: Default::default(),
            stats_workload: Some(vm_backend::devices::virtio::net::NetStats {
                tx_packets: 1_000,
                rx_packets: 1_000,
                notifies: 500,
                interrupts: 800,
                interrupts_suppressed: 40,
                ..Default::default()
            }),
            transport: Default::default(),
            broken: None,
            thread_problem: None,
        });
        let rr = Workload::NetRr(workloads::kernels::net::NetRrParams {
            peer: "10.77.0.1:7077".into(),
            transactions: 1_000,
        });
        let m = metrics_of(&r, &rr);
        let get = |n: &str| m.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get("net.packets"), Some(2_000.0));
        assert_eq!(get("exits.per_packet"), Some(3.0));
        assert_eq!(get("exits.userspace_per_packet"), Some(0.15));
        assert_eq!(get("irq_injections.per_packet"), Some(0.5));
        assert_eq!(get("net.notifies_per_packet"), Some(0.25));
        assert_eq!(get("net.interrupts_per_packet"), Some(0.4));
        assert_eq!(get("net.interrupts_suppressed"), Some(40.0));
        assert_eq!(get("exits.per_transaction"), Some(6.0));
        // A VM without a network card has none of them (absent, never 0).
        r.net = None;
        let m = metrics_of(&r, &rr);
        assert!(m
            .iter()
            .all(|x| !x.name.starts_with("net.") && x.name != "exits.per_packet"));
    }

    #[test]
    fn exits_per_operation_come_from_the_workload_window_and_the_spec() {
        let mut r = report(&ok_line(), StopReason::GuestReset);
        let mut window = ExitCounts::default();
        window.0.insert("mmio_write.virtio_blk", 400);
        r.exits_workload = Some(window);
        r.kvm_stats = Some(kvm(&[
            ("exits", 90_000),
            ("io_exits", 500),
            ("halt_exits", 0),
            ("guest_mode", 1),
        ]));
        r.kvm_stats_workload = Some(kvm(&[
            ("exits", 8_000),
            ("irq_injections", 1_200),
            ("halt_wait_ns", 5_000),
        ]));
        r.workload_window_ns = Some(2_000_000_000);
        let rand = Workload::IoRand(workloads::kernels::io::IoRandParams {
            path: "/dev/vda".into(),
            file_mib: 8,
            ops: 200,
            ..Default::default()
        });
        let m = metrics_of(&r, &rand);
        let get = |n: &str| {
            m.iter()
                .find(|x| x.name == n)
                .map(|x| (x.value, x.unit.clone()))
        };
        // 200 reads + 200 writes.
        assert_eq!(get("exits.per_4k_io"), Some((20.0, "exits/op".into())));
        assert_eq!(
            get("irq_injections.per_4k_io"),
            Some((3.0, "interrupts/op".into()))
        );
        assert_eq!(
            get("exits.userspace_per_4k_io"),
            Some((1.0, "exits/op".into()))
        );
        assert_eq!(
            get("exits.workload.per_s"),
            Some((4000.0, "exits/s".into()))
        );
        assert_eq!(get("exits.workload.total").map(|v| v.0), Some(400.0));
        assert_eq!(
            get("exits.workload.mmio_write.virtio_blk").map(|v| v.0),
            Some(400.0)
        );
        assert_eq!(get("kvm.exits").map(|v| v.0), Some(90_000.0));
        assert_eq!(get("kvm.io_exits").map(|v| v.0), Some(500.0));
        assert_eq!(get("kvm.halt_exits"), None, "zero counters are left out");
        assert_eq!(get("kvm.guest_mode"), None, "current values are left out");
        assert_eq!(
            get("kvm.workload.halt_wait_ns"),
            Some((5000.0, "ns".into()))
        );

        let seq = Workload::IoSeq(workloads::kernels::io::IoSeqParams {
            path: "/dev/vda".into(),
            size_mib: 8,
        });
        let m = metrics_of(&r, &seq);
        assert!(m
            .iter()
            .any(|x| x.name == "exits.per_mib_io" && x.value == 500.0));
        let sys =
            Workload::Syscall(workloads::kernels::syscall::SyscallParams { iterations: 4000 });
        let m = metrics_of(&r, &sys);
        assert!(m
            .iter()
            .any(|x| x.name == "exits.per_syscall" && x.value == 2.0));
        // No natural operation: only the rate; no KVM statistics: no per-op figures at all.
        let m = metrics_of(&r, &Workload::Noop);
        assert!(!m.iter().any(|x| x.name.starts_with("exits.per_")));
        assert!(m.iter().any(|x| x.name == "exits.workload.per_s"));
        let plain = report(&ok_line(), StopReason::GuestReset);
        let m = metrics_of(&plain, &rand);
        assert!(!m.iter().any(|x| x.name.contains("per_")), "{m:?}");
    }

    #[test]
    fn reads_and_writes_are_counted_apart_from_their_phases() {
        use vm_backend::devices::virtio::block::BlockStats;
        use vm_backend::vmm::DiskReport;
        use vm_backend::vstate::vcpu::PhaseWindow;
        let window = |phase: WorkloadPhase, exits: u64, irqs: u64, vmm: u64, requests: u64| {
            let mut e = ExitCounts::default();
            e.0.insert("mmio_write.virtio_blk", vmm);
            PhaseWindow {
                byte: phase.byte(),
                window_ns: 1_000_000,
                exits: e,
                kvm_stats: Some(kvm(&[("exits", exits), ("irq_injections", irqs)])),
                disk: Some(BlockStats {
                    requests,
                    notifies: requests,
                    interrupts: requests / 2,
                    ..BlockStats::default()
                }),
            }
        };
        let mut r = report(&ok_line(), StopReason::GuestReset);
        r.kvm_stats_workload = Some(kvm(&[("exits", 8_000), ("irq_injections", 1_200)]));
        r.exits_workload = Some(ExitCounts::default());
        r.disk = Some(DiskReport {
            path: "/tmp/disk".into(),
            read_only: false,
            stats: BlockStats::default(),
            transport: Default::default(),
            broken: None,
            thread_panicked: false,
            thread_left_running: false,
        });
        r.workload_phases = vec![
            window(WorkloadPhase::Prefill, 1_000, 100, 50, 8),
            window(WorkloadPhase::Read, 1_200, 400, 200, 200),
            window(WorkloadPhase::Write, 2_000, 500, 300, 150),
            // A phase announced again: its windows add up.
            window(WorkloadPhase::Read, 0, 0, 0, 0),
            window(WorkloadPhase::Write, 1_000, 100, 100, 60),
        ];
        let rand = Workload::IoRand(workloads::kernels::io::IoRandParams {
            path: "/dev/vda".into(),
            file_mib: 8,
            ops: 200,
            ..Default::default()
        });
        let mut m = metrics_of(&r, &rand);
        m.extend(disk_metrics_of(&r));
        let get = |m: &[Metric], n: &str| m.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get(&m, "exits.per_4k_read"), Some(6.0));
        assert_eq!(get(&m, "exits.per_4k_write"), Some(15.0));
        assert_eq!(get(&m, "irq_injections.per_4k_read"), Some(2.0));
        assert_eq!(get(&m, "irq_injections.per_4k_write"), Some(3.0));
        assert_eq!(get(&m, "exits.userspace_per_4k_read"), Some(1.0));
        assert_eq!(get(&m, "exits.userspace_per_4k_write"), Some(2.0));
        // The whole window (prefill, reads and writes together) stays as it was.
        assert_eq!(get(&m, "exits.per_4k_io"), Some(20.0));
        assert_eq!(get(&m, "disk.read.requests"), Some(200.0));
        assert_eq!(get(&m, "disk.write.requests"), Some(210.0));
        assert_eq!(get(&m, "disk.write.interrupts_per_request"), Some(0.5));
        assert_eq!(get(&m, "disk.prefill.notifies_per_request"), Some(1.0));
        let unit = |n: &str| m.iter().find(|x| x.name == n).map(|x| x.unit.clone());
        assert_eq!(unit("exits.per_4k_read").as_deref(), Some("exits/op"));
        assert_eq!(
            unit("irq_injections.per_4k_write").as_deref(),
            Some("interrupts/op")
        );

        let seq = Workload::IoSeq(workloads::kernels::io::IoSeqParams {
            path: "/dev/vda".into(),
            size_mib: 8,
        });
        let m = metrics_of(&r, &seq);
        assert_eq!(get(&m, "exits.per_mib_write"), Some(375.0));
        assert_eq!(get(&m, "exits.per_mib_read"), Some(150.0));
        assert_eq!(get(&m, "exits.per_mib_io"), Some(500.0));
        assert_eq!(get(&m, "exits.per_4k_read"), None);

        // Without KVM's statistics of a phase only the VMM's own count is there; without
        // phases (an old agent, or a workload without them) nothing per phase at all.
        r.workload_phases[1].kvm_stats = None;
        let m = metrics_of(&r, &rand);
        assert_eq!(get(&m, "exits.per_4k_read"), None);
        assert_eq!(get(&m, "exits.userspace_per_4k_read"), Some(1.0));
        assert_eq!(get(&m, "exits.per_4k_write"), Some(15.0));
        r.workload_phases.clear();
        let mut m = metrics_of(&r, &rand);
        m.extend(disk_metrics_of(&r));
        assert!(
            !m.iter().any(|x| x.name.ends_with("_read")
                || x.name.ends_with("_write")
                || WorkloadPhase::ALL
                    .iter()
                    .any(|p| x.name.starts_with(&format!("disk.{}.", p.name())))),
            "{m:?}"
        );
        assert_eq!(get(&m, "exits.per_4k_io"), Some(20.0));
    }

    fn ok_line() -> String {
        line_of("noop")
    }

    /// The framed line of an ok result of `workload`.
    fn line_of(workload: &str) -> String {
        frame_result(&workloads::WorkloadResult {
            protocol: workloads::PROTOCOL_VERSION,
            workload: workload.into(),
            outcome: Outcome::Ok,
            metrics: vec![],
            inspect: None,
            clock: AgentClock::default(),
            memory_inside: None,
            was_pid1: true,
            route: None,
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
        // Workload phases stay off the timeline; a byte nobody sends is ignored.
        let mut with_phases = r.clone();
        for byte in [17, 18, 200] {
            with_phases.markers.push(Mark {
                byte,
                at_ns: 5_150_000,
            });
        }
        assert_eq!(timeline_of(&with_phases), t);
        let m = metrics_of(&r, &Workload::Noop);
        let get = |n: &str| m.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get("host.boot_to_agent"), Some(4.5));
        assert_eq!(get("host.vmm_overhead"), Some(2.0));
        assert_eq!(get("host.guest_ram_touched"), Some(64.0));
        assert_eq!(get("exits.total"), Some(14.0));
        assert_eq!(get("exits.io_out.serial"), Some(10.0));
    }

    #[test]
    fn the_result_comes_from_the_channel_else_from_the_serial_console() {
        use vm_backend::devices::virtio::console::{ConsoleOutput, ConsoleStats};
        use vm_backend::vmm::ChannelReport;
        let channel = |text: &str| {
            let mut log = ConsoleLog::new(1 << 16);
            log.push(text.as_bytes());
            Some(ChannelReport {
                output: ConsoleOutput {
                    log,
                    stats: ConsoleStats::default(),
                    broken: None,
                },
                transport: Default::default(),
            })
        };
        let inspect_line = line_of;
        // The channel's line wins over one on the serial console.
        let mut r = report(&inspect_line("serial"), StopReason::GuestReset);
        r.channel = channel(&inspect_line("channel"));
        assert_eq!(result_of(&r).expect("ok").workload, "channel");
        // A channel with nothing on it (a kernel without the driver): the serial console.
        r.channel = channel("");
        assert_eq!(result_of(&r).expect("ok").workload, "serial");
        // A damaged line on the channel with nothing on the console: the damage is the reason.
        let line = inspect_line("channel");
        let mut r = report("booted\n", StopReason::GuestReset);
        r.channel = channel(&line.replacen("ISOLAB-RESULT:1:", "ISOLAB-RESULT:1:9", 1));
        match result_of(&r) {
            Err(TrialFailure::Crashed { reason }) => {
                assert!(reason.contains("damaged"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nested_page_faults_and_huge_pages_are_metrics() {
        let mut r = report(&ok_line(), StopReason::GuestReset);
        r.kvm_stats_to_first_marker = Some(kvm(&[("exits", 2_500), ("pf_taken", 700)]));
        r.kvm_stats_workload = Some(kvm(&[("exits", 90), ("pf_taken", 12)]));
        r.kvm_stats = Some(kvm(&[("exits", 2_800), ("pf_taken", 800)]));
        let m = metrics_of(&r, &Workload::Noop);
        let get = |n: &str| m.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get("npf.to_agent_start"), Some(700.0));
        assert_eq!(get("npf.workload"), Some(12.0));
        assert_eq!(get("npf.total"), Some(800.0));
        assert_eq!(get("kvm.to_agent_start.exits"), Some(2_500.0));
        assert_eq!(get("host.guest_ram_huge"), Some(60.0));
        // A host KVM without pf_taken: no nested page fault figure rather than a wrong one.
        r.kvm_stats_to_first_marker = Some(kvm(&[("exits", 2_500), ("pf_fixed", 600)]));
        let m = metrics_of(&r, &Workload::Noop);
        assert!(!m.iter().any(|x| x.name == "npf.to_agent_start"));
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

    fn vmm_run(report: Option<VmReport>, failure: Option<VmmFailure>, exit: Exit) -> VmmRun {
        VmmRun {
            report,
            failure,
            spawned_ns: Some(400_000),
            ready: Some((2_000_000, 2_100_000)),
            inner_pid: Some(1),
            running: None,
            jail_probe: None,
            exit: Some((
                exit,
                client::Usage {
                    user_us: 12_000,
                    sys_us: 3_000,
                    max_rss_kib: 70_000,
                },
            )),
            reaped_ns: Some(9_500_000),
            stderr: String::new(),
        }
    }

    /// A VM in its own process: the process's points join the VM's timeline (whose own start
    /// becomes `vm_setup`), the start metrics count from before the spawn, and the process's CPU
    /// time and memory are reported.
    #[test]
    fn a_vm_process_adds_its_start_and_cleanup_to_the_timeline_and_metrics() {
        let mut r = report(&ok_line(), StopReason::GuestReset);
        for p in &mut r.timeline {
            p.at_ns += 2_200_000;
        }
        for m in &mut r.markers {
            m.at_ns += 2_200_000;
        }
        let usage = container_backend::cgroups::ResourceUsage {
            peak_memory_bytes: 90 << 20,
            ..Default::default()
        };
        let o = outcome_of(
            vmm_run(Some(r), None, Exit::Code(0)),
            Some(usage),
            10_000_000,
            &Workload::Noop,
        );
        assert!(o.result.is_ok(), "{:?}", o.result);
        let names: Vec<&str> = o.timeline.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            &names[..6],
            [
                "start",
                "vmm_spawned",
                "vmm_started",
                "vmm_request_read",
                "vm_setup",
                "vm_created"
            ]
        );
        assert_eq!(names.last(), Some(&"cleaned_up"));
        assert_eq!(names.iter().filter(|n| **n == "start").count(), 1);
        let get = |n: &str| o.host_metrics.iter().find(|m| m.name == n).map(|m| m.value);
        assert_eq!(get("host.vmm_process_start"), Some(2.0));
        assert_eq!(
            get("host.start_to_ready"),
            Some(7.2),
            "from before the spawn"
        );
        assert_eq!(get("host.wall"), Some(10.0), "until cleaned up");
        assert_eq!(get("host.cpu_user"), Some(12.0));
        assert_eq!(get("host.cgroup_peak"), Some(90.0));
        assert_eq!(get("host.vmm_overhead"), Some(2.0), "non-guest PSS");
        assert_eq!(get("host.vmm_overhead_rss"), Some(3.0));
        assert_eq!(get("host.vmm_pss"), Some(66.0));
        assert_eq!(
            get("host.vmm_added"),
            None,
            "the in-process workaround is gone"
        );
    }

    /// A VMM process that ends without a report is reported with what it printed: a refused
    /// system call names the thread and the call; a hang is a timeout; no KVM is "unavailable".
    #[test]
    fn a_vm_process_without_a_report_says_why() {
        let call = vm_backend::seccomp::RefusedCall {
            thread: "virtio-blk".into(),
            syscall: 41,
            name: Some("socket".into()),
            args: vec![2, 1, 0, 0],
        };
        let mut run = vmm_run(
            None,
            Some(VmmFailure::Seccomp(call)),
            Exit::Signal(libc::SIGSYS),
        );
        run.stderr = "ISOLAB-VMM-SECCOMP thread=virtio-blk syscall=41 name=socket\n".into();
        let o = outcome_of(run, None, 9_000_000, &Workload::Noop);
        let Err(TrialFailure::Crashed { reason }) = &o.result else {
            panic!("{:?}", o.result)
        };
        assert!(
            reason.contains("SIGSYS")
                && reason.contains("virtio-blk device thread")
                && reason.contains("socket (41)"),
            "{reason}"
        );
        assert!(o.log_tail.contains("ISOLAB-VMM-SECCOMP"), "{}", o.log_tail);
        assert!(o.timeline.iter().any(|p| p.name == "vmm_spawned"));
        assert!(o.host_metrics.iter().any(|m| m.name == "host.cpu_user"));

        let mut run = vmm_run(None, Some(VmmFailure::Signal(9)), Exit::Signal(9));
        run.stderr = "thread 'main' panicked at src/x.rs:1".into();
        let o = outcome_of(run, None, 1, &Workload::Noop);
        let Err(TrialFailure::Crashed { reason }) = &o.result else {
            panic!("{:?}", o.result)
        };
        assert!(
            reason.contains("signal 9") && reason.contains("panicked"),
            "{reason}"
        );

        let run = vmm_run(
            None,
            Some(VmmFailure::TimedOut(Duration::from_secs(95))),
            Exit::Signal(9),
        );
        let o = outcome_of(run, None, 1, &Workload::Noop);
        assert_eq!(o.result, Err(TrialFailure::Timeout { after_s: 95.0 }));

        let run = vmm_run(
            None,
            Some(VmmFailure::Failed {
                message: "cannot open /dev/kvm".into(),
                kind: FailureKind::KvmUnavailable,
            }),
            Exit::Code(1),
        );
        let o = outcome_of(run, None, 1, &Workload::Noop);
        assert!(matches!(o.result, Err(TrialFailure::Unavailable { .. })));
    }
}
