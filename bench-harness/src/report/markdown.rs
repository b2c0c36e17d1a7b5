//! Markdown: the summary as a table to paste into a README or a paper draft, with the
//! environment, methodology, caveats and failed trials.

use std::fmt::Write as _;

use workloads::Better;

use super::{methodology, View};
use crate::summary::{fmt_num, LEVEL};

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
        let star = if r.median.coverage + 1e-9 < LEVEL {
            "\\*"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} | {} | {} | [{}, {}]{star} | {} |",
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

pub(crate) fn render(view: &View<'_>) -> String {
    let m = view.manifest();
    let mut out = String::new();
    let _ = writeln!(out, "# isolab report: run {}\n", cell(&m.run_id));
    if view.summary.rows.is_empty() {
        let _ = writeln!(out, "No successful measured trial in this run.\n");
    } else {
        out.push_str(&summary_table(view));
        let _ = writeln!(
            out,
            "\n↑ higher is better, ↓ lower is better. \\* fewer than 6 samples: the interval is min..max."
        );
    }
    let _ = writeln!(out, "\n## Methodology\n\n{}", methodology::paragraph(view));
    let caveats = methodology::caveats(view);
    if !caveats.is_empty() {
        let _ = writeln!(out, "\n## Caveats\n");
        for c in caveats {
            let _ = writeln!(out, "- {c}");
        }
    }
    let failed = methodology::failed_trials(view);
    if !failed.is_empty() {
        let _ = writeln!(
            out,
            "\n## Failed trials\n\n| Trial | Backend | Workload | Repetition | Reason |\n|--:|---|---|--:|---|"
        );
        for f in failed {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                f.trial,
                cell(&f.backend),
                cell(&f.workload),
                f.repetition,
                cell(&f.reason)
            );
        }
    }
    let _ = writeln!(out, "\n## Environment\n\n| | |\n|---|---|");
    for (k, v) in methodology::environment(view) {
        let _ = writeln!(out, "| {} | {} |", cell(&k), cell(&v));
    }
    out
}
