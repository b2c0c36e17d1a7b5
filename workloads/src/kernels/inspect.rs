//! `inspect`: what the inside looks like. The teaching workload: a container shares the host's
//! kernel (same release, same boot_id), a VM has its own.
//!
//! Every source is optional: a minimal VM may lack /sys or parts of /proc, and a missing file
//! yields an empty or zero field, never an error, so the report shows exactly what was visible.

use std::collections::BTreeSet;

use nix::sched::{sched_getaffinity, CpuSet};
use nix::unistd::Pid;

use crate::kernels::WorkloadError;
use crate::result::{InspectReport, MemoryInside, Metric};

/// Collects the report.
pub fn run() -> Result<InspectReport, WorkloadError> {
    let uts = nix::sys::utsname::uname().ok();
    let text = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    Ok(InspectReport {
        kernel_release: uts
            .as_ref()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        boot_id: text("/proc/sys/kernel/random/boot_id").trim().to_owned(),
        pid: std::process::id(),
        visible_processes: count_processes(),
        hostname: uts
            .as_ref()
            .map(|u| u.nodename().to_string_lossy().into_owned())
            .unwrap_or_default(),
        interfaces: interfaces(),
        mounts: u32::try_from(text("/proc/self/mounts").lines().count()).unwrap_or(u32::MAX),
        cpus: cpus(),
        mem_total_kib: read_meminfo().map_or(0, |m| m.mem_total_kib),
        cgroup: text("/proc/self/cgroup")
            .lines()
            .collect::<Vec<_>>()
            .join("; "),
        block_devices: block_devices(),
    })
}

/// The names in `/sys/block`, sorted (empty without sysfs).
fn block_devices() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The numeric parts of the report as metrics, so they are summarised like any other.
pub fn metrics(report: &InspectReport) -> Vec<Metric> {
    vec![
        Metric::lower(
            "visible_processes",
            "processes",
            f64::from(report.visible_processes),
        ),
        Metric::lower("mounts", "mounts", f64::from(report.mounts)),
        Metric::higher("cpus", "CPUs", f64::from(report.cpus)),
        Metric::higher("mem_total", "KiB", report.mem_total_kib as f64),
    ]
}

/// `MemTotal` and `MemAvailable` from `/proc/meminfo`; `None` when it cannot be read.
pub fn read_meminfo() -> Option<MemoryInside> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_meminfo(text: &str) -> Option<MemoryInside> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(MemoryInside {
        mem_total_kib: field("MemTotal")?,
        mem_available_kib: field("MemAvailable").unwrap_or(0),
    })
}

fn count_processes() -> u32 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
        })
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Interface names, sorted and unique. getifaddrs asks the kernel over netlink, so it answers for
/// this process's network namespace even when /sys was mounted in another one (a container that
/// inherited the host's /sys); /sys/class/net is the fallback where netlink is unavailable.
fn interfaces() -> Vec<String> {
    let mut names = BTreeSet::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        names.extend(addrs.map(|a| a.interface_name));
    }
    if names.is_empty() {
        if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
            names.extend(
                dir.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
    }
    names.into_iter().collect()
}

fn cpus() -> u32 {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
        return 0;
    };
    let n = (0..CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_are_parsed_by_exact_name() {
        let text = "MemTotal:       16314372 kB\nMemFree:  1 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Some(MemoryInside {
                mem_total_kib: 16_314_372,
                mem_available_kib: 12_000_000
            })
        );
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn report_matches_what_this_process_sees() {
        let r = run().unwrap();
        assert_eq!(r.pid, std::process::id());
        assert_eq!(
            r.kernel_release,
            nix::sys::utsname::uname()
                .unwrap()
                .release()
                .to_str()
                .unwrap()
        );
        assert_eq!(r.boot_id.len(), 36, "{r:?}");
        assert!(r.visible_processes >= 1);
        assert!(r.interfaces.contains(&"lo".to_owned()), "{r:?}");
        let mut sorted = r.interfaces.clone();
        sorted.sort();
        assert_eq!(sorted, r.interfaces);
        assert!(r.mounts >= 1 && r.cpus >= 1 && r.mem_total_kib > 0, "{r:?}");
        let m = metrics(&r);
        assert_eq!(m.len(), 4);
        assert_eq!(m[2].value, f64::from(r.cpus));
    }
}
