//! What a density run stores: `results/<run-id>/manifest.json` (the run's settings and host,
//! `"kind": "density"`), `rounds.jsonl` (one line per round of one backend at one N, appended and
//! flushed when the round ends: every reading, every instance's start, the teardown) and
//! `instances.log` (the instances' stderr, empty when all went well). `isolab report` recomputes
//! the summary from these files.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::instance::Kind;
use super::ksm::{KsmMode, KsmSettled, KsmState};
use super::limits::Limit;
use super::meter::{Meminfo, Reading};
use crate::backend::SandboxLimits;
use crate::manifest::{HostInfo, RunStatus};
use crate::store::StoreError;

/// File name of the rounds.
pub const ROUNDS_FILE: &str = "rounds.jsonl";
/// File name of the instances' stderr.
pub const LOG_FILE: &str = "instances.log";
/// The manifest's `kind`.
pub const DENSITY_KIND: &str = "density";

/// How many instances start at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parallel {
    /// At most this many started and not yet ready (1: one after another).
    At(usize),
    /// All N at once: the boot storm.
    All,
}

impl Parallel {
    /// The in-flight limit for N instances.
    pub fn for_count(self, n: usize) -> usize {
        match self {
            Parallel::At(p) => p.clamp(1, n.max(1)),
            Parallel::All => n.max(1),
        }
    }

    /// As written on the command line.
    pub fn text(self) -> String {
        match self {
            Parallel::At(p) => p.to_string(),
            Parallel::All => "all".into(),
        }
    }
}

/// Why a backend did not go on to larger N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// The backend.
    pub backend: Kind,
    /// The N it stopped at (not run, or run only in part).
    pub count: usize,
    /// `refused` (the estimate would eat the headroom), `floor` (MemAvailable fell below the
    /// floor while starting), `limit` (a host limit), `failed` (instances did not start),
    /// `interrupted` (Ctrl-C), `unavailable` (the backend cannot run here).
    pub kind: String,
    /// What happened, with the figures.
    pub reason: String,
    /// The host limit, when one stopped it.
    pub limit: Option<Limit>,
}

/// A backend as the run saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendEntry {
    /// Which.
    pub backend: Kind,
    /// Whether its instances ran.
    pub available: bool,
    /// Why not.
    pub note: Option<String>,
    /// Facts (cgroup version, seccomp, limits).
    pub facts: BTreeMap<String, String>,
}

/// The manifest of a density run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensityManifest {
    /// Always [`DENSITY_KIND`]: tells a density run from an `isolab run` run.
    pub kind: String,
    /// The run's id (its folder's name).
    pub run_id: String,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339.
    pub ended_at: Option<String>,
    /// Wall time, s.
    pub wall_s: Option<f64>,
    /// How it ended.
    pub status: RunStatus,
    /// isolab's version.
    pub isolab_version: String,
    /// The git commit isolab was built from.
    pub git_commit: String,
    /// The command line.
    pub command: Vec<String>,
    /// SHA-256 of the agent.
    pub agent_sha256: String,
    /// The host.
    pub host: HostInfo,
    /// Backends asked for, in order (the floor included when it runs).
    pub backends: Vec<BackendEntry>,
    /// The N list, ascending.
    pub counts: Vec<usize>,
    /// Rounds per N.
    pub rounds: u32,
    /// How many start at once.
    pub parallel: Parallel,
    /// Each instance's working set, KiB (0: idle).
    pub working_set_kib: u64,
    /// Instances started one at a time beside N running, per round.
    pub beside: u32,
    /// Headroom for the headline "instances that fit", percent of MemTotal.
    pub headroom_pct: f64,
    /// Stop adding instances when MemAvailable falls below this, percent of MemTotal.
    pub floor_pct: f64,
    /// Seconds instances settle before the host is read.
    pub settle_s: f64,
    /// `--ksm`.
    pub ksm: KsmMode,
    /// KSM as the host had it before the run (`None`: no KSM in this kernel).
    pub ksm_host: Option<KsmState>,
    /// The container's sandbox size (limits of its cgroup).
    pub limits: SandboxLimits,
    /// The open-files limit isolab ran with (soft, hard).
    pub open_files: (u64, u64),
    /// Why backends stopped before the largest N.
    pub stops: Vec<Stop>,
    /// The places the run made on the host (its folders and cgroups, as its registry entry
    /// recorded them), all removed when it ended.
    #[serde(default)]
    pub places: Vec<PathBuf>,
}

/// One instance's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRecord {
    /// From the start of its start call to its `Waiting` marker read by isolab, ms; `None` if it
    /// never got there.
    pub ready_ms: Option<f64>,
    /// From the beginning of the whole storm to its ready, ms (queueing included).
    pub since_storm_ms: Option<f64>,
    /// Its start phases, ms after its start began.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<(String, f64)>,
    /// Why it did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The cgroups' view of N containers, summed: what their memory cgroups charge now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupTotals {
    /// `memory.usage_in_bytes` / `memory.current`, KiB.
    pub charged_kib: u64,
    /// memory.stat anon, KiB.
    pub anon_kib: u64,
    /// memory.stat file (page cache), KiB.
    pub file_kib: u64,
    /// Kernel memory charged, KiB.
    pub kernel_kib: u64,
}

/// One VM's memory as its VMM process holds it: the proportional set size of its guest RAM
/// mappings and of everything else (`/proc/PID/smaps`, split by the guest RAM ranges the VMM
/// reported), KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmMemory {
    /// Guest RAM the guest (and the loader) touched.
    pub guest_ram_kib: u64,
    /// The VMM's own memory: its code, heap, stacks, device buffers.
    pub vmm_overhead_kib: u64,
}

/// N VMs' memory, summed, KiB: their VMM processes' PSS split by guest RAM and the rest, and what
/// the guests said from inside (each agent's `/proc/meminfo` when it got ready).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmMemoryTotals {
    /// VMs whose VMM process was measured.
    pub vms: usize,
    /// Guest RAM touched, summed ([`VmMemory::guest_ram_kib`]).
    pub guest_ram_kib: u64,
    /// The VMMs' own memory, summed ([`VmMemory::vmm_overhead_kib`]).
    pub vmm_overhead_kib: u64,
    /// Guests that reported their memory from inside.
    #[serde(default)]
    pub inside_vms: usize,
    /// Their `MemTotal`, summed: the RAM each guest kernel manages (its RAM minus what it
    /// reserved at boot: its own image, the page structures).
    #[serde(default)]
    pub guest_total_kib: u64,
    /// Their `MemTotal − MemAvailable`, summed: what each guest's kernel and agent use inside.
    #[serde(default)]
    pub guest_used_kib: u64,
}

impl VmMemoryTotals {
    /// Adds one VM's host-side split.
    pub fn add(&mut self, m: VmMemory) {
        self.vms += 1;
        self.guest_ram_kib += m.guest_ram_kib;
        self.vmm_overhead_kib += m.vmm_overhead_kib;
    }

    /// Adds one guest's view from inside.
    pub fn add_inside(&mut self, inside: workloads::result::MemoryInside) {
        self.inside_vms += 1;
        self.guest_total_kib += inside.mem_total_kib;
        self.guest_used_kib += inside
            .mem_total_kib
            .saturating_sub(inside.mem_available_kib);
    }
}

/// One round of one backend at one N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// The backend.
    pub backend: Kind,
    /// N asked for.
    pub count: usize,
    /// Round number (0-based).
    pub round: u32,
    /// Instances started at once (in flight).
    pub parallel: usize,
    /// Instances that were ready when the host was read.
    pub ready: usize,
    /// The host just before the first start.
    pub baseline: Reading,
    /// The host with the instances up and settled; `None` if none got ready.
    pub loaded: Option<Reading>,
    /// The host after the teardown, once MemAvailable was back (or the wait ended): with the
    /// baseline it gives the host's own drift during the round.
    #[serde(default)]
    pub after: Option<Reading>,
    /// Seconds waited for the instances to settle.
    pub settled_s: f64,
    /// PSS of every process of every ready instance, KiB, in instance order.
    pub pss_kib: Vec<u64>,
    /// Anonymous memory of every process of every ready instance, KiB, summed: with the growth of
    /// the host's AnonPages it tells how much the *other* processes of the host moved meanwhile
    /// (the noise a shared host puts on the drop).
    #[serde(default)]
    pub instances_anon_kib: Option<u64>,
    /// Their cgroups' view, summed (containers only).
    pub cgroup: Option<CgroupTotals>,
    /// The VMs' memory split, summed (VMs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_memory: Option<VmMemoryTotals>,
    /// KSM's counters just before the first start (`--ksm on`): they are host-wide, so what
    /// the instances brought is the growth from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ksm_before: Option<KsmState>,
    /// KSM after it settled (`--ksm on`).
    pub ksm: Option<KsmSettled>,
    /// Every instance's start, in start order.
    pub starts: Vec<StartRecord>,
    /// From the first start to the last ready, ms.
    pub storm_ms: Option<f64>,
    /// Starts of one more instance beside the N running, ms each.
    pub beside_ms: Vec<f64>,
    /// From the first kill to the last reap with every cgroup removed, ms.
    pub teardown_ms: Option<f64>,
    /// From the end of the teardown until MemAvailable was back at its baseline, ms; `None` if it
    /// was not back within the wait (see `recovery_short_kib`).
    pub recovery_ms: Option<f64>,
    /// How far MemAvailable was still below its baseline when the wait ended, KiB.
    pub recovery_short_kib: Option<i64>,
    /// What the teardown left behind (must be empty).
    pub left_behind: Vec<String>,
    /// Why the round ended early.
    pub stopped: Option<Stop>,
}

impl RoundRecord {
    /// A round of `count` instances of `backend` that has its baseline and nothing else yet.
    pub fn empty(
        backend: Kind,
        count: usize,
        round: u32,
        parallel: usize,
        baseline: Reading,
    ) -> Self {
        Self {
            backend,
            count,
            round,
            parallel,
            ready: 0,
            baseline,
            loaded: None,
            after: None,
            settled_s: 0.0,
            pss_kib: Vec::new(),
            instances_anon_kib: None,
            cgroup: None,
            vm_memory: None,
            ksm_before: None,
            ksm: None,
            starts: Vec::new(),
            storm_ms: None,
            beside_ms: Vec::new(),
            teardown_ms: None,
            recovery_ms: None,
            recovery_short_kib: None,
            left_behind: Vec::new(),
            stopped: None,
        }
    }

    /// What `field` of the host would have read when the loaded host was read, had no instance
    /// run: the straight line from the reading before the round to the one after it (a shared
    /// host drifts by megabytes a second while others build), or the reading before alone when
    /// there is none after.
    pub fn expected_kib(&self, field: fn(&Meminfo) -> u64) -> Option<f64> {
        let l = self.loaded.as_ref()?;
        let b = &self.baseline;
        let fb = field(&b.meminfo) as f64;
        match &self.after {
            Some(a) if a.samples > 0 && a.at_s > b.at_s && b.at_s > 0.0 => {
                let t = ((l.at_s - b.at_s) / (a.at_s - b.at_s)).clamp(0.0, 1.0);
                Some(fb + (field(&a.meminfo) as f64 - fb) * t)
            }
            _ => Some(fb),
        }
    }

    /// How much `field` grew with the instances up, KiB (drift taken out).
    pub fn delta_kib(&self, field: fn(&Meminfo) -> u64) -> Option<f64> {
        let l = self.loaded.as_ref()?;
        Some(field(&l.meminfo) as f64 - self.expected_kib(field)?)
    }

    /// MemAvailable's drop with the instances up, KiB, the host's drift taken out (negative when
    /// the host gave back more than the instances took).
    pub fn drop_kib(&self) -> Option<i64> {
        Some((-self.delta_kib(|m| m.mem_available)?).round() as i64)
    }

    /// How much the anonymous memory of the host's other processes grew during the round, KiB
    /// (drift taken out): the host's AnonPages growth minus the instances' own. Large against
    /// the drop means the round measured the rest of the host as much as the instances.
    pub fn others_anon_kib(&self) -> Option<f64> {
        Some(self.delta_kib(|m| m.anon)? - self.instances_anon_kib? as f64)
    }

    /// The drop against the reading before alone, KiB (drift left in).
    pub fn raw_drop_kib(&self) -> Option<i64> {
        let l = self.loaded.as_ref()?;
        Some(self.baseline.meminfo.mem_available as i64 - l.meminfo.mem_available as i64)
    }

    /// Sum of the instances' PSS, KiB.
    pub fn pss_total_kib(&self) -> Option<u64> {
        (!self.pss_kib.is_empty()).then(|| self.pss_kib.iter().sum())
    }
}

/// Appends rounds to `rounds.jsonl`.
#[derive(Debug)]
pub struct RoundWriter {
    dir: PathBuf,
    file: File,
}

impl RoundWriter {
    /// Creates `out/run_id/` with an empty rounds file.
    pub fn create(out: &Path, run_id: &str) -> Result<Self, StoreError> {
        let dir = out.join(run_id);
        if dir.exists() {
            return Err(StoreError::Exists(dir));
        }
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::NotWritable {
            path: out.to_path_buf(),
            source,
        })?;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join(ROUNDS_FILE))
            .map_err(|source| StoreError::NotWritable {
                path: dir.clone(),
                source,
            })?;
        Ok(Self { dir, file })
    }

    /// The run folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one round as one line, flushed to the disk.
    pub fn append(&mut self, round: &RoundRecord) -> Result<(), StoreError> {
        let path = self.dir.join(ROUNDS_FILE);
        let mut line = serde_json::to_vec(round).map_err(|e| StoreError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| StoreError::Write { path, source })
    }

    /// Writes (or rewrites) the manifest atomically.
    pub fn write_manifest(&self, m: &DensityManifest) -> Result<(), StoreError> {
        write_json_atomically(&self.dir, crate::store::MANIFEST_FILE, m)
    }
}

fn write_json_atomically<T: Serialize>(dir: &Path, name: &str, v: &T) -> Result<(), StoreError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let err = |source| StoreError::Write {
        path: path.clone(),
        source,
    };
    let text = serde_json::to_string_pretty(v).map_err(|e| err(std::io::Error::other(e)))?;
    std::fs::write(&tmp, text + "\n").map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// A density run read back.
#[derive(Debug, Clone)]
pub struct DensityRun {
    /// Its folder.
    pub dir: PathBuf,
    /// The manifest.
    pub manifest: DensityManifest,
    /// Every round, in the order run.
    pub rounds: Vec<RoundRecord>,
    /// Whether the last line was torn (killed mid-write) and skipped.
    pub torn_tail: bool,
}

/// Whether `dir` holds a density run (its manifest says so).
pub fn is_density_run(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(crate::store::MANIFEST_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some(DENSITY_KIND))
}

/// Reads a density run. A torn last line is skipped and reported; damage elsewhere is an error.
pub fn load(dir: &Path) -> Result<DensityRun, StoreError> {
    let mpath = dir.join(crate::store::MANIFEST_FILE);
    let text = std::fs::read_to_string(&mpath).map_err(|e| StoreError::NotARun {
        path: dir.to_path_buf(),
        what: format!("{}: {e}", crate::store::MANIFEST_FILE),
    })?;
    let manifest: DensityManifest =
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: mpath.clone(),
            line: e.line(),
            why: e.to_string(),
        })?;
    let rpath = dir.join(ROUNDS_FILE);
    let file = File::open(&rpath).map_err(|e| StoreError::NotARun {
        path: dir.to_path_buf(),
        what: format!("{ROUNDS_FILE}: {e}"),
    })?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::Corrupt {
            path: rpath.clone(),
            line: 0,
            why: e.to_string(),
        })?;
    let mut rounds = Vec::new();
    let mut torn_tail = false;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RoundRecord>(line) {
            Ok(r) => rounds.push(r),
            Err(_) if i + 1 == lines.len() => torn_tail = true,
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path: rpath,
                    line: i + 1,
                    why: e.to_string(),
                })
            }
        }
    }
    Ok(DensityRun {
        dir: dir.to_path_buf(),
        manifest,
        rounds,
        torn_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(available: u64, anon: u64, at_s: f64) -> Reading {
        Reading {
            meminfo: Meminfo {
                mem_available: available,
                anon,
                ..Meminfo::default()
            },
            available_range: (available, available),
            samples: 5,
            at_s,
        }
    }

    fn round(loaded: Option<Reading>, after: Option<Reading>) -> RoundRecord {
        RoundRecord {
            ready: 10,
            loaded,
            after,
            pss_kib: vec![100; 10],
            instances_anon_kib: Some(120),
            ..RoundRecord::empty(Kind::Native, 10, 0, 1, reading(10_000, 500, 10.0))
        }
    }

    #[test]
    fn the_hosts_drift_between_before_and_after_is_taken_out() {
        // The host gives back 100 KiB a second on its own; the instances take 150 KiB.
        let r = round(
            Some(reading(10_200 - 150, 500 + 150, 12.0)),
            Some(reading(10_400, 500, 14.0)),
        );
        assert_eq!(r.raw_drop_kib(), Some(-50), "the drift hides the instances");
        assert_eq!(r.drop_kib(), Some(150));
        assert_eq!(r.delta_kib(|m| m.anon), Some(150.0));
        assert_eq!(r.others_anon_kib(), Some(30.0));
        // Without a reading after, the reading before is all there is.
        let r = round(Some(reading(9_850, 650, 12.0)), None);
        assert_eq!(r.drop_kib(), Some(150));
        assert_eq!(r.pss_total_kib(), Some(1000));
        assert_eq!(round(None, None).drop_kib(), None);
    }
}
