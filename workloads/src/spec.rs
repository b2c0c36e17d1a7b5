//! What the harness asks the agent to run.
//!
//! A [`WorkloadSpec`] is versioned with [`PROTOCOL_VERSION`]; the agent refuses a spec of another
//! version rather than guess. Every workload has parameters with defaults, so a suite file can name
//! just the kind (`kind = "cpu"`) and override what it cares about; unknown parameters are errors,
//! because a typo that silently falls back to a default would measure something else.

use serde::{Deserialize, Serialize};

use crate::kernels::{
    cpu::CpuParams, io::IoFsyncParams, io::IoRandParams, io::IoSeqParams, mem_bw::MemBwParams,
    mem_lat::MemLatParams, net::NetRrParams, net::NetStreamParams, net_loopback::NetLoopbackParams,
    page_fault::PageFaultParams, random_access::RandomAccessParams, spawn::SpawnParams,
    syscall::SyscallParams, timer::TimerParams, wait::WaitParams,
};

/// Version of the spec/result protocol. Bump it on any incompatible change to [`WorkloadSpec`],
/// [`crate::result::WorkloadResult`] or the framing in [`crate::protocol`].
pub const PROTOCOL_VERSION: u32 = 1;

/// One request to the agent: run this workload once and report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Must equal [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The workload and its parameters.
    pub workload: Workload,
}

impl WorkloadSpec {
    /// A spec of the current protocol version.
    pub fn new(workload: Workload) -> Self {
        Self {
            protocol: PROTOCOL_VERSION,
            workload,
        }
    }
}

/// The workloads the agent can run, each with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Workload {
    /// Starts and ends: the start-up probe.
    Noop,
    /// SHA-256 over a buffer (MB/s) and a dense matrix multiply (GFLOP/s).
    Cpu(CpuParams),
    /// STREAM-style copy and triad over arrays far larger than the last-level cache (GB/s).
    MemBw(MemBwParams),
    /// Dependent random pointer chase over a working set (ns per access).
    MemLat(MemLatParams),
    /// HPC Challenge RandomAccess: random read-modify-write updates of a large table (GUP/s).
    RandomAccess(RandomAccessParams),
    /// Map anonymous memory, touch every page, unmap (ns per page).
    PageFault(PageFaultParams),
    /// A null system call in a loop (ns per call).
    Syscall(SyscallParams),
    /// fork + exec + wait of a tiny child (µs per process).
    Spawn(SpawnParams),
    /// Sequential O_DIRECT write then read in 1 MiB blocks (MB/s).
    IoSeq(IoSeqParams),
    /// 4 KiB O_DIRECT random read and write at queue depth 1 (IOPS, latency p50/p99).
    IoRand(IoRandParams),
    /// 4 KiB write + fsync latency (p50/p99).
    IoFsync(IoFsyncParams),
    /// TCP over the sandbox's own loopback, inside the sandbox only (no packet crosses its
    /// boundary): throughput and round-trip latency.
    NetLoopback(NetLoopbackParams),
    /// TCP bulk throughput to and from the peer on the host side (netperf's TCP_STREAM, both
    /// ways), with the host's CPU per Gbit.
    NetStream(NetStreamParams),
    /// One-byte TCP request/response with the peer (netperf's TCP_RR): p50, p99, transactions/s.
    NetRr(NetRrParams),
    /// Connect, one-byte request and response, close (netperf's TCP_CRR).
    NetCrr(NetRrParams),
    /// One-byte UDP request/response with the peer (netperf's UDP_RR).
    NetUdpRr(NetRrParams),
    /// clock_gettime cost and nanosleep(1 ms) overshoot.
    Timer(TimerParams),
    /// What the inside looks like: kernel, boot_id, PIDs, hostname, interfaces, mounts, CPUs, memory.
    Inspect,
    /// An instance of `isolab density`: sets up a working set, reports, sends the `Waiting`
    /// marker and waits until it is told to exit ([`crate::kernels::wait`]). Not a suite workload
    /// (it never ends by itself), so not in [`WORKLOAD_KINDS`].
    Wait(WaitParams),
}

/// The kind names a suite can run, in the order the reports list them. `wait` (the instance of a
/// density run, which waits until it is told to exit) is not among them.
pub const WORKLOAD_KINDS: &[&str] = &[
    "noop",
    "cpu",
    "mem-bw",
    "mem-lat",
    "random-access",
    "page-fault",
    "syscall",
    "spawn",
    "io-seq",
    "io-rand",
    "io-fsync",
    "net-loopback",
    "net-stream",
    "net-rr",
    "net-crr",
    "net-udp-rr",
    "timer",
    "inspect",
];

impl Workload {
    /// The kind name as used in suite files and reports (`mem-bw`, `io-rand`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Workload::Noop => "noop",
            Workload::Cpu(_) => "cpu",
            Workload::MemBw(_) => "mem-bw",
            Workload::MemLat(_) => "mem-lat",
            Workload::RandomAccess(_) => "random-access",
            Workload::PageFault(_) => "page-fault",
            Workload::Syscall(_) => "syscall",
            Workload::Spawn(_) => "spawn",
            Workload::IoSeq(_) => "io-seq",
            Workload::IoRand(_) => "io-rand",
            Workload::IoFsync(_) => "io-fsync",
            Workload::NetLoopback(_) => "net-loopback",
            Workload::NetStream(_) => "net-stream",
            Workload::NetRr(_) => "net-rr",
            Workload::NetCrr(_) => "net-crr",
            Workload::NetUdpRr(_) => "net-udp-rr",
            Workload::Timer(_) => "timer",
            Workload::Inspect => "inspect",
            Workload::Wait(_) => "wait",
        }
    }

    /// The workload of this kind with default parameters; `None` for an unknown kind.
    pub fn default_of_kind(kind: &str) -> Option<Workload> {
        Some(match kind {
            "noop" => Workload::Noop,
            "cpu" => Workload::Cpu(CpuParams::default()),
            "mem-bw" => Workload::MemBw(MemBwParams::default()),
            "mem-lat" => Workload::MemLat(MemLatParams::default()),
            "random-access" => Workload::RandomAccess(RandomAccessParams::default()),
            "page-fault" => Workload::PageFault(PageFaultParams::default()),
            "syscall" => Workload::Syscall(SyscallParams::default()),
            "spawn" => Workload::Spawn(SpawnParams::default()),
            "io-seq" => Workload::IoSeq(IoSeqParams::default()),
            "io-rand" => Workload::IoRand(IoRandParams::default()),
            "io-fsync" => Workload::IoFsync(IoFsyncParams::default()),
            "net-loopback" => Workload::NetLoopback(NetLoopbackParams::default()),
            "net-stream" => Workload::NetStream(NetStreamParams::default()),
            "net-rr" => Workload::NetRr(NetRrParams::default()),
            "net-crr" => Workload::NetCrr(NetRrParams {
                transactions: 1000,
                ..NetRrParams::default()
            }),
            "net-udp-rr" => Workload::NetUdpRr(NetRrParams::default()),
            "timer" => Workload::Timer(TimerParams::default()),
            "inspect" => Workload::Inspect,
            "wait" => Workload::Wait(WaitParams::default()),
            _ => return None,
        })
    }

    /// The I/O target path of an I/O workload, `None` for every other workload.
    pub fn io_path(&self) -> Option<&str> {
        match self {
            Workload::IoSeq(p) => Some(&p.path),
            Workload::IoRand(p) => Some(&p.path),
            Workload::IoFsync(p) => Some(&p.path),
            _ => None,
        }
    }

    /// MiB of data an I/O workload keeps on its target (what a VM's disk must hold); `None` for
    /// every other workload.
    pub fn io_data_mib(&self) -> Option<u64> {
        match self {
            Workload::IoSeq(p) => Some(u64::from(p.size_mib)),
            Workload::IoRand(p) => Some(u64::from(p.file_mib)),
            Workload::IoFsync(p) => Some((u64::from(p.ops) * 4096).div_ceil(1 << 20).max(1)),
            _ => None,
        }
    }

    /// The peer a network workload talks to (`ADDR:PORT`); `None` for every other workload
    /// (`net-loopback` included: its peer is inside the sandbox).
    pub fn peer(&self) -> Option<&str> {
        match self {
            Workload::NetStream(p) => Some(&p.peer),
            Workload::NetRr(p) | Workload::NetCrr(p) | Workload::NetUdpRr(p) => Some(&p.peer),
            _ => None,
        }
    }

    /// Points a network workload at its peer; no effect on other workloads.
    pub fn set_peer(&mut self, addr: &str) {
        match self {
            Workload::NetStream(p) => p.peer = addr.to_owned(),
            Workload::NetRr(p) | Workload::NetCrr(p) | Workload::NetUdpRr(p) => {
                p.peer = addr.to_owned()
            }
            _ => {}
        }
    }

    /// Points an I/O workload at another target (the harness rewrites the path per backend:
    /// a host file natively, the bind-mounted scratch directory in a container, a block device in
    /// a VM). No effect on other workloads.
    pub fn set_io_path(&mut self, path: &str) {
        match self {
            Workload::IoSeq(p) => p.path = path.to_owned(),
            Workload::IoRand(p) => p.path = path.to_owned(),
            Workload::IoFsync(p) => p.path = path.to_owned(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_default_that_names_itself() {
        for kind in WORKLOAD_KINDS {
            let w = Workload::default_of_kind(kind).expect("kind listed but not constructible");
            assert_eq!(w.kind(), *kind);
        }
        assert!(Workload::default_of_kind("nope").is_none());
        let wait = Workload::default_of_kind("wait").expect("the density instance");
        assert_eq!(wait.kind(), "wait");
        assert!(
            !WORKLOAD_KINDS.contains(&"wait"),
            "wait never ends by itself"
        );
    }

    #[test]
    fn spec_round_trips_through_json() {
        for kind in WORKLOAD_KINDS {
            let spec = WorkloadSpec::new(Workload::default_of_kind(kind).unwrap());
            let json = serde_json::to_string(&spec).unwrap();
            let back: WorkloadSpec = serde_json::from_str(&json).unwrap();
            assert_eq!(back, spec, "{json}");
        }
    }

    #[test]
    fn parameters_default_individually_and_typos_are_rejected() {
        let w: Workload = serde_json::from_str(r#"{"kind":"cpu","matrix_n":64}"#).unwrap();
        match w {
            Workload::Cpu(p) => {
                assert_eq!(p.matrix_n, 64);
                assert_eq!(p.hash_mib, CpuParams::default().hash_mib);
            }
            other => panic!("parsed as {other:?}"),
        }
        let err = serde_json::from_str::<Workload>(r#"{"kind":"cpu","matrx_n":64}"#).unwrap_err();
        assert!(err.to_string().contains("matrx_n"), "{err}");
    }
}
