//! Markdown: the summary as a table to paste into a README or a paper draft, with the
//! environment, methodology, caveats and failed trials.

use std::fmt::Write as _;

use workloads::Better;

use super::{methodology, View};
use crate::summary::{self, fmt_num, LEVEL};

/// Escapes text for a Markdown table cell.
pub(crate) fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
        .replace('*', "\\*")
        .replace('_', "\\_")
}

/// `1.23x [1.10, 1.40]`.
pub(crate) fn ratio_text(r: &crate::stats::RatioCi) -> String {
    format!(
        "{}x [{}, {}]",
        fmt_num(r.ratio),
        fmt_num(r.lo),
        fmt_num(r.hi)
    )
}

pub(crate) fn arrow(b: Better) -> &'static str {
    match b {
        Better::Higher => "↑",
        Better::Lower => "↓",
    }
}

/// The summary table alone.
pub(crate) fn summary_table(view: &View<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Workload | Metric | Unit | Backend | n | Median | {:.0}% CI | vs native |",
        LEVEL * 100.0
    );
    let _ = writeln!(out, "|---|---|---|---|--:|--:|--:|--:|");
    for r in &view.summary.rows {
        let mut star = if r.median.coverage + 1e-9 < LEVEL {
            "\\*"
        } else {
            ""
        }
        .to_owned();
        if r.wide {
            star.push_str("\\~");
        }
        let mark = r.cell_mark();
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} | {} | {}{mark} | [{}, {}]{star}{mark} | {} |",
            cell(&r.workload),
            cell(&r.metric),
            cell(&r.unit),
            arrow(r.better),
            cell(&r.backend),
            r.median.n,
            fmt_num(r.median.median),
            fmt_num(r.median.lo),
            fmt_num(r.median.hi),
            r.vs_native.as_ref().map(ratio_text).unwrap_or_default()
        );
    }
    out
}

/// The headline effects of the run's factors, with the A/A interval beside each when the run
/// has one.
pub(crate) fn effects_table(view: &View<'_>) -> String {
    let s = &view.summary;
    let with_aa = s.aa.is_some();
    let mut out = String::from(
        "| Factor | Backend | Held fixed | Change | Workload | Metric | n | Ratio [95% CI] |",
    );
    out.push_str(if with_aa { " A/A [95% CI] |\n" } else { "\n" });
    out.push_str("|---|---|---|---|---|---|--:|--:|");
    out.push_str(if with_aa { "--:|\n" } else { "\n" });
    for e in s.effects.iter().filter(|e| e.headline) {
        let _ = write!(
            out,
            "| {} | {} | {} | {} → {} | {} | {} ({} {}) | {}/{} | {} |",
            cell(&e.factor),
            cell(&e.backend),
            if e.with.is_empty() {
                "-".into()
            } else {
                cell(&e.with)
            },
            cell(&e.from),
            cell(&e.to),
            cell(&e.workload),
            cell(&e.metric),
            cell(&e.unit),
            arrow(e.better),
            e.n_from,
            e.n_to,
            ratio_text(&e.ratio)
        );
        if with_aa {
            let _ = write!(
                out,
                " {} |",
                cell(&summary::aa_cell(s, &e.workload, &e.metric))
            );
        }
        out.push('\n');
    }
    out
}

/// The A/A check's headline rows.
pub(crate) fn aa_table(aa: &summary::AaCheck) -> String {
    let mut out = String::from(
        "| Workload | Metric | n | A'/A [95% CI] | Resolves |\n|---|---|--:|--:|--:|\n",
    );
    for r in aa.rows.iter().filter(|r| r.headline) {
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {}/{} | {} | {} |",
            cell(&r.workload),
            cell(&r.metric),
            cell(&r.unit),
            r.n_a,
            r.n_b,
            ratio_text(&r.ratio),
            summary::pct_text(r.resolution_pct)
        );
    }
    out
}

/// The factors, precision and A/A sentences that open every report of the run.
pub(crate) fn lead_sentences(view: &View<'_>) -> Vec<String> {
    let s = &view.summary;
    let mut out: Vec<String> = summary::factors_sentence(s).into_iter().collect();
    if let Some(p) = &s.precision {
        out.extend(summary::precision_sentences(p));
    }
    if let Some(aa) = &s.aa {
        out.push(summary::aa_sentence(aa));
    }
    out
}

pub(crate) fn render(view: &View<'_>) -> String {
    let m = view.manifest();
    let mut out = String::new();
    let _ = writeln!(out, "# isolab report: run {}\n", cell(&m.run_id));
    for line in lead_sentences(view) {
        let _ = writeln!(out, "- {}", cell(&line));
    }
    if !lead_sentences(view).is_empty() {
        out.push('\n');
    }
    if view.summary.rows.is_empty() {
        let _ = writeln!(out, "No successful measured trial in this run.\n");
    } else {
        out.push_str(&summary_table(view));
        let _ = writeln!(
            out,
            "\n↑ higher is better, ↓ lower is better. \\* fewer than 6 samples: the interval is min..max. \
             \\~ the interval reaches further than {} from its median.",
            summary::pct_text(
                view.summary
                    .precision
                    .as_ref()
                    .map_or(summary::DEFAULT_PRECISION_PCT, |p| p.threshold_pct)
            )
        );
    }
    if !view.summary.effects.is_empty() {
        let _ = writeln!(
            out,
            "\n## Factor effects\n\nMedian at the changed value / median at the factor's first value, \
             the other factors held fixed, with a 95% bootstrap interval; headline metrics (every \
             metric: `isolab report --format json`).\n"
        );
        out.push_str(&effects_table(view));
    }
    if let Some(aa) = &view.summary.aa {
        let _ = writeln!(
            out,
            "\n## A/A check\n\n{}\n",
            cell(&summary::aa_sentence(aa))
        );
        out.push_str(&aa_table(aa));
    }
    out.push_str(&super::published::markdown(
        &super::published::comparisons(view),
        "##",
    ));
    let en = crate::i18n::Catalogue::new(crate::i18n::Lang::En);
    let _ = writeln!(
        out,
        "\n## Methodology\n\n{}",
        methodology::paragraph(view, &en)
    );
    let caveats = methodology::caveats(view, &en);
    if !caveats.is_empty() {
        let _ = writeln!(out, "\n## Caveats\n");
        for c in caveats {
            let _ = writeln!(out, "- {c}");
        }
    }
    let failed = methodology::failed_groups(view);
    if !failed.is_empty() {
        let _ = writeln!(
            out,
            "\n## Failed trials\n\nOne row per backend and reason (every trial: `isolab report --format json`).\n\n\
             | Backend | Trials | How many | Workloads | Reason |\n|---|---|--:|---|---|"
        );
        for g in failed {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&g.backend),
                g.trial_ranges(),
                g.trials.len(),
                cell(&g.workloads.join(", ")),
                cell(&g.reason)
            );
        }
    }
    let _ = writeln!(out, "\n## Environment\n\n| | |\n|---|---|");
    for (k, v) in methodology::environment(view, &en) {
        let _ = writeln!(out, "| {} | {} |", cell(&k), cell(&v));
    }
    out
}
