//! What the agent reports after one workload.

use serde::{Deserialize, Serialize};

/// Whether a larger or a smaller value of a metric is better. Reports use it to say "faster" or
/// "slower" without knowing the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughput-like: MB/s, GFLOP/s, IOPS.
    Higher,
    /// Latency-like: ns per call, µs per process.
    Lower,
}

/// One named measurement with its unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Stable name, e.g. `sha256_throughput`; reports group samples by it.
    pub name: String,
    /// Unit as printed, e.g. `MB/s`, `ns/access`, `µs/process`.
    pub unit: String,
    /// The value, in `unit`.
    pub value: f64,
    /// Which direction is better.
    pub better: Better,
}

impl Metric {
    /// A metric where higher is better.
    pub fn higher(name: &str, unit: &str, value: f64) -> Self {
        Self {
            name: name.to_owned(),
            unit: unit.to_owned(),
            value,
            better: Better::Higher,
        }
    }

    /// A metric where lower is better.
    pub fn lower(name: &str, unit: &str, value: f64) -> Self {
        Self {
            name: name.to_owned(),
            unit: unit.to_owned(),
            value,
            better: Better::Lower,
        }
    }
}

/// Timestamps the agent takes on its own CLOCK_MONOTONIC. Natively and in a container this is the
/// host's clock (no time namespace is used), so the harness can place them on the trial timeline;
/// in a VM it is the guest's clock, and the host-side markers are used instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentClock {
    /// First thing in `main`.
    pub agent_start_ns: u64,
    /// Just before the workload kernel starts.
    pub workload_start_ns: u64,
    /// Just after the workload kernel ends.
    pub workload_end_ns: u64,
}

/// The guest's or container's own view of memory, from `/proc/meminfo` inside.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryInside {
    /// `MemTotal` in KiB.
    pub mem_total_kib: u64,
    /// `MemAvailable` in KiB.
    pub mem_available_kib: u64,
}

/// What the `inspect` workload saw. The teaching workload: a container sees the host's kernel and
/// boot_id, a VM its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectReport {
    /// `uname -r`.
    pub kernel_release: String,
    /// `/proc/sys/kernel/random/boot_id`: different per booted kernel.
    pub boot_id: String,
    /// The agent's own PID (1 as a container or VM init).
    pub pid: u32,
    /// Number of numeric entries in `/proc`: the processes this sandbox can see.
    pub visible_processes: u32,
    /// `uname -n`.
    pub hostname: String,
    /// Network interface names, sorted.
    pub interfaces: Vec<String>,
    /// Lines in `/proc/self/mounts`.
    pub mounts: u32,
    /// CPUs available to the agent (sched_getaffinity).
    pub cpus: u32,
    /// `MemTotal` from `/proc/meminfo`, KiB.
    pub mem_total_kib: u64,
    /// `/proc/self/cgroup`, joined into one line.
    pub cgroup: String,
    /// Block devices in `/sys/block`, sorted (a VM's disk is `vda`; a container sees the
    /// host's).
    #[serde(default)]
    pub block_devices: Vec<String>,
}

/// Which way the result left the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRoute {
    /// `stdout` (a native process, a container, a VM's serial console) or `virtio-console` (a
    /// VM's result channel, `/dev/hvc0`).
    pub channel: String,
    /// Why the agent did not use the channel the VM offered (it wrote to stdout instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// How the workload ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// The workload ran and its metrics are valid.
    Ok,
    /// The workload could not run or failed; `message` says why and what to do.
    Error {
        /// Human-readable reason.
        message: String,
    },
}

/// The agent's one report for one spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// Must equal [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Kind name of the workload that ran.
    pub workload: String,
    /// Ok or error.
    pub outcome: Outcome,
    /// Named metrics (empty on error).
    pub metrics: Vec<Metric>,
    /// Filled by `inspect` only.
    pub inspect: Option<InspectReport>,
    /// The agent's own timestamps.
    pub clock: AgentClock,
    /// Memory as seen inside, when `/proc/meminfo` was readable.
    pub memory_inside: Option<MemoryInside>,
    /// Whether the agent ran as PID 1.
    pub was_pid1: bool,
    /// Which way this result left the sandbox (absent in results of agents before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ResultRoute>,
}
