//! The summary of a run: per workload, metric and backend, the median with its 95% interval, the
//! number of samples, and the ratio to native with its interval. `isolab run` prints it from the
//! samples it just stored and `isolab report` from the same file, so both print the same numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use workloads::Better;

use crate::sample::Sample;
use crate::stats::{self, MedianCi, RatioCi};

/// Confidence level of every interval isolab prints.
pub const LEVEL: f64 = 0.95;

/// One line of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Suite entry name.
    pub workload: String,
    /// Metric name.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Direction.
    pub better: Better,
    /// Backend label (`vm (emulated)` for emulated samples).
    pub backend: String,
    /// Median and interval.
    pub median: MedianCi,
    /// Ratio to native (None for native itself, emulated samples, or no native data).
    pub vs_native: Option<RatioCi>,
}

/// Failed trials of one backend and workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    /// Backend.
    pub backend: String,
    /// Workload.
    pub workload: String,
    /// How many trials failed.
    pub count: usize,
    /// The first reason seen.
    pub reason: String,
}

/// The whole summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rows in display order.
    pub rows: Vec<SummaryRow>,
    /// Failed or unavailable trials, grouped.
    pub failures: Vec<FailureGroup>,
    /// Measured (non-warm-up) samples, ok or not.
    pub measured_samples: usize,
    /// Warm-up samples left out.
    pub warmup_samples: usize,
}

fn backend_label(s: &Sample) -> String {
    if s.emulated {
        format!("{} (emulated)", s.backend)
    } else {
        s.backend.clone()
    }
}

fn backend_rank(label: &str) -> usize {
    ["native", "container", "vm", "vm (emulated)"]
        .iter()
        .position(|b| *b == label)
        .unwrap_or(9)
}

/// Where a host metric goes among the host metrics: time first, then memory, CPU, I/O, exits.
fn host_metric_rank(name: &str) -> usize {
    const ORDER: &[&str] = &[
        "host.start_to_ready",
        "host.boot_to_agent",
        "host.teardown",
        "host.wall",
        "host.peak_rss",
        "host.peak_memory",
        "host.guest_ram_touched",
        "host.vmm_overhead",
        "host.mem_anon",
        "host.mem_file",
        "host.mem_kernel",
        "host.cpu_user",
        "host.cpu_sys",
        "host.cpu_total",
        "host.io_read",
        "host.io_write",
    ];
    ORDER.iter().position(|o| *o == name).unwrap_or(ORDER.len())
}

/// Computes the summary of `samples`. Workloads appear in the order of `workload_order` (the
/// suite's), metrics in the order the agent reported them, backends native, container, vm.
pub fn summarise(samples: &[Sample], workload_order: &[String]) -> Summary {
    // (workload, metric) -> backend -> values; plus first-seen order of metrics per workload.
    let mut values: BTreeMap<(String, String), BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    let mut meta: BTreeMap<(String, String), (String, Better, usize)> = BTreeMap::new();
    let mut failures: BTreeMap<(String, String), FailureGroup> = BTreeMap::new();
    let mut measured = 0;
    let mut warmup = 0;
    for s in samples {
        if s.warmup {
            warmup += 1;
            continue;
        }
        measured += 1;
        let backend = backend_label(s);
        if let Some(f) = &s.failure {
            failures
                .entry((backend.clone(), s.workload.clone()))
                .and_modify(|g| g.count += 1)
                .or_insert_with(|| FailureGroup {
                    backend: backend.clone(),
                    workload: s.workload.clone(),
                    count: 1,
                    reason: f.to_string(),
                });
            continue;
        }
        for (i, m) in s.metrics.iter().enumerate() {
            let key = (s.workload.clone(), m.name.clone());
            meta.entry(key.clone())
                .or_insert_with(|| (m.unit.clone(), m.better, i));
            values
                .entry(key)
                .or_default()
                .entry(backend.clone())
                .or_default()
                .push(m.value);
        }
    }
    let workload_pos = |w: &str| {
        workload_order
            .iter()
            .position(|x| x == w)
            .unwrap_or(usize::MAX)
    };
    let mut keys: Vec<&(String, String)> = values.keys().collect();
    keys.sort_by_key(|(w, m)| {
        // The agent's metrics in the order it reported them, then the host's in a fixed order
        // (backends report different subsets, so first-seen order would depend on the shuffle).
        let order = if m.starts_with("host.") {
            host_metric_rank(m)
        } else {
            meta.get(&(w.clone(), m.clone())).map_or(0, |x| x.2)
        };
        (
            workload_pos(w),
            w.clone(),
            m.starts_with("host."),
            order,
            m.clone(),
        )
    });
    let mut rows = Vec::new();
    for key in keys {
        let Some(by_backend) = values.get(key) else {
            continue;
        };
        let Some((unit, better, _)) = meta.get(key) else {
            continue;
        };
        let native = by_backend.get("native");
        let mut backends: Vec<&String> = by_backend.keys().collect();
        backends.sort_by_key(|b| (backend_rank(b), (*b).clone()));
        for b in backends {
            let vals = &by_backend[b];
            let Some(median) = stats::median_ci(vals, LEVEL) else {
                continue;
            };
            let vs_native = match native {
                Some(n) if b != "native" && !b.ends_with("(emulated)") => {
                    stats::ratio_ci(vals, n, LEVEL)
                }
                _ => None,
            };
            rows.push(SummaryRow {
                workload: key.0.clone(),
                metric: key.1.clone(),
                unit: unit.clone(),
                better: *better,
                backend: b.clone(),
                median,
                vs_native,
            });
        }
    }
    let mut failures: Vec<FailureGroup> = failures.into_values().collect();
    failures.sort_by_key(|f| (workload_pos(&f.workload), backend_rank(&f.backend)));
    Summary {
        rows,
        failures,
        measured_samples: measured,
        warmup_samples: warmup,
    }
}

/// A number with four significant digits, without scientific notation for everyday magnitudes.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e7).contains(&a) {
        format!("{x:.3e}")
    } else {
        let digits = 3 - (a.log10().floor() as i32);
        format!("{x:.*}", digits.clamp(0, 6) as usize)
    }
}

/// Renders the summary as an aligned text table for a terminal.
pub fn render_table(summary: &Summary) -> String {
    let header = [
        "workload",
        "metric",
        "backend",
        "n",
        "median",
        "95% CI",
        "unit",
        "vs native",
    ];
    let mut lines: Vec<[String; 8]> = Vec::new();
    let mut low_coverage = false;
    let mut last_workload = "";
    for r in &summary.rows {
        let ci_mark = if r.median.coverage + 1e-9 < LEVEL {
            low_coverage = true;
            "*"
        } else {
            ""
        };
        let vs = r.vs_native.map_or(String::new(), |v| {
            format!(
                "{}x [{}, {}]",
                fmt_ratio(v.ratio),
                fmt_ratio(v.lo),
                fmt_ratio(v.hi)
            )
        });
        lines.push([
            if r.workload == last_workload {
                String::new()
            } else {
                r.workload.clone()
            },
            r.metric.clone(),
            r.backend.clone(),
            r.median.n.to_string(),
            fmt_num(r.median.median),
            format!(
                "[{}, {}]{ci_mark}",
                fmt_num(r.median.lo),
                fmt_num(r.median.hi)
            ),
            format!(
                "{}{}",
                r.unit,
                if r.better == Better::Higher {
                    " ↑"
                } else {
                    " ↓"
                }
            ),
            vs,
        ]);
        last_workload = &r.workload;
    }
    let mut widths = header.map(|h| h.chars().count());
    for l in &lines {
        for (w, cell) in widths.iter_mut().zip(l.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let fmt_row = |cells: &[String], out: &mut String| {
        let mut line = String::new();
        for (i, (c, w)) in cells.iter().zip(widths.iter()).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            // Numbers right-aligned, text left-aligned.
            if matches!(i, 3 | 4) {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(pad));
            }
            line.push_str("  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    };
    fmt_row(&header.map(str::to_owned), &mut out);
    let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    let _ = writeln!(out, "{}", "─".repeat(total));
    for (i, l) in lines.iter().enumerate() {
        if i > 0 && !l[0].is_empty() {
            out.push('\n');
        }
        fmt_row(l, &mut out);
    }
    if summary.rows.is_empty() {
        let _ = writeln!(out, "(no successful measured trials)");
    }
    let _ = writeln!(
        out,
        "\n{} measured samples ({} warm-up samples not summarised). Intervals: median, distribution-free \
         order-statistic CI; ratio: percentile bootstrap ({} resamples). ↑ higher is better, ↓ lower.",
        summary.measured_samples,
        summary.warmup_samples,
        stats::BOOTSTRAP_RESAMPLES
    );
    if low_coverage {
        let _ = writeln!(
            out,
            "* fewer than 6 samples: 95% is out of reach; the interval is min..max with lower coverage."
        );
    }
    if summary
        .rows
        .iter()
        .any(|r| r.backend.ends_with("(emulated)"))
    {
        let _ = writeln!(
            out,
            "Emulated samples ran in the HVM test machine (QEMU TCG): correctness only, not performance."
        );
    }
    // An unavailable backend fails every trial for one reason: say it once per backend.
    let mut unavailable: Vec<(&str, usize, &str)> = Vec::new();
    for f in &summary.failures {
        if f.reason.starts_with("unavailable:") {
            match unavailable.iter_mut().find(|u| u.0 == f.backend) {
                Some(u) => u.1 += f.count,
                None => unavailable.push((&f.backend, f.count, &f.reason)),
            }
            continue;
        }
        let _ = writeln!(
            out,
            "{} trial(s) of {} on {} did not produce a result: {}",
            f.count, f.workload, f.backend, f.reason
        );
    }
    for (backend, count, reason) in unavailable {
        let _ = writeln!(out, "{backend}: {count} trial(s) not run, {reason}");
    }
    out
}

/// A ratio for tables and chart labels: `0.97`, `8.43`, `99.3`, `120`.
pub fn fmt_ratio(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workloads::Metric;

    fn sample(backend: &str, workload: &str, value: f64, warmup: bool) -> Sample {
        Sample {
            trial: 0,
            backend: backend.into(),
            workload: workload.into(),
            kind: workload.into(),
            repetition: 0,
            warmup,
            started_at: String::new(),
            failure: None,
            emulated: false,
            metrics: vec![
                Metric::lower("x", "ns", value),
                Metric::lower("host.wall", "ms", 1.0),
            ],
            timeline: Vec::new(),
            agent: None,
            log_tail: None,
        }
    }

    #[test]
    fn summary_orders_groups_and_ratios() {
        let mut s = Vec::new();
        for i in 0..10 {
            s.push(sample("container", "b", 20.0 + f64::from(i), false));
            s.push(sample("native", "b", 10.0 + f64::from(i), false));
            s.push(sample("native", "a", 1.0, false));
        }
        s.push(sample("native", "b", 1000.0, true)); // warm-up: ignored
        let mut failed = sample("container", "a", 0.0, false);
        failed.failure = Some(crate::backend::TrialFailure::OutOfMemory);
        s.push(failed);
        let sum = summarise(&s, &["b".into(), "a".into()]);
        let keys: Vec<(String, String, String)> = sum
            .rows
            .iter()
            .map(|r| (r.workload.clone(), r.metric.clone(), r.backend.clone()))
            .collect();
        assert_eq!(keys[0], ("b".into(), "x".into(), "native".into()));
        assert_eq!(keys[1], ("b".into(), "x".into(), "container".into()));
        assert_eq!(keys[2].1, "host.wall");
        assert_eq!(keys.last().map(|k| k.0.as_str()), Some("a"));
        let native_b = &sum.rows[0];
        assert_eq!(native_b.median.median, 14.5);
        assert_eq!(native_b.median.n, 10);
        assert!(native_b.vs_native.is_none());
        let ratio = sum.rows[1].vs_native.unwrap();
        assert!((ratio.ratio - 24.5 / 14.5).abs() < 1e-12);
        assert_eq!(sum.warmup_samples, 1);
        assert_eq!(sum.failures.len(), 1);
        assert_eq!(sum.failures[0].reason, "killed: out of memory");
        let table = render_table(&sum);
        assert!(
            table.contains("14.50") && table.contains("1.69x"),
            "{table}"
        );
        assert!(table.contains("killed: out of memory"), "{table}");
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(fmt_num(14.5), "14.50");
        assert_eq!(fmt_num(1234.567), "1235");
        assert_eq!(fmt_num(0.012_345), "0.01235");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(f64::NAN), "-");
    }
}
