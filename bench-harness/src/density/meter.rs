//! The one memory meter of a density run, the same for every backend:
//!
//! - **the host's view**: `/proc/meminfo`'s `MemAvailable` (the kernel's estimate of what can
//!   still be given to new work without swapping) before and after N instances settle; its drop
//!   is what the instances cost the host, whatever kind of memory it is. Its parts come from the
//!   same file: anonymous pages, page tables, kernel stacks, slab (reclaimable and not), per-CPU
//!   allocations, shared memory and file pages. Each reading is the median of several samples,
//!   because the rest of a shared host moves it too;
//! - **per instance**: the proportional set size (`Pss` of `/proc/PID/smaps_rollup`) of every
//!   host process of the instance, summed: a page shared by k processes counts 1/k in each, so
//!   summed over all instances it is what they hold together, counted once. It misses what the
//!   kernel keeps for the instance (namespaces, cgroups, page tables, sockets), which the host's
//!   view includes.

use serde::{Deserialize, Serialize};

/// The fields of `/proc/meminfo` a density run reads, KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meminfo {
    /// `MemTotal`.
    pub mem_total: u64,
    /// `MemFree`.
    pub mem_free: u64,
    /// `MemAvailable`: the headline.
    pub mem_available: u64,
    /// `AnonPages`: private memory of processes.
    pub anon: u64,
    /// `PageTables` (and `SecPageTables`, the second-level tables of VMs, when the kernel has it).
    pub page_tables: u64,
    /// `KernelStack`: one per thread.
    pub kernel_stack: u64,
    /// `SReclaimable`: slab the kernel can give back (dentries, inodes).
    pub slab_reclaimable: u64,
    /// `SUnreclaim`: slab it cannot (namespaces, cgroups, sockets, task structs).
    pub slab_unreclaimable: u64,
    /// `Percpu`: per-CPU allocations (cgroups keep statistics per CPU).
    pub percpu: u64,
    /// `Shmem`: shared memory and tmpfs.
    pub shmem: u64,
    /// `Active(file)` + `Inactive(file)`: the page cache.
    pub file: u64,
}

impl Meminfo {
    /// Parses `/proc/meminfo` text. Missing fields read as 0.
    pub fn parse(text: &str) -> Self {
        let get = |key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        Self {
            mem_total: get("MemTotal"),
            mem_free: get("MemFree"),
            mem_available: get("MemAvailable"),
            anon: get("AnonPages"),
            page_tables: get("PageTables") + get("SecPageTables"),
            kernel_stack: get("KernelStack"),
            slab_reclaimable: get("SReclaimable"),
            slab_unreclaimable: get("SUnreclaim"),
            percpu: get("Percpu"),
            shmem: get("Shmem"),
            file: get("Active(file)") + get("Inactive(file)"),
        }
    }

    /// Reads this host's.
    pub fn read() -> Option<Self> {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .map(|t| Self::parse(&t))
    }

    /// Field-wise median of several readings (each field on its own).
    pub fn median(samples: &[Meminfo]) -> Option<Meminfo> {
        if samples.is_empty() {
            return None;
        }
        let med = |f: fn(&Meminfo) -> u64| -> u64 {
            let mut v: Vec<u64> = samples.iter().map(f).collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        Some(Meminfo {
            mem_total: med(|m| m.mem_total),
            mem_free: med(|m| m.mem_free),
            mem_available: med(|m| m.mem_available),
            anon: med(|m| m.anon),
            page_tables: med(|m| m.page_tables),
            kernel_stack: med(|m| m.kernel_stack),
            slab_reclaimable: med(|m| m.slab_reclaimable),
            slab_unreclaimable: med(|m| m.slab_unreclaimable),
            percpu: med(|m| m.percpu),
            shmem: med(|m| m.shmem),
            file: med(|m| m.file),
        })
    }
}

/// A field of [`Meminfo`].
pub type Field = fn(&Meminfo) -> u64;

/// The parts of a change in `/proc/meminfo`, KiB (positive: grew), as named in reports.
pub const COMPONENTS: [(&str, Field); 8] = [
    ("anonymous", |m| m.anon),
    ("page tables", |m| m.page_tables),
    ("kernel stacks", |m| m.kernel_stack),
    ("slab, unreclaimable", |m| m.slab_unreclaimable),
    ("slab, reclaimable", |m| m.slab_reclaimable),
    ("per-CPU", |m| m.percpu),
    ("shared memory", |m| m.shmem),
    ("file pages", |m| m.file),
];

/// One reading of the meter: the median of `samples` readings `every` apart, with the spread
/// of `MemAvailable` among them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Field-wise medians.
    pub meminfo: Meminfo,
    /// Smallest and largest `MemAvailable` among the samples, KiB: how much the host moved
    /// while it was read.
    pub available_range: (u64, u64),
    /// How many samples.
    pub samples: u32,
    /// CLOCK_MONOTONIC of the middle sample, s: where the reading sits in time, so a drift of
    /// the host between readings can be taken out.
    #[serde(default)]
    pub at_s: f64,
}

/// Reads `/proc/meminfo` `samples` times, `every` apart.
pub fn read_settled(samples: u32, every: std::time::Duration) -> Option<Reading> {
    let mut got = Vec::with_capacity(samples as usize);
    let mut times = Vec::with_capacity(samples as usize);
    for i in 0..samples.max(1) {
        if i > 0 {
            std::thread::sleep(every);
        }
        got.push(Meminfo::read()?);
        times.push(crate::timefmt::monotonic_ns());
    }
    let lo = got.iter().map(|m| m.mem_available).min()?;
    let hi = got.iter().map(|m| m.mem_available).max()?;
    Some(Reading {
        meminfo: Meminfo::median(&got)?,
        available_range: (lo, hi),
        samples: got.len() as u32,
        at_s: times[times.len() / 2] as f64 / 1e9,
    })
}

/// `Pss` and `Anonymous` of one process, KiB, from `/proc/PID/smaps_rollup`; `None` if it is
/// gone or unreadable.
pub fn pss_anon_kib(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some((
        parse_kib(&text, "Pss")?,
        parse_kib(&text, "Anonymous").unwrap_or(0),
    ))
}

/// A `Key:   N kB` line of smaps_rollup text, KiB.
pub fn parse_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24683520 kB\nMemFree:         6105384 kB\n\
MemAvailable:   23434096 kB\nBuffers:          123 kB\nActive(file):    1000 kB\nInactive(file):   500 kB\n\
AnonPages:        1116712 kB\nShmem:              9320 kB\nKReclaimable:     800000 kB\n\
SReclaimable:     700000 kB\nSUnreclaim:       120000 kB\nKernelStack:       12000 kB\n\
PageTables:        20000 kB\nSecPageTables:        16 kB\nPercpu:            5000 kB\n";

    #[test]
    fn meminfo_fields_are_read_by_exact_name() {
        let m = Meminfo::parse(MEMINFO);
        assert_eq!(m.mem_total, 24_683_520);
        assert_eq!(m.mem_available, 23_434_096);
        assert_eq!(m.anon, 1_116_712);
        // SecPageTables (VMs' second-level tables) counts as page tables.
        assert_eq!(m.page_tables, 20_016);
        assert_eq!(m.file, 1_500);
        // "KReclaimable" is not "SReclaimable".
        assert_eq!(m.slab_reclaimable, 700_000);
        assert_eq!(m.slab_unreclaimable, 120_000);
        assert_eq!(m.percpu, 5_000);
        assert_eq!(Meminfo::parse("").mem_available, 0);
    }

    #[test]
    fn the_median_is_taken_field_by_field() {
        let a = Meminfo {
            mem_available: 10,
            anon: 3,
            ..Meminfo::default()
        };
        let b = Meminfo {
            mem_available: 30,
            anon: 1,
            ..Meminfo::default()
        };
        let c = Meminfo {
            mem_available: 20,
            anon: 2,
            ..Meminfo::default()
        };
        let m = Meminfo::median(&[a, b, c]).expect("median");
        assert_eq!((m.mem_available, m.anon), (20, 2));
        assert!(Meminfo::median(&[]).is_none());
    }

    #[test]
    fn pss_comes_from_its_own_line() {
        let t =
            "00400000-7ffd [rollup]\nRss:                1480 kB\nPss:                 371 kB\n\
Pss_Dirty:           100 kB\nPss_Anon:            100 kB\n";
        assert_eq!(parse_kib(t, "Pss"), Some(371));
        assert_eq!(parse_kib(t, "Pss_Anon"), Some(100));
        assert_eq!(parse_kib("Rss: 1 kB\n", "Pss"), None);
        assert!(pss_anon_kib(std::process::id() as i32).is_some_and(|(p, a)| p > 0 && a > 0));
    }
}
