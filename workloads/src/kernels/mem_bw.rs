//! Memory bandwidth: STREAM-style copy and triad (GB/s).

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::kernels::{check_range, WorkloadError};
use crate::result::Metric;

/// Parameters of `mem-bw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemBwParams {
    /// MiB per array (three arrays); far above the last-level cache.
    pub array_mib: u32,
    /// Passes of each kernel; the best pass is reported, as STREAM does.
    pub passes: u32,
}

impl Default for MemBwParams {
    fn default() -> Self {
        Self {
            array_mib: 64,
            passes: 3,
        }
    }
}

const KIND: &str = "mem-bw";
/// Three arrays of this size must fit in memory; 16 GiB each is beyond any sandbox we size.
const MAX_ARRAY_MIB: u64 = 16 * 1024;
const MAX_PASSES: u64 = 1000;
/// STREAM's triad scalar.
const SCALAR: f64 = 3.0;

/// Runs `mem-bw`: `passes` passes of copy, then of triad; the best pass of each is reported.
pub fn run(params: &MemBwParams) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "array_mib", params.array_mib.into(), 1, MAX_ARRAY_MIB)?;
    check_range(KIND, "passes", params.passes.into(), 1, MAX_PASSES)?;

    let len = params.array_mib as usize * 1024 * 1024 / size_of::<f64>();
    // Initialised (so every page is faulted in) before any timing, as STREAM does.
    let mut a = vec![1.0f64; len];
    let b = vec![2.0f64; len];
    let mut c = vec![0.0f64; len];
    let bytes = (len * size_of::<f64>()) as f64;

    let mut best_copy = f64::INFINITY;
    for _ in 0..params.passes {
        let start = Instant::now();
        copy(&mut c, black_box(&a));
        black_box(&mut c);
        best_copy = best_copy.min(start.elapsed().as_secs_f64());
    }
    let mut best_triad = f64::INFINITY;
    for _ in 0..params.passes {
        let start = Instant::now();
        triad(&mut a, black_box(&b), black_box(&c), SCALAR);
        black_box(&mut a);
        best_triad = best_triad.min(start.elapsed().as_secs_f64());
    }

    // STREAM's byte counting: copy reads one array and writes one, triad reads two and writes one.
    Ok(vec![
        Metric::higher("stream_copy", "GB/s", 2.0 * bytes / 1e9 / best_copy),
        Metric::higher("stream_triad", "GB/s", 3.0 * bytes / 1e9 / best_triad),
    ])
}

/// STREAM copy: `dst[i] = src[i]`.
fn copy(dst: &mut [f64], src: &[f64]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// STREAM triad: `a[i] = b[i] + q * c[i]`.
fn triad(a: &mut [f64], b: &[f64], c: &[f64], q: f64) {
    for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
        *a = b + q * c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_and_triad_compute_what_stream_defines() {
        let src = [1.0, 2.0, 3.0];
        let mut dst = [0.0; 3];
        copy(&mut dst, &src);
        assert_eq!(dst, src);
        let mut a = [0.0; 3];
        triad(&mut a, &[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], SCALAR);
        assert_eq!(a, [4.0, 7.0, 10.0]);
    }

    #[test]
    fn small_run_reports_plausible_bandwidth() {
        let metrics = run(&MemBwParams {
            array_mib: 2,
            passes: 2,
        })
        .unwrap();
        assert_eq!(metrics[0].name, "stream_copy");
        assert_eq!(metrics[1].name, "stream_triad");
        // Between 10 MB/s and 10 TB/s: anything outside means the byte count or the clock is off.
        assert!(
            metrics.iter().all(|m| m.value > 0.01 && m.value < 10_000.0),
            "{metrics:?}"
        );
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(run(&MemBwParams {
            array_mib: 0,
            passes: 1
        })
        .is_err());
        assert!(run(&MemBwParams {
            array_mib: 1,
            passes: 0
        })
        .is_err());
        assert!(run(&MemBwParams {
            array_mib: 1 << 20,
            passes: 1
        })
        .is_err());
    }
}
