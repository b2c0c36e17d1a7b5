//! Where a run keeps its files and what it creates on the host, recorded when the run starts so
//! that nothing it made can outlive it unnoticed, and nothing it did not make is ever touched.
//!
//! A run makes, and records in its registry entry before it uses them:
//!
//! - **the run folder** `<io-dir>/isolab-<12 random characters>`, mode 0700, made fresh (an
//!   existing path is never accepted: `mkdir` fails on it and another name is drawn), holding
//!   `io/` (the I/O workloads' targets, the container's `/scratch`, the VM's disk images) and
//!   `work/` (backend work files). Nobody else can create, rename or link anything in it, so
//!   what isolab writes there cannot be redirected; files in it are still created with
//!   `O_EXCL | O_NOFOLLOW`;
//! - **the state folder** `/run/isolab/state-<random>`, mode 0700: the container's rootfs;
//! - **the run's cgroup** `isolab-run-<id>` (the run folder's random part) in every hierarchy (see
//!   [`container_backend::cgroups::run`] for the layout): every trial, native or container, is a
//!   sibling below it with the same CPU weight.
//!
//! The registry is `/run/isolab/runs/` (root's, 0700): one JSON file per live run, naming its
//! owner (pid and the pid's start time, so a reused pid is not mistaken for the owner) and its
//! places. A run removes its places and its entry when it ends, also on Ctrl-C, SIGTERM and
//! SIGHUP. After a `kill -9`, the next `isolab run` and `isolab doctor --clean` find the entry of
//! a dead owner and remove exactly the recorded places (a folder only if it still is a directory
//! owned by isolab's user with the recorded name; a cgroup only if its name is a run cgroup's).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use container_backend::{CgroupSettings, RunCgroup, RUN_CGROUP_PREFIX};
use rand::Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where registry entries live when isolab runs as root.
pub const DEFAULT_REGISTRY: &str = "/run/isolab/runs";
/// Where state folders live when isolab runs as root.
pub const DEFAULT_STATE_PARENT: &str = "/run/isolab";

/// Where a run's registry and state folders live: `/run/isolab` for root; for another user their
/// private runtime folder (`$XDG_RUNTIME_DIR/isolab`), else `~/.cache/isolab/run`.
pub fn default_base() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from(DEFAULT_STATE_PARENT);
    }
    match (
        std::env::var_os("XDG_RUNTIME_DIR"),
        std::env::var_os("HOME"),
    ) {
        (Some(d), _) if !d.is_empty() => PathBuf::from(d).join("isolab"),
        (_, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".cache/isolab/run"),
        _ => std::env::temp_dir().join(format!("isolab-{}", nix::unistd::geteuid())),
    }
}
/// Prefix of run folders (`<io-dir>/isolab-…`) and state folders.
pub const RUN_FOLDER_PREFIX: &str = "isolab-";
const STATE_FOLDER_PREFIX: &str = "state-";

/// Why the run's places could not be made.
#[derive(Debug, Error)]
pub enum PlacesError {
    /// A folder could not be created or checked.
    #[error("{what} {path}: {why}")]
    Folder {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What went wrong and what to do.
        why: String,
    },
}

/// A run's registry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique among all runs, also those started in the same second: the random part of the run
    /// folder's name. Names the entry (`<id>.json`) and the run's cgroup (`isolab-run-<id>`).
    pub id: String,
    /// The run's id (its results folder's name; two runs with different `--out` may share it).
    pub run_id: String,
    /// The isolab process that owns the run.
    pub pid: i32,
    /// That process's start time (field 22 of /proc/PID/stat), against pid reuse.
    pub pid_start: u64,
    /// Folders the run made (removed whole).
    pub folders: Vec<PathBuf>,
    /// cgroup directories the run made (removed with everything below them).
    pub cgroups: Vec<PathBuf>,
    /// Host-wide settings the run changed, with the host's own values to put back (KSM's
    /// switch, for `isolab density --ksm`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore: Vec<HostSetting>,
    /// Processes the run started outside its cgroup (the lab network's peer, whose namespace
    /// ends with it): killed if they are still the same processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<RecordedProcess>,
}

/// A host-wide setting and the value to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSetting {
    /// The file (under one of [`RESTORABLE`]).
    pub path: PathBuf,
    /// The host's value before the run changed it.
    pub value: String,
}

/// The only folders whose files a run may change and the cleaner puts back: a registry entry
/// naming anything else is not isolab's doing and is left alone.
pub const RESTORABLE: &[&str] = &["/sys/kernel/mm/ksm/"];

/// Puts back the recorded settings under `allowed`; returns what was restored and what not.
fn restore_settings(settings: &[HostSetting], allowed: &[&str]) -> (Vec<PathBuf>, Vec<String>) {
    let (mut done, mut kept) = (Vec::new(), Vec::new());
    for s in settings {
        if !allowed.iter().any(|a| s.path.starts_with(a)) {
            kept.push(format!(
                "{}: not a setting isolab changes, left alone",
                s.path.display()
            ));
            continue;
        }
        match std::fs::write(&s.path, &s.value) {
            Ok(()) => done.push(s.path.clone()),
            Err(e) => kept.push(format!(
                "{}: putting back {:?} failed: {e}",
                s.path.display(),
                s.value.trim()
            )),
        }
    }
    (done, kept)
}

/// A process a run started, by pid and start time (a reused pid is never taken for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProcess {
    /// What it is, for messages.
    pub what: String,
    /// Its pid.
    pub pid: i32,
    /// Its start time (field 22 of /proc/PID/stat).
    pub pid_start: u64,
}

impl RecordedProcess {
    /// Kills it if it is still the process recorded; `true` if it was (and now is killed).
    fn kill_if_same(&self) -> bool {
        if pid_start_time(self.pid) != Some(self.pid_start) {
            return false;
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .is_ok()
    }
}

/// The registry of live runs.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Default for Registry {
    /// `runs/` in [`default_base`].
    fn default() -> Self {
        Self::at(default_base().join("runs"))
    }
}

/// A random name part: 12 characters of [a-z0-9], about 62 bits.
fn random_suffix() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// Makes `parent/<prefix><random>` fresh with mode 0700; never accepts an existing path.
pub fn make_fresh_folder(parent: &Path, prefix: &str) -> Result<PathBuf, PlacesError> {
    let mut last = None;
    for _ in 0..16 {
        let path = parent.join(format!("{prefix}{}", random_suffix()));
        match make_private_folder(&path) {
            Ok(()) => return Ok(path),
            Err(Taken(e)) => last = Some(e),
            Err(Failed(e)) => return Err(e),
        }
    }
    Err(PlacesError::Folder {
        what: "creating a fresh folder in",
        path: parent.to_path_buf(),
        why: format!("16 random names were all taken ({last:?}); something is filling it"),
    })
}

/// Why [`make_private_folder`] did not make a folder.
enum MakeError {
    /// The path exists (whatever it is, it is not adopted).
    Taken(std::io::Error),
    /// Anything else.
    Failed(PlacesError),
}
use MakeError::{Failed, Taken};

/// Makes `path` with mode 0700, refusing an existing path.
fn make_private_folder(path: &Path) -> Result<(), MakeError> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => check_own_dir(path).map_err(Failed),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Taken(e)),
        Err(e) => Err(Failed(PlacesError::Folder {
            what: "creating",
            path: path.to_path_buf(),
            why: format!("{e}; pass a writable folder on a local disk with --io-dir"),
        })),
    }
}

/// A directory (not a symbolic link) owned by us with no permission for group or others.
fn check_own_dir(path: &Path) -> Result<(), PlacesError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| PlacesError::Folder {
        what: "checking",
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != euid || meta.mode() & 0o077 != 0 {
        return Err(PlacesError::Folder {
            what: "refusing",
            path: path.to_path_buf(),
            why: format!(
                "it must be a directory of uid {euid} with mode 0700 (found uid {}, mode {:o}, \
                 directory: {}); someone else made or changed it",
                meta.uid(),
                meta.mode() & 0o7777,
                meta.is_dir()
            ),
        });
    }
    Ok(())
}

/// Makes `dir` (and its parents) if missing and checks that it is a root-owned directory no one
/// else can write: the registry and the state folders must not be anybody else's.
fn ensure_private_parent(dir: &Path, mode: u32) -> Result<(), PlacesError> {
    let fail = |why: String| PlacesError::Folder {
        what: "using",
        path: dir.to_path_buf(),
        why,
    };
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| fail(e.to_string()))?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(fail(format!(
            "it must be a directory of uid {euid} that no one else can write (found uid {}, \
             mode {:o}); remove it and run again",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Field 22 of /proc/PID/stat: the process's start time in clock ticks after boot.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

impl RunRecord {
    /// Whether the process that owns the run is still running (same pid, same start time).
    pub fn owner_alive(&self) -> bool {
        pid_start_time(self.pid) == Some(self.pid_start)
    }
}

/// What cleaning one dead run did.
#[derive(Debug, Clone, Default)]
pub struct CleanedRun {
    /// The run.
    pub run_id: String,
    /// Its owner, gone.
    pub pid: i32,
    /// Places removed.
    pub removed: Vec<PathBuf>,
    /// Places left alone, with why (not ours any more, or removal failed).
    pub kept: Vec<String>,
}

/// What [`Registry::clean_dead`] found.
#[derive(Debug, Clone, Default)]
pub struct CleanReport {
    /// Runs whose owner was gone, cleaned.
    pub cleaned: Vec<CleanedRun>,
    /// Runs still running (left alone).
    pub live: Vec<String>,
}

impl Registry {
    /// A registry in `dir` (tests use their own).
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes (first time: creates exclusively) the entry of `record`.
    fn write(&self, record: &RunRecord, first: bool) -> Result<(), PlacesError> {
        let path = self.entry(&record.id);
        let fail = |e: &dyn std::fmt::Display| PlacesError::Folder {
            what: "recording the run in",
            path: path.clone(),
            why: e.to_string(),
        };
        let text = serde_json::to_vec_pretty(record).map_err(|e| fail(&e))?;
        let target = if first {
            path.clone()
        } else {
            path.with_extension("json.new")
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&target)
            .map_err(|e| fail(&e))?;
        f.write_all(&text)
            .and_then(|()| f.sync_data())
            .map_err(|e| fail(&e))?;
        if !first {
            std::fs::rename(&target, &path).map_err(|e| fail(&e))?;
        }
        Ok(())
    }

    /// Every entry (unreadable ones are skipped: they are not isolab's format).
    pub fn records(&self) -> Vec<(PathBuf, RunRecord)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let text = std::fs::read(e.path()).ok()?;
                Some((e.path(), serde_json::from_slice(&text).ok()?))
            })
            .collect()
    }

    /// Removes the recorded places of every run whose owner is gone, and their entries.
    pub fn clean_dead(&self) -> CleanReport {
        let mut report = CleanReport::default();
        for (entry, record) in self.records() {
            if record.owner_alive() {
                report.live.push(record.run_id.clone());
                continue;
            }
            let mut done = CleanedRun {
                run_id: record.run_id.clone(),
                pid: record.pid,
                ..CleanedRun::default()
            };
            // A removal that failed keeps the entry for the next try; a place that is not
            // isolab's any more is refused for good.
            let mut failed = false;
            let (restored, refused) = restore_settings(&record.restore, RESTORABLE);
            done.removed.extend(restored);
            done.kept.extend(refused);
            for p in &record.processes {
                if p.kill_if_same() {
                    done.removed
                        .push(PathBuf::from(format!("process {} ({})", p.pid, p.what)));
                }
            }
            // cgroups next: that ends any process of the run still alive.
            for cg in &record.cgroups {
                let ours = cg
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(RUN_CGROUP_PREFIX));
                if !ours {
                    done.kept
                        .push(format!("{}: not a run cgroup's name", cg.display()));
                } else if !cg.exists() {
                    continue;
                } else {
                    match container_backend::cgroups::run::remove_tree(cg) {
                        Ok(()) => done.removed.push(cg.clone()),
                        Err(e) => {
                            failed = true;
                            done.kept.push(format!("{}: {e}", cg.display()));
                        }
                    }
                }
            }
            for folder in &record.folders {
                match remove_recorded_folder(folder) {
                    Ok(true) => done.removed.push(folder.clone()),
                    Ok(false) => {}
                    Err((refused, why)) => {
                        failed |= !refused;
                        done.kept.push(format!("{}: {why}", folder.display()));
                    }
                }
            }
            if !failed {
                let _ = std::fs::remove_file(&entry);
                // An update the owner was killed in the middle of.
                let _ = std::fs::remove_file(entry.with_extension("json.new"));
            }
            report.cleaned.push(done);
        }
        report
    }
}

/// Removes a recorded folder if it is still what isolab made: a directory (not a link) of our
/// user named like a run or state folder. `Ok(false)`: already gone. `Err((refused, why))`:
/// refused (not isolab's) or failed.
fn remove_recorded_folder(folder: &Path) -> Result<bool, (bool, String)> {
    let meta = match std::fs::symlink_metadata(folder) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err((false, e.to_string())),
    };
    let named = folder
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(RUN_FOLDER_PREFIX) || n.starts_with(STATE_FOLDER_PREFIX));
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() || !named {
        return Err((
            true,
            "not a folder isolab made (type, owner or name differ): left alone".into(),
        ));
    }
    std::fs::remove_dir_all(folder).map_err(|e| (false, e.to_string()))?;
    Ok(true)
}

/// A run's places, made when it starts and removed when it ends (or dropped).
#[derive(Debug)]
pub struct RunPlaces {
    registry: Registry,
    record: RunRecord,
    /// `<run folder>/io`: I/O targets and the container's /scratch.
    pub io_dir: PathBuf,
    /// `<run folder>/work`: backend work files.
    pub work_dir: PathBuf,
    /// The state folder: the container's rootfs.
    pub state_dir: PathBuf,
    /// The run's cgroup (none when isolab runs without root).
    pub cgroup: Option<Arc<RunCgroup>>,
    /// Why there is no run cgroup, when there is none.
    pub cgroup_note: Option<String>,
    removed: bool,
}

impl RunPlaces {
    /// Makes the run folder under `io_parent`, the state folder under `state_parent` and (as
    /// root) the run's cgroup, recording each in `registry` as soon as it exists.
    pub fn create(
        run_id: &str,
        io_parent: &Path,
        state_parent: &Path,
        registry: Registry,
        cgroups: &CgroupSettings,
    ) -> Result<Self, PlacesError> {
        ensure_private_parent(registry.dir(), 0o700)?;
        ensure_private_parent(state_parent, 0o755)?;
        let pid = std::process::id() as i32;
        // Each place is recorded *before* it is made, so a kill at any moment leaves nothing
        // unrecorded (a recorded place that was never made is simply not found).
        let mut last = None;
        for _ in 0..16 {
            let id = random_suffix();
            let folder = io_parent.join(format!("{RUN_FOLDER_PREFIX}{id}"));
            let state = state_parent.join(format!("{STATE_FOLDER_PREFIX}{id}"));
            let record = RunRecord {
                id,
                run_id: run_id.to_owned(),
                pid,
                pid_start: pid_start_time(pid).unwrap_or(0),
                folders: vec![folder.clone(), state.clone()],
                cgroups: Vec::new(),
                restore: Vec::new(),
                processes: Vec::new(),
            };
            registry.write(&record, true)?;
            let entry = registry.entry(&record.id);
            match make_private_folder(&folder).and_then(|()| {
                make_private_folder(&state).inspect_err(|_| {
                    let _ = std::fs::remove_dir(&folder);
                })
            }) {
                Ok(()) => {}
                Err(Taken(e)) => {
                    // Someone else's path (never adopted): another name.
                    let _ = std::fs::remove_file(&entry);
                    last = Some(e);
                    continue;
                }
                Err(Failed(e)) => {
                    let _ = std::fs::remove_file(&entry);
                    return Err(e);
                }
            }
            return Self::fill(
                Self {
                    registry,
                    record,
                    io_dir: folder.join("io"),
                    work_dir: folder.join("work"),
                    state_dir: state,
                    cgroup: None,
                    cgroup_note: None,
                    removed: false,
                },
                cgroups,
            );
        }
        Err(PlacesError::Folder {
            what: "creating a fresh folder in",
            path: io_parent.to_path_buf(),
            why: format!("16 random names were all taken ({last:?}); something is filling it"),
        })
    }

    /// The run's subfolders and cgroup. Dropping `places` on an error removes what was made.
    fn fill(mut places: Self, cgroups: &CgroupSettings) -> Result<Self, PlacesError> {
        for d in [&places.io_dir, &places.work_dir] {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(d)
                .map_err(|e| PlacesError::Folder {
                    what: "creating",
                    path: d.clone(),
                    why: e.to_string(),
                })?;
        }
        if nix::unistd::geteuid().is_root() {
            let name = format!("{RUN_CGROUP_PREFIX}{}", places.record.id);
            // Recorded first, like the folders; the random id makes a foreign cgroup of that
            // name as unlikely as a guessed folder name.
            if let Ok(dirs) = RunCgroup::planned_dirs(&name, cgroups) {
                places.record.cgroups = dirs;
                places.registry.write(&places.record, false)?;
            }
            match RunCgroup::create(&name, cgroups) {
                Ok(cg) => {
                    places.record.cgroups = cg.dirs().to_vec();
                    places.cgroup = Some(Arc::new(cg));
                    places.registry.write(&places.record, false)?;
                }
                Err(e) => {
                    places.record.cgroups.clear();
                    places.registry.write(&places.record, false)?;
                    places.cgroup_note = Some(e.to_string());
                }
            }
        } else {
            places.cgroup_note = Some("isolab runs without root and creates no cgroups".to_owned());
        }
        Ok(places)
    }

    /// Records a process the run started outside its cgroup (its pid must still be alive, or
    /// its start time is unknown and nothing is recorded).
    pub fn record_process(&mut self, what: &str, pid: i32) -> Result<(), PlacesError> {
        if let Some(pid_start) = pid_start_time(pid) {
            self.record.processes.push(RecordedProcess {
                what: what.to_owned(),
                pid,
                pid_start,
            });
            self.registry.write(&self.record, false)?;
        }
        Ok(())
    }

    /// The recorded places.
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Changes a host-wide setting (a file under [`RESTORABLE`]) for the run: the host's value is
    /// recorded in the registry first, then `value` is written; [`RunPlaces::remove`] (or
    /// `isolab doctor --clean` after a `kill -9`) puts the host's value back. Returns the host's
    /// value.
    pub fn change_host_setting(&mut self, path: &Path, value: &str) -> Result<String, PlacesError> {
        let fail = |why: String| PlacesError::Folder {
            what: "changing",
            path: path.to_path_buf(),
            why,
        };
        if !RESTORABLE.iter().any(|a| path.starts_with(a)) {
            return Err(fail("not a setting isolab may change".into()));
        }
        let old = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        if !self.record.restore.iter().any(|s| s.path == path) {
            self.record.restore.push(HostSetting {
                path: path.to_path_buf(),
                value: old.trim().to_owned(),
            });
            self.registry.write(&self.record, false)?;
        }
        std::fs::write(path, value).map_err(|e| fail(e.to_string()))?;
        Ok(old.trim().to_owned())
    }

    /// Removes every place and the registry entry. Idempotent; errors name what is left.
    pub fn remove(&mut self) -> Result<(), String> {
        if self.removed {
            return Ok(());
        }
        let mut errors = Vec::new();
        let (_, not_restored) = restore_settings(&self.record.restore, RESTORABLE);
        errors.extend(not_restored);
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.remove() {
                errors.push(e.to_string());
            }
        }
        for f in &self.record.folders {
            match std::fs::remove_dir_all(f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    errors.push(format!("{}: {e}", f.display()))
                }
                _ => {}
            }
        }
        if errors.is_empty() {
            let _ = std::fs::remove_file(self.registry.entry(&self.record.id));
            self.removed = true;
            Ok(())
        } else {
            Err(format!(
                "{}; `isolab doctor --clean` removes the rest",
                errors.join("; ")
            ))
        }
    }
}

impl Drop for RunPlaces {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("warning: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_settings_are_put_back_only_where_allowed() {
        let dir = tempfile::tempdir().expect("dir");
        let knob = dir.path().join("run");
        std::fs::write(&knob, "1").expect("knob");
        let other = dir.path().join("other");
        std::fs::write(&other, "x").expect("other");
        let allowed = dir.path().join("");
        let allowed = allowed.to_str().expect("utf-8");
        let (done, kept) = restore_settings(
            &[
                HostSetting {
                    path: knob.clone(),
                    value: "0".into(),
                },
                HostSetting {
                    path: PathBuf::from("/etc/hostname"),
                    value: "pwned".into(),
                },
            ],
            &[allowed],
        );
        assert_eq!(done, std::slice::from_ref(&knob));
        assert_eq!(std::fs::read_to_string(&knob).expect("knob"), "0");
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].contains("/etc/hostname"));
    }

    #[test]
    fn fresh_folders_are_private_and_never_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = make_fresh_folder(dir.path(), "isolab-").expect("fresh");
        let b = make_fresh_folder(dir.path(), "isolab-").expect("fresh");
        assert_ne!(a, b);
        let mode = std::fs::metadata(&a).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o700);
        let name = a.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(name.len(), "isolab-".len() + 12);
        // A folder someone else could write is refused.
        std::fs::set_permissions(&b, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        assert!(check_own_dir(&b).is_err());
    }

    #[test]
    fn pid_start_time_tells_our_process_apart() {
        let me = std::process::id() as i32;
        let start = pid_start_time(me).expect("our start time");
        let rec = RunRecord {
            id: "r".into(),
            run_id: "r".into(),
            pid: me,
            pid_start: start,
            folders: vec![],
            cgroups: vec![],
            restore: vec![],
            processes: vec![],
        };
        assert!(rec.owner_alive());
        let reused = RunRecord {
            pid_start: start + 1,
            ..rec.clone()
        };
        assert!(!reused.owner_alive(), "a reused pid is not the owner");
    }

    #[test]
    fn dead_runs_are_cleaned_and_foreign_places_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let registry = Registry::at(dir.path().join("runs"));
        ensure_private_parent(registry.dir(), 0o700).expect("registry");
        let ours = make_fresh_folder(dir.path(), RUN_FOLDER_PREFIX).expect("folder");
        std::fs::write(ours.join("data"), b"x").expect("file");
        // Not made by isolab: a symbolic link with a run folder's name, and a folder with
        // another name.
        let target = dir.path().join("precious");
        std::fs::create_dir(&target).expect("dir");
        std::fs::write(target.join("keep"), b"keep").expect("file");
        let link = dir.path().join("isolab-link");
        std::os::unix::fs::symlink(&target, &link).expect("link");
        let record = RunRecord {
            id: "dead".into(),
            run_id: "dead".into(),
            // No process has pid 0's start time in /proc.
            pid: 0,
            pid_start: 1,
            folders: vec![ours.clone(), link.clone(), target.clone()],
            cgroups: vec![PathBuf::from("/sys/fs/cgroup/not-isolab")],
            // Not a setting isolab changes: never written.
            restore: vec![HostSetting {
                path: target.join("keep"),
                value: "overwritten".into(),
            }],
            processes: vec![],
        };
        registry.write(&record, true).expect("entry");
        let live = RunRecord {
            id: "live".into(),
            run_id: "live".into(),
            pid: std::process::id() as i32,
            pid_start: pid_start_time(std::process::id() as i32).expect("start"),
            folders: vec![],
            cgroups: vec![],
            restore: vec![],
            processes: vec![],
        };
        registry.write(&live, true).expect("entry");
        let report = registry.clean_dead();
        assert_eq!(report.live, ["live"]);
        assert_eq!(report.cleaned.len(), 1);
        let done = &report.cleaned[0];
        assert_eq!(done.removed, std::slice::from_ref(&ours));
        assert_eq!(done.kept.len(), 4, "{:?}", done.kept);
        assert_eq!(
            std::fs::read_to_string(target.join("keep")).expect("keep"),
            "keep",
            "a recorded setting outside isolab's list is not written"
        );
        assert!(!ours.exists());
        assert!(
            target.join("keep").exists(),
            "the link's target is untouched"
        );
        assert!(
            std::fs::symlink_metadata(&link).is_ok(),
            "the link is untouched"
        );
        // Refusals are final: the dead run's entry is gone, the live one stays.
        let left: Vec<String> = registry
            .records()
            .into_iter()
            .map(|(_, r)| r.run_id)
            .collect();
        assert_eq!(left, ["live"]);
    }

    #[test]
    fn a_dead_runs_recorded_process_is_killed_and_a_reused_pid_spared() {
        let dir = tempfile::tempdir().expect("temp dir");
        let registry = Registry::at(dir.path().join("runs"));
        ensure_private_parent(registry.dir(), 0o700).expect("registry");
        let mut ours = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("sleep");
        let mut other = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("sleep");
        let (a, b) = (ours.id() as i32, other.id() as i32);
        let record = RunRecord {
            id: "dead-peer".into(),
            run_id: "dead-peer".into(),
            pid: 0,
            pid_start: 1,
            folders: vec![],
            cgroups: vec![],
            restore: vec![],
            processes: vec![
                RecordedProcess {
                    what: "peer".into(),
                    pid: a,
                    pid_start: pid_start_time(a).expect("start"),
                },
                // Another process now has this pid: its start time differs.
                RecordedProcess {
                    what: "peer".into(),
                    pid: b,
                    pid_start: pid_start_time(b).expect("start") + 1,
                },
            ],
        };
        registry.write(&record, true).expect("entry");
        let report = registry.clean_dead();
        assert_eq!(report.cleaned.len(), 1);
        let status = ours.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert!(other.try_wait().expect("try_wait").is_none(), "spared");
        let _ = other.kill();
        let _ = other.wait();
    }
}
