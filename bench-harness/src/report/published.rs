//! Published ratios to native beside the ones this run measured: for each study the suite
//! replicates (`[replicates.STUDY]`), every row of the study's table with its figures, quoted
//! and cited, next to the isolab workload that stands for it. A row the run lacks says so; a
//! published value that does not exist stays empty. Nothing here is ever guessed.

use std::fmt::Write as _;

use serde::Serialize;
use workloads::Better;

use super::{html::esc, latex::escape, markdown::cell, View};
use crate::published::{self, Study};
use crate::summary::{aligned_table, fmt_num, SummaryRow, LEVEL};

/// What the run measured for one cell, or why it has nothing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Measured {
    /// A median or a ratio with its interval and the samples it rests on.
    Value {
        /// The median (native) or the ratio to native (sandboxes).
        value: f64,
        /// Lower end of the 95% interval.
        lo: f64,
        /// Upper end.
        hi: f64,
        /// Samples of the column.
        n: usize,
    },
    /// Why there is no value.
    Missing {
        /// For people: "not measured in this run (...)".
        why: String,
    },
}

/// One row of a study beside this run.
#[derive(Debug, Serialize)]
pub(crate) struct ComparedRow {
    pub row: &'static str,
    pub name: &'static str,
    pub benchmark: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub published_native: f64,
    /// The study's sandboxes over its native, in the study's order.
    pub published_ratios: [Option<f64>; 2],
    pub source: &'static str,
    pub note: &'static str,
    /// `WORKLOAD.METRIC` of this run that stands for the row, when the suite names one.
    pub isolab: Option<String>,
    /// This run's native median, with its unit.
    pub native: Measured,
    pub native_unit: Option<String>,
    /// This run's container and VM over native, in the study's order.
    pub ratios: [Measured; 2],
}

/// A study beside this run.
#[derive(Debug, Serialize)]
pub(crate) struct Comparison {
    #[serde(skip)]
    pub study: &'static Study,
    /// The study's name, reference, data source and setup.
    pub id: &'static str,
    pub citation: &'static str,
    pub data_source: &'static str,
    pub setup: &'static str,
    /// The study's sandboxes, in its order.
    pub sandboxes: [&'static str; 2],
    /// The isolab backends standing for the study's sandboxes, in its order.
    pub backends: [&'static str; 2],
    pub rows: Vec<ComparedRow>,
}

const NOT_MEASURED: &str = "not measured in this run";

/// The studies the run's suite replicates, each beside the run.
pub(crate) fn comparisons(view: &View<'_>) -> Vec<Comparison> {
    let mut ids: Vec<&str> = Vec::new();
    for r in &view.manifest().suite.replicates {
        if !ids.contains(&r.study.as_str()) {
            ids.push(&r.study);
        }
    }
    ids.into_iter()
        .filter_map(published::study)
        .map(|s| compare(view, s))
        .collect()
}

/// `study` beside the run: every row, measured or not.
pub(crate) fn compare(view: &View<'_>, study: &'static Study) -> Comparison {
    let backends = study.sandboxes.map(|(_, b)| b.name());
    let rows = study
        .rows
        .iter()
        .map(|row| {
            let mapping = view
                .manifest()
                .suite
                .replicates
                .iter()
                .find(|r| r.study == study.id && r.row == row.id);
            let (native, native_unit, ratios) = match mapping {
                None => (
                    missing(NOT_MEASURED.into()),
                    None,
                    [missing(NOT_MEASURED.into()), missing(NOT_MEASURED.into())],
                ),
                Some(m) => {
                    let native = find(view, &m.workload, &m.metric, "native");
                    let unit = native.as_ref().ok().map(|r| r.unit.clone());
                    let ratios = backends.map(|b| {
                        sandbox_ratio(view, &m.workload, &m.metric, b, row.better, &native)
                    });
                    let native = match native {
                        Ok(r) => Measured::Value {
                            value: r.median.median,
                            lo: r.median.lo,
                            hi: r.median.hi,
                            n: r.median.n,
                        },
                        Err(why) => missing(why),
                    };
                    (native, unit, ratios)
                }
            };
            ComparedRow {
                row: row.id,
                name: row.name,
                benchmark: row.benchmark,
                unit: row.unit,
                better: row.better,
                published_native: row.native,
                published_ratios: [row.ratio(0), row.ratio(1)],
                source: row.source,
                note: row.note,
                isolab: mapping.map(|m| format!("{}.{}", m.workload, m.metric)),
                native,
                native_unit,
                ratios,
            }
        })
        .collect();
    Comparison {
        study,
        id: study.id,
        citation: study.citation,
        data_source: study.data_source,
        setup: study.setup,
        sandboxes: study.sandboxes.map(|(name, _)| name),
        backends,
        rows,
    }
}

fn missing(why: String) -> Measured {
    Measured::Missing { why }
}

/// The first column of `backend` (real, not an A/A copy) with this workload and metric, or why
/// the run has none.
fn find<'v>(
    view: &'v View<'_>,
    workload: &str,
    metric: &str,
    backend: &str,
) -> Result<&'v SummaryRow, String> {
    let first_word = |label: &str| label.split(' ').next() == Some(backend);
    let rows: Vec<&SummaryRow> = view
        .summary
        .rows
        .iter()
        .filter(|r| r.workload == workload && r.metric == metric && first_word(&r.backend))
        .collect();
    if let Some(r) = rows
        .iter()
        .find(|r| !r.backend.ends_with("(emulated)") && !r.backend.ends_with(" A'"))
    {
        return Ok(r);
    }
    if !rows.is_empty() {
        return Err(format!(
            "{backend} ran emulated: counts only, its times are not performance figures"
        ));
    }
    let m = view.manifest();
    if !m.suite.backends.iter().any(|b| b.name() == backend) {
        return Err(format!("{NOT_MEASURED} (no {backend} in this run)"));
    }
    if let Some(state) = m.backends.get(backend).filter(|s| !s.available) {
        return Err(match &state.note {
            Some(n) => format!("{NOT_MEASURED} ({backend} unavailable: {n})"),
            None => format!("{NOT_MEASURED} ({backend} unavailable)"),
        });
    }
    Err(format!(
        "{NOT_MEASURED} (no successful {backend} sample of {workload} {metric})"
    ))
}

fn sandbox_ratio(
    view: &View<'_>,
    workload: &str,
    metric: &str,
    backend: &str,
    better: Better,
    native: &Result<&SummaryRow, String>,
) -> Measured {
    let row = match find(view, workload, metric, backend) {
        Ok(r) => r,
        Err(why) => return missing(why),
    };
    if row.better != better {
        return missing(format!(
            "not comparable: {metric} is {} is better here, the published value the other way",
            if row.better == Better::Higher {
                "higher"
            } else {
                "lower"
            }
        ));
    }
    match (&row.vs_native, native) {
        (Some(r), Ok(_)) => Measured::Value {
            value: r.ratio,
            lo: r.lo,
            hi: r.hi,
            n: row.median.n,
        },
        (_, Err(why)) => missing(format!("no native to compare with: {why}")),
        (None, Ok(_)) => missing(format!("{NOT_MEASURED} (no ratio to native)")),
    }
}

/// `0.98x`, or empty for a value the study does not have.
fn published_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{}x", fmt_num(r)))
}

fn measured_ratio(m: &Measured) -> String {
    match m {
        Measured::Value { value, lo, hi, n } => format!(
            "{}x [{}, {}] n={n}",
            fmt_num(*value),
            fmt_num(*lo),
            fmt_num(*hi)
        ),
        Measured::Missing { why } => why.clone(),
    }
}

fn measured_native(m: &Measured, unit: Option<&str>) -> String {
    match m {
        Measured::Value { value, lo, hi, n } => format!(
            "{} [{}, {}] {} n={n}",
            fmt_num(*value),
            fmt_num(*lo),
            fmt_num(*hi),
            unit.unwrap_or("")
        ),
        Measured::Missing { why } => why.clone(),
    }
}

fn intro(c: &Comparison) -> String {
    let s = c.study;
    format!(
        "{}'s published ratios to native ({} and {}) beside this run's ({} and {} over native, \
         median ratio with its {:.0}% bootstrap interval). Their figures are quoted from {}; they \
         were not measured on this host. Their setup: {}",
        s.short,
        s.sandboxes[0].0,
        s.sandboxes[1].0,
        c.backends[0],
        c.backends[1],
        LEVEL * 100.0,
        s.data_source,
        s.setup
    )
}

fn headers(c: &Comparison) -> [String; 8] {
    let s = c.study;
    [
        "Benchmark".into(),
        "Their native".into(),
        format!("{} / native (theirs)", s.sandboxes[0].0),
        format!("{} / native (theirs)", s.sandboxes[1].0),
        "isolab workload.metric".into(),
        "Native here".into(),
        format!("{} / native (here)", c.backends[0]),
        format!("{} / native (here)", c.backends[1]),
    ]
}

fn cells(r: &ComparedRow) -> [String; 8] {
    [
        r.name.to_owned(),
        format!("{} {}", fmt_num(r.published_native), r.unit),
        published_ratio(r.published_ratios[0]),
        published_ratio(r.published_ratios[1]),
        r.isolab.clone().unwrap_or_else(|| "-".into()),
        measured_native(&r.native, r.native_unit.as_deref()),
        measured_ratio(&r.ratios[0]),
        measured_ratio(&r.ratios[1]),
    ]
}

fn sources(c: &Comparison) -> Vec<String> {
    c.rows
        .iter()
        .map(|r| {
            let mut s = format!("{}: {}; {}", r.name, r.benchmark, r.source);
            if !r.note.is_empty() {
                s.push_str(". ");
                s.push_str(r.note);
            }
            s
        })
        .collect()
}

/// Markdown: a section per study (`level` is the heading's `#`s).
pub(crate) fn markdown(comparisons: &[Comparison], level: &str) -> String {
    let mut out = String::new();
    for c in comparisons {
        let _ = writeln!(out, "\n{level} {} beside this run\n", c.study.short);
        let _ = writeln!(out, "{}\n", intro(c));
        out.push_str(&markdown_table(c));
        let _ = writeln!(out, "\n{}\n", c.study.citation);
        for s in sources(c) {
            let _ = writeln!(out, "- {}", cell(&s));
        }
    }
    out
}

/// The Markdown table of one study beside the run.
pub(crate) fn markdown_table(c: &Comparison) -> String {
    let mut out = String::new();
    let h = headers(c);
    let _ = writeln!(
        out,
        "| {} |",
        h.iter().map(|x| cell(x)).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "|---|--:|--:|--:|---|--:|--:|--:|");
    for r in &c.rows {
        let _ = writeln!(
            out,
            "| {} |",
            cells(r)
                .iter()
                .map(|x| cell(x))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    out
}

/// The terminal table.
pub(crate) fn term(comparisons: &[Comparison]) -> String {
    let mut out = String::new();
    for c in comparisons {
        let _ = writeln!(out, "\n{} beside this run\n{}\n", c.study.short, intro(c));
        let h = headers(c);
        let head: Vec<&str> = h.iter().map(String::as_str).collect();
        let lines: Vec<Vec<String>> = c.rows.iter().map(|r| cells(r).to_vec()).collect();
        out.push_str(&aligned_table(&head, &lines, &[1, 2, 3], false));
        let _ = writeln!(out, "\n{}\nSources:", c.study.citation);
        for s in sources(c) {
            let _ = writeln!(out, "  - {s}");
        }
    }
    out
}

/// HTML sections.
pub(crate) fn html(comparisons: &[Comparison]) -> String {
    let mut out = String::new();
    for c in comparisons {
        let _ = writeln!(
            out,
            "<h2 id=\"published-{}\">{} beside this run</h2>\n<p>{}</p>\n<table>\n<tr>{}</tr>",
            esc(c.study.id),
            esc(c.study.short),
            esc(&intro(c)),
            headers(c)
                .iter()
                .map(|h| format!("<th>{}</th>", esc(h)))
                .collect::<String>()
        );
        for r in &c.rows {
            let row: String = cells(r)
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    if matches!(i, 1..=3) {
                        format!("<td class=\"num\">{}</td>", esc(x))
                    } else {
                        format!("<td>{}</td>", esc(x))
                    }
                })
                .collect();
            let _ = writeln!(out, "<tr>{row}</tr>");
        }
        let _ = writeln!(
            out,
            "</table>\n<p class=\"muted\">{}</p>\n<ul class=\"muted\">",
            esc(c.study.citation)
        );
        for s in sources(c) {
            let _ = writeln!(out, "<li>{}</li>", esc(&s));
        }
        out.push_str("</ul>\n");
    }
    out
}

/// A booktabs table per study.
pub(crate) fn latex(comparisons: &[Comparison]) -> String {
    let mut out = String::new();
    for c in comparisons {
        let s = c.study;
        let _ = writeln!(out, "\n\\begin{{table}}[htbp]\n\\centering\\small");
        let _ = writeln!(
            out,
            "\\caption{{{}: published ratios to native ({} and {}; {}) beside this run's ({} and \
             {}, median ratio with its {:.0}\\% bootstrap interval). The published figures were \
             not measured on this host.}}",
            escape(s.short),
            escape(s.sandboxes[0].0),
            escape(s.sandboxes[1].0),
            escape(s.citation),
            escape(c.backends[0]),
            escape(c.backends[1]),
            LEVEL * 100.0
        );
        let _ = writeln!(out, "\\label{{tab:isolab-published-{}}}", s.id);
        let _ = writeln!(out, "\\begin{{tabular}}{{lrrlrr}}\n\\toprule");
        let _ = writeln!(
            out,
            "Benchmark & {} / native & {} / native & isolab & {} / native & {} / native \\\\",
            escape(s.sandboxes[0].0),
            escape(s.sandboxes[1].0),
            escape(c.backends[0]),
            escape(c.backends[1])
        );
        let _ = writeln!(
            out,
            " & \\multicolumn{{2}}{{c}}{{published}} & & \\multicolumn{{2}}{{c}}{{this run}} \\\\\n\\midrule"
        );
        for r in &c.rows {
            let ratio = |m: &Measured| match m {
                Measured::Value { value, lo, hi, .. } => format!(
                    "{} [{}, {}]",
                    escape(&fmt_num(*value)),
                    escape(&fmt_num(*lo)),
                    escape(&fmt_num(*hi))
                ),
                Measured::Missing { .. } => "--".into(),
            };
            let _ = writeln!(
                out,
                "{} & {} & {} & {} & {} & {} \\\\",
                escape(r.name),
                escape(&published_ratio(r.published_ratios[0])),
                escape(&published_ratio(r.published_ratios[1])),
                escape(r.isolab.as_deref().unwrap_or("--")),
                ratio(&r.ratios[0]),
                ratio(&r.ratios[1])
            );
        }
        let _ = writeln!(out, "\\bottomrule\n\\end{{tabular}}\n\\end{{table}}");
        let _ = writeln!(
            out,
            "% --: not measured in this run, or not published. Sources: {}",
            escape(s.data_source)
        );
    }
    out
}
