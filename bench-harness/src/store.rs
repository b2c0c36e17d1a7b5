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
            Ok(s) => samples.push(s),
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
