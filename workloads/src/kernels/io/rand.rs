//! Random I/O: 4 KiB O_DIRECT reads and writes at a queue depth (IOPS, p50/p99 per operation).
//!
//! Depth 1 issues each request after the last one completed (`pread`/`pwrite`), as before;
//! a larger depth keeps that many requests in flight with Linux AIO (io_submit), like fio's
//! `libaio` engine at `iodepth=N`. Latency is per request, from its submission to its
//! completion. Every written block holds a pattern made from its offset ([`fill_block`]), so
//! the target's contents afterwards do not depend on the order in which requests completed:
//! a test can compute them ([`write_offsets`]), and `verify` reads them back.

use std::os::unix::fs::FileExt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::aio::{Op, Ring};
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
    /// Requests in flight at once (queue depth): 1 (the default) waits for each request before
    /// the next; more keeps that many in flight with Linux AIO.
    pub depth: u32,
    /// After the writes, read every written block back and check its contents (phase
    /// `verify`; a mismatch is an error). For tests of the I/O path, not for measurements.
    pub verify: bool,
}

impl Default for IoRandParams {
    fn default() -> Self {
        Self {
            path: "/var/tmp".into(),
            file_mib: 64,
            ops: 2000,
            depth: 1,
            verify: false,
        }
    }
}

const KIND: &str = "io-rand";
const MAX_FILE_MIB: u64 = 1024 * 1024;
const MAX_OPS: u64 = 10_000_000;
/// Deepest queue accepted (fio's examples go to 256; Linux caps a context by aio-max-nr).
pub const MAX_DEPTH: u64 = 1024;
const SEED: u64 = 0x1501_ab00_0000_0002;

/// The offsets `io-rand` reads (first) and writes (second), in the order it issues them: the
/// same for every run of the same parameters.
pub fn offsets(params: &IoRandParams) -> (Vec<u64>, Vec<u64>) {
    let blocks = (u64::from(params.file_mib) * BLOCK_1M as u64 / BLOCK_4K as u64).max(1);
    let mut rng = SplitMix64::new(SEED);
    let mut draw = |n: u32| -> Vec<u64> {
        (0..n)
            .map(|_| rng.below(blocks) * BLOCK_4K as u64)
            .collect()
    };
    let reads = draw(params.ops);
    let writes = draw(params.ops);
    (reads, writes)
}

/// The offsets `io-rand` writes (what a test needs to compute the target's contents).
pub fn write_offsets(params: &IoRandParams) -> Vec<u64> {
    offsets(params).1
}

/// What `io-rand` writes into the 4 KiB block at `offset`: its offset, then bytes derived from
/// it, so any block can be told from any other and from zeros.
pub fn fill_block(offset: u64, buf: &mut [u8]) {
    let mut x = offset ^ 0x6973_6f6c_6162_2121;
    for chunk in buf.chunks_mut(8) {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let bytes = (x ^ offset).to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Runs `io-rand`: prefills a scratch file (a device is used as it is), then times `ops` random
/// 4 KiB reads, then `ops` random 4 KiB writes, `depth` at a time. Announces the phases prefill
/// (on a scratch file only), read, write, and verify when asked.
pub fn run(params: &IoRandParams, phase: PhaseHook<'_>) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "file_mib", params.file_mib.into(), 1, MAX_FILE_MIB)?;
    check_range(KIND, "ops", params.ops.into(), 1, MAX_OPS)?;
    check_range(KIND, "depth", params.depth.into(), 1, MAX_DEPTH)?;
    let path = params.path.as_str();
    let region = u64::from(params.file_mib) * BLOCK_1M as u64;
    let target = open_target(KIND, path, region)?;
    if target.is_scratch {
        phase(WorkloadPhase::Prefill);
        fill(&target, path, region)?;
    }
    let (read_offsets, write_offsets) = offsets(params);
    let depth = params.depth as usize;
    let mut ring = if depth > 1 {
        Some(Ring::new(depth, BLOCK_4K).map_err(|e| io_err("setting up Linux AIO", path, e))?)
    } else {
        None
    };
    let mut buf = AlignedBuf::new(BLOCK_4K)?;

    phase(WorkloadPhase::Read);
    let start = Instant::now();
    let mut reads = match &mut ring {
        Some(ring) => ring
            .run(&target.file, Op::Read, &read_offsets, |_, _| {})
            .map_err(|e| io_err("random read", path, e))?,
        None => read_offsets
            .iter()
            .map(|&off| {
                time_us(|| {
                    target
                        .file
                        .read_exact_at(buf.as_mut_slice(), off)
                        .map_err(|e| io_err("random read", path, e))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let read_secs = start.elapsed().as_secs_f64();

    phase(WorkloadPhase::Write);
    let start = Instant::now();
    let mut writes = match &mut ring {
        Some(ring) => ring
            .run(&target.file, Op::Write, &write_offsets, fill_block)
            .map_err(|e| io_err("random write", path, e))?,
        None => write_offsets
            .iter()
            .map(|&off| {
                fill_block(off, buf.as_mut_slice());
                time_us(|| {
                    target
                        .file
                        .write_all_at(buf.as_slice(), off)
                        .map_err(|e| io_err("random write", path, e))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let write_secs = start.elapsed().as_secs_f64();
    drop(ring);

    if params.verify {
        phase(WorkloadPhase::Verify);
        let mut want = AlignedBuf::new(BLOCK_4K)?;
        let mut seen = std::collections::BTreeSet::new();
        for &off in &write_offsets {
            if !seen.insert(off) {
                continue;
            }
            target
                .file
                .read_exact_at(buf.as_mut_slice(), off)
                .map_err(|e| io_err("reading back a written block", path, e))?;
            fill_block(off, want.as_mut_slice());
            if buf.as_slice() != want.as_slice() {
                return Err(WorkloadError::sys(
                    format!("verifying {path}"),
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "the 4 KiB block at offset {off} does not hold what was written to it"
                        ),
                    ),
                ));
            }
        }
    }

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
        for depth in [1, 16] {
            let phases = std::cell::RefCell::new(Vec::new());
            let m = run(
                &IoRandParams {
                    path: TEST_DIR.into(),
                    file_mib: 2,
                    ops: 50,
                    depth,
                    verify: true,
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
                    WorkloadPhase::Write,
                    WorkloadPhase::Verify
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
    }

    #[test]
    fn depth_and_verify_default_and_old_specs_still_parse() {
        let p: IoRandParams =
            serde_json::from_str(r#"{"path":"/x","file_mib":1,"ops":2}"#).unwrap();
        assert_eq!((p.depth, p.verify), (1, false));
        let err = run(
            &IoRandParams {
                depth: 0,
                ..IoRandParams::default()
            },
            &|_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("depth"), "{err}");
    }

    #[test]
    fn written_contents_depend_only_on_the_offsets() {
        let p = IoRandParams {
            file_mib: 1,
            ops: 300,
            ..IoRandParams::default()
        };
        let (r, w) = offsets(&p);
        assert_eq!((r.len(), w.len()), (300, 300));
        assert_eq!(w, write_offsets(&p), "deterministic");
        assert!(w.iter().all(|o| o % 4096 == 0 && *o < 1 << 20));
        let (mut a, mut b) = (vec![0u8; 4096], vec![0u8; 4096]);
        fill_block(4096, &mut a);
        fill_block(8192, &mut b);
        assert_ne!(a, b);
        assert!(a.iter().any(|x| *x != 0));
        fill_block(4096, &mut b);
        assert_eq!(a, b);
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
