//! A LaTeX table (booktabs) of the summary, for papers. Needs `\usepackage{booktabs}`.

use std::fmt::Write as _;

use workloads::Better;

use super::View;
use crate::summary::{fmt_num, LEVEL};

/// Escapes text for LaTeX (text mode): the ten special characters and the few non-ASCII symbols
/// isolab's units and labels use.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            'µ' | 'μ' => out.push_str("\\textmu{}"),
            '↑' => out.push_str("$\\uparrow$"),
            '↓' => out.push_str("$\\downarrow$"),
            '×' => out.push_str("$\\times$"),
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            _ => out.push(ch),
        }
    }
    out
}

fn num(x: f64) -> String {
    escape(&fmt_num(x))
}

pub(crate) fn render(view: &View<'_>) -> String {
    let m = view.manifest();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "% isolab report of run {}: medians with {:.0}% intervals and ratios to native.\n\
         % Needs \\usepackage{{booktabs}} (and textcomp for \\textmu on old TeX installations).",
        m.run_id.replace('\n', " "),
        LEVEL * 100.0
    );
    let _ = writeln!(out, "\\begin{{table}}[htbp]\n\\centering\\small");
    let _ = writeln!(
        out,
        "\\caption{{Medians with {:.0}\\% confidence intervals and ratios to native (run {}, {} \
         measured trials, host kernel {}).}}",
        LEVEL * 100.0,
        escape(&m.run_id),
        view.summary.measured_samples,
        escape(&m.host.kernel)
    );
    let label: String = m
        .run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let _ = writeln!(out, "\\label{{tab:isolab-{label}}}");
    let _ = writeln!(out, "\\begin{{tabular}}{{lllrrrr}}\n\\toprule");
    let _ = writeln!(
        out,
        "Workload & Metric (unit) & Backend & $n$ & Median & {:.0}\\% CI & vs.\\ native \\\\\n\\midrule",
        LEVEL * 100.0
    );
    let mut last = None;
    for r in &view.summary.rows {
        let first = last != Some(r.workload.as_str());
        if first && last.is_some() {
            let _ = writeln!(out, "\\addlinespace");
        }
        last = Some(r.workload.as_str());
        let dir = match r.better {
            Better::Higher => "$\\uparrow$",
            Better::Lower => "$\\downarrow$",
        };
        let star = if r.median.coverage + 1e-9 < LEVEL {
            "$^{*}$"
        } else {
            ""
        };
        let vs = r.vs_native.map_or(String::new(), |v| {
            format!("{}$\\times$ [{}, {}]", num(v.ratio), num(v.lo), num(v.hi))
        });
        let _ = writeln!(
            out,
            "{} & {} ({}) {dir} & {} & {} & {} & [{}, {}]{star} & {vs} \\\\",
            if first {
                escape(&r.workload)
            } else {
                String::new()
            },
            escape(&r.metric),
            escape(&r.unit),
            escape(&r.backend),
            r.median.n,
            num(r.median.median),
            num(r.median.lo),
            num(r.median.hi),
        );
    }
    if view.summary.rows.is_empty() {
        let _ = writeln!(
            out,
            "\\multicolumn{{7}}{{l}}{{No successful measured trial in this run.}} \\\\"
        );
    }
    let _ = writeln!(out, "\\bottomrule\n\\end{{tabular}}");
    let mut notes =
        vec!["$\\uparrow$ higher is better, $\\downarrow$ lower is better.".to_string()];
    if view
        .summary
        .rows
        .iter()
        .any(|r| r.median.coverage + 1e-9 < LEVEL)
    {
        notes.push("$^{*}$ fewer than 6 samples: the interval is min..max.".into());
    }
    if view
        .summary
        .rows
        .iter()
        .any(|r| r.backend.ends_with("(emulated)"))
    {
        notes.push(
            "vm (emulated): the VM ran in an emulated machine; correctness only, not performance."
                .into(),
        );
    }
    let _ = writeln!(out, "\\par\\smallskip\\footnotesize {}", notes.join(" "));
    let _ = writeln!(out, "\\end{{table}}");
    out
}
