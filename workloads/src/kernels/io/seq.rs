//! Sequential I/O: O_DIRECT write then read in 1 MiB blocks (MB/s).

use std::os::unix::fs::FileExt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{io_err, open_target, AlignedBuf, BLOCK_1M};

use crate::kernels::{check_range, PhaseHook, WorkloadError};
use crate::protocol::WorkloadPhase;
use crate::result::Metric;

/// Parameters of `io-seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoSeqParams {
    /// Directory (a scratch file is made inside and removed) or block device.
    pub path: String,
    /// MiB written then read.
    pub size_mib: u32,
}

impl Default for IoSeqParams {
    fn default() -> Self {
        Self {
            path: "/var/tmp".into(),
            size_mib: 64,
        }
    }
}

const KIND: &str = "io-seq";
const MAX_SIZE_MIB: u64 = 1024 * 1024;

/// Runs `io-seq`: writes `size_mib` MiB in 1 MiB O_DIRECT blocks and fsyncs (timed together), then
/// reads them back. Announces the phases write (the fsync included) and read.
pub fn run(params: &IoSeqParams, phase: PhaseHook<'_>) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "size_mib", params.size_mib.into(), 1, MAX_SIZE_MIB)?;
    let path = params.path.as_str();
    let bytes = u64::from(params.size_mib) * BLOCK_1M as u64;
    let target = open_target(KIND, path, bytes)?;
    let mut buf = AlignedBuf::new(BLOCK_1M)?;

    phase(WorkloadPhase::Write);
    let start = Instant::now();
    for block in 0..u64::from(params.size_mib) {
        target
            .file
            .write_all_at(buf.as_slice(), block * BLOCK_1M as u64)
            .map_err(|e| io_err("sequential write", path, e))?;
    }
    target
        .file
        .sync_all()
        .map_err(|e| io_err("fsync after the sequential write", path, e))?;
    let write_secs = start.elapsed().as_secs_f64();

    phase(WorkloadPhase::Read);
    let start = Instant::now();
    for block in 0..u64::from(params.size_mib) {
        target
            .file
            .read_exact_at(buf.as_mut_slice(), block * BLOCK_1M as u64)
            .map_err(|e| io_err("sequential read", path, e))?;
    }
    let read_secs = start.elapsed().as_secs_f64();

    Ok(vec![
        Metric::higher("seq_write", "MB/s", bytes as f64 / 1e6 / write_secs),
        Metric::higher("seq_read", "MB/s", bytes as f64 / 1e6 / read_secs),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::io::tests::{leftover, TEST_DIR};
    use crate::kernels::no_phases;

    #[test]
    fn small_run_on_a_directory_reports_and_cleans_up() {
        let phases = std::cell::RefCell::new(Vec::new());
        let m = run(
            &IoSeqParams {
                path: TEST_DIR.into(),
                size_mib: 4,
            },
            &|p| phases.borrow_mut().push(p),
        )
        .unwrap();
        assert_eq!(
            phases.into_inner(),
            [WorkloadPhase::Write, WorkloadPhase::Read]
        );
        assert_eq!(m[0].name, "seq_write");
        assert_eq!(m[1].name, "seq_read");
        // Between 0.1 MB/s and 1 TB/s.
        assert!(m.iter().all(|m| m.value > 0.1 && m.value < 1e6), "{m:?}");
        assert!(!leftover(KIND));
    }

    #[test]
    fn missing_target_is_an_io_target_error() {
        let err = run(
            &IoSeqParams {
                path: "/nonexistent/dir".into(),
                size_mib: 1,
            },
            &no_phases,
        )
        .unwrap_err();
        assert!(matches!(err, WorkloadError::IoTarget { .. }), "{err}");
        assert!(run(
            &IoSeqParams {
                path: TEST_DIR.into(),
                size_mib: 0
            },
            &no_phases
        )
        .is_err());
    }
}
