//! The charts of a density run (SVG with plotters, the same colours per backend as every isolab
//! report):
//!
//! - `density_memory`: host memory per instance against N, one line per backend: MemAvailable's
//!   drop ÷ N (median over the rounds, whiskers = its interval) and PSS per instance (hollow
//!   markers, dashed), with the marginal memory (the slope) as a thin line;
//! - `density_components`: what grew in /proc/meminfo per instance at each backend's largest N;
//! - `density_start`: start latency against N, p50 (solid) and p99 (dashed), log scales.

use plotters::prelude::*;

use super::analysis::{BackendSummary, Summary};
use super::instance::Kind;
use crate::i18n::Catalogue;
use crate::report::charts::{backend_colour, chart_err, short, stacked, StackRow, FONT, WIDTH};
use crate::report::{Chart, ReportError};

/// A backend's label in the catalogue's language (`container floor`, `vm (emulated)`).
fn label(b: &BackendSummary, cat: &Catalogue) -> String {
    let name = match b.backend {
        Kind::Floor => cat.tr("density-backend-floor", &[]),
        k => k.label().to_owned(),
    };
    if b.emulated {
        cat.tr("density-backend-emulated", &[("backend", &name)])
    } else {
        name
    }
}

/// A part of /proc/meminfo by its name in the catalogue (`density-part-page-tables`).
fn part(name: &str, cat: &Catalogue) -> String {
    let id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let id = format!("density-part-{}", id.replace("--", "-"));
    if cat.has(&id) {
        cat.tr(&id, &[])
    } else {
        name.to_owned()
    }
}

fn colour(kind: Kind) -> RGBColor {
    backend_colour(kind.name(), &[])
}

/// The x range for the Ns of all backends (log scale needs > 0).
fn count_range(s: &Summary) -> Option<(f64, f64)> {
    let counts: Vec<f64> = s
        .backends
        .iter()
        .flat_map(|b| b.counts.iter().map(|c| c.count as f64))
        .collect();
    let lo = counts.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = counts.iter().copied().fold(0.0, f64::max);
    (lo.is_finite() && hi > 0.0).then(|| (lo / 1.6, hi * 1.6))
}

/// Every chart with data; the second value says which were left out and why.
pub(crate) fn build(
    s: &Summary,
    cat: &Catalogue,
) -> Result<(Vec<Chart>, Vec<String>), ReportError> {
    let mut charts = Vec::new();
    let mut notes = Vec::new();
    type Builder = fn(&Summary, &Catalogue) -> Result<Result<Chart, String>, ReportError>;
    let builders: [(&str, Builder); 3] = [
        ("density_memory", memory),
        ("density_components", components),
        ("density_start", start),
    ];
    for (name, b) in builders {
        match b(s, cat)? {
            Ok(c) => charts.push(c),
            Err(why) => notes.push(format!("{name}: {why}")),
        }
    }
    if charts.iter().any(|c| c.name == "density_start") {
        for b in s.backends.iter().filter(|b| b.emulated) {
            notes.push(cat.tr(
                "density-chart-start-left-out",
                &[("backend", &label(b, cat))],
            ));
        }
    }
    Ok((charts, notes))
}

fn legend_style() -> TextStyle<'static> {
    (FONT, 13).into_font().into()
}

/// Host memory per instance against N.
pub(crate) fn memory(s: &Summary, cat: &Catalogue) -> Result<Result<Chart, String>, ReportError> {
    let name = "density_memory";
    let err = chart_err(name);
    let Some((x0, x1)) = count_range(s) else {
        return Ok(Err(cat.tr("density-chart-no-round", &[])));
    };
    // The y range: each backend's two largest N, medians and intervals, and every PSS. At
    // small N a shared host's noise dwarfs the instances (tens of MiB over N = 1 against a
    // fraction of a MiB per instance); drawn to scale, it would flatten the figures a planner
    // reads, those of many instances. Values outside are drawn at the edge and said in a note.
    let mut ys: Vec<f64> = vec![0.0];
    for b in &s.backends {
        let measured: Vec<_> = b.counts.iter().filter(|c| c.drop_mib.is_some()).collect();
        for c in measured.iter().rev().take(SCALE_COUNTS) {
            if let Some(m) = c.drop_mib {
                ys.extend([m.median, m.lo, m.hi]);
            }
        }
        ys.extend(b.counts.iter().filter_map(|c| Some(c.pss_mib?.median)));
    }
    let (mut y0, mut y1) = ys
        .iter()
        .filter(|v| v.is_finite())
        .fold((0.0f64, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let pad = (y1 - y0) * 0.08;
    y0 -= pad;
    y1 += pad;
    let off_scale: Vec<String> = s
        .backends
        .iter()
        .flat_map(|b| {
            b.counts.iter().filter_map(move |c| {
                let m = c.drop_mib?.median;
                (!(y0..=y1).contains(&m))
                    .then(|| format!("{} N={} {}", label(b, cat), c.count, short(m)))
            })
        })
        .collect();
    let title = cat.tr("density-chart-memory-title", &[]);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, (FONT, 17))
            .margin(14)
            .margin_right(28)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc(cat.tr("density-chart-memory-x", &[]))
            .y_desc(cat.tr("density-chart-memory-y", &[]))
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| short(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(&err)?;
        let clamp = |v: f64| v.clamp(y0, y1);
        for b in &s.backends {
            let c = colour(b.backend);
            let drop: Vec<(f64, f64, f64, f64)> = b
                .counts
                .iter()
                .filter_map(|p| p.drop_mib.map(|m| (p.count as f64, m.median, m.lo, m.hi)))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    drop.iter().map(|p| (p.0, clamp(p.1))),
                    c.stroke_width(2),
                ))
                .map_err(&err)?
                .label(cat.tr("density-chart-drop", &[("backend", &label(b, cat))]))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            for &(x, m, lo, hi) in &drop {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, clamp(lo)), (x, clamp(hi))],
                        c.stroke_width(1),
                    )))
                    .map_err(&err)?;
                chart
                    .draw_series(std::iter::once(Circle::new((x, clamp(m)), 4, c.filled())))
                    .map_err(&err)?;
            }
            let pss: Vec<(f64, f64)> = b
                .counts
                .iter()
                .filter_map(|p| p.pss_mib.map(|m| (p.count as f64, m.median)))
                .collect();
            if !pss.is_empty() {
                chart
                    .draw_series(DashedLineSeries::new(
                        pss.iter().map(|p| (p.0, clamp(p.1))),
                        6,
                        4,
                        c.stroke_width(1),
                    ))
                    .map_err(&err)?
                    .label(cat.tr("density-chart-pss", &[("backend", &label(b, cat))]))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(1))
                    });
                chart
                    .draw_series(
                        pss.iter()
                            .map(|&(x, m)| Circle::new((x, clamp(m)), 4, c.stroke_width(1))),
                    )
                    .map_err(&err)?;
            }
            if let Some(sl) = b.marginal {
                let v = clamp(sl.per_instance_kib / 1024.0);
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x0, v), (x1, v)],
                        c.mix(0.45).stroke_width(1),
                    )))
                    .map_err(&err)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(legend_style())
            .draw()
            .map_err(&err)?;
        if !off_scale.is_empty() {
            let mut listed = off_scale
                .iter()
                .take(4)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            if off_scale.len() > 4 {
                listed.push_str("; …");
            }
            let note = cat.tr("density-chart-off-scale", &[("listed", &listed)]);
            root.draw(&Text::new(note, (90, 486), (FONT, 12).into_font()))
                .map_err(&err)?;
        }
        root.present().map_err(&err)?;
    }
    Ok(Ok(Chart { name, title, svg }))
}

/// How many of each backend's largest N set the memory chart's scale.
const SCALE_COUNTS: usize = 2;

/// What grew in /proc/meminfo per instance, at each backend's largest measured N.
pub(crate) fn components(
    s: &Summary,
    cat: &Catalogue,
) -> Result<Result<Chart, String>, ReportError> {
    let rows: Vec<StackRow> = s
        .backends
        .iter()
        .filter_map(|b: &BackendSummary| {
            let c = b.counts.iter().rev().find(|c| c.drop_mib.is_some())?;
            Some(StackRow {
                label: format!("{} · N = {}", label(b, cat), c.count),
                n: Some(c.rounds),
                swatch: Some(colour(b.backend)),
                segments: c
                    .components
                    .iter()
                    .filter(|(_, v)| *v > 0.0)
                    .map(|(name, v)| (part(name, cat), *v))
                    .collect(),
                marker: None,
            })
        })
        .filter(|r| !r.segments.is_empty())
        .collect();
    if rows.is_empty() {
        return Ok(Err(cat.tr("density-chart-no-growth", &[])));
    }
    let title = cat.tr("density-chart-components-title", &[]);
    let svg = stacked(
        cat,
        "density_components",
        &title,
        &cat.tr("density-chart-components-x", &[]),
        &cat.unit("MiB"),
        rows,
        &cat.tr("density-chart-components-legend", &[]),
    )?;
    Ok(Ok(Chart {
        name: "density_components",
        title,
        svg,
    }))
}

/// Start latency against N.
pub(crate) fn start(s: &Summary, cat: &Catalogue) -> Result<Result<Chart, String>, ReportError> {
    let name = "density_start";
    let err = chart_err(name);
    let Some((x0, x1)) = count_range(s) else {
        return Ok(Err(cat.tr("density-chart-no-round", &[])));
    };
    // Times measured in the emulated machine are not performance figures: they are in the
    // tables, labelled, but never drawn beside real ones.
    let timed = || s.backends.iter().filter(|b| !b.emulated);
    let values: Vec<f64> = timed()
        .flat_map(|b| b.counts.iter())
        .filter_map(|c| c.start)
        .flat_map(|p| [p.p50, p.p99])
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    if values.is_empty() {
        return Ok(Err(if s.backends.iter().any(|b| b.emulated) {
            cat.tr("density-chart-none-ready-real", &[])
        } else {
            cat.tr("density-chart-none-ready", &[])
        }));
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min) / 1.5;
    let hi = values.iter().copied().fold(0.0, f64::max) * 1.5;
    let title = cat.tr("density-chart-start-title", &[]);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, (FONT, 17))
            .margin(14)
            .margin_right(28)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), (lo..hi).log_scale())
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc(cat.tr("density-chart-start-x", &[]))
            .y_desc(cat.tr("density-chart-start-y", &[]))
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| short(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(&err)?;
        for b in timed() {
            let c = colour(b.backend);
            let pts: Vec<(f64, f64, f64)> = b
                .counts
                .iter()
                .filter_map(|p| p.start.map(|q| (p.count as f64, q.p50, q.p99)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    c.stroke_width(2),
                ))
                .map_err(&err)?
                .label(format!("{} p50", label(b, cat)))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))
                .map_err(&err)?;
            chart
                .draw_series(DashedLineSeries::new(
                    pts.iter().map(|p| (p.0, p.2)),
                    6,
                    4,
                    c.stroke_width(2),
                ))
                .map_err(&err)?
                .label(format!("{} p99", label(b, cat)))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(1))
                });
            chart
                .draw_series(
                    pts.iter()
                        .map(|p| Circle::new((p.0, p.2), 4, c.stroke_width(2))),
                )
                .map_err(&err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(legend_style())
            .draw()
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(Ok(Chart { name, title, svg }))
}
