//! One self-contained HTML file: inline SVG charts, the summary table, caveats, failed trials,
//! the methodology and the environment. Written as well-formed XHTML-compatible markup (every
//! element closed, only XML's five entities) so XML tools and tests can parse it.

use std::fmt::Write as _;

use workloads::Better;

use super::charts::backend_css;
use super::{charts, methodology, ReportError, View};
use crate::summary::{fmt_num, LEVEL};

/// Escapes text for XML/HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newline are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font-family: 'DejaVu Sans', 'Helvetica Neue', Arial, sans-serif; max-width: 1000px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #eee; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.first td { border-top: 1px solid #bbb; }
.dot { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 50%;
       margin-right: 0.35em; vertical-align: -0.05em; }
.caveats { background: #fff6e0; border-left: 4px solid #e69f00; padding: 0.6em 1em; }
.partial { color: #a40; font-weight: bold; }
figure { margin: 1.5em 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #555; }
.muted { color: #777; font-size: 0.9em; }
";

fn dot(view: &View<'_>, label: &str) -> String {
    format!(
        "<span class=\"dot\" style=\"background:{}\"></span>",
        backend_css(label, &view.columns)
    )
}

/// What each chart shows, for its caption.
fn caption(name: &str) -> &'static str {
    match name {
        "start_timeline" => {
            "Where start-up time goes: each bar is one trial of the noop workload on the host \
             clock, split at the phases the backend records; segment lengths are medians across \
             trials, so the bar is the median path, not the median total."
        }
        "ratio_to_native" => {
            "Each dot is a backend's median divided by native's median for the same metric; the \
             whisker is its bootstrap confidence interval. At 1 (the black line) the backend is \
             as fast as native; whether above 1 is better depends on the arrow in the label."
        }
        "factor_effects" => {
            "Each dot is one factor's effect on a headline metric: the median at the changed value \
             divided by the median at the factor's first value, the other factors held fixed, \
             measured side by side in this run; the whisker is its bootstrap interval. At 1 the \
             setting made no difference that the run could see."
        }
        "aa_check" => {
            "The same column run twice as if it were two, interleaved: any distance of a dot or \
             its whisker from 1 is noise. Effects and ratios closer to 1 than these whiskers \
             reach cannot be told from noise on this host."
        }
        "memory_per_instance" => {
            "Memory one sandbox costs on the host: for the VM the guest RAM it touched plus the \
             VMM's own; for the container the cgroup's anonymous, page-cache and kernel memory; \
             natively the process's peak RSS."
        }
        "io_latency" => {
            "Latency percentiles reported by the I/O workloads (p50 = typical, p99 = tail), \
             median across trials with its confidence interval."
        }
        "vm_exits" => {
            "How often the guest left the CPU to the VMM in one trial, by reason. Port and MMIO \
             exits are emulated device accesses; virtio keeps them few."
        }
        _ => "",
    }
}

pub(crate) fn render(view: &View<'_>) -> Result<String, ReportError> {
    let m = view.manifest();
    let (charts, chart_notes) = charts::build(view)?;
    let mut o = String::new();
    o.push_str(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n",
    );
    o.push_str("<meta charset=\"utf-8\" />\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\n");
    let _ = writeln!(o, "<title>isolab report: {}</title>", esc(&m.run_id));
    let _ = writeln!(o, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(o, "<h1>isolab report: run {}</h1>", esc(&m.run_id));
    let _ = writeln!(
        o,
        "<p class=\"muted\">{} on {} (kernel {}, {}), {} of {} planned trials stored, status: {}{}.</p>",
        esc(&m.started_at),
        esc(&m.host.hostname),
        esc(&m.host.kernel),
        esc(m.host.kvm.describe()),
        view.run.samples.len(),
        m.planned_trials,
        if view.is_partial() {
            "<span class=\"partial\">"
        } else {
            "<span>"
        },
        esc(super::status_word(m.status)) + "</span>"
    );
    let legend: Vec<String> = methodology::backends_present(view)
        .iter()
        .map(|b| format!("{}{}", dot(view, b), esc(b)))
        .collect();
    if !legend.is_empty() {
        let _ = writeln!(
            o,
            "<p>Backends in this run (same colours in every chart): {}</p>",
            legend.join(" &#160; ")
        );
    }

    let lead = super::markdown::lead_sentences(view);
    if !lead.is_empty() {
        o.push_str("<ul>\n");
        for l in &lead {
            let _ = writeln!(o, "<li>{}</li>", esc(l));
        }
        o.push_str("</ul>\n");
    }

    let caveats = methodology::caveats(view);
    if !caveats.is_empty() {
        o.push_str("<div class=\"caveats\"><strong>Read this first.</strong>\n<ul>\n");
        for c in &caveats {
            let _ = writeln!(o, "<li>{}</li>", esc(c));
        }
        o.push_str("</ul></div>\n");
    }

    o.push_str("<h2>Charts</h2>\n");
    for c in &charts {
        let _ = writeln!(
            o,
            "<figure id=\"{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
            c.name,
            strip_xml_declaration(&c.svg),
            esc(caption(c.name))
        );
    }
    if !chart_notes.is_empty() {
        o.push_str("<ul class=\"muted\">\n");
        for n in &chart_notes {
            let _ = writeln!(o, "<li>{}</li>", esc(n));
        }
        o.push_str("</ul>\n");
    }

    o.push_str("<h2>Summary</h2>\n");
    summary_table(view, &mut o);
    effects_table(view, &mut o);
    aa_table(view, &mut o);
    o.push_str(&super::published::html(&super::published::comparisons(
        view,
    )));

    let failed = methodology::failed_groups(view);
    if !failed.is_empty() {
        o.push_str(
            "<h2>Failed trials</h2>\n<p class=\"muted\">One row per backend and reason (every \
             trial: <code>isolab report --format json</code>).</p>\n<table>\n<tr><th>backend</th>\
             <th>trials</th><th>how many</th><th>workloads</th><th>reason</th></tr>\n",
        );
        for g in failed {
            let _ = writeln!(
                o,
                "<tr><td>{}{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                dot(view, &g.backend),
                esc(&g.backend),
                esc(&g.trial_ranges()),
                g.trials.len(),
                esc(&g.workloads.join(", ")),
                esc(&g.reason)
            );
        }
        o.push_str("</table>\n");
    }

    let _ = writeln!(
        o,
        "<h2>Methodology</h2>\n<p>{}</p>",
        esc(&methodology::paragraph(view))
    );
    o.push_str("<h2>Environment</h2>\n<table>\n");
    for (k, v) in methodology::environment(view) {
        let _ = writeln!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
    }
    o.push_str("</table>\n");
    let _ = writeln!(
        o,
        "<p class=\"muted\">Every number here is recomputed from samples.jsonl and manifest.json \
         of run {} by <code>isolab report</code>; the raw samples are in the CSV report.</p>",
        esc(&m.run_id)
    );
    o.push_str("</body>\n</html>\n");
    Ok(o)
}

fn strip_xml_declaration(svg: &str) -> &str {
    let s = svg.trim_start();
    if s.starts_with("<?xml") {
        s.find("?>").map_or(s, |i| s[i + 2..].trim_start())
    } else {
        s
    }
}

fn summary_table(view: &View<'_>, o: &mut String) {
    if view.summary.rows.is_empty() {
        o.push_str("<p>No successful measured trial in this run.</p>\n");
        return;
    }
    let _ = writeln!(
        o,
        "<table>\n<tr><th>workload</th><th>metric</th><th>unit</th><th>backend</th><th>n</th>\
         <th>median</th><th>{:.0}% CI</th><th>vs native [{:.0}% CI]</th></tr>",
        LEVEL * 100.0,
        LEVEL * 100.0
    );
    let mut last = "";
    for r in &view.summary.rows {
        let first = r.workload != last;
        let mut star = if r.median.coverage + 1e-9 < LEVEL {
            "*"
        } else {
            ""
        }
        .to_owned();
        if r.wide {
            star.push('~');
        }
        let mark = esc(r.cell_mark());
        let vs = r.vs_native.map_or(String::new(), |v| {
            format!(
                "{}x [{}, {}]",
                fmt_num(v.ratio),
                fmt_num(v.lo),
                fmt_num(v.hi)
            )
        });
        let _ = writeln!(
            o,
            "<tr{}><td>{}</td><td>{}</td><td>{} {}</td><td>{}{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}{mark}</td><td class=\"num\">[{}, {}]{star}{mark}</td><td class=\"num\">{}</td></tr>",
            if first { " class=\"first\"" } else { "" },
            if first { esc(&r.workload) } else { String::new() },
            esc(&r.metric),
            esc(&r.unit),
            if r.better == Better::Higher { "↑" } else { "↓" },
            dot(view, &r.backend),
            esc(&r.backend),
            r.median.n,
            fmt_num(r.median.median),
            fmt_num(r.median.lo),
            fmt_num(r.median.hi),
            vs
        );
        last = &r.workload;
    }
    let _ = writeln!(
        o,
        "</table>\n<p class=\"muted\">↑ higher is better, ↓ lower is better; * fewer than 6 samples, \
         the interval is min..max; ~ the interval reaches further than {} from its median.</p>",
        esc(&crate::summary::pct_text(
            view.summary
                .precision
                .as_ref()
                .map_or(crate::summary::DEFAULT_PRECISION_PCT, |p| p.threshold_pct)
        ))
    );
}

fn effects_table(view: &View<'_>, o: &mut String) {
    let s = &view.summary;
    if s.effects.is_empty() {
        return;
    }
    let with_aa = s.aa.is_some();
    let _ = writeln!(
        o,
        "<h2>Factor effects</h2>\n<p>Median at the changed value / median at the factor's first \
         value, the other factors held fixed, with a {:.0}% bootstrap interval; headline metrics \
         (every metric: <code>isolab report --format json</code>).{}</p>\n<table>\n<tr><th>factor</th>\
         <th>backend</th><th>held fixed</th><th>change</th><th>workload</th><th>metric</th>\
         <th>n</th><th>ratio [{:.0}% CI]</th>{}</tr>",
        LEVEL * 100.0,
        if with_aa {
            " A/A: the same metric's A'/A interval, the noise floor beside each effect."
        } else {
            ""
        },
        LEVEL * 100.0,
        if with_aa { "<th>A/A</th>" } else { "" }
    );
    for e in s.effects.iter().filter(|e| e.headline) {
        let _ =
            write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{} ({} {})</td>\
             <td class=\"num\">{}/{}</td><td class=\"num\">{}</td>",
            esc(&e.factor),
            esc(&e.backend),
            esc(if e.with.is_empty() { "-" } else { &e.with }),
            esc(&e.from),
            esc(&e.to),
            esc(&e.workload),
            esc(&e.metric),
            esc(&e.unit),
            if e.better == Better::Higher { "↑" } else { "↓" },
            e.n_from,
            e.n_to,
            esc(&crate::summary::ratio_text(&e.ratio))
        );
        if with_aa {
            let _ = write!(
                o,
                "<td class=\"num\">{}</td>",
                esc(&crate::summary::aa_cell(s, &e.workload, &e.metric))
            );
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

fn aa_table(view: &View<'_>, o: &mut String) {
    let Some(aa) = &view.summary.aa else { return };
    let _ = writeln!(
        o,
        "<h2>A/A check</h2>\n<p>{}</p>\n<table>\n<tr><th>workload</th><th>metric</th><th>n</th>\
         <th>A'/A [{:.0}% CI]</th><th>resolves</th></tr>",
        esc(&crate::summary::aa_sentence(aa)),
        LEVEL * 100.0
    );
    for r in aa.rows.iter().filter(|r| r.headline) {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{} ({})</td><td class=\"num\">{}/{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            esc(&r.workload),
            esc(&r.metric),
            esc(&r.unit),
            r.n_a,
            r.n_b,
            esc(&crate::summary::ratio_text(&r.ratio)),
            esc(&crate::summary::pct_text(r.resolution_pct))
        );
    }
    o.push_str("</table>\n");
}
