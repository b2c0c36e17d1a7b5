//! RandomAccess (GUPS): random read-modify-write updates of a large table of 64-bit words, as the
//! HPC Challenge benchmark defines them (giga-updates per second).
//!
//! Each update takes the next value `r` of HPCC's pseudo-random stream (a shift register over
//! GF(2) with the polynomial `x^63 + x^2 + x + 1`) and does `table[r mod size] ^= r`. The table
//! is a power of two in size, initialised to `table[i] = i`; HPCC's rule is four updates per
//! entry. Like HPCC's serial reference, 128 streams started at evenly spaced points of the
//! sequence run interleaved, so the memory system has 128 independent misses to overlap rather
//! than one dependent chain (that is `mem-lat`'s job). Only the updates are timed.
//!
//! Verification is HPCC's: the same updates applied once more in a single stream undo them
//! (XOR is its own inverse), so every entry must hold its index again. HPCC tolerates 1% wrong
//! entries because its parallel versions race; this one runs on one thread, so any wrong entry
//! is an error.
//!
//! Felter et al. (IBM RC25482, 2014) ran HPCC's RandomAccess natively, in Docker and in KVM;
//! isolab's Felter suite puts this kernel beside their figures. Their table was 2^33 words
//! (64 GiB) updated by 32 OpenMP threads: their absolute GUP/s are not comparable with a
//! single-thread run, their ratios to native are.

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::kernels::{check_range, WorkloadError};
use crate::result::Metric;

/// Parameters of `random-access`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomAccessParams {
    /// MiB of the table (a power of two): HPCC sizes it to half the memory, so it is far larger
    /// than any cache and its pages far outnumber the TLB's entries.
    pub table_mib: u32,
    /// Updates per table entry (HPCC's rule: 4).
    pub updates_per_entry: u32,
    /// Undo the updates afterwards and check every entry (untimed, as in HPCC).
    pub verify: bool,
}

impl Default for RandomAccessParams {
    fn default() -> Self {
        Self {
            table_mib: 64,
            updates_per_entry: 4,
            verify: true,
        }
    }
}

const KIND: &str = "random-access";
/// 16 GiB: beyond any sandbox we size.
const MAX_TABLE_MIB: u64 = 16 * 1024;
const MAX_UPDATES_PER_ENTRY: u64 = 1024;
/// Streams interleaved by the update loop (HPCC's serial reference uses 128).
const STREAMS: usize = 128;
/// HPCC's primitive polynomial: `x^63 + x^2 + x + 1`, the feedback of the shift register.
const POLY: u64 = 0x7;
/// The period of HPCC's sequence.
const PERIOD: i64 = 1_317_624_576_693_539_401;

/// Runs `random-access`: fills the table, times `updates_per_entry × entries` updates, then (with
/// `verify`) undoes them and checks every entry.
pub fn run(params: &RandomAccessParams) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "table_mib", params.table_mib.into(), 1, MAX_TABLE_MIB)?;
    if !params.table_mib.is_power_of_two() {
        return Err(WorkloadError::BadParameter {
            workload: KIND,
            name: "table_mib",
            why: format!(
                "{} is not a power of two (the update index is a mask); use e.g. {}",
                params.table_mib,
                params.table_mib.next_power_of_two()
            ),
        });
    }
    check_range(
        KIND,
        "updates_per_entry",
        params.updates_per_entry.into(),
        1,
        MAX_UPDATES_PER_ENTRY,
    )?;

    let entries = params.table_mib as usize * (1024 * 1024 / size_of::<u64>());
    // Written before timing, so every page is faulted in and page faults are not updates.
    let mut table: Vec<u64> = (0..entries as u64).collect();
    let updates = entries as u64 * u64::from(params.updates_per_entry);

    let start = Instant::now();
    update(black_box(&mut table), updates);
    let secs = start.elapsed().as_secs_f64();
    black_box(&table);

    if params.verify {
        undo(&mut table, updates);
        let wrong = wrong_entries(&table);
        if wrong > 0 {
            return Err(WorkloadError::Verification {
                workload: KIND,
                why: format!(
                    "{wrong} of {entries} table entries are wrong after undoing the updates; \
                     the memory returned a value other than the one written"
                ),
            });
        }
    }
    Ok(vec![Metric::higher(
        "gups",
        "GUP/s",
        updates as f64 / 1e9 / secs,
    )])
}

/// One step of HPCC's sequence: shift left, feeding the polynomial back when the top bit falls out.
fn next(r: u64) -> u64 {
    (r << 1) ^ if (r as i64) < 0 { POLY } else { 0 }
}

/// The value of HPCC's sequence `n` steps after its start value 1 (`HPCC_starts`): squares of the
/// shift matrix, so it costs O(64²·log n) instead of n steps.
fn starts(n: i64) -> u64 {
    let n = n.rem_euclid(PERIOD);
    if n == 0 {
        return 1;
    }
    // m2[i] = x^(2i): the register after 2i steps from 1.
    let mut m2 = [0u64; 64];
    let mut temp = 1u64;
    for m in &mut m2 {
        *m = temp;
        temp = next(next(temp));
    }
    let mut i = 62;
    while i > 0 && (n >> i) & 1 == 0 {
        i -= 1;
    }
    let mut ran = 2u64;
    while i > 0 {
        // Square: ran(x)^2 as a combination of the powers in m2.
        let mut sq = 0u64;
        for (j, m) in m2.iter().enumerate() {
            if (ran >> j) & 1 == 1 {
                sq ^= m;
            }
        }
        ran = sq;
        i -= 1;
        if (n >> i) & 1 == 1 {
            ran = next(ran);
        }
    }
    ran
}

/// The timed loop: `updates` updates (a multiple of [`STREAMS`]) as [`STREAMS`] interleaved
/// streams, each over its own consecutive stretch of the sequence.
fn update(table: &mut [u64], updates: u64) {
    let mask = table.len() as u64 - 1;
    let per_stream = updates / STREAMS as u64;
    let mut ran = [0u64; STREAMS];
    for (j, r) in ran.iter_mut().enumerate() {
        *r = starts((per_stream * j as u64) as i64);
    }
    for _ in 0..per_stream {
        for r in &mut ran {
            *r = next(*r);
            // The mask keeps the index below the table's length, a power of two.
            if let Some(entry) = table.get_mut((*r & mask) as usize) {
                *entry ^= *r;
            }
        }
    }
}

/// HPCC's verification pass: the same `updates` values in one stream, applied again.
fn undo(table: &mut [u64], updates: u64) {
    let mask = table.len() as u64 - 1;
    let mut r = 1u64;
    for _ in 0..updates {
        r = next(r);
        if let Some(entry) = table.get_mut((r & mask) as usize) {
            *entry ^= r;
        }
    }
}

/// Entries that do not hold their own index.
fn wrong_entries(table: &[u64]) -> usize {
    table
        .iter()
        .enumerate()
        .filter(|&(i, &v)| v != i as u64)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_jumps_to_where_stepping_arrives() {
        let mut r = 1u64;
        for n in 0..2000i64 {
            assert_eq!(starts(n), r, "starts({n})");
            r = next(r);
        }
        // HPCC wraps negative and periodic arguments.
        assert_eq!(starts(PERIOD), 1);
        assert_eq!(starts(-PERIOD + 5), starts(5));
    }

    #[test]
    fn the_sequence_is_hpccs() {
        // The register after 64 steps from 1 has shifted the bit out once: 1 << 63 becomes the
        // polynomial on the next step.
        let mut r = 1u64;
        for _ in 0..63 {
            r = next(r);
        }
        assert_eq!(r, 1 << 63);
        assert_eq!(next(r), POLY);
    }

    #[test]
    fn interleaved_streams_apply_exactly_the_single_streams_updates() {
        // Undoing with one stream restores the table only if the 128 streams together used
        // the sequence's first `updates` values, each once.
        let entries = 1 << 12;
        let mut table: Vec<u64> = (0..entries).collect();
        let updates = 4 * entries;
        update(&mut table, updates);
        assert!(
            wrong_entries(&table) > entries as usize / 2,
            "the updates changed the table"
        );
        undo(&mut table, updates);
        assert_eq!(wrong_entries(&table), 0);
    }

    #[test]
    fn a_wrong_entry_is_found() {
        let mut table: Vec<u64> = (0..1024).collect();
        assert_eq!(wrong_entries(&table), 0);
        table[77] ^= 1;
        assert_eq!(wrong_entries(&table), 1);
    }

    #[test]
    fn small_run_reports_plausible_gups() {
        let m = run(&RandomAccessParams {
            table_mib: 1,
            updates_per_entry: 4,
            verify: true,
        })
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "gups");
        // 0.0001 to 100 GUP/s: outside means the update count or the clock is off.
        assert!(m[0].value > 1e-4 && m[0].value < 100.0, "{m:?}");
    }

    #[test]
    fn bad_parameters_are_refused_with_the_fix() {
        let bad = |table_mib, updates_per_entry| {
            run(&RandomAccessParams {
                table_mib,
                updates_per_entry,
                verify: false,
            })
            .unwrap_err()
            .to_string()
        };
        assert!(bad(3, 4).contains("power of two"), "{}", bad(3, 4));
        assert!(bad(3, 4).contains("use e.g. 4"));
        assert!(bad(0, 4).contains("table_mib"));
        assert!(bad(1, 0).contains("updates_per_entry"));
        assert!(bad(1 << 20, 4).contains("table_mib"));
    }
}
