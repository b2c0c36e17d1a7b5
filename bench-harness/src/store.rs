//! The result store: `results/<run-id>/samples.jsonl` (one sample per line, appended and flushed
//! the moment a trial ends) and `manifest.json` (the environment and the suite).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::manifest::Manifest;
use crate::sample::Sample;

/// File name of the samples.
pub const SAMPLES_FILE: &str = "samples.jsonl";
/// File name of the manifest.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Errors reading or writing a run directory.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The output directory cannot be created or written.
    #[error("cannot write results to {path}: {source}. Choose a writable directory with --out")]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The run directory already exists.
    #[error("{0} already exists; choose another --out or remove it")]
    Exists(PathBuf),
    /// Writing a sample or manifest failed.
    #[error("writing {path} failed: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A directory without the run files.
    #[error("{path} is not an isolab run directory ({what}); pass a folder made by `isolab run`")]
    NotARun {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// A damaged file.
    #[error("{path}:{line}: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

/// An open run directory being written.
#[derive(Debug)]
pub struct RunWriter {
    dir: PathBuf,
    samples: File,
}

impl RunWriter {
    /// Creates `out/run_id/` and an empty samples file. Fails, leaving nothing behind, if the
    /// directory cannot be written.
    pub fn create(out: &Path, run_id: &str) -> Result<Self, StoreError> {
        let dir = out.join(run_id);
        if dir.exists() {
            return Err(StoreError::Exists(dir));
        }
        let not_writable = |source| StoreError::NotWritable {
            path: out.to_path_buf(),
            source,
        };
        fs::create_dir_all(&dir).map_err(not_writable)?;
        let samples = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join(SAMPLES_FILE))
            .map_err(|source| {
                let _ = fs::remove_dir(&dir);
                StoreError::NotWritable {
                    path: dir.clone(),
                    source,
                }
            })?;
        Ok(Self { dir, samples })
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one sample as one line, in one write, and pushes it to the disk: a crash or Ctrl-C
    /// a moment later cannot lose or tear it.
    pub fn append(&mut self, sample: &Sample) -> Result<(), StoreError> {
        let path = self.dir.join(SAMPLES_FILE);
        let mut line = serde_json::to_vec(sample).map_err(|e| StoreError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        self.samples
            .write_all(&line)
            .and_then(|()| self.samples.sync_data())
            .map_err(|source| StoreError::Write { path, source })
    }

    /// Writes (or rewrites) the manifest atomically.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        write_manifest(&self.dir, manifest)
    }
}

/// Writes `manifest.json` in `dir` via a temporary file and rename, so a reader never sees half.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let path = dir.join(MANIFEST_FILE);
    let tmp = dir.join(".manifest.json.tmp");
    let err = |source| StoreError::Write {
        path: path.clone(),
        source,
    };
    let text = serde_json::to_string_pretty(manifest).map_err(|e| err(std::io::Error::other(e)))?;
    fs::write(&tmp, text + "\n").map_err(err)?;
    fs::rename(&tmp, &path).map_err(err)
}

/// A run read back from disk.
#[derive(Debug, Clone)]
pub struct StoredRun {
    /// The directory.
    pub dir: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    /// Every sample, in trial order.
    pub samples: Vec<Sample>,
    /// Whether the last line was torn (the run was killed mid-write) and skipped.
    pub torn_tail: bool,
}

/// Metric names of runs made before each memory metric was named after its meter, and their
/// names now: the container's figures were its memory cgroup's view.
pub const RENAMED_METRICS: [(&str, &str); 4] = [
    ("host.peak_memory", "host.cgroup_peak"),
    ("host.mem_anon", "host.cgroup_anon"),
    ("host.mem_file", "host.cgroup_file"),
    ("host.mem_kernel", "host.cgroup_kernel"),
];

/// CPU metric names of a container's samples in runs made before its cgroup's CPU accounting was
/// named as such, and their names now (native's and the VM's keep `host.cpu_*`: their process's
/// rusage, another meter).
pub const RENAMED_CONTAINER_METRICS: [(&str, &str); 3] = [
    ("host.cpu_user", "host.cgroup_cpu_user"),
    ("host.cpu_sys", "host.cgroup_cpu_sys"),
    ("host.cpu_total", "host.cgroup_cpu_total"),
];

/// Gives an old sample's metrics today's names, so old and new runs report alike.
fn rename_old_metrics(sample: &mut Sample) {
    let container: &[(&str, &str)] =
        if sample.backend == crate::backend::BackendKind::Container.name() {
            &RENAMED_CONTAINER_METRICS
        } else {
            &[]
        };
    for m in &mut sample.metrics {
        let renamed = RENAMED_METRICS.iter().chain(container);
        if let Some((_, new)) = renamed.into_iter().find(|(old, _)| *old == m.name) {
            m.name = (*new).to_owned();
        }
    }
}

/// Reads a run directory. A torn last line (the process was killed while writing it) is skipped
/// and reported; damage anywhere else is an error, since it means the file was edited.
pub fn load_run(dir: &Path) -> Result<StoredRun, StoreError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let samples_path = dir.join(SAMPLES_FILE);
    let manifest_text = fs::read_to_string(&manifest_path).map_err(|e| StoreError::NotARun {
        path: dir.to_path_buf(),
        what: format!("{MANIFEST_FILE}: {e}"),
    })?;
    let manifest: Manifest =
        serde_json::from_str(&manifest_text).map_err(|e| StoreError::Corrupt {
            path: manifest_path.clone(),
            line: e.line(),
            why: e.to_string(),
        })?;
    let file = File::open(&samples_path).map_err(|e| StoreError::NotARun {
        path: dir.to_path_buf(),
        what: format!("{SAMPLES_FILE}: {e}"),
    })?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::Corrupt {
            path: samples_path.clone(),
            line: 0,
            why: e.to_string(),
        })?;
    let mut samples = Vec::with_capacity(lines.len());
    let mut torn_tail = false;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Sample>(line) {
            Ok(mut s) => {
                rename_old_metrics(&mut s);
                samples.push(s)
            }
            Err(_) if i + 1 == lines.len() => torn_tail = true,
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path: samples_path,
                    line: i + 1,
                    why: e.to_string(),
                })
            }
        }
    }
    Ok(StoredRun {
        dir: dir.to_path_buf(),
        manifest,
        samples,
        torn_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_memory_metric_names_load_as_their_meters_names() {
        let line = r#"{"trial":0,"backend":"container","workload":"noop","kind":"noop","repetition":0,"warmup":false,"started_at":"x","failure":null,"emulated":false,"metrics":[{"name":"host.peak_memory","unit":"MiB","value":0.25,"better":"lower"},{"name":"host.mem_anon","unit":"MiB","value":0.1,"better":"lower"},{"name":"host.start_to_ready","unit":"ms","value":3.0,"better":"lower"}],"timeline":[],"agent":null,"log_tail":null}"#;
        let mut s: Sample = serde_json::from_str(line).expect("an old sample");
        rename_old_metrics(&mut s);
        let names: Vec<&str> = s.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "host.cgroup_peak",
                "host.cgroup_anon",
                "host.start_to_ready"
            ]
        );
    }

    /// An old container sample's CPU time was its cgroup's accounting: it loads under the
    /// cgroup's name, while native's rusage keeps `host.cpu_user`.
    #[test]
    fn an_old_containers_cpu_time_loads_as_its_cgroups() {
        let line = |backend: &str| {
            format!(
                r#"{{"trial":0,"backend":"{backend}","workload":"noop","kind":"noop","repetition":0,"warmup":false,"started_at":"x","failure":null,"emulated":false,"metrics":[{{"name":"host.cpu_user","unit":"ms","value":1.0,"better":"lower"}},{{"name":"host.cpu_total","unit":"ms","value":2.0,"better":"lower"}}],"timeline":[],"agent":null,"log_tail":null}}"#
            )
        };
        let names = |backend: &str| {
            let mut s: Sample = serde_json::from_str(&line(backend)).expect("an old sample");
            rename_old_metrics(&mut s);
            s.metrics.into_iter().map(|m| m.name).collect::<Vec<_>>()
        };
        assert_eq!(
            names("container"),
            ["host.cgroup_cpu_user", "host.cgroup_cpu_total"]
        );
        assert_eq!(names("native"), ["host.cpu_user", "host.cpu_total"]);
    }
}
