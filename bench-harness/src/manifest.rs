//! The manifest of a run: everything that can change a result, recorded next to the samples.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::factors::Column;
use crate::host::{self, CgroupLayout, KvmFlavour, Platform};
use crate::suite::Suite;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still running (or killed without a chance to say so).
    Running,
    /// Every planned trial ran.
    Complete,
    /// Stopped by Ctrl-C; the samples so far are valid.
    Interrupted,
    /// Stopped by an error in the harness.
    Failed,
}

/// The host a run was made on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name.
    pub hostname: String,
    /// `uname -r`.
    pub kernel: String,
    /// CPU model name.
    pub cpu_model: String,
    /// CPUs available.
    pub cores: usize,
    /// MemTotal, MiB.
    pub memory_mib: u64,
    /// Frequency governor, if readable.
    pub cpu_governor: Option<String>,
    /// KVM flavour.
    pub kvm: KvmFlavour,
    /// cgroup layout.
    pub cgroups: CgroupLayout,
    /// boot_id of the host kernel.
    pub boot_id: String,
    /// Microcode, mitigations, boost, SMT, NUMA, THP, KSM, the kernel command line, clock
    /// source. `None` in runs made before isolab recorded them.
    #[serde(default)]
    pub platform: Option<Platform>,
}

impl HostInfo {
    /// Reads this host.
    pub fn collect() -> Self {
        Self {
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kernel: host::kernel_release(),
            cpu_model: host::cpu_model(),
            cores: host::cores(),
            memory_mib: host::meminfo_kib("MemTotal").unwrap_or(0) / 1024,
            cpu_governor: host::cpu_governor(),
            kvm: host::kvm_flavour(),
            cgroups: host::cgroup_layout(),
            boot_id: host::boot_id(),
            platform: Some(Platform::collect()),
        }
    }
}

/// What a backend said about itself at the start of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendState {
    /// Whether its trials ran.
    pub available: bool,
    /// Why not, and the fix.
    pub note: Option<String>,
    /// Extra facts the backend reports (kernel image hash, rootfs, ...).
    #[serde(default)]
    pub facts: BTreeMap<String, String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Run identifier (the directory name).
    pub run_id: String,
    /// UTC start time.
    pub started_at: String,
    /// UTC end time, when it ended.
    pub ended_at: Option<String>,
    /// Wall time of the whole run, seconds.
    pub wall_s: Option<f64>,
    /// How it ended.
    pub status: RunStatus,
    /// isolab's version.
    pub isolab_version: String,
    /// Git commit the harness was built from (`-dirty` if the tree had changes).
    pub git_commit: String,
    /// The command line.
    pub command: Vec<String>,
    /// SHA-256 of the agent binary.
    pub agent_sha256: String,
    /// Where the agent was.
    pub agent_path: String,
    /// The host.
    pub host: HostInfo,
    /// The suite as run (after command-line overrides).
    pub suite: Suite,
    /// Seed of the backend shuffle.
    pub seed: u64,
    /// Trials planned.
    pub planned_trials: usize,
    /// Per backend: available or why not (with factors: its first column's state; every
    /// column's own is in `columns`).
    pub backends: BTreeMap<String, BackendState>,
    /// The run's columns (backend plus factor values) in plan order, each with its backend
    /// instance's state. Empty in runs made before factors existed (one column per backend).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnState>,
    /// How `--until-ci` went, when it was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ci: Option<UntilCiOutcome>,
    /// The run's lab network, when a network workload made one: its subnet, the namespace's
    /// inode and the peer's pid (for checking afterwards that nothing of it is left).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lab_network: BTreeMap<String, String>,
}

/// One column of a run and how its backend instance fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnState {
    /// The column.
    #[serde(flatten)]
    pub column: Column,
    /// Its backend instance was prepared and its trials ran.
    pub available: bool,
    /// Why not, and the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What its backend said about itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
}

/// Why `--until-ci` stopped adding repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Still adding (or killed without a chance to say).
    Running,
    /// Every headline interval met the rule.
    Converged,
    /// The repetition cap was reached first.
    RepetitionCap,
    /// Another round would have run past the wall-clock cap.
    WallCap,
    /// Ctrl-C.
    Interrupted,
}

impl StopReason {
    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Running => "still running or killed",
            StopReason::Converged => "every headline interval met the rule",
            StopReason::RepetitionCap => "stopped at the repetition cap",
            StopReason::WallCap => "stopped at the wall-clock cap",
            StopReason::Interrupted => "interrupted by Ctrl-C",
        }
    }
}

/// What `--until-ci` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UntilCiOutcome {
    /// The rule: intervals within this many percent of their median.
    pub rule_pct: f64,
    /// The repetition cap.
    pub max_reps: u32,
    /// The wall-clock cap, seconds.
    pub max_wall_s: f64,
    /// Rounds added after the suite's repetitions.
    pub extra_rounds: u32,
    /// Measured repetitions planned per workload (its name), suite's and added ones.
    pub repetitions: BTreeMap<String, u32>,
    /// Why it stopped.
    pub stopped: StopReason,
}

/// SHA-256 of a file, hex; `"unreadable"` if it cannot be read.
pub fn file_sha256(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        Err(_) => "unreadable".into(),
    }
}

/// The harness's git commit, recorded at build time.
pub const GIT_COMMIT: &str = env!("ISOLAB_GIT_COMMIT");
