//! CPU: SHA-256 over a buffer (MB/s) and a dense f64 matrix multiply (GFLOP/s).

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kernels::{check_range, WorkloadError};
use crate::result::Metric;

/// Parameters of `cpu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CpuParams {
    /// MiB hashed with SHA-256.
    pub hash_mib: u32,
    /// Side of the square matrices multiplied (f64).
    pub matrix_n: u32,
}

impl Default for CpuParams {
    fn default() -> Self {
        Self {
            hash_mib: 64,
            matrix_n: 256,
        }
    }
}

const KIND: &str = "cpu";
/// 16 GiB hashed is minutes of work: anything above is a typo.
const MAX_HASH_MIB: u64 = 16 * 1024;
/// Three 4096² f64 matrices are 384 MiB and 137 GFLOP: a larger matrix is a typo.
const MAX_MATRIX_N: u64 = 4096;

/// Runs `cpu`: hashes a `hash_mib` buffer, then multiplies two `matrix_n`² matrices.
pub fn run(params: &CpuParams) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "hash_mib", params.hash_mib.into(), 1, MAX_HASH_MIB)?;
    check_range(KIND, "matrix_n", params.matrix_n.into(), 1, MAX_MATRIX_N)?;

    let len = params.hash_mib as usize * 1024 * 1024;
    // A non-constant pattern, written before timing so page faults are not counted as hashing.
    let buf: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect();
    let start = Instant::now();
    black_box(sha256(black_box(&buf)));
    let hash_secs = start.elapsed().as_secs_f64();
    drop(buf);

    let n = params.matrix_n as usize;
    let a: Vec<f64> = (0..n * n).map(|i| (i % 7) as f64 * 0.5).collect();
    let b: Vec<f64> = (0..n * n).map(|i| (i % 5) as f64 - 2.0).collect();
    let mut c = vec![0.0; n * n];
    let start = Instant::now();
    matmul(black_box(&a), black_box(&b), &mut c, n);
    black_box(&mut c);
    let mm_secs = start.elapsed().as_secs_f64();

    let flops = 2.0 * (n as f64).powi(3);
    Ok(vec![
        Metric::higher("sha256_throughput", "MB/s", len as f64 / 1e6 / hash_secs),
        Metric::higher("matmul_gflops", "GFLOP/s", flops / 1e9 / mm_secs),
    ])
}

/// SHA-256 of `data`.
fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// `c += a × b` for row-major `n`×`n` matrices. The i-k-j order walks `b` and `c` along rows, so
/// the inner loop is unit-stride and vectorises: this measures the core and its caches, not a
/// cache-miss storm that a sandbox would not change anyway.
fn matmul(a: &[f64], b: &[f64], c: &mut [f64], n: usize) {
    for i in 0..n {
        let c_row = &mut c[i * n..(i + 1) * n];
        for k in 0..n {
            let a_ik = a[i * n + k];
            let b_row = &b[k * n..(k + 1) * n];
            for (c_ij, b_kj) in c_row.iter_mut().zip(b_row) {
                *c_ij += a_ik * b_kj;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_matches_the_fips_test_vectors() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(&[b'a'; 1_000_000])),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn matmul_equals_the_hand_result() {
        // [1 2; 3 4] x [5 6; 7 8] = [19 22; 43 50]
        let mut c = vec![0.0; 4];
        matmul(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], &mut c, 2);
        assert_eq!(c, vec![19.0, 22.0, 43.0, 50.0]);
        // Identity leaves a 3x3 matrix unchanged.
        let m: Vec<f64> = (1..=9).map(f64::from).collect();
        let id = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let mut c = vec![0.0; 9];
        matmul(&m, &id, &mut c, 3);
        assert_eq!(c, m);
    }

    #[test]
    fn small_run_reports_positive_metrics() {
        let metrics = run(&CpuParams {
            hash_mib: 1,
            matrix_n: 32,
        })
        .unwrap();
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["sha256_throughput", "matmul_gflops"]);
        assert!(metrics.iter().all(|m| m.value.is_finite() && m.value > 0.0));
    }

    #[test]
    fn zero_and_absurd_sizes_are_refused_with_the_range() {
        for p in [
            CpuParams {
                hash_mib: 0,
                ..CpuParams::default()
            },
            CpuParams {
                matrix_n: 0,
                ..CpuParams::default()
            },
            CpuParams {
                matrix_n: 100_000,
                ..CpuParams::default()
            },
        ] {
            let err = run(&p).unwrap_err();
            assert!(matches!(err, WorkloadError::BadParameter { .. }), "{err}");
            assert!(err.to_string().contains("..="), "{err}");
        }
    }
}
