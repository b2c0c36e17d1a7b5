//! The memory controller: the hard limit, no swap, peak usage, the anon/file/kernel breakdown and
//! OOM kills.
//!
//! Swap is held at zero so a workload over its limit is OOM-killed, as in a VM of the same size,
//! instead of quietly swapping and measuring the disk.

use super::{parse_flat_keyed, Write};

/// v1: current usage high-water mark (reset when the cgroup is created).
pub(crate) const V1_PEAK: &str = "memory.max_usage_in_bytes";
/// v1: what is charged now (memory + page cache + kernel memory when kmem accounting is on).
pub(crate) const V1_USAGE: &str = "memory.usage_in_bytes";
/// v2: what is charged now.
pub(crate) const V2_CURRENT: &str = "memory.current";
/// v1: kernel memory usage (not part of v1's memory.stat).
pub(crate) const V1_KMEM: &str = "memory.kmem.usage_in_bytes";
/// v1: OOM state and kill count.
pub(crate) const V1_OOM: &str = "memory.oom_control";
/// v1: memory+swap limit; present only with swap accounting.
pub(crate) const V1_MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";
/// v2: high-water mark (Linux 5.19+).
pub(crate) const V2_PEAK: &str = "memory.peak";
/// v2: memory.events holds `oom_kill`.
pub(crate) const V2_EVENTS: &str = "memory.events";
/// v2: swap limit; present only with swap accounting.
pub(crate) const V2_SWAP_MAX: &str = "memory.swap.max";
/// Both versions.
pub(crate) const STAT: &str = "memory.stat";

/// What to write on v1. The memsw limit must come after the memory limit: the kernel refuses a
/// memsw limit below the memory limit.
pub(crate) fn v1_limit(limit_bytes: u64, has_memsw: bool) -> Vec<Write> {
    let mut w = vec![Write::new("memory.limit_in_bytes", limit_bytes.to_string())];
    if has_memsw {
        w.push(Write::new(V1_MEMSW_LIMIT, limit_bytes.to_string()));
    }
    w
}

/// What to write on v2.
pub(crate) fn v2_limit(limit_bytes: u64, has_swap: bool) -> Vec<Write> {
    let mut w = vec![Write::new("memory.max", limit_bytes.to_string())];
    if has_swap {
        w.push(Write::new(V2_SWAP_MAX, "0"));
    }
    w
}

/// The memory.stat breakdown, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemoryBreakdown {
    /// Anonymous memory (heap, stacks, the workload's buffers).
    pub anon: u64,
    /// Page cache (the /init binary, files in /tmp and the scratch directory).
    pub file: u64,
    /// Kernel memory charged to the container (page tables, slab, stacks, sockets).
    pub kernel: u64,
}

impl MemoryBreakdown {
    /// Field-wise maximum: the stat is a gauge, so the runtime samples it at several moments and
    /// keeps the largest value of each.
    pub fn max(self, other: Self) -> Self {
        Self {
            anon: self.anon.max(other.anon),
            file: self.file.max(other.file),
            kernel: self.kernel.max(other.kernel),
        }
    }
}

/// Parses v1's memory.stat plus memory.kmem.usage_in_bytes. The `total_` keys include
/// descendants; we create none, but they are the ones that stay right if someone does.
pub(crate) fn parse_v1_stat(stat: &str, kmem_usage: Option<&str>) -> MemoryBreakdown {
    let kv = parse_flat_keyed(stat);
    let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|&(_, v)| v);
    MemoryBreakdown {
        anon: get("total_rss").or_else(|| get("rss")).unwrap_or(0),
        file: get("total_cache").or_else(|| get("cache")).unwrap_or(0),
        kernel: kmem_usage.and_then(|s| s.trim().parse().ok()).unwrap_or(0),
    }
}

/// Parses v2's memory.stat. `kernel` exists since Linux 5.18; before, it is the sum of its parts.
pub(crate) fn parse_v2_stat(stat: &str) -> MemoryBreakdown {
    let kv = parse_flat_keyed(stat);
    let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|&(_, v)| v);
    let kernel = get("kernel").unwrap_or_else(|| {
        ["kernel_stack", "pagetables", "percpu", "sock", "slab"]
            .iter()
            .filter_map(|k| get(k))
            .sum()
    });
    MemoryBreakdown {
        anon: get("anon").unwrap_or(0),
        file: get("file").unwrap_or(0),
        kernel,
    }
}

/// OOM kills from v1's memory.oom_control or v2's memory.events (both have an `oom_kill` line).
pub(crate) fn parse_oom_kills(text: &str) -> u64 {
    parse_flat_keyed(text)
        .into_iter()
        .find(|(k, _)| *k == "oom_kill")
        .map_or(0, |(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_limit_sets_memsw_after_memory() {
        let w = v1_limit(64 << 20, true);
        assert_eq!(
            w,
            [
                Write::new("memory.limit_in_bytes", "67108864"),
                Write::new("memory.memsw.limit_in_bytes", "67108864")
            ]
        );
        assert_eq!(v1_limit(4096, false).len(), 1);
    }

    #[test]
    fn v2_limit_forbids_swap() {
        assert_eq!(
            v2_limit(512 << 20, true),
            [
                Write::new("memory.max", "536870912"),
                Write::new("memory.swap.max", "0")
            ]
        );
        assert_eq!(v2_limit(1, false), [Write::new("memory.max", "1")]);
    }

    #[test]
    fn v1_stat_prefers_hierarchical_totals() {
        let stat = "cache 10\nrss 20\nrss_huge 0\ntotal_cache 11\ntotal_rss 21\n";
        assert_eq!(
            parse_v1_stat(stat, Some("4096\n")),
            MemoryBreakdown {
                anon: 21,
                file: 11,
                kernel: 4096
            }
        );
    }

    #[test]
    fn v2_stat_kernel_falls_back_to_its_parts() {
        let new = "anon 100\nfile 200\nkernel 300\nkernel_stack 1\n";
        assert_eq!(parse_v2_stat(new).kernel, 300);
        let old = "anon 100\nfile 200\nkernel_stack 1\npagetables 2\npercpu 3\nsock 4\nslab 5\n";
        assert_eq!(
            parse_v2_stat(old),
            MemoryBreakdown {
                anon: 100,
                file: 200,
                kernel: 15
            }
        );
    }

    #[test]
    fn oom_kills_are_read_from_both_formats() {
        assert_eq!(
            parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            parse_oom_kills("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n"),
            1
        );
        assert_eq!(parse_oom_kills(""), 0);
    }

    #[test]
    fn breakdown_max_is_fieldwise() {
        let a = MemoryBreakdown {
            anon: 5,
            file: 1,
            kernel: 9,
        };
        let b = MemoryBreakdown {
            anon: 2,
            file: 8,
            kernel: 3,
        };
        assert_eq!(
            a.max(b),
            MemoryBreakdown {
                anon: 5,
                file: 8,
                kernel: 9
            }
        );
    }
}
