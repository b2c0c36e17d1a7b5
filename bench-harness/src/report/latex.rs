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
            '±' => out.push_str("$\\pm$"),
            '→' => out.push_str("$\\rightarrow$"),
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
        let mut star = if r.median.coverage + 1e-9 < LEVEL {
            "$^{*}$"
        } else {
            ""
        }
        .to_owned();
        if r.wide {
            star.push_str("$^{\\sim}$");
        }
        let vs = r.vs_native.map_or(String::new(), |v| {
            format!("{}$\\times$ [{}, {}]", num(v.ratio), num(v.lo), num(v.hi))
        });
        // An emulated time says so in its own cell, not only in a footnote.
        let mark = if r.is_emulated_time() {
            " \\textit{(emulated)}"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{} & {} ({}) {dir} & {} & {} & {}{mark} & [{}, {}]{star}{mark} & {vs} \\\\",
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
    if let Some(p) = &view.summary.precision {
        if p.wide().next().is_some() {
            notes.push(format!(
                "$^{{\\sim}}$ the interval reaches further than {} from its median.",
                escape(&crate::summary::pct_text(p.threshold_pct))
            ));
        }
    }
    if let Some(aa) = &view.summary.aa {
        notes.push(escape(&crate::summary::aa_sentence(aa)));
    }
    let _ = writeln!(out, "\\par\\smallskip\\footnotesize {}", notes.join(" "));
    let _ = writeln!(out, "\\end{{table}}");
    if view.summary.effects.iter().any(|e| e.headline) {
        effects(view, &label, &mut out);
    }
    out.push_str(&super::published::latex(&super::published::comparisons(
        view,
    )));
    out
}

/// The headline factor effects as a second table.
fn effects(view: &View<'_>, label: &str, out: &mut String) {
    let with_aa = view.summary.aa.is_some();
    let _ = writeln!(out, "\n\\begin{{table}}[htbp]\n\\centering\\small");
    let _ = writeln!(
        out,
        "\\caption{{Factor effects in run {}: median at the changed value / median at the factor's \
         first value, the other factors held fixed, with {:.0}\\% bootstrap intervals{}.}}",
        escape(&view.manifest().run_id),
        LEVEL * 100.0,
        if with_aa {
            "; A/A: the same metric's A'/A interval (noise floor)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "\\label{{tab:isolab-{label}-effects}}");
    let _ = writeln!(
        out,
        "\\begin{{tabular}}{{llllll{}}}\n\\toprule",
        if with_aa { "rr" } else { "r" }
    );
    let _ = writeln!(
        out,
        "Factor & Backend & Held fixed & Change & Workload & Metric (unit) & Ratio [{:.0}\\% CI]{} \\\\\n\\midrule",
        LEVEL * 100.0,
        if with_aa { " & A/A" } else { "" }
    );
    for e in view.summary.effects.iter().filter(|e| e.headline) {
        let dir = match e.better {
            Better::Higher => "$\\uparrow$",
            Better::Lower => "$\\downarrow$",
        };
        let ratio = |r: &crate::stats::RatioCi| {
            format!("{}$\\times$ [{}, {}]", num(r.ratio), num(r.lo), num(r.hi))
        };
        let aa = if with_aa {
            let cell = view
                .summary
                .aa
                .as_ref()
                .and_then(|a| a.row(&e.workload, &e.metric))
                .map(|r| ratio(&r.ratio))
                .unwrap_or_default();
            format!(" & {cell}")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{} & {} & {} & {} $\\rightarrow$ {} & {} & {} ({}) {dir} & {}{aa} \\\\",
            escape(&e.factor),
            escape(&e.backend),
            escape(if e.with.is_empty() { "--" } else { &e.with }),
            escape(&e.from),
            escape(&e.to),
            escape(&e.workload),
            escape(&e.metric),
            escape(&e.unit),
            ratio(&e.ratio)
        );
    }
    let _ = writeln!(out, "\\bottomrule\n\\end{{tabular}}\n\\end{{table}}");
}
