//! The cpu controller: a limit in cores as a CFS quota per period, and user/system CPU time.
//!
//! A limit of N cores is a quota of N periods per period, the same bandwidth a VM with N vCPUs gets
//! (a VM cannot exceed its vCPUs; a cgroup can only be throttled to the same average).

use super::{parse_flat_keyed, Write};

/// CFS period, µs. The kernel default; a shorter period throttles in finer slices but costs more
/// timer interrupts.
pub(crate) const PERIOD_US: u64 = 100_000;
/// v1 accounting files (cpuacct controller), nanoseconds. `usage` is exact (scheduler runtime);
/// the user/sys split is sampled at timer ticks, so a run shorter than a tick may show 0/0.
pub(crate) const V1_USAGE: &str = "cpuacct.usage";
/// See [`V1_USAGE`].
pub(crate) const V1_USAGE_USER: &str = "cpuacct.usage_user";
/// See [`V1_USAGE_USER`].
pub(crate) const V1_USAGE_SYS: &str = "cpuacct.usage_sys";
/// v2 accounting (always present, even without the cpu controller enabled).
pub(crate) const V2_STAT: &str = "cpu.stat";

/// The quota for `cores` per period; never below 1 ms, the kernel's minimum.
pub(crate) fn quota_us(cores: f64) -> u64 {
    let q = (cores * PERIOD_US as f64).round();
    if q.is_finite() && q >= 1000.0 {
        q as u64
    } else {
        1000
    }
}

/// What to write on v1 (cpu controller).
pub(crate) fn v1_limit(cores: f64) -> Vec<Write> {
    vec![
        Write::new("cpu.cfs_period_us", PERIOD_US.to_string()),
        Write::new("cpu.cfs_quota_us", quota_us(cores).to_string()),
    ]
}

/// What to write on v2.
pub(crate) fn v2_limit(cores: f64) -> Vec<Write> {
    vec![Write::new(
        "cpu.max",
        format!("{} {}", quota_us(cores), PERIOD_US),
    )]
}

/// The CPU weight every trial cgroup of a run gets, native and container alike, so that under
/// load from outside the run each gets the same share (v2 `cpu.weight`, the kernel's default).
pub(crate) const V2_WEIGHT: u64 = 100;
/// The same on v1 (`cpu.shares`, the kernel's default).
pub(crate) const V1_SHARES: u64 = 1024;

/// The weight write on v1 (cpu controller).
pub(crate) fn v1_weight() -> Write {
    Write::new("cpu.shares", V1_SHARES.to_string())
}

/// The weight write on v2 (needs the cpu controller enabled in the parent).
pub(crate) fn v2_weight() -> Write {
    Write::new("cpu.weight", V2_WEIGHT.to_string())
}

/// CPU time used, nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuTime {
    /// User mode.
    pub user_ns: u64,
    /// Kernel mode on behalf of the container.
    pub system_ns: u64,
    /// Exact total from the scheduler. `user_ns + system_ns` equals it when the kernel sampled a
    /// split; a run shorter than one timer tick has a total but no split (both 0).
    pub total_ns: u64,
}

/// Scales a tick-sampled user/sys split to the exact total, as the kernel's `cputime_adjust`
/// does for processes.
fn split(user: u64, sys: u64, total: u64) -> CpuTime {
    let sampled = user.saturating_add(sys);
    if sampled == 0 || total == 0 {
        return CpuTime {
            user_ns: user,
            system_ns: sys,
            total_ns: total.max(sampled),
        };
    }
    let user_ns = (u128::from(total) * u128::from(user) / u128::from(sampled)) as u64;
    CpuTime {
        user_ns,
        system_ns: total - user_ns,
        total_ns: total,
    }
}

/// v1: `cpuacct.usage`, `cpuacct.usage_user` and `cpuacct.usage_sys` each hold one number of
/// nanoseconds.
pub(crate) fn parse_v1(total: &str, user: &str, sys: &str) -> CpuTime {
    let n = |s: &str| s.trim().parse().unwrap_or(0);
    split(n(user), n(sys), n(total))
}

/// v2: `cpu.stat` in microseconds.
pub(crate) fn parse_v2(stat: &str) -> CpuTime {
    let kv = parse_flat_keyed(stat);
    let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map_or(0, |&(_, v)| v);
    split(
        get("user_usec").saturating_mul(1000),
        get("system_usec").saturating_mul(1000),
        get("usage_usec").saturating_mul(1000),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_become_quota_per_period() {
        assert_eq!(quota_us(1.0), 100_000);
        assert_eq!(quota_us(2.5), 250_000);
        assert_eq!(quota_us(0.001), 1000, "clamped to the kernel minimum");
        assert_eq!(quota_us(f64::NAN), 1000);
    }

    #[test]
    fn files_written_per_version() {
        assert_eq!(
            v1_limit(2.0),
            [
                Write::new("cpu.cfs_period_us", "100000"),
                Write::new("cpu.cfs_quota_us", "200000")
            ]
        );
        assert_eq!(v2_limit(2.0), [Write::new("cpu.max", "200000 100000")]);
    }

    #[test]
    fn usage_parses() {
        // Ticks say 3:1, the exact total is 1000 ns.
        assert_eq!(
            parse_v1("1000\n", "30\n", "10\n"),
            CpuTime {
                user_ns: 750,
                system_ns: 250,
                total_ns: 1000
            }
        );
        // Shorter than a tick: a total, no split.
        assert_eq!(
            parse_v1("5000\n", "0\n", "0\n"),
            CpuTime {
                user_ns: 0,
                system_ns: 0,
                total_ns: 5000
            }
        );
        let stat = "usage_usec 30\nuser_usec 20\nsystem_usec 10\nnr_periods 0\n";
        assert_eq!(
            parse_v2(stat),
            CpuTime {
                user_ns: 20_000,
                system_ns: 10_000,
                total_ns: 30_000
            }
        );
    }
}
