//! Durable writes: 4 KiB write + fsync latency (p50/p99).

use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use super::{io_err, open_target, p50_p99, time_us, AlignedBuf, BLOCK_4K};

use crate::kernels::{check_range, WorkloadError};
use crate::result::Metric;

/// Parameters of `io-fsync`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoFsyncParams {
    /// Directory (a scratch file is made inside and removed) or block device.
    pub path: String,
    /// 4 KiB write + fsync pairs timed.
    pub ops: u32,
}

impl Default for IoFsyncParams {
    fn default() -> Self {
        Self {
            path: "/var/tmp".into(),
            ops: 200,
        }
    }
}

const KIND: &str = "io-fsync";
const MAX_OPS: u64 = 1_000_000;

/// Runs `io-fsync`: `ops` times, a 4 KiB O_DIRECT write then fsync, timed together. The writes
/// append block after block like a write-ahead log, so on a file each fsync also commits the
/// size change, as a database's log commit does.
pub fn run(params: &IoFsyncParams) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "ops", params.ops.into(), 1, MAX_OPS)?;
    let path = params.path.as_str();
    let region = u64::from(params.ops) * BLOCK_4K as u64;
    let target = open_target(KIND, path, region)?;
    let buf = AlignedBuf::new(BLOCK_4K)?;

    let mut lat = Vec::with_capacity(params.ops as usize);
    for i in 0..u64::from(params.ops) {
        lat.push(time_us(|| {
            target
                .file
                .write_all_at(buf.as_slice(), i * BLOCK_4K as u64)
                .map_err(|e| io_err("write", path, e))?;
            target.file.sync_all().map_err(|e| io_err("fsync", path, e))
        })?);
    }
    let (p50, p99) = p50_p99(&mut lat);
    Ok(vec![
        Metric::lower("fsync_p50", "µs", p50),
        Metric::lower("fsync_p99", "µs", p99),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::io::tests::{leftover, TEST_DIR};

    #[test]
    fn small_run_on_a_directory_reports_and_cleans_up() {
        let m = run(&IoFsyncParams {
            path: TEST_DIR.into(),
            ops: 10,
        })
        .unwrap();
        assert_eq!(m[0].name, "fsync_p50");
        assert_eq!(m[1].name, "fsync_p99");
        assert!(m[0].value > 0.0 && m[1].value >= m[0].value, "{m:?}");
        assert!(!leftover(KIND));
    }

    #[test]
    fn missing_target_and_zero_ops_are_refused() {
        let err = run(&IoFsyncParams {
            path: "/nonexistent/dir".into(),
            ops: 1,
        })
        .unwrap_err();
        assert!(matches!(err, WorkloadError::IoTarget { .. }), "{err}");
        assert!(run(&IoFsyncParams {
            path: TEST_DIR.into(),
            ops: 0
        })
        .is_err());
    }
}
