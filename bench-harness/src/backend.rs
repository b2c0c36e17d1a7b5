//! The one interface every backend gives the harness: prepare once, run one trial, clean up.
//!
//! A backend turns a [`Trial`] into a [`TrialOutcome`]: the agent's result (or why there is none)
//! plus what the host saw: a [`Timeline`] of phases on the host's CLOCK_MONOTONIC and host-side
//! metrics (peak memory, CPU time, VM exits, ...). Failures of a trial are outcomes, not errors:
//! a crashed agent or a guest that hung is a sample that says so, and the run goes on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use workloads::{Metric, WorkloadResult, WorkloadSpec};

/// The three worlds isolab compares, and emulation as a fourth point of reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A plain child process: the baseline.
    Native,
    /// isolab's own container runtime.
    Container,
    /// isolab's own KVM microVM.
    Vm,
    /// The VM's guest kernel and the agent under QEMU's full-system emulator without hardware
    /// acceleration (TCG): what emulation itself costs, timed for real.
    #[serde(rename = "qemu-tcg")]
    QemuTcg,
}

impl BackendKind {
    /// All kinds, native first (the baseline every ratio refers to).
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Native,
        BackendKind::Container,
        BackendKind::Vm,
        BackendKind::QemuTcg,
    ];

    /// The kinds a run has when neither the suite nor `--backend` names any: the three worlds.
    /// `qemu-tcg` is asked for by name (emulation is slow).
    pub const DEFAULT: [BackendKind; 3] =
        [BackendKind::Native, BackendKind::Container, BackendKind::Vm];

    /// The name used on the command line, in files and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Native => "native",
            BackendKind::Container => "container",
            BackendKind::Vm => "vm",
            BackendKind::QemuTcg => "qemu-tcg",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Resources one sandbox gets. The container's cgroup limits and the VM's size are set from the
/// same values, so the comparison is fair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxLimits {
    /// Memory limit (container) or guest RAM (VM), MiB.
    pub memory_mib: u64,
    /// CPU limit in cores (container) or vCPUs (VM).
    pub vcpus: u32,
    /// Process limit (container pids controller).
    pub pids_max: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_mib: 512,
            vcpus: 1,
            pids_max: 256,
        }
    }
}

/// What a backend gets once, before its first trial.
#[derive(Debug, Clone, Default)]
pub struct PrepareContext {
    /// The static agent binary.
    pub agent: PathBuf,
    /// A directory the backend may use for its own files during the run (rootfs, images, logs).
    /// It is inside the run's work area and removed after the run.
    pub work_dir: PathBuf,
    /// Host directory on the filesystem that holds I/O targets (the container bind-mounts it; the
    /// VM's disk image lives here), so the I/O comparison is fair.
    pub io_scratch_dir: PathBuf,
    /// Sandbox size.
    pub limits: SandboxLimits,
    /// A trial taking longer than this is killed and reported as failed.
    pub trial_timeout: Duration,
    /// Show the sandbox's console live (VM serial console, agent stderr).
    pub live_console: bool,
    /// The run's state folder (fresh, mode 0700, removed after the run): the container's rootfs.
    pub state_dir: PathBuf,
    /// The run's cgroup: every trial of every backend goes below it as a sibling with the same
    /// CPU weight (layout: [`container_backend::cgroups::run`]); a VMM process goes there too,
    /// with the sandbox size plus a recorded allowance as its memory limit. `None` when isolab
    /// cannot create cgroups (unprivileged), or in tests.
    pub run_cgroup: Option<Arc<container_backend::RunCgroup>>,
    /// The run's lab network (its peer and namespace), when a network workload is planned.
    pub lab: Option<Arc<crate::lab_net::LabNet>>,
    /// Why there is no lab network although a network workload is planned (its trials fail with
    /// this reason; the other workloads run).
    pub lab_unavailable: Option<String>,
}

/// One trial: run this spec once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Position in the plan (0-based).
    pub index: usize,
    /// Repetition number (0-based), or the warm-up round number for warm-up trials.
    pub repetition: u32,
    /// Warm-up trials are stored but left out of summaries.
    pub warmup: bool,
    /// What the agent runs. For I/O workloads the harness has already pointed the path at
    /// [`PrepareContext::io_scratch_dir`]; a backend that exposes the scratch area elsewhere
    /// (container mount point, VM block device) rewrites it with `Workload::set_io_path`.
    pub spec: WorkloadSpec,
}

/// One point on a trial's timeline: a named phase boundary on the host clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Phase name, e.g. `clone_returned`, `agent_ready`, `first_kvm_run`.
    pub name: String,
    /// Nanoseconds since the trial started (host CLOCK_MONOTONIC).
    pub at_ns: u64,
}

/// The phases of one trial, in time order.
pub type Timeline = Vec<Phase>;

/// Why a trial produced no valid result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TrialFailure {
    /// The backend cannot run on this host at all; the whole backend is skipped.
    Unavailable {
        /// What is missing.
        reason: String,
        /// How to get it.
        fix: String,
    },
    /// The trial ran past its timeout and was killed.
    Timeout {
        /// The limit that was hit, seconds.
        after_s: f64,
    },
    /// The kernel's OOM killer (or the cgroup) killed the agent.
    OutOfMemory,
    /// The agent or guest ended without a valid result.
    Crashed {
        /// Exit status, signal or guest panic, and the last lines of its output.
        reason: String,
    },
    /// The agent reported that the workload failed (bad parameter, missing I/O target, ...).
    WorkloadError {
        /// The agent's message.
        message: String,
    },
}

impl std::fmt::Display for TrialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrialFailure::Unavailable { reason, fix } => write!(f, "unavailable: {reason} ({fix})"),
            TrialFailure::Timeout { after_s } => write!(f, "killed: timeout after {after_s:.1} s"),
            TrialFailure::OutOfMemory => f.write_str("killed: out of memory"),
            TrialFailure::Crashed { reason } => write!(f, "crashed: {reason}"),
            TrialFailure::WorkloadError { message } => write!(f, "workload failed: {message}"),
        }
    }
}

/// What one trial produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialOutcome {
    /// The agent's result, or why there is none.
    pub result: Result<WorkloadResult, TrialFailure>,
    /// Host-clock phases. Every backend records at least `start` (0), `agent_ready`,
    /// `workload_start`, `workload_end`, `exited` and `cleaned_up` when it got that far.
    pub timeline: Timeline,
    /// Host-side measurements as metrics, names prefixed `host.` (e.g. `host.peak_rss`,
    /// `host.cpu_user`, `host.start_to_ready`), so the summary treats them like the agent's. A
    /// memory metric is named after its meter (`host.peak_rss` natively, `host.cgroup_*` for the
    /// container's cgroup, `host.guest_ram_touched` and `host.vmm_overhead` for the VM): they are
    /// different meters and never one quantity across backends (`isolab density` measures that).
    pub host_metrics: Vec<Metric>,
    /// The last lines of the sandbox's console or stderr, for failure reports and logs.
    pub log_tail: String,
    /// True when the trial ran in an emulated machine: correctness only, no performance claim.
    pub emulated: bool,
}

/// The outcome of a network workload's trial when the run has no lab network: `why` says what
/// went wrong and how to fix it.
pub fn no_lab_outcome(why: Option<&str>) -> TrialOutcome {
    TrialOutcome {
        result: Err(TrialFailure::WorkloadError {
            message: format!(
                "a network workload needs the run's lab network and its peer, which could not be \
                 made: {}",
                why.unwrap_or("this backend was prepared without one")
            ),
        }),
        timeline: Vec::new(),
        host_metrics: Vec::new(),
        log_tail: String::new(),
        emulated: false,
    }
}

/// Errors preparing or cleaning up a backend. Messages say what to do.
#[derive(Debug, Error)]
pub enum BackendError {
    /// The backend cannot work on this host.
    #[error("the {backend} backend is unavailable: {reason}. Fix: {fix}")]
    Unavailable {
        /// Which backend.
        backend: BackendKind,
        /// What is missing.
        reason: String,
        /// What to do.
        fix: String,
    },
    /// Preparation failed.
    #[error("preparing the {backend} backend failed: {message}")]
    Prepare {
        /// Which backend.
        backend: BackendKind,
        /// What failed and what to do.
        message: String,
    },
    /// Cleanup failed: something may be left behind.
    #[error("cleaning up the {backend} backend failed: {message}. Run `isolab doctor --clean`")]
    Cleanup {
        /// Which backend.
        backend: BackendKind,
        /// What could not be removed.
        message: String,
    },
}

/// A place trials can run.
///
/// The harness calls [`Backend::prepare`] once, then [`Backend::run_trial`] for each trial (in an
/// order interleaved with other backends), then [`Backend::cleanup`] (also after Ctrl-C).
pub trait Backend {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Prepares what every trial shares (rootfs, guest image, kernel). Called once.
    fn prepare(&mut self, ctx: &PrepareContext) -> Result<(), BackendError>;

    /// Facts about how this backend runs, for the manifest (kernel, disk, cgroup version, ...),
    /// after [`Backend::prepare`]. The default has none.
    fn facts(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::new()
    }

    /// Called once after [`Backend::prepare`] with every trial this backend will be asked to
    /// run, in plan order. A backend that must run its trials as one batch (the VM inside the
    /// emulated machine, which takes minutes to boot) runs them here and hands the outcomes out
    /// from [`Backend::run_trial`]. The default does nothing.
    fn plan_trials(&mut self, trials: &[Trial]) -> Result<(), BackendError> {
        let _ = trials;
        Ok(())
    }

    /// Runs one trial. Never panics on what a workload or guest does; failures are outcomes.
    fn run_trial(&mut self, trial: &Trial) -> TrialOutcome;

    /// Removes everything the backend created. Safe to call more than once.
    fn cleanup(&mut self) -> Result<(), BackendError>;
}
