//! What a density run's rounds mean, per backend:
//!
//! - **marginal memory per instance**: the slope of MemAvailable's drop against the number of
//!   instances ready, fitted by least squares over every round of every N, with a 95% interval
//!   from a bootstrap that resamples rounds within each N (so every resample has the same Ns);
//!   the intercept is the **fixed cost** (what the first instance brings that the next do not:
//!   a runtime's shared state, a page-cache copy of the agent). On a shared host the drop of
//!   small N is mostly the rest of the host moving; the slope leans on the large N, as gVisor's
//!   "drop over 50 instances" does;
//! - per N: the drop divided by N, and the PSS per instance, as medians over the rounds with
//!   their order-statistic intervals; the drop's parts from /proc/meminfo; the cgroup's view
//!   (containers), named as such;
//! - **instances that fit**: (MemAvailable at the baselines − the headroom − the fixed cost) ÷ the
//!   marginal memory, with the interval the slope's interval gives;
//! - start latency per N (p50, p90, p99, max, the last one) pooled over the rounds, for the
//!   storm and for one more beside N; teardown; the time until MemAvailable came back.

use serde::{Deserialize, Serialize};

use super::instance::Kind;
use super::meter::COMPONENTS;
use super::record::{DensityRun, RoundRecord, Stop, VmMemoryTotals};
use crate::stats::{self, MedianCi, SplitMix64};
use crate::summary::LEVEL;

/// A slope with its interval, KiB per instance, and the intercept (fixed cost), KiB.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slope {
    /// KiB per instance (least squares).
    pub per_instance_kib: f64,
    /// Lower end of its 95% bootstrap interval.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// The intercept: KiB that do not grow with N.
    pub fixed_kib: f64,
    /// Rounds behind it.
    pub points: usize,
    /// Distinct Ns behind it.
    pub counts: usize,
}

/// How many instances fit, from a slope.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// At the slope.
    pub instances: f64,
    /// At the slope's upper end (fewer fit).
    pub lo: f64,
    /// At the slope's lower end; `None` when that end is 0 or below (no bound).
    pub hi: Option<f64>,
    /// MemAvailable at the baselines (median), KiB.
    pub available_kib: u64,
    /// The headroom kept, KiB.
    pub headroom_kib: u64,
}

/// Percentiles of start latencies, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// The last instance of the last round to get ready (the N-th start of a storm).
    pub last: f64,
}

/// Nearest-rank percentile of sorted values.
fn rank(sorted: &[f64], p: f64) -> f64 {
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}

impl Percentiles {
    /// Of `values` (any order); `last` is the value of the last one to finish.
    pub fn of(values: &[f64], last: Option<f64>) -> Option<Self> {
        let sorted = stats::sorted_finite(values);
        if sorted.is_empty() {
            return None;
        }
        Some(Self {
            n: sorted.len(),
            p50: rank(&sorted, 0.50),
            p90: rank(&sorted, 0.90),
            p99: rank(&sorted, 0.99),
            max: sorted[sorted.len() - 1],
            last: last.unwrap_or(sorted[sorted.len() - 1]),
        })
    }
}

/// One backend at one N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerCount {
    /// N.
    pub count: usize,
    /// Rounds with a reading of the loaded host.
    pub rounds: usize,
    /// MemAvailable drop ÷ instances ready, MiB, over the rounds.
    pub drop_mib: Option<MedianCi>,
    /// PSS per instance, MiB, over the rounds.
    pub pss_mib: Option<MedianCi>,
    /// How much the host's *other* processes' anonymous memory grew meanwhile, ÷ N, MiB: the
    /// noise a shared host put on the drop (near 0 on a quiet host).
    #[serde(default)]
    pub others_anon_mib: Option<MedianCi>,
    /// The cgroup's view: charged per instance now, MiB (containers).
    pub cgroup_mib: Option<MedianCi>,
    /// The drop's parts from /proc/meminfo, MiB per instance (medians over the rounds).
    pub components: Vec<(String, f64)>,
    /// Start latency of every instance of every round, ms.
    pub start: Option<Percentiles>,
    /// From the first start to the last ready, ms.
    pub storm_ms: Option<MedianCi>,
    /// One more beside N, ms.
    pub beside: Option<Percentiles>,
    /// First kill to last reap with every cgroup removed, ms.
    pub teardown_ms: Option<MedianCi>,
    /// After the teardown, until MemAvailable was back, ms.
    pub recovery_ms: Option<MedianCi>,
    /// Rounds whose MemAvailable was not back within the wait.
    pub not_recovered: usize,
    /// Median of each start phase (ms after the start began), in time order.
    pub phases: Vec<(String, f64)>,
    /// KSM after it settled (`--ksm on`).
    pub ksm: Option<KsmPer>,
    /// The VMs' memory split, per VM (VMs only).
    #[serde(default)]
    pub vm: Option<VmPer>,
    /// Rounds whose teardown left something behind.
    pub left_behind: usize,
}

/// What KSM had merged once it settled, medians over the rounds of one N: the growth of its
/// host-wide counters during the round (what the instances brought), and the wait.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KsmPer {
    /// Rounds behind it.
    pub rounds: usize,
    /// Pages kept once for several mappings (`pages_shared`).
    pub pages_shared: f64,
    /// Further mappings of those pages (`pages_sharing`): the pages saved.
    pub pages_sharing: f64,
    /// The memory saved, MiB (`pages_sharing` × the page size).
    pub saved_mib: f64,
    /// How long KSM took to settle, ms.
    pub waited_ms: f64,
    /// Rounds in which it did not settle within `--ksm-settle`.
    pub unsettled: usize,
}

/// One VM's memory at one N, per VM, medians over the rounds, MiB: its VMM process's PSS split
/// into guest RAM touched and the VMM's own, and the guest's view from inside.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VmPer {
    /// Guest RAM touched (PSS of the guest RAM mappings).
    pub guest_ram_mib: MedianCi,
    /// The VMM's own memory (PSS of its other mappings).
    pub vmm_overhead_mib: MedianCi,
    /// `MemTotal − MemAvailable` inside the guest when its agent got ready: what the guest
    /// kernel and the agent use.
    pub guest_used_mib: Option<MedianCi>,
    /// `MemTotal` inside the guest.
    pub guest_total_mib: Option<MedianCi>,
}

/// One backend over all its Ns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendSummary {
    /// Which.
    pub backend: Kind,
    /// Per N, ascending.
    pub counts: Vec<PerCount>,
    /// Marginal memory per instance: MemAvailable's drop against N.
    pub marginal: Option<Slope>,
    /// The same fit of the summed PSS.
    pub pss_marginal: Option<Slope>,
    /// Instances that fit in this host's memory with the headroom.
    pub fit: Option<Fit>,
    /// Its instances ran in the emulated machine (`--vm-in-emulator`): memory figures valid,
    /// times emulated.
    #[serde(default)]
    pub emulated: bool,
}

impl BackendSummary {
    /// Its name in tables and charts: `vm (emulated)` for VMs run in the emulated machine, as in
    /// `isolab run`'s reports.
    pub fn label(&self) -> String {
        if self.emulated {
            format!("{} (emulated)", self.backend.label())
        } else {
            self.backend.label().to_owned()
        }
    }
}

/// A density run's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Per backend, in the run's order.
    pub backends: Vec<BackendSummary>,
    /// The headroom, percent.
    pub headroom_pct: f64,
    /// Why backends stopped early.
    pub stops: Vec<Stop>,
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

fn ci(values: &[f64]) -> Option<MedianCi> {
    stats::median_ci(values, LEVEL)
}

fn median(values: &[f64]) -> Option<f64> {
    stats::median_sorted(&stats::sorted_finite(values))
}

/// Least-squares slope and intercept of `points`; `None` with fewer than two distinct x.
pub fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

const RESAMPLES: usize = 2000;
const SEED: u64 = 0xd3_45_17;

/// Slope of `(x, y)` points grouped by x, with a bootstrap interval that resamples within each
/// group (every resample keeps the design's x values).
pub fn slope_ci(points: &[(f64, f64)]) -> Option<Slope> {
    let (slope, intercept) = least_squares(points)?;
    let mut groups: Vec<(f64, Vec<f64>)> = Vec::new();
    for &(x, y) in points {
        match groups.iter_mut().find(|g| g.0 == x) {
            Some(g) => g.1.push(y),
            None => groups.push((x, vec![y])),
        }
    }
    let mut rng = SplitMix64::new(SEED);
    let mut buf = Vec::with_capacity(points.len());
    let mut slopes: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            buf.clear();
            for (x, ys) in &groups {
                for _ in 0..ys.len() {
                    buf.push((*x, ys[rng.below(ys.len())]));
                }
            }
            least_squares(&buf).map(|s| s.0)
        })
        .collect();
    slopes.sort_by(f64::total_cmp);
    let q =
        |p: f64| slopes[((p * (slopes.len() - 1) as f64).round() as usize).min(slopes.len() - 1)];
    let a = (1.0 - LEVEL) / 2.0;
    Some(Slope {
        per_instance_kib: slope,
        lo: q(a),
        hi: q(1.0 - a),
        fixed_kib: intercept,
        points: points.len(),
        counts: groups.len(),
    })
}

/// How many instances fit: (available − headroom − fixed) ÷ slope.
pub fn fit(slope: &Slope, available_kib: u64, headroom_kib: u64) -> Option<Fit> {
    if slope.per_instance_kib <= 0.0 {
        return None;
    }
    let usable = available_kib as f64 - headroom_kib as f64 - slope.fixed_kib.max(0.0);
    let usable = usable.max(0.0);
    Some(Fit {
        instances: (usable / slope.per_instance_kib).floor(),
        lo: if slope.hi > 0.0 {
            (usable / slope.hi).floor()
        } else {
            0.0
        },
        hi: (slope.lo > 0.0).then(|| (usable / slope.lo).floor()),
        available_kib,
        headroom_kib,
    })
}

/// `kib` over `n` VMs, MiB; `None` for none.
fn per_vm(kib: u64, n: usize) -> Option<f64> {
    (n > 0).then(|| mib(kib as f64) / n as f64)
}

/// The size of the pages KSM counts, KiB (the base page: 4 KiB on x86-64).
fn page_kib() -> f64 {
    4.0
}

fn per_count(count: usize, rounds: &[&RoundRecord]) -> PerCount {
    let measured: Vec<&&RoundRecord> = rounds
        .iter()
        .filter(|r| r.loaded.is_some() && r.ready > 0)
        .collect();
    let per = |f: &dyn Fn(&RoundRecord) -> Option<f64>| -> Vec<f64> {
        measured.iter().filter_map(|r| f(r)).collect()
    };
    let drop = per(&|r| Some(mib(r.drop_kib()? as f64) / r.ready as f64));
    let pss = per(&|r| Some(mib(r.pss_total_kib()? as f64) / r.pss_kib.len() as f64));
    let cgroup = per(&|r| Some(mib(r.cgroup?.charged_kib as f64) / r.ready as f64));
    let others = per(&|r| Some(mib(r.others_anon_kib()?) / r.ready as f64));
    let components = COMPONENTS
        .iter()
        .filter_map(|(name, field)| {
            let v = per(&|r| Some(mib(r.delta_kib(*field)?) / r.ready as f64));
            median(&v).map(|m| ((*name).to_owned(), m))
        })
        .collect();
    let mut starts = Vec::new();
    let mut last = None;
    for r in rounds {
        let ready: Vec<(f64, f64)> = r
            .starts
            .iter()
            .filter_map(|s| Some((s.ready_ms?, s.since_storm_ms?)))
            .collect();
        starts.extend(ready.iter().map(|s| s.0));
        if let Some(l) = ready.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|s| s.0) {
            last = Some(l);
        }
    }
    let beside: Vec<f64> = rounds.iter().flat_map(|r| r.beside_ms.clone()).collect();
    // Phases: the median of each name over every ready instance, in time order.
    let mut phase_values: Vec<(String, Vec<f64>)> = Vec::new();
    for s in rounds.iter().flat_map(|r| &r.starts) {
        for (name, at) in &s.phases {
            match phase_values.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.push(*at),
                None => phase_values.push((name.clone(), vec![*at])),
            }
        }
    }
    let mut phases: Vec<(String, f64)> = phase_values
        .into_iter()
        .filter_map(|(n, v)| median(&v).map(|m| (n, m)))
        .collect();
    phases.sort_by(|a, b| a.1.total_cmp(&b.1));
    let vm_per = |f: &dyn Fn(&VmMemoryTotals) -> Option<f64>| -> Vec<f64> {
        measured
            .iter()
            .filter_map(|r| r.vm_memory.as_ref().and_then(f))
            .collect()
    };
    let vm = match (
        ci(&vm_per(&|t| per_vm(t.guest_ram_kib, t.vms))),
        ci(&vm_per(&|t| per_vm(t.vmm_overhead_kib, t.vms))),
    ) {
        (Some(guest_ram_mib), Some(vmm_overhead_mib)) => Some(VmPer {
            guest_ram_mib,
            vmm_overhead_mib,
            guest_used_mib: ci(&vm_per(&|t| per_vm(t.guest_used_kib, t.inside_vms))),
            guest_total_mib: ci(&vm_per(&|t| per_vm(t.guest_total_kib, t.inside_vms))),
        }),
        _ => None,
    };
    let ksm: Vec<(f64, f64, f64, bool)> = measured
        .iter()
        .filter_map(|r| {
            let k = r.ksm?;
            let before = r.ksm_before.unwrap_or_default();
            let grew = |now: u64, was: u64| now as f64 - was as f64;
            Some((
                grew(k.state.pages_shared, before.pages_shared),
                grew(k.state.pages_sharing, before.pages_sharing),
                k.waited_ms as f64,
                k.settled,
            ))
        })
        .collect();
    let med_of = |f: fn(&(f64, f64, f64, bool)) -> f64| {
        median(&ksm.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0)
    };
    PerCount {
        count,
        rounds: measured.len(),
        drop_mib: ci(&drop),
        pss_mib: ci(&pss),
        others_anon_mib: ci(&others),
        cgroup_mib: ci(&cgroup),
        components,
        start: Percentiles::of(&starts, last),
        storm_ms: ci(&rounds.iter().filter_map(|r| r.storm_ms).collect::<Vec<_>>()),
        beside: Percentiles::of(&beside, None),
        teardown_ms: ci(&rounds
            .iter()
            .filter(|r| r.ready > 0)
            .filter_map(|r| r.teardown_ms)
            .collect::<Vec<_>>()),
        recovery_ms: ci(&rounds
            .iter()
            .filter(|r| r.ready > 0)
            .filter_map(|r| r.recovery_ms)
            .collect::<Vec<_>>()),
        not_recovered: rounds
            .iter()
            .filter(|r| r.ready > 0 && r.recovery_ms.is_none())
            .count(),
        phases,
        ksm: (!ksm.is_empty()).then(|| KsmPer {
            rounds: ksm.len(),
            pages_shared: med_of(|k| k.0),
            pages_sharing: med_of(|k| k.1),
            saved_mib: med_of(|k| k.1) * page_kib() / 1024.0,
            waited_ms: med_of(|k| k.2),
            unsettled: ksm.iter().filter(|k| !k.3).count(),
        }),
        vm,
        left_behind: rounds.iter().filter(|r| !r.left_behind.is_empty()).count(),
    }
}

/// Summarises a stored density run.
pub fn summarise(run: &DensityRun) -> Summary {
    let m = &run.manifest;
    let host_total_kib = m.host.memory_mib as f64 * 1024.0;
    let mut kinds: Vec<Kind> = m.backends.iter().map(|b| b.backend).collect();
    for r in &run.rounds {
        if !kinds.contains(&r.backend) {
            kinds.push(r.backend);
        }
    }
    let backends = kinds
        .into_iter()
        .filter(|k| run.rounds.iter().any(|r| r.backend == *k))
        .map(|kind| {
            let mine: Vec<&RoundRecord> = run.rounds.iter().filter(|r| r.backend == kind).collect();
            let mut counts: Vec<usize> = mine.iter().map(|r| r.count).collect();
            counts.sort_unstable();
            counts.dedup();
            let per: Vec<PerCount> = counts
                .iter()
                .map(|&c| {
                    let rs: Vec<&RoundRecord> =
                        mine.iter().copied().filter(|r| r.count == c).collect();
                    per_count(c, &rs)
                })
                .collect();
            let measured = || {
                mine.iter()
                    .filter(|r| r.loaded.is_some() && r.ready > 0)
                    .copied()
            };
            let drop_points: Vec<(f64, f64)> = measured()
                .filter_map(|r| Some((r.ready as f64, r.drop_kib()? as f64)))
                .collect();
            let pss_points: Vec<(f64, f64)> = measured()
                .filter_map(|r| Some((r.pss_kib.len() as f64, r.pss_total_kib()? as f64)))
                .collect();
            let marginal = slope_ci(&drop_points);
            let available: Vec<f64> = mine
                .iter()
                .map(|r| r.baseline.meminfo.mem_available as f64)
                .collect();
            // The headroom is a share of the memory the instances ran in: the host's, or the
            // emulated machine's for VMs run there (`--vm-in-emulator`), as its readings say.
            let total: Vec<f64> = mine
                .iter()
                .map(|r| r.baseline.meminfo.mem_total as f64)
                .filter(|&t| t > 0.0)
                .collect();
            let headroom_kib =
                (median(&total).unwrap_or(host_total_kib) * m.headroom_pct / 100.0) as u64;
            let fit = marginal
                .as_ref()
                .and_then(|s| fit(s, median(&available).unwrap_or(0.0) as u64, headroom_kib));
            BackendSummary {
                backend: kind,
                counts: per,
                marginal,
                pss_marginal: slope_ci(&pss_points),
                fit,
                emulated: m.backends.iter().any(|b| {
                    b.backend == kind
                        && b.facts
                            .get(super::render::EMULATED_FACT)
                            .is_some_and(|v| v == "true")
                }),
            }
        })
        .collect();
    Summary {
        backends,
        headroom_pct: m.headroom_pct,
        stops: m.stops.clone(),
    }
}

impl Summary {
    /// The summary of one backend.
    pub fn of(&self, kind: Kind) -> Option<&BackendSummary> {
        self.backends.iter().find(|b| b.backend == kind)
    }
}

/// Whether two slopes' intervals overlap (they agree within their intervals).
pub fn agree(a: &Slope, b: &Slope) -> bool {
    a.lo <= b.hi && b.lo <= a.hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_a_line() {
        let pts: Vec<(f64, f64)> = [1.0, 10.0, 100.0]
            .iter()
            .map(|&x| (x, 3.0 * x + 7.0))
            .collect();
        let (s, c) = least_squares(&pts).expect("fit");
        assert!((s - 3.0).abs() < 1e-9 && (c - 7.0).abs() < 1e-9);
        assert!(least_squares(&[(5.0, 1.0), (5.0, 2.0)]).is_none(), "one x");
    }

    #[test]
    fn the_slope_interval_holds_the_true_slope_and_narrows_with_less_noise() {
        // Three rounds per N with ±noise that does not grow with N, as on a shared host.
        let noise = [-50.0, 0.0, 50.0];
        let pts: Vec<(f64, f64)> = [1.0, 10.0, 100.0, 1000.0]
            .iter()
            .flat_map(|&x| noise.iter().map(move |e| (x, 1200.0 * x + 3000.0 + e)))
            .collect();
        let s = slope_ci(&pts).expect("slope");
        assert!((s.per_instance_kib - 1200.0).abs() < 1e-6, "{s:?}");
        assert!(
            s.lo <= 1200.0 && s.hi >= 1200.0 && s.hi - s.lo < 1.0,
            "{s:?}"
        );
        assert!((s.fixed_kib - 3000.0).abs() < 1e-6);
        assert_eq!((s.points, s.counts), (12, 4));
        // Deterministic: the report recomputes the same interval.
        assert_eq!(slope_ci(&pts), Some(s));
    }

    #[test]
    fn fit_uses_available_minus_headroom_and_fixed() {
        let s = Slope {
            per_instance_kib: 1024.0,
            lo: 512.0,
            hi: 2048.0,
            fixed_kib: 10_240.0,
            points: 6,
            counts: 2,
        };
        let f = fit(&s, 1_048_576 + 10_240 + 102_400, 102_400).expect("fit");
        assert_eq!(f.instances, 1024.0);
        assert_eq!(f.lo, 512.0);
        assert_eq!(f.hi, Some(2048.0));
        let free = Slope { lo: -1.0, ..s };
        assert_eq!(fit(&free, 2_000_000, 0).and_then(|f| f.hi), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        let p = Percentiles::of(&v, Some(17.0)).expect("some");
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max, p.last),
            (500.0, 900.0, 990.0, 1000.0, 17.0)
        );
        let one = Percentiles::of(&[4.0], None).expect("one");
        assert_eq!((one.p50, one.p99, one.last), (4.0, 4.0, 4.0));
        assert!(Percentiles::of(&[], None).is_none());
    }
}
