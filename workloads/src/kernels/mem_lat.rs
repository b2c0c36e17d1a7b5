//! Memory latency: a dependent random pointer chase (ns per access).

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::kernels::prng::SplitMix64;
use crate::kernels::{check_range, WorkloadError};
use crate::result::Metric;

/// Parameters of `mem-lat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemLatParams {
    /// Working set in KiB.
    pub working_set_kib: u32,
    /// Dependent loads to time.
    pub accesses: u64,
}

impl Default for MemLatParams {
    fn default() -> Self {
        Self {
            working_set_kib: 64 * 1024,
            accesses: 1_000_000,
        }
    }
}

const KIND: &str = "mem-lat";
/// At least a few nodes, at most 16 GiB.
const MIN_WORKING_SET_KIB: u64 = 4;
const MAX_WORKING_SET_KIB: u64 = 16 * 1024 * 1024;
const MAX_ACCESSES: u64 = 10_000_000_000;
const SEED: u64 = 0x1501_ab00_0000_0001;

/// One cache line, so every access is a different line and the prefetcher cannot help from a
/// neighbour's fetch.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Node {
    next: usize,
    _pad: [u8; 56],
}

/// Runs `mem-lat`: builds one random cycle over the working set, warms it, times the chase.
pub fn run(params: &MemLatParams) -> Result<Vec<Metric>, WorkloadError> {
    check_range(
        KIND,
        "working_set_kib",
        params.working_set_kib.into(),
        MIN_WORKING_SET_KIB,
        MAX_WORKING_SET_KIB,
    )?;
    check_range(KIND, "accesses", params.accesses, 1, MAX_ACCESSES)?;

    let n = params.working_set_kib as usize * 1024 / size_of::<Node>();
    let cycle = sattolo_cycle(n, SEED);
    let nodes: Vec<Node> = cycle
        .iter()
        .map(|&next| Node {
            next,
            _pad: [0; 56],
        })
        .collect();
    drop(cycle);

    // One full lap reaches the steady state (what stays cached between laps stays cached); a
    // shorter warm-up would flatter working sets near the last-level cache's size.
    black_box(chase(&nodes, 0, n as u64));
    let start = Instant::now();
    let end = chase(&nodes, 0, params.accesses);
    let secs = start.elapsed().as_secs_f64();
    black_box(end);

    Ok(vec![Metric::lower(
        "pointer_chase_latency",
        "ns/access",
        secs * 1e9 / params.accesses as f64,
    )])
}

/// A permutation `next` of `0..n` that is a single cycle (Sattolo's algorithm): following `next`
/// from any node visits every node once before returning, so the chase cannot get stuck in a
/// small loop that fits in cache.
fn sattolo_cycle(n: usize, seed: u64) -> Vec<usize> {
    let mut next: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        // j < i, never i itself: that is what makes it one cycle rather than any permutation.
        let j = rng.below(i as u64) as usize;
        next.swap(i, j);
    }
    next
}

/// Follows `steps` links from `start`; each load depends on the previous one.
fn chase(nodes: &[Node], start: usize, steps: u64) -> usize {
    let mut at = start;
    for _ in 0..steps {
        at = nodes[at].next;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sattolo_cycle_visits_every_node_exactly_once() {
        for n in [1usize, 2, 3, 17, 1000] {
            let next = sattolo_cycle(n, 42);
            let mut seen = vec![false; n];
            let mut at = 0;
            for _ in 0..n {
                assert!(!seen[at], "node {at} visited twice for n={n}");
                seen[at] = true;
                at = next[at];
            }
            assert_eq!(at, 0, "the cycle must close after exactly n={n} steps");
            assert!(seen.iter().all(|&s| s));
        }
    }

    #[test]
    fn nodes_are_one_cache_line() {
        assert_eq!(size_of::<Node>(), 64);
        assert_eq!(align_of::<Node>(), 64);
    }

    #[test]
    fn small_run_reports_a_latency() {
        let m = run(&MemLatParams {
            working_set_kib: 64,
            accesses: 100_000,
        })
        .unwrap();
        assert_eq!(m[0].name, "pointer_chase_latency");
        // An L1/L2-resident chase: above 0.05 ns (faster than any clock) and far under 1 µs.
        assert!(m[0].value > 0.05 && m[0].value < 1000.0, "{m:?}");
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(run(&MemLatParams {
            working_set_kib: 0,
            accesses: 1
        })
        .is_err());
        assert!(run(&MemLatParams {
            working_set_kib: 64,
            accesses: 0
        })
        .is_err());
    }
}
