//! What the host and the VMM process say to each other over their socket: one JSON object per
//! line, each side's messages a tagged enum (`{"type": "start", ...}`).
//!
//! ```text
//! host                                   VMM process (isolab-vmm)
//!  | spawn (namespaces, cgroup, PDEATHSIG)  |
//!  |-- start {config, origin, seccomp,   -->|  (exits at once if the socket closes first)
//!  |          jail, hold, probe_jail}       |
//!  |<-- ready {pid, at_ns} -----------------|  main() entered, request read
//!  |<-- jail_probe {...} -------------------|  (only with probe_jail: what it sees inside)
//!  |<-- running {guest_ram, at_ns} ---------|  vCPUs run; guest RAM's place in its memory
//!  |<-- marker {byte, at_ns} ... -----------|  each agent marker as it comes
//!  |-- stop ------------------------------->|  (any time: ends the VM, as the timeout does)
//!  |<-- report {VmReport} ------------------|  or failed {message, kind}; then it exits
//! ```
//!
//! Times are nanoseconds on the host's CLOCK_MONOTONIC since the host's origin (the trial's
//! start), which the start request carries, so the VMM's timeline needs no translation.
//!
//! A VMM that *holds* (`hold: true`) does not stop at its timeout: it runs until the guest stops
//! or the host sends `stop` (or closes the socket). That is how a density run starts VMs, waits
//! for each guest's working set (a marker), measures them all and stops them.

use std::io::{BufRead, Read, Write};
use std::os::fd::RawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::devices::marker::MarkerEvent;
use crate::seccomp::SeccompMode;
use crate::vmm::{VmConfig, VmReport};

/// The fd the VMM process finds its end of the host's socket on.
pub const CHANNEL_FD: RawFd = 3;
/// Longest line either side reads (a report carries the console: up to 4 MiB of text, escaped).
pub const MAX_LINE: usize = 64 << 20;
/// The VMM binary's file name (next to `isolab`).
pub const VMM_BINARY: &str = "isolab-vmm";
/// The environment variable that points at the VMM binary instead.
pub const VMM_ENV: &str = "ISOLAB_VMM";

/// What the VMM process should do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartRequest {
    /// The VM.
    pub config: VmConfig,
    /// The host's origin on CLOCK_MONOTONIC, ns: every time the VMM reports counts from it.
    pub origin_mono_ns: u64,
    /// The threads' seccomp filters.
    pub seccomp: SeccompMode,
    /// Enter this jail first (the process must have been started in new mount, PID and network
    /// namespaces).
    pub jail: Option<JailConfig>,
    /// Run until the guest stops or the host says `stop`: no timeout.
    #[serde(default)]
    pub hold: bool,
    /// Describe the jail from inside ([`VmmMessage::JailProbe`]) once privileges are dropped.
    #[serde(default)]
    pub probe_jail: bool,
}

/// The jail a VMM process enters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailConfig {
    /// A fresh, empty folder the host made for this VMM alone: its root once it is in.
    pub root: PathBuf,
    /// The unprivileged user it becomes once its inputs are open.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
}

/// From the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// Run this VM (the first and only start).
    Start(Box<StartRequest>),
    /// Stop the VM now and report.
    Stop,
}

/// Why a VMM process could not run its VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// `/dev/kvm` is missing or lacks what the VMM needs.
    KvmUnavailable,
    /// The request was unusable (bad kernel, too little RAM, ...).
    Config,
    /// The jail could not be entered or privileges not dropped.
    Jail,
    /// The seccomp filters could not be built or installed.
    Seccomp,
    /// Anything else while setting the VM up.
    Setup,
    /// The host's messages did not follow the protocol.
    Protocol,
}

/// What a jailed VMM sees from inside (the jail test's evidence).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailProbe {
    /// Every path under its root, with a type letter (`d`, `f`, `l`, ...), sorted.
    pub root: Vec<String>,
    /// Its namespaces (`mnt:[4026532...]`, ...), read through a descriptor opened before the
    /// jail (the jail has no /proc).
    pub namespaces: Vec<(String, String)>,
    /// Its pid in its own PID namespace, and its parent's there (0: outside it).
    pub pid: i32,
    /// Its parent's pid as it sees it.
    pub ppid: i32,
    /// Real, effective and saved uid.
    pub uids: [u32; 3],
    /// Real, effective and saved gid.
    pub gids: [u32; 3],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Effective, permitted and inheritable capability sets (64-bit masks).
    pub caps: [u64; 3],
    /// The bounding set.
    pub cap_bounding: u64,
    /// The ambient set.
    pub cap_ambient: u64,
    /// `PR_GET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// Network interfaces it sees.
    pub interfaces: Vec<String>,
    /// Paths of the host it tried and could not open, with the error (`/dev/kvm`, `/proc`, ...).
    pub refused: Vec<(String, String)>,
}

/// From the VMM process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VmmMessage {
    /// Its `main` runs and has read the request.
    Ready {
        /// Its pid as it sees it (1 in its own PID namespace when jailed).
        pid: i32,
        /// When `main` was entered.
        started_ns: u64,
        /// When the request was read.
        at_ns: u64,
    },
    /// What it sees from inside its jail (only when asked).
    JailProbe(Box<JailProbe>),
    /// The vCPUs run.
    Running {
        /// Guest RAM in its address space: (host address, length) of each region, to tell
        /// guest memory from the VMM's own in `/proc/PID/smaps`.
        guest_ram: Vec<(u64, u64)>,
        /// When.
        at_ns: u64,
    },
    /// The agent wrote a marker.
    Marker(MarkerEvent),
    /// The VM ended; the process exits next.
    Report(Box<VmReport>),
    /// The VM could not be set up; the process exits next.
    Failed {
        /// What went wrong, with what to do.
        message: String,
        /// What kind of failure.
        kind: FailureKind,
    },
}

/// Writes `msg` as one line with one `write` call (so lines from several threads never mix).
pub fn write_message<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}

/// Reads the next message: None at the end of the stream; an error for a line that is too long
/// or not a message.
pub fn read_message<T: for<'de> Deserialize<'de>>(
    r: &mut impl BufRead,
) -> std::io::Result<Option<T>> {
    read_limited(r, MAX_LINE)
}

fn read_limited<T: for<'de> Deserialize<'de>>(
    r: &mut impl BufRead,
    max: usize,
) -> std::io::Result<Option<T>> {
    let mut line = Vec::new();
    let n = Read::take(&mut *r, max as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            if n > max {
                format!("a message longer than {max} bytes")
            } else {
                "the stream ended inside a message".to_owned()
            },
        ));
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::serial::ConsoleLog;
    use crate::vmm::{StopReason, TimePoint};
    use crate::vstate::vcpu::ExitCounts;

    #[test]
    fn requests_and_reports_survive_the_trip() {
        let mut config = VmConfig::new("/k", 256);
        config.extra_cmdline = vec!["isolab.spec=abc".into()];
        let start = HostMessage::Start(Box::new(StartRequest {
            config,
            origin_mono_ns: 42,
            seccomp: SeccompMode::On,
            jail: Some(JailConfig {
                root: "/run/isolab/state-x/jail-1".into(),
                uid: 100_000,
                gid: 100_000,
            }),
            hold: false,
            probe_jail: true,
        }));
        let mut buf = Vec::new();
        write_message(&mut buf, &start).expect("write");
        write_message(&mut buf, &HostMessage::Stop).expect("write");
        let mut r = std::io::Cursor::new(buf);
        match read_message::<HostMessage>(&mut r).expect("read") {
            Some(HostMessage::Start(s)) => {
                assert_eq!(s.config.memory_mib, 256);
                assert_eq!(s.config.extra_cmdline, ["isolab.spec=abc"]);
                assert_eq!(s.jail.expect("jail").uid, 100_000);
                assert!(s.probe_jail);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_message::<HostMessage>(&mut r).expect("read"),
            Some(HostMessage::Stop)
        ));
        assert!(read_message::<HostMessage>(&mut r).expect("eof").is_none());

        let mut console = ConsoleLog::new(4096);
        console.push(b"Linux version 6.1\r\nISOLAB-RESULT:...\n\xff");
        let mut exits = ExitCounts::default();
        exits.0.insert("io_out.serial", 7);
        let mut channel_log = ConsoleLog::new(4096);
        channel_log.push(b"ISOLAB-RESULT:1:abc\n");
        let report = VmReport {
            stop: StopReason::Timeout(std::time::Duration::from_millis(2500)),
            console,
            markers: vec![MarkerEvent { byte: 1, at_ns: 9 }],
            markers_dropped: 0,
            timeline: vec![TimePoint {
                name: "vm_created",
                at_ns: 5,
            }],
            vcpus: 1,
            exits: exits.clone(),
            exits_per_vcpu: vec![exits],
            exits_to_first_marker: None,
            kvm_stats_to_first_marker: None,
            exits_workload: None,
            kvm_stats: None,
            kvm_stats_per_vcpu: Vec::new(),
            kvm_stats_workload: None,
            kvm_stats_unavailable: Some("old kernel".into()),
            workload_window_ns: None,
            workload_phases: Vec::new(),
            phase_markers_over_limit: 0,
            memory: None,
            memory_top: vec![("[heap] rw-p 132K".into(), 4096)],
            guest_ram_bytes: 256 << 20,
            memory_backing: crate::vstate::memory::MemoryBacking::Hugetlbfs,
            guest_ram_host_ranges: vec![(0x7f00_0000_0000, 256 << 20)],
            acpi: crate::vmm::AcpiMode::Auto,
            devices: vec![crate::vmm::DeviceReport {
                name: "virtio-console",
                slot: crate::devices::slots::DeviceSlot {
                    base: 0xd000_1000,
                    gsi: 6,
                },
                found_via: "acpi",
            }],
            channel: Some(crate::vmm::ChannelReport {
                output: crate::devices::virtio::console::ConsoleOutput {
                    log: channel_log,
                    stats: crate::devices::virtio::console::ConsoleStats {
                        bytes: 21,
                        ..Default::default()
                    },
                    broken: None,
                },
                transport: Default::default(),
            }),
            kernel_format: crate::boot::loader::KernelFormat::Elf,
            cmdline: "console=ttyS0".into(),
            unclaimed_io: 3,
            disk: None,
            net: Some(crate::vmm::NetReport {
                tap: "isotap0".into(),
                offload: true,
                stats: crate::devices::virtio::net::NetStats {
                    rx_packets: 7,
                    ..Default::default()
                },
                stats_workload: None,
                transport: Default::default(),
                broken: None,
                thread_problem: None,
            }),
            vcpu_states: Vec::new(),
            teardown_problems: Vec::new(),
        };
        let mut buf = Vec::new();
        write_message(&mut buf, &VmmMessage::Report(Box::new(report.clone()))).expect("write");
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let Some(VmmMessage::Report(back)) =
            read_message::<VmmMessage>(&mut std::io::Cursor::new(buf)).expect("read")
        else {
            panic!("not a report")
        };
        assert_eq!(back.stop, report.stop);
        assert_eq!(back.console.text(), report.console.text());
        assert_eq!(back.exits, report.exits);
        assert_eq!(back.timeline, report.timeline);
        assert_eq!(back.markers, report.markers);
        assert_eq!(back.memory_top, report.memory_top);
        assert_eq!(back.devices, report.devices);
        assert_eq!(back.memory_backing, report.memory_backing);
        let channel = |r: &VmReport| {
            r.channel
                .as_ref()
                .map(|c| (c.output.log.text(), c.output.stats))
        };
        assert_eq!(channel(&back), channel(&report));
        assert_eq!(back.net, report.net);
    }

    #[test]
    fn damaged_or_oversized_lines_are_errors() {
        let mut r = std::io::Cursor::new(b"{\"type\":\"stop\"".to_vec());
        assert!(read_message::<HostMessage>(&mut r).is_err());
        let mut r = std::io::Cursor::new(b"not json\n".to_vec());
        assert!(read_message::<HostMessage>(&mut r).is_err());
        let mut big = vec![b' '; 1000];
        big.extend_from_slice(b"{\"type\":\"stop\"}\n");
        let mut r = std::io::Cursor::new(big.clone());
        assert!(read_limited::<HostMessage>(&mut r, 100).is_err());
        let mut r = std::io::Cursor::new(big);
        assert!(read_limited::<HostMessage>(&mut r, 2000)
            .expect("fits")
            .is_some());
    }
}
