//! Charts of a run, drawn with plotters into SVG text.
//!
//! Every chart is a set of horizontal rows, so long workload and metric names stay readable:
//! - `start_timeline`: one stacked bar per backend, segments = phases of the `noop` workload's
//!   timeline (median duration of each phase across samples);
//! - `ratio_to_native`: every workload's metric as ratio to native, with 95% whiskers (log scale);
//! - `io_latency`: p50/p99 latencies of the I/O workloads, per backend, with 95% whiskers;
//! - `net_latency`, `net_throughput`: request/response latency (p50, p99) and bulk throughput of
//!   the network workloads that cross the sandbox's boundary, per backend, with 95% whiskers;
//! - `vm_exits`: VM exits per trial, stacked by exit reason;
//! - `vm_exits_per_op`: VM exits per operation of each workload (per 4 KiB random read and
//!   write, per MiB written and read, per system call, per packet and per transaction, ...), split into exits KVM handled itself
//!   and exits that reached the VMM.
//!
//! Backends have the same colour in every chart ([`backend_colour`]); segments (phases, memory
//! components, exit reasons) use a separate pastel palette, named in the legend.

use std::collections::BTreeMap;

use plotters::coord::combinators::{BindKeyPoints, LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{backend_label, backend_rank, ReportError, View};
use crate::i18n::Catalogue;
use crate::sample::Sample;
use crate::stats;
use crate::summary::{fmt_num, LEVEL};

/// One chart: a file stem, a title, and the SVG document.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File stem, e.g. `start_timeline`.
    pub name: &'static str,
    /// Title as drawn in the chart.
    pub title: String,
    /// The SVG document (no XML declaration, so it can be inlined in HTML).
    pub svg: String,
}

pub(crate) const WIDTH: u32 = 960;
const ROW_H: u32 = 26;
pub(crate) const FONT: &str = "sans-serif";

/// The colour of a column label, the same in every chart of a run (Okabe–Ito, colour-blind
/// safe): each backend has its colour; when a run has several columns of one backend (factors,
/// A/A), they are shades of it, by their place among that backend's columns in `columns` (the
/// run's column labels in plan order).
pub(crate) fn backend_colour(label: &str, columns: &[String]) -> RGBColor {
    let emulated = label.ends_with("(emulated)");
    let base = label.trim_end_matches(" (emulated)");
    let backend = base.split(' ').next().unwrap_or(base);
    let RGBColor(r, g, b) = match (backend, emulated) {
        (_, true) => RGBColor(150, 150, 150),
        ("native", _) => RGBColor(0, 114, 178),
        ("container", _) => RGBColor(230, 159, 0),
        ("vm", _) => RGBColor(0, 158, 115),
        ("qemu-tcg", _) => RGBColor(213, 94, 0),
        _ => RGBColor(204, 121, 167),
    };
    let siblings: Vec<&String> = columns
        .iter()
        .filter(|c| c.split(' ').next() == Some(backend))
        .collect();
    let Some(i) = siblings
        .iter()
        .position(|c| *c == base)
        .filter(|_| siblings.len() > 1)
    else {
        return RGBColor(r, g, b);
    };
    // Shades alternate darker and lighter, further from the backend's colour each step.
    const SHADES: [f64; 8] = [0.0, -0.45, 0.45, -0.7, 0.65, -0.25, 0.25, 0.8];
    let t = SHADES[i % SHADES.len()];
    let mix = |c: u8| -> u8 {
        let c = f64::from(c);
        let v = if t < 0.0 {
            c * (1.0 + t)
        } else {
            c + (255.0 - c) * t
        };
        v.round().clamp(0.0, 255.0) as u8
    };
    RGBColor(mix(r), mix(g), mix(b))
}

/// The colour as CSS `#rrggbb`, for HTML legends.
pub(crate) fn backend_css(label: &str, columns: &[String]) -> String {
    let RGBColor(r, g, b) = backend_colour(label, columns);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Segment palette (ColorBrewer Set3, then four darker Set1 colours: a container's start has up
/// to 15 phases, and two phases sharing a colour would read as one).
const SEGMENTS: [RGBColor; 16] = [
    RGBColor(141, 211, 199),
    RGBColor(190, 186, 218),
    RGBColor(251, 128, 114),
    RGBColor(128, 177, 211),
    RGBColor(253, 180, 98),
    RGBColor(179, 222, 105),
    RGBColor(252, 205, 229),
    RGBColor(188, 128, 189),
    RGBColor(204, 235, 197),
    RGBColor(255, 237, 111),
    RGBColor(217, 217, 217),
    RGBColor(110, 110, 110),
    RGBColor(166, 86, 40),
    RGBColor(77, 175, 74),
    RGBColor(55, 126, 184),
    RGBColor(228, 26, 28),
];

/// Distinct colours for items that are not columns (Okabe–Ito without black and yellow, then
/// darker variants).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(213, 94, 0),
    RGBColor(86, 180, 233),
    RGBColor(110, 110, 110),
    RGBColor(0, 70, 110),
    RGBColor(140, 95, 0),
    RGBColor(0, 95, 70),
];

fn segment_colour(i: usize) -> RGBColor {
    SEGMENTS[i % SEGMENTS.len()]
}

pub(crate) fn chart_err<E: std::fmt::Display>(chart: &str) -> impl Fn(E) -> ReportError + '_ {
    move |e| ReportError::Chart {
        chart: chart.to_owned(),
        message: e.to_string(),
    }
}

/// Width in pixels of `text` at `size` px, estimated the way the SVG backend lays out text.
fn text_w(text: &str, size: u32) -> i32 {
    (text.chars().count() as f64 * f64::from(size) * 0.56).round() as i32
}

/// A number for labels: four significant digits without trailing zeros (`1.6`, `103`, `5`).
pub(crate) fn short(x: f64) -> String {
    let s = fmt_num(x);
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Builds every chart that has data. The second value lists the charts left out and why.
pub(crate) fn build(view: &View<'_>) -> Result<(Vec<Chart>, Vec<String>), ReportError> {
    let mut charts = Vec::new();
    let mut notes = Vec::new();
    // No "memory per instance" chart: a trial's memory figures are each backend's own meter
    // (native peak RSS, the container's cgroup, the VM's guest RAM and VMM), which one chart
    // would set side by side as one quantity. `isolab density` measures memory per instance on
    // one meter for every backend, and its report draws it.
    let builders: [(&'static str, Builder); 9] = [
        ("start_timeline", timeline),
        ("ratio_to_native", ratios),
        ("factor_effects", factor_effects),
        ("aa_check", aa_check),
        ("io_latency", io_latency),
        ("net_latency", net_latency),
        ("net_throughput", net_throughput),
        ("vm_exits", exits),
        ("vm_exits_per_op", exits_per_op),
    ];
    for (name, f) in builders {
        match f(view, name)? {
            Ok(c) => charts.push(c),
            Err(why) => notes.push(
                view.cat
                    .tr("chart-not-drawn", &[("name", name), ("why", &why)]),
            ),
        }
    }
    Ok((charts, notes))
}

/// A chart builder: the chart, or why there is none (no data), or an error drawing it.
type Builder = fn(&View<'_>, &'static str) -> Result<Result<Chart, String>, ReportError>;

// ---------------------------------------------------------------------------------------------
// Data extraction.

/// Samples that count for timing: measured, successful, not emulated.
fn timing_samples<'v>(view: &'v View<'_>) -> impl Iterator<Item = &'v Sample> {
    view.run.samples.iter().filter(|s| s.is_measured_ok())
}

/// Samples that count for sizes and counts: measured and successful, emulated ones included
/// (under their own label).
fn count_samples<'v>(view: &'v View<'_>) -> impl Iterator<Item = &'v Sample> {
    view.run
        .samples
        .iter()
        .filter(|s| !s.warmup && s.failure.is_none())
}

fn sorted_labels(labels: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = labels.into_iter().collect();
    v.sort_by_key(|b| (backend_rank(b), b.clone()));
    v.dedup();
    v
}

/// Labels in first-seen order (for items that are not columns).
fn first_seen(labels: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for l in labels {
        if !v.contains(&l) {
            v.push(l);
        }
    }
    v
}

fn median(values: &[f64]) -> Option<f64> {
    stats::median_sorted(&stats::sorted_finite(values))
}

/// Converts a memory value to MiB from its unit, `None` for units that are not sizes.
pub(crate) fn to_mib(value: f64, unit: &str) -> Option<f64> {
    let f = match unit.trim() {
        "B" | "bytes" | "byte" => 1.0 / 1_048_576.0,
        "KiB" | "kB" | "KB" => 1.0 / 1024.0,
        "MiB" | "MB" => 1.0,
        "GiB" | "GB" => 1024.0,
        "pages" => 4.0 / 1024.0,
        _ => return None,
    };
    Some(value * f)
}

fn kind_of<'v>(view: &'v View<'_>, workload: &str) -> &'v str {
    view.run
        .samples
        .iter()
        .find(|s| s.workload == workload)
        .map_or("", |s| s.kind.as_str())
}

// ---------------------------------------------------------------------------------------------
// Start timeline.

/// Per backend: the most common phase sequence of the `noop` samples, and per segment (phase
/// i-1 to phase i) the median duration in ms, with the number of samples used.
/// A backend label, its (phase, median ms) segments, and the samples used.
pub(crate) type TimelineRow = (String, Vec<(String, f64)>, usize);

pub(crate) fn timeline_rows(view: &View<'_>) -> Vec<TimelineRow> {
    let noop: Vec<&Sample> = timing_samples(view)
        .filter(|s| s.kind == "noop" && s.timeline.len() >= 2)
        .collect();
    let labels = sorted_labels(noop.iter().map(|s| backend_label(s)));
    let mut rows = Vec::new();
    for label in labels {
        let mine: Vec<&Sample> = noop
            .iter()
            .copied()
            .filter(|s| backend_label(s) == label)
            .collect();
        // The most common sequence of phase names.
        let mut seqs: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        for s in &mine {
            let mut t = s.timeline.clone();
            t.sort_by_key(|p| p.at_ns);
            *seqs
                .entry(t.into_iter().map(|p| p.name).collect())
                .or_default() += 1;
        }
        let Some((seq, _)) = seqs.into_iter().max_by_key(|(_, n)| *n) else {
            continue;
        };
        let mut per_segment: Vec<Vec<f64>> = vec![Vec::new(); seq.len().saturating_sub(1)];
        let mut used = 0;
        for s in &mine {
            let mut t = s.timeline.clone();
            t.sort_by_key(|p| p.at_ns);
            if t.iter().map(|p| &p.name).ne(seq.iter()) {
                continue;
            }
            used += 1;
            for (i, w) in t.windows(2).enumerate() {
                per_segment[i].push(w[1].at_ns.saturating_sub(w[0].at_ns) as f64 / 1e6);
            }
        }
        let segments = seq
            .iter()
            .skip(1)
            .zip(per_segment.iter())
            .map(|(name, v)| (name.clone(), median(v).unwrap_or(0.0)))
            .collect();
        rows.push((label, segments, used));
    }
    rows
}

fn timeline(view: &View<'_>, name: &'static str) -> Result<Result<Chart, String>, ReportError> {
    timeline_of(
        view,
        name,
        &view.cat.tr("chart-title-timeline", &[]),
        &|_| true,
    )
}

/// The start timeline restricted to the backend labels `keep` accepts (the book draws the VM's
/// boot and the container's start on their own, so each chapter's figure shows its own phases).
pub(crate) fn timeline_of(
    view: &View<'_>,
    name: &'static str,
    title: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Result<Chart, String>, ReportError> {
    let rows: Vec<TimelineRow> = timeline_rows(view)
        .into_iter()
        .filter(|(label, _, _)| keep(label))
        .collect();
    if rows.is_empty() {
        return Ok(Err(view.cat.tr("chart-no-timeline", &[])));
    }
    let title = title.to_owned();
    let stack_rows = rows
        .into_iter()
        .map(|(label, segs, used)| {
            // The statistic the text quotes beside the chart: start to ready, its median with
            // its interval and n over every measured noop trial of the column.
            let ready = view.summary.rows.iter().find(|r| {
                r.backend == label
                    && r.metric == "host.start_to_ready"
                    && kind_of(view, &r.workload) == "noop"
            });
            let marker = ready.map(|r| {
                let m = &r.median;
                let c = &view.cat;
                let mut text = c.tr(
                    "chart-ready",
                    &[
                        ("median", &c.num(&short(m.median))),
                        ("lo", &c.num(&short(m.lo))),
                        ("hi", &c.num(&short(m.hi))),
                        ("n", &m.n.to_string()),
                    ],
                );
                if used != m.n {
                    text.push_str(&c.tr("chart-ready-phases", &[("n", &used.to_string())]));
                }
                Marker {
                    at: m.median,
                    lo: m.lo,
                    hi: m.hi,
                    text,
                }
            });
            StackRow {
                n: Some(used),
                swatch: Some(backend_colour(&label, &view.columns)),
                label,
                segments: segs,
                marker,
            }
        })
        .collect();
    let svg = stacked(
        &view.cat,
        name,
        &title,
        &view.cat.tr("chart-timeline-axis", &[]),
        "ms",
        stack_rows,
        &view.cat.tr("chart-timeline-legend", &[]),
    )?;
    Ok(Ok(Chart { name, title, svg }))
}

// ---------------------------------------------------------------------------------------------
// Ratios to native.

fn ratios(view: &View<'_>, name: &'static str) -> Result<Result<Chart, String>, ReportError> {
    let title = view.cat.tr(
        "chart-title-ratios",
        &[("level", &view.cat.percent(&format!("{:.0}", LEVEL * 100.0)))],
    );
    ratios_of(view, name, &title, &|_, _| true)
}

/// The ratio chart restricted to the rows `keep` accepts (given the row's workload kind), so the
/// book can show CPU and memory in one figure and I/O in another, and leave out a backend.
pub(crate) fn ratios_of(
    view: &View<'_>,
    name: &'static str,
    title: &str,
    keep: &dyn Fn(&str, &crate::summary::SummaryRow) -> bool,
) -> Result<Result<Chart, String>, ReportError> {
    let mut groups: Vec<Group> = Vec::new();
    for r in &view.summary.rows {
        let Some(v) = r.vs_native else { continue };
        let kind = kind_of(view, &r.workload);
        let agent_metric = !r.metric.starts_with("host.") && !r.metric.starts_with("exits.");
        if kind == "inspect"
            || !(agent_metric || r.metric == "host.start_to_ready")
            || !keep(kind, r)
        {
            continue;
        }
        let arrow = match r.better {
            workloads::Better::Higher => "↑",
            workloads::Better::Lower => "↓",
        };
        let label = format!("{} · {} ({}) {arrow}", r.workload, r.metric, r.unit);
        push_item(
            &mut groups,
            label,
            Item {
                backend: r.backend.clone(),
                value: v.ratio,
                lo: v.lo,
                hi: v.hi,
            },
        );
    }
    if groups.is_empty() {
        return Ok(Err(view.cat.tr("chart-no-ratios", &[])));
    }
    let vals = groups
        .iter()
        .flat_map(|g| g.items.iter())
        .flat_map(|i| [i.lo, i.hi, i.value]);
    let (mut lo, mut hi) = (1.0f64, 1.0f64);
    for v in vals.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    // Room on both sides for the value labels.
    let (lo, hi) = (lo / 1.8, hi * 1.8);
    let svg = grouped(
        name,
        &GroupedSpec {
            cat: &view.cat,
            title,
            x_desc: &view.cat.tr("chart-ratios-axis", &[]),
            groups: &groups,
            points: true,
            reference: Some(1.0),
            columns: &view.columns,
            reference_label: &view.cat.tr("chart-ratios-reference", &[]),
            legend_title: &view.cat.tr("chart-legend-backend", &[]),
            palette: false,
        },
        ratio_axis(lo..hi),
    )?;
    Ok(Ok(Chart {
        name,
        title: title.to_owned(),
        svg,
    }))
}

// ---------------------------------------------------------------------------------------------
// Factor effects and the A/A check.

/// The ticks of a ratio axis from `lo` to `hi` (log scale): 1 and the usual round ratios on
/// both sides of it, so an axis that spans only 0.3..3 still has labels below 1 (plotters' own
/// log ticks are powers of ten, and 0.1 is often out of range); finer steps when the range is
/// narrow, so there are at least three.
pub(crate) fn ratio_ticks(lo: f64, hi: f64) -> Vec<f64> {
    const COARSE: [f64; 3] = [1.0, 2.0, 5.0];
    const FINE: [f64; 9] = [1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5];
    let within = |steps: &[f64]| -> Vec<f64> {
        let mut v = Vec::new();
        for exp in -6..=6 {
            for m in steps {
                let t = m * 10f64.powi(exp);
                if t >= lo && t <= hi {
                    v.push(t);
                }
            }
        }
        v
    };
    let mut ticks = within(&COARSE);
    if ticks.len() < 3 {
        ticks = within(&FINE);
    }
    if ticks.len() < 3 {
        // A very narrow range: ten steps across it.
        ticks = (0..=10)
            .map(|i| lo * (hi / lo).powf(f64::from(i) / 10.0))
            .collect();
    }
    if !ticks.iter().any(|t| (*t - 1.0).abs() < 1e-9) && lo <= 1.0 && hi >= 1.0 {
        ticks.push(1.0);
    }
    ticks.sort_by(f64::total_cmp);
    ticks
}

/// A log-scale ratio axis over `range` with [`ratio_ticks`].
fn ratio_axis(range: std::ops::Range<f64>) -> WithKeyPoints<LogCoord<f64>> {
    let ticks = ratio_ticks(range.start, range.end);
    range.log_scale().with_key_points(ticks)
}

/// Log-scale bounds around 1 that hold every value and interval of `groups`, with room for the
/// value labels.
fn ratio_range(groups: &[Group]) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (1.0f64, 1.0f64);
    for v in groups
        .iter()
        .flat_map(|g| g.items.iter())
        .flat_map(|i| [i.lo, i.hi, i.value])
        .filter(|v| v.is_finite() && *v > 0.0)
    {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo / 1.8)..(hi * 1.8)
}

/// Each factor's effect on the headline metrics: one point per change (and values of the other
/// factors held fixed) with its interval, per metric.
pub(crate) fn factor_effects(
    view: &View<'_>,
    name: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    let mut groups: Vec<Group> = Vec::new();
    for e in view.summary.effects.iter().filter(|e| e.headline) {
        let arrow = match e.better {
            workloads::Better::Higher => "↑",
            workloads::Better::Lower => "↓",
        };
        let label = format!("{} · {} ({}) {arrow}", e.workload, e.metric, e.unit);
        let mut item = format!("{} {}: {} → {}", e.backend, e.factor, e.from, e.to);
        if !e.with.is_empty() {
            item.push_str(&format!(" ({})", e.with));
        }
        push_item(
            &mut groups,
            label,
            Item {
                backend: item,
                value: e.ratio.ratio,
                lo: e.ratio.lo,
                hi: e.ratio.hi,
            },
        );
    }
    if groups.is_empty() {
        return Ok(Err(view.cat.tr("chart-no-factor", &[])));
    }
    let title = view.cat.tr(
        "chart-title-effects",
        &[("level", &view.cat.percent(&format!("{:.0}", LEVEL * 100.0)))],
    );
    let svg = grouped(
        name,
        &GroupedSpec {
            cat: &view.cat,
            title: &title,
            x_desc: &view.cat.tr("chart-effects-axis", &[]),
            groups: &groups,
            points: true,
            reference: Some(1.0),
            columns: &view.columns,
            reference_label: &view.cat.tr("chart-effects-reference", &[]),
            legend_title: &view.cat.tr("chart-effects-legend", &[]),
            palette: true,
        },
        ratio_axis(ratio_range(&groups)),
    )?;
    Ok(Ok(Chart { name, title, svg }))
}

/// The A/A check: A'/A of every headline metric with its interval; how far the intervals reach
/// from 1 is the smallest difference this host resolved.
pub(crate) fn aa_check(
    view: &View<'_>,
    name: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    let Some(aa) = &view.summary.aa else {
        return Ok(Err(view.cat.tr("chart-no-aa", &[])));
    };
    let groups: Vec<Group> = aa
        .rows
        .iter()
        .filter(|r| r.headline)
        .map(|r| Group {
            label: format!("{} · {} ({})", r.workload, r.metric, r.unit),
            items: vec![Item {
                backend: format!("{} / {}", aa.b, aa.a),
                value: r.ratio.ratio,
                lo: r.ratio.lo,
                hi: r.ratio.hi,
            }],
        })
        .collect();
    if groups.is_empty() {
        return Ok(Err(view.cat.tr("chart-aa-no-samples", &[])));
    }
    let title = match aa.floor_pct {
        Some(f) => view.cat.tr(
            "chart-title-aa-floor",
            &[("pct", &view.cat.nums_in(&crate::summary::pct_text(f)))],
        ),
        None => view.cat.tr("chart-title-aa", &[]),
    };
    let svg = grouped(
        name,
        &GroupedSpec {
            cat: &view.cat,
            title: &title,
            x_desc: &view.cat.tr("chart-aa-axis", &[]),
            groups: &groups,
            points: true,
            reference: Some(1.0),
            columns: &view.columns,
            reference_label: "A = A' (= 1)",
            legend_title: &view.cat.tr("chart-aa-legend", &[]),
            palette: true,
        },
        ratio_axis(ratio_range(&groups)),
    )?;
    Ok(Ok(Chart { name, title, svg }))
}

// ---------------------------------------------------------------------------------------------
// I/O latency.

fn is_percentile(metric: &str) -> bool {
    ["_p50", "_p90", "_p99", "_p999"]
        .iter()
        .any(|p| metric.ends_with(p))
}

pub(crate) fn io_latency(
    view: &View<'_>,
    name: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    medians_per_backend(
        view,
        name,
        &|kind, metric| kind.starts_with("io") && is_percentile(metric),
        [
            "chart-title-latency",
            "chart-latency-axis",
            "chart-no-latency",
        ],
    )
}

/// The network workloads whose packets cross the sandbox's boundary (`net-loopback` stays inside
/// the sandbox, so it is not among them).
fn crosses_the_boundary(kind: &str) -> bool {
    kind.starts_with("net-") && kind != "net-loopback"
}

/// Request/response latency (p50 and p99) of the network workloads, per backend.
pub(crate) fn net_latency(
    view: &View<'_>,
    name: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    medians_per_backend(
        view,
        name,
        &|kind, metric| crosses_the_boundary(kind) && metric.contains("latency"),
        [
            "chart-title-net-latency",
            "chart-latency-axis",
            "chart-no-net-latency",
        ],
    )
}

/// Bulk throughput of the network workloads, each direction, per backend.
pub(crate) fn net_throughput(
    view: &View<'_>,
    name: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    medians_per_backend(
        view,
        name,
        &|kind, metric| crosses_the_boundary(kind) && metric.ends_with("_throughput"),
        [
            "chart-title-net-throughput",
            "chart-throughput-axis",
            "chart-no-net-throughput",
        ],
    )
}

/// Bars of the medians (with their intervals) of the summary rows `wanted(kind, metric)` picks,
/// grouped per workload and metric, one bar per backend; one unit per chart (rows in another unit
/// than the first are left out). Emulated backends are left out: their times are not
/// performance figures. `keys`: the catalogue's title, axis and no-data messages.
fn medians_per_backend(
    view: &View<'_>,
    name: &'static str,
    wanted: &dyn Fn(&str, &str) -> bool,
    keys: [&str; 3],
) -> Result<Result<Chart, String>, ReportError> {
    let [title_key, axis_key, none_key] = keys;
    let mut groups: Vec<Group> = Vec::new();
    let mut unit = String::new();
    for r in &view.summary.rows {
        if !wanted(kind_of(view, &r.workload), &r.metric) || r.backend.ends_with("(emulated)") {
            continue;
        }
        if unit.is_empty() {
            unit = r.unit.clone();
        } else if unit != r.unit {
            continue; // one axis, one unit
        }
        let label = format!("{} · {}", r.workload, r.metric);
        push_item(
            &mut groups,
            label,
            Item {
                backend: r.backend.clone(),
                value: r.median.median,
                lo: r.median.lo,
                hi: r.median.hi,
            },
        );
    }
    if groups.is_empty() {
        return Ok(Err(view.cat.tr(none_key, &[])));
    }
    let hi = groups
        .iter()
        .flat_map(|g| g.items.iter())
        .map(|i| i.hi.max(i.value))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let title = view.cat.tr(
        title_key,
        &[("level", &view.cat.percent(&format!("{:.0}", LEVEL * 100.0)))],
    );
    let x_desc = view.cat.tr(axis_key, &[("unit", &unit)]);
    let svg = grouped(
        name,
        &GroupedSpec {
            cat: &view.cat,
            title: &title,
            x_desc: &x_desc,
            groups: &groups,
            points: false,
            reference: None,
            columns: &view.columns,
            reference_label: "",
            legend_title: &view.cat.tr("chart-legend-backend", &[]),
            palette: false,
        },
        0.0..(if hi > 0.0 { hi * 1.15 } else { 1.0 }),
    )?;
    Ok(Ok(Chart { name, title, svg }))
}

// ---------------------------------------------------------------------------------------------
// VM exits.

/// (workload position, backend rank, workload, backend label): the order of the exit rows.
type ExitRowKey = (usize, usize, String, String);

pub(crate) fn exits(
    view: &View<'_>,
    name: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    let reason_of = |m: &str| -> Option<String> {
        let r = m
            .strip_prefix("host.")
            .unwrap_or(m)
            .strip_prefix("exits.")?;
        // Whole-run reasons only: the workload window (`exits.workload.*`) and the per-operation
        // figures (`exits.per_*`, `exits.userspace_per_*`) would count exits twice.
        let derived = r.starts_with("to_")
            || r.starts_with("workload.")
            || r.starts_with("per_")
            || r.starts_with("userspace_per_");
        (r != "total" && !derived).then(|| r.to_owned())
    };
    // (workload, label) -> reason -> values; totals as a fallback when no reasons exist.
    let mut by: BTreeMap<ExitRowKey, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for s in count_samples(view) {
        let label = backend_label(s);
        let wpos = view
            .workloads
            .iter()
            .position(|w| *w == s.workload)
            .unwrap_or(usize::MAX);
        for m in &s.metrics {
            let reason = match reason_of(&m.name) {
                Some(r) => r,
                None if m.name.ends_with("exits.total") => "total".to_owned(),
                None => continue,
            };
            *totals.entry(reason.clone()).or_default() += m.value;
            by.entry((
                wpos,
                backend_rank(&label),
                s.workload.clone(),
                label.clone(),
            ))
            .or_default()
            .entry(reason)
            .or_default()
            .push(m.value);
        }
    }
    if by.is_empty() {
        return Ok(Err(view.cat.tr("chart-no-exits", &[])));
    }
    let has_reasons = totals.keys().any(|k| k != "total");
    // The seven most frequent reasons by name, the rest as "other".
    let mut ranked: Vec<(&String, &f64)> = totals
        .iter()
        .filter(|(k, _)| has_reasons != (*k == "total"))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(a.1));
    let top: Vec<String> = ranked.iter().take(7).map(|(k, _)| (*k).clone()).collect();
    let mut rows = Vec::new();
    for ((_, _, workload, label), reasons) in by {
        let mut segs: Vec<(String, f64)> = Vec::new();
        let mut other = 0.0;
        for (reason, vals) in reasons {
            if has_reasons && reason == "total" {
                continue;
            }
            let v = median(&vals).unwrap_or(0.0);
            if top.contains(&reason) {
                segs.push((reason, v));
            } else {
                other += v;
            }
        }
        segs.sort_by_key(|(r, _)| top.iter().position(|t| t == r).unwrap_or(usize::MAX));
        if other > 0.0 {
            segs.push((view.cat.tr("chart-exits-other", &[]), other));
        }
        rows.push(StackRow {
            n: None,
            swatch: Some(backend_colour(&label, &view.columns)),
            label: format!("{workload} · {label}"),
            segments: segs,
            marker: None,
        });
    }
    let title = view.cat.tr("chart-title-exits", &[]);
    let svg = stacked(
        &view.cat,
        name,
        &title,
        &view.cat.tr("chart-exits-axis", &[]),
        &view.cat.tr("chart-exits-unit", &[]),
        rows,
        &view.cat.tr("chart-exits-legend", &[]),
    )?;
    Ok(Ok(Chart { name, title, svg }))
}

/// What one operation is, for the `exits.per_<op>` metrics the VM backend writes.
fn op_words(cat: &crate::i18n::Catalogue, op: &str) -> String {
    let id = format!("chart-op-{op}");
    if cat.has(&id) {
        cat.tr(&id, &[])
    } else {
        cat.tr("chart-op-other", &[("op", &op.replace('_', " "))])
    }
}

/// Operations of the whole workload window that a sample may also have per phase: (the mixed
/// operation, its per-phase parts). The parts are exact; the mixed figure averages reads,
/// writes and a prefill, and is only drawn for samples without the parts (older runs).
const PHASE_SPLITS: [(&str, [&str; 2]); 2] = [
    ("4k_io", ["4k_read", "4k_write"]),
    ("mib_io", ["mib_write", "mib_read"]),
];

/// Whether `op` is a mixed operation whose per-phase parts the sample has.
fn superseded(op: &str, sample: &Sample) -> bool {
    PHASE_SPLITS.iter().any(|(mixed, parts)| {
        *mixed == op
            && sample.metrics.iter().any(|m| {
                m.name
                    .strip_prefix("exits.per_")
                    .is_some_and(|o| parts.contains(&o))
            })
    })
}

/// The parts of `exits.per_<op>` a sample may have, by metric prefix.
const EXIT_PARTS: [(&str, usize); 4] = [
    ("exits.per_", 0),
    ("exits.userspace_per_", 1),
    ("exits.device_per_", 2),
    ("exits.time_driven_per_", 3),
];

pub(crate) fn exits_per_op(
    view: &View<'_>,
    name: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    // (workload position, backend rank, workload, label, op) -> values of each EXIT_PARTS entry.
    type Key = (usize, usize, String, String, String);
    let mut by: BTreeMap<Key, [Vec<f64>; 4]> = BTreeMap::new();
    for s in count_samples(view) {
        let label = backend_label(s);
        let wpos = view
            .workloads
            .iter()
            .position(|w| *w == s.workload)
            .unwrap_or(usize::MAX);
        for m in &s.metrics {
            let Some((op, part)) = EXIT_PARTS
                .iter()
                .find_map(|(prefix, part)| m.name.strip_prefix(prefix).map(|op| (op, *part)))
            else {
                continue;
            };
            if superseded(op, s) {
                continue;
            }
            by.entry((
                wpos,
                backend_rank(&label),
                s.workload.clone(),
                label.clone(),
                op.to_owned(),
            ))
            .or_default()[part]
                .push(m.value);
        }
    }
    let mut rows = Vec::new();
    let mut split_by_cause = false;
    for ((_, _, workload, label, op), parts) in by {
        let Some(all) = median(&parts[0]) else {
            continue;
        };
        let segments = match (median(&parts[2]), median(&parts[3])) {
            // Why the exits happened: only the device part carries over to another host.
            (Some(device), Some(time)) => {
                split_by_cause = true;
                let device = device.min(all);
                let time = time.min(all - device);
                vec![
                    (view.cat.tr("chart-part-device", &[]), device),
                    (view.cat.tr("chart-part-time", &[]), time),
                    (view.cat.tr("chart-part-other", &[]), all - device - time),
                ]
            }
            _ => {
                let vmm = median(&parts[1]).unwrap_or(0.0).min(all);
                vec![
                    (view.cat.tr("chart-part-kvm", &[]), all - vmm),
                    (view.cat.tr("chart-part-vmm", &[]), vmm),
                ]
            }
        };
        rows.push(StackRow {
            n: None,
            swatch: Some(backend_colour(&label, &view.columns)),
            marker: None,
            label: format!("{workload} · {label} · {}", op_words(&view.cat, &op)),
            segments,
        });
    }
    if rows.is_empty() {
        return Ok(Err(view.cat.tr("chart-no-exits-per-op", &[])));
    }
    let title = view.cat.tr("chart-title-exits-per-op", &[]);
    let svg = stacked(
        &view.cat,
        name,
        &title,
        &view.cat.tr("chart-exits-per-op-axis", &[]),
        &view.cat.tr("chart-exits-per-op-unit", &[]),
        rows,
        &view.cat.tr(
            if split_by_cause {
                "chart-exits-per-op-legend-cause"
            } else {
                "chart-exits-per-op-legend-where"
            },
            &[],
        ),
    )?;
    Ok(Ok(Chart { name, title, svg }))
}

// ---------------------------------------------------------------------------------------------
// Drawing: stacked horizontal bars.

pub(crate) struct StackRow {
    pub(crate) label: String,
    /// Samples behind the medians, shown after the total.
    pub(crate) n: Option<usize>,
    pub(crate) swatch: Option<RGBColor>,
    pub(crate) segments: Vec<(String, f64)>,
    /// A median drawn on the bar with its interval, and the text that replaces the total.
    pub(crate) marker: Option<Marker>,
}

/// A median with its interval, drawn across a stacked bar.
pub(crate) struct Marker {
    at: f64,
    lo: f64,
    hi: f64,
    text: String,
}

/// Left margin wide enough for the longest row label (plus the backend swatch).
fn label_area(labels: impl Iterator<Item = usize>) -> u32 {
    let longest = labels.max().unwrap_or(8) as f64;
    ((longest * 13.0 * 0.56) as u32 + 40).clamp(110, 430)
}

/// Draws a legend of (text, colour) entries from `(x, y)` across the width, wrapping lines, and
/// returns the height used.
fn legend_height(title: &str, entries: &[(String, RGBColor)]) -> u32 {
    let mut x = 20 + text_w(title, 13) + 10;
    let mut lines = 1;
    for (t, _) in entries {
        let w = 18 + text_w(t, 13) + 16;
        if x + w > WIDTH as i32 - 10 {
            lines += 1;
            x = 20;
        }
        x += w;
    }
    lines * 20 + 10
}

fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    y0: i32,
    title: &str,
    entries: &[(String, RGBColor)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    root.draw(&Text::new(title.to_owned(), (20, y0), style.clone()))?;
    let mut x = 20 + text_w(title, 13) + 10;
    let mut y = y0;
    for (t, c) in entries {
        let w = 18 + text_w(t, 13) + 16;
        if x + w > WIDTH as i32 - 10 {
            y += 20;
            x = 20;
        }
        root.draw(&Rectangle::new([(x, y - 6), (x + 12, y + 6)], c.filled()))?;
        root.draw(&Rectangle::new(
            [(x, y - 6), (x + 12, y + 6)],
            BLACK.mix(0.5),
        ))?;
        root.draw(&Text::new(t.clone(), (x + 18, y), style.clone()))?;
        x += w;
    }
    Ok(())
}

/// Row labels left of the plotting area, each with an optional backend colour swatch.
fn draw_row_label<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    (px, py): (i32, i32),
    label: &str,
    swatch: Option<RGBColor>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    let right = if let Some(c) = swatch {
        root.draw(&Rectangle::new(
            [(px - 16, py - 6), (px - 6, py + 6)],
            c.filled(),
        ))?;
        px - 22
    } else {
        px - 8
    };
    root.draw(&Text::new(label.to_owned(), (right, py), style))
}

pub(crate) fn stacked(
    cat: &Catalogue,
    name: &str,
    title: &str,
    x_desc: &str,
    unit: &str,
    rows: Vec<StackRow>,
    legend_title: &str,
) -> Result<String, ReportError> {
    let err = chart_err(name);
    // Segment names in first-seen order give the legend and the colours.
    let mut names: Vec<String> = Vec::new();
    for r in &rows {
        for (n, _) in &r.segments {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let colour = |n: &str| segment_colour(names.iter().position(|x| x == n).unwrap_or(0));
    let legend: Vec<(String, RGBColor)> = names.iter().map(|n| (n.clone(), colour(n))).collect();
    let total_max = rows
        .iter()
        .map(|r| {
            let bar = r.segments.iter().map(|s| s.1.max(0.0)).sum::<f64>();
            r.marker.as_ref().map_or(bar, |m| bar.max(m.hi))
        })
        .fold(0.0f64, f64::max);
    // Room after the longest bar for its label (wider when it quotes an interval).
    let room = if rows.iter().any(|r| r.marker.is_some()) {
        1.6
    } else {
        1.18
    };
    let x_max = if total_max > 0.0 {
        total_max * room
    } else {
        1.0
    };
    let n = rows.len();
    let legend_h = legend_height(legend_title, &legend);
    let height = 50 + n as u32 * (ROW_H + 10) + 55 + legend_h;
    let left = label_area(rows.iter().map(|r| r.label.chars().count() + 3));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let (top, bottom) = root.split_vertically(height - legend_h);
        let mut chart = ChartBuilder::on(&top)
            .caption(title, (FONT, 17))
            .margin(12)
            .margin_right(24)
            .x_label_area_size(48)
            .y_label_area_size(left)
            .build_cartesian_2d(0.0..x_max, 0.0..n as f64)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(x_desc)
            .x_label_formatter(&|v| cat.num(&short(*v)))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(&err)?;
        for (i, r) in rows.iter().enumerate() {
            // Row 0 at the top.
            let y_hi = (n - i) as f64 - 0.15;
            let y_lo = (n - i - 1) as f64 + 0.15;
            let mut x = 0.0;
            for (seg, v) in &r.segments {
                let v = v.max(0.0);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, y_lo), (x + v, y_hi)],
                        colour(seg).filled(),
                    )))
                    .map_err(&err)?;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, y_lo), (x + v, y_hi)],
                        WHITE.stroke_width(1),
                    )))
                    .map_err(&err)?;
                x += v;
            }
            let mid = (y_lo + y_hi) / 2.0;
            if let Some(m) = &r.marker {
                let cap = (y_hi - y_lo) * 0.3;
                let line = |pts: Vec<(f64, f64)>| PathElement::new(pts, BLACK.stroke_width(2));
                chart
                    .draw_series([
                        line(vec![(m.at, y_lo), (m.at, y_hi)]),
                        line(vec![(m.lo, mid), (m.hi, mid)]),
                        line(vec![(m.lo, mid - cap), (m.lo, mid + cap)]),
                        line(vec![(m.hi, mid - cap), (m.hi, mid + cap)]),
                    ])
                    .map_err(&err)?;
            }
            let end = r.marker.as_ref().map_or(x, |m| x.max(m.hi));
            let (px, py) = chart.backend_coord(&(end, mid));
            root.draw(&Text::new(
                match (&r.marker, r.n) {
                    (Some(m), _) => m.text.clone(),
                    (None, Some(n)) => format!("{} (n = {n})", cat.with_unit(&short(x), unit)),
                    (None, None) => cat.with_unit(&short(x), unit),
                },
                (px + 6, py),
                TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(&err)?;
            let (lx, ly) = chart.backend_coord(&(0.0, (y_lo + y_hi) / 2.0));
            draw_row_label(&root, (lx, ly), &r.label, r.swatch).map_err(&err)?;
        }
        let (_, by) = bottom.get_base_pixel();
        draw_legend(&root, by + 10, legend_title, &legend).map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

// ---------------------------------------------------------------------------------------------
// Drawing: groups of per-backend bars or points with whiskers.

struct Item {
    backend: String,
    value: f64,
    lo: f64,
    hi: f64,
}

struct Group {
    label: String,
    items: Vec<Item>,
}

/// Adds `item` to the last group when it has `label`, else to a new group of that label.
fn push_item(groups: &mut Vec<Group>, label: String, item: Item) {
    match groups.last_mut() {
        Some(g) if g.label == label => g.items.push(item),
        _ => groups.push(Group {
            label,
            items: vec![item],
        }),
    }
}

struct GroupedSpec<'a> {
    /// The language of the numbers drawn.
    cat: &'a Catalogue,
    title: &'a str,
    x_desc: &'a str,
    groups: &'a [Group],
    /// Points with whiskers (ratios) instead of bars with whiskers.
    points: bool,
    /// A vertical reference line (1 for ratios).
    reference: Option<f64>,
    /// The run's column labels, for the colours.
    columns: &'a [String],
    /// What the reference line means, for the legend.
    reference_label: &'a str,
    /// The legend's title.
    legend_title: &'a str,
    /// Colour items by their place in the legend (distinct colours for things that are not
    /// columns, such as effects), not by column.
    palette: bool,
}

fn grouped<XR>(name: &str, spec: &GroupedSpec<'_>, x_range: XR) -> Result<String, ReportError>
where
    XR: AsRangedCoord<Value = f64>,
    XR::CoordDescType: ValueFormatter<f64>,
{
    let cat = spec.cat;
    let err = chart_err(name);
    let items = spec
        .groups
        .iter()
        .flat_map(|g| g.items.iter().map(|i| i.backend.clone()));
    let backends = if spec.palette {
        first_seen(items)
    } else {
        sorted_labels(items)
    };
    let colour = |label: &str| -> RGBColor {
        if spec.palette {
            let i = backends.iter().position(|b| b == label).unwrap_or(0);
            PALETTE[i % PALETTE.len()]
        } else {
            backend_colour(label, spec.columns)
        }
    };
    let mut legend: Vec<(String, RGBColor)> =
        backends.iter().map(|b| (b.clone(), colour(b))).collect();
    if spec.reference.is_some() {
        legend.push((spec.reference_label.into(), BLACK));
    }
    let per = backends.len().max(1);
    let group_h = (per as u32 * 14 + 14).max(ROW_H + 6);
    let n = spec.groups.len();
    let legend_h = legend_height(spec.legend_title, &legend);
    let height = 50 + n as u32 * group_h + 70 + legend_h;
    let left = label_area(spec.groups.iter().map(|g| g.label.chars().count()));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let (top, bottom) = root.split_vertically(height - legend_h);
        let mut chart = ChartBuilder::on(&top)
            .caption(spec.title, (FONT, 17))
            .margin(12)
            .margin_right(24)
            .x_label_area_size(48)
            .y_label_area_size(left)
            .build_cartesian_2d(x_range, 0.0..n as f64)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .y_labels(0)
            .disable_y_mesh()
            .x_desc(spec.x_desc)
            .x_label_formatter(&|v| cat.num(&short(*v)))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .light_line_style(BLACK.mix(0.05))
            .bold_line_style(BLACK.mix(0.15))
            .draw()
            .map_err(&err)?;
        let x_lo = chart.x_range().start;
        // Light bands behind every other group help the eye along a row.
        for i in (0..n).step_by(2) {
            let y0 = (n - i - 1) as f64;
            let x_end = chart.x_range().end;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x_lo, y0), (x_end, y0 + 1.0)],
                    BLACK.mix(0.035).filled(),
                )))
                .map_err(&err)?;
        }
        if let Some(r) = spec.reference {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(r, 0.0), (r, n as f64)],
                    BLACK.stroke_width(1),
                )))
                .map_err(&err)?;
        }
        for (i, g) in spec.groups.iter().enumerate() {
            let base = (n - i - 1) as f64;
            let (lx, ly) = chart.backend_coord(&(x_lo, base + 0.5));
            draw_row_label(&root, (lx, ly), &g.label, None).map_err(&err)?;
            for item in &g.items {
                let slot = backends
                    .iter()
                    .position(|b| *b == item.backend)
                    .unwrap_or(0);
                // Slots top to bottom inside the group.
                let y = base + 1.0 - (slot as f64 + 1.0) / (per as f64 + 1.0);
                let c = colour(&item.backend);
                let bar_half = 0.42 / (per as f64 + 1.0);
                if !spec.points {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x_lo, y - bar_half), (item.value.max(x_lo), y + bar_half)],
                            c.filled(),
                        )))
                        .map_err(&err)?;
                }
                let cap = bar_half * 0.8;
                let whisker = if spec.points { c } else { BLACK };
                if item.lo.is_finite() && item.hi.is_finite() {
                    chart
                        .draw_series([
                            PathElement::new(
                                vec![(item.lo, y), (item.hi, y)],
                                whisker.stroke_width(2),
                            ),
                            PathElement::new(
                                vec![(item.lo, y - cap), (item.lo, y + cap)],
                                whisker.stroke_width(2),
                            ),
                            PathElement::new(
                                vec![(item.hi, y - cap), (item.hi, y + cap)],
                                whisker.stroke_width(2),
                            ),
                        ])
                        .map_err(&err)?;
                }
                if spec.points {
                    chart
                        .draw_series(std::iter::once(Circle::new((item.value, y), 5, c.filled())))
                        .map_err(&err)?;
                }
                // Labels of points left of the reference line go on the left, so they do not
                // cross it.
                let left_side = spec.reference.is_some_and(|r| item.value < r);
                let (px, py, hpos) = if left_side {
                    let (px, py) = chart.backend_coord(&(item.lo.min(item.value), y));
                    (px - 6, py, HPos::Right)
                } else {
                    let (px, py) = chart.backend_coord(&(item.hi.max(item.value), y));
                    (px + 6, py, HPos::Left)
                };
                let text = if spec.points {
                    format!("{}x", spec.cat.num(&crate::summary::fmt_ratio(item.value)))
                } else {
                    spec.cat.num(&short(item.value))
                };
                root.draw(&Text::new(
                    text,
                    (px, py),
                    TextStyle::from((FONT, 11).into_font()).pos(Pos::new(hpos, VPos::Center)),
                ))
                .map_err(&err)?;
            }
        }
        let (_, by) = bottom.get_base_pixel();
        draw_legend(&root, by + 10, spec.legend_title, &legend).map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}
