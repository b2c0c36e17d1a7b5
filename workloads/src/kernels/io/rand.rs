//! Random I/O: 4 KiB O_DIRECT reads and writes at queue depth 1 (IOPS, p50/p99).

use std::os::unix::fs::FileExt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{fill, io_err, open_target, p50_p99, time_us, AlignedBuf, BLOCK_1M, BLOCK_4K};
use crate::kernels::prng::SplitMix64;

use crate::kernels::{check_range, PhaseHook, WorkloadError};
use crate::protocol::WorkloadPhase;
use crate::result::Metric;

/// Parameters of `io-rand`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoRandParams {
    /// Directory (a scratch file is made inside and removed) or block device.
    pub path: String,
    /// MiB of the region read and written at random.
    pub file_mib: u32,
    /// Operations timed for reads and for writes each.
    pub ops: u32,
}

impl Default for IoRandParams {
    fn default() -> Self {
        Self {
            path: "/var/tmp".into(),
            file_mib: 64,
            ops: 2000,
        }
    }
}

const KIND: &str = "io-rand";
const MAX_FILE_MIB: u64 = 1024 * 1024;
const MAX_OPS: u64 = 10_000_000;
const SEED: u64 = 0x1501_ab00_0000_0002;

/// Runs `io-rand`: prefills a scratch file (a device is used as it is), then times `ops` random
/// 4 KiB reads, then `ops` random 4 KiB writes, one at a time. Announces the phases prefill (on
/// a scratch file only), read and write.
pub fn run(params: &IoRandParams, phase: PhaseHook<'_>) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "file_mib", params.file_mib.into(), 1, MAX_FILE_MIB)?;
    check_range(KIND, "ops", params.ops.into(), 1, MAX_OPS)?;
    let path = params.path.as_str();
    let region = u64::from(params.file_mib) * BLOCK_1M as u64;
    let blocks = region / BLOCK_4K as u64;
    let target = open_target(KIND, path, region)?;
    if target.is_scratch {
        phase(WorkloadPhase::Prefill);
        fill(&target, path, region)?;
    }
    let mut buf = AlignedBuf::new(BLOCK_4K)?;
    let mut rng = SplitMix64::new(SEED);

    let mut reads = Vec::with_capacity(params.ops as usize);
    phase(WorkloadPhase::Read);
    let start = Instant::now();
    for _ in 0..params.ops {
        let off = rng.below(blocks) * BLOCK_4K as u64;
        reads.push(time_us(|| {
            target
                .file
                .read_exact_at(buf.as_mut_slice(), off)
                .map_err(|e| io_err("random read", path, e))
        })?);
    }
    let read_secs = start.elapsed().as_secs_f64();

    let mut writes = Vec::with_capacity(params.ops as usize);
    phase(WorkloadPhase::Write);
    let start = Instant::now();
    for _ in 0..params.ops {
        let off = rng.below(blocks) * BLOCK_4K as u64;
        writes.push(time_us(|| {
            target
                .file
                .write_all_at(buf.as_slice(), off)
                .map_err(|e| io_err("random write", path, e))
        })?);
    }
    let write_secs = start.elapsed().as_secs_f64();

    let ops = f64::from(params.ops);
    let (r50, r99) = p50_p99(&mut reads);
    let (w50, w99) = p50_p99(&mut writes);
    Ok(vec![
        Metric::higher("rand_read_iops", "IOPS", ops / read_secs),
        Metric::lower("rand_read_p50", "µs", r50),
        Metric::lower("rand_read_p99", "µs", r99),
        Metric::higher("rand_write_iops", "IOPS", ops / write_secs),
        Metric::lower("rand_write_p50", "µs", w50),
        Metric::lower("rand_write_p99", "µs", w99),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::io::tests::{leftover, TEST_DIR};

    #[test]
    fn small_run_on_a_directory_reports_and_cleans_up() {
        let phases = std::cell::RefCell::new(Vec::new());
        let m = run(
            &IoRandParams {
                path: TEST_DIR.into(),
                file_mib: 2,
                ops: 50,
            },
            &|p| phases.borrow_mut().push(p),
        )
        .unwrap();
        // A scratch file is prefilled first; each phase is announced once, in order.
        assert_eq!(
            phases.into_inner(),
            [
                WorkloadPhase::Prefill,
                WorkloadPhase::Read,
                WorkloadPhase::Write
            ]
        );
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "rand_read_iops",
                "rand_read_p50",
                "rand_read_p99",
                "rand_write_iops",
                "rand_write_p50",
                "rand_write_p99"
            ]
        );
        assert!(
            m.iter().all(|m| m.value > 0.0 && m.value.is_finite()),
            "{m:?}"
        );
        assert!(
            m[2].value >= m[1].value && m[5].value >= m[4].value,
            "{m:?}"
        );
        assert!(!leftover(KIND));
    }

    #[test]
    fn missing_target_is_an_io_target_error() {
        let phases = std::cell::RefCell::new(Vec::new());
        let err = run(
            &IoRandParams {
                path: "/nonexistent/dir".into(),
                ..IoRandParams::default()
            },
            &|p| phases.borrow_mut().push(p),
        )
        .unwrap_err();
        assert!(phases.borrow().is_empty(), "no phase began");
        assert!(matches!(err, WorkloadError::IoTarget { .. }), "{err}");
    }
}
