//! One self-contained HTML file: inline SVG charts, the summary table, caveats, failed trials,
//! the methodology and the environment. Written as well-formed XHTML-compatible markup (every
//! element closed, only XML's five entities) so XML tools and tests can parse it.

use std::fmt::Write as _;

use workloads::Better;

use super::charts::backend_css;
use super::{charts, methodology, ReportError, View};
use crate::i18n::{Catalogue, Lang};
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

pub(crate) const STYLE: &str = "
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

/// What each chart shows, for its caption (empty for a chart the catalogue does not describe).
fn caption(cat: &Catalogue, name: &str) -> String {
    let id = format!("caption-{name}");
    if cat.has(&id) {
        cat.tr(&id, &[])
    } else {
        String::new()
    }
}

pub(crate) fn render(view: &View<'_>, cat: &Catalogue) -> Result<String, ReportError> {
    let m = view.manifest();
    let l = |id: &str| cat.tr(id, &[]);
    let (charts, chart_notes) = charts::build(view)?;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"{}\">\n<head>",
        cat.lang().code()
    );
    o.push_str("<meta charset=\"utf-8\" />\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\n");
    let _ = writeln!(
        o,
        "<title>{}</title>",
        esc(&cat.tr("html-title", &[("run", &m.run_id)]))
    );
    let _ = writeln!(o, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(
        o,
        "<h1>{}</h1>",
        esc(&cat.tr("html-heading", &[("run", &m.run_id)]))
    );
    let status = format!(
        "{}{}</span>",
        if view.is_partial() {
            "<span class=\"partial\">"
        } else {
            "<span>"
        },
        esc(&l(methodology::status_id(m.status)))
    );
    let _ = writeln!(
        o,
        "<p class=\"muted\">{}</p>",
        cat.tr(
            "html-run-line",
            &[
                ("started", &esc(&m.started_at)),
                ("host", &esc(&m.host.hostname)),
                ("kernel", &esc(&m.host.kernel)),
                ("kvm", &esc(&l(methodology::kvm_id(m.host.kvm)))),
                ("stored", &cat.num(&view.run.samples.len().to_string())),
                ("planned", &cat.num(&m.planned_trials.to_string())),
                ("status", &status),
            ]
        )
    );
    let legend: Vec<String> = methodology::backends_present(view)
        .iter()
        .map(|b| format!("{}{}", dot(view, b), esc(b)))
        .collect();
    if !legend.is_empty() {
        let _ = writeln!(
            o,
            "<p>{}</p>",
            cat.tr("html-legend", &[("backends", &legend.join(" &#160; "))])
        );
    }

    let lead = if cat.lang() == Lang::En {
        super::markdown::lead_sentences(view)
    } else {
        // The lead sentences repeat the summary table in English prose; the table below
        // says the same in the catalogue's language.
        Vec::new()
    };
    if !lead.is_empty() {
        o.push_str("<ul>\n");
        for l in &lead {
            let _ = writeln!(o, "<li>{}</li>", esc(l));
        }
        o.push_str("</ul>\n");
    }

    let caveats = methodology::caveats(view, cat);
    if !caveats.is_empty() {
        let _ = writeln!(
            o,
            "<div class=\"caveats\"><strong>{}</strong>\n<ul>",
            esc(&l("html-read-first"))
        );
        for c in &caveats {
            let _ = writeln!(o, "<li>{}</li>", esc(c));
        }
        o.push_str("</ul></div>\n");
    }

    let _ = writeln!(o, "<h2>{}</h2>", esc(&l("html-charts")));
    for c in &charts {
        let _ = writeln!(
            o,
            "<figure id=\"{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
            c.name,
            strip_xml_declaration(&c.svg),
            esc(&caption(cat, c.name))
        );
    }
    if !chart_notes.is_empty() {
        o.push_str("<ul class=\"muted\">\n");
        for n in &chart_notes {
            let _ = writeln!(o, "<li>{}</li>", esc(n));
        }
        o.push_str("</ul>\n");
    }

    let _ = writeln!(o, "<h2>{}</h2>", esc(&l("html-summary")));
    summary_table(view, cat, &mut o);
    effects_table(view, &mut o);
    aa_table(view, &mut o);
    o.push_str(&super::published::html(&super::published::comparisons(
        view,
    )));

    let failed = methodology::failed_groups(view);
    if !failed.is_empty() {
        let _ = writeln!(
            o,
            "<h2>{}</h2>\n<p class=\"muted\">{}</p>\n<table>\n<tr><th>{}</th><th>{}</th><th>{}</th>\
             <th>{}</th><th>{}</th></tr>",
            esc(&l("html-failed")),
            cat.tr(
                "html-failed-note",
                &[("command", "<code>isolab report --format json</code>")]
            ),
            esc(&l("summary-col-backend")),
            esc(&l("html-col-trials")),
            esc(&l("html-col-how-many")),
            esc(&l("html-col-workloads")),
            esc(&l("html-col-reason")),
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
        "<h2>{}</h2>\n<p>{}</p>",
        esc(&l("html-methodology")),
        esc(&methodology::paragraph(view, cat))
    );
    let _ = writeln!(o, "<h2>{}</h2>\n<table>", esc(&l("html-environment")));
    for (k, v) in methodology::environment(view, cat) {
        let _ = writeln!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
    }
    o.push_str("</table>\n");
    let _ = writeln!(
        o,
        "<p class=\"muted\">{}</p>",
        cat.tr(
            "html-footer",
            &[
                ("run", &esc(&m.run_id)),
                ("command", "<code>isolab report</code>")
            ]
        )
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

fn summary_table(view: &View<'_>, cat: &Catalogue, o: &mut String) {
    let l = |id: &str| esc(&cat.tr(id, &[]));
    if view.summary.rows.is_empty() {
        let _ = writeln!(o, "<p>{}</p>", l("html-no-trial"));
        return;
    }
    let _ = writeln!(
        o,
        "<table>\n<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th></tr>",
        l("summary-col-workload"),
        l("summary-col-metric"),
        l("summary-col-unit"),
        l("summary-col-backend"),
        l("summary-col-n"),
        l("summary-col-median"),
        l("summary-col-ci"),
        l("html-col-vs-native"),
    );
    let num = |x: f64| cat.num(&fmt_num(x));
    let sep = if cat.lang() == Lang::Fr { " ;" } else { "," };
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
        let mark = if r.is_emulated_time() {
            esc(&format!(" ({})", cat.tr("emulated-time", &[])))
        } else {
            String::new()
        };
        let vs = r.vs_native.map_or(String::new(), |v| {
            format!("{}x [{}{sep} {}]", num(v.ratio), num(v.lo), num(v.hi))
        });
        let _ = writeln!(
            o,
            "<tr{}><td>{}</td><td>{}</td><td>{} {}</td><td>{}{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}{mark}</td><td class=\"num\">[{}{sep} {}]{star}{mark}</td><td class=\"num\">{}</td></tr>",
            if first { " class=\"first\"" } else { "" },
            if first { esc(&r.workload) } else { String::new() },
            esc(&r.metric),
            esc(&r.unit),
            if r.better == Better::Higher { "↑" } else { "↓" },
            dot(view, &r.backend),
            esc(&r.backend),
            r.median.n,
            num(r.median.median),
            num(r.median.lo),
            num(r.median.hi),
            vs
        );
        last = &r.workload;
    }
    let _ = writeln!(
        o,
        "</table>\n<p class=\"muted\">{}</p>",
        esc(&cat.tr(
            "html-summary-note",
            &[(
                "pct",
                &cat.nums_in(&crate::summary::pct_text(
                    view.summary
                        .precision
                        .as_ref()
                        .map_or(crate::summary::DEFAULT_PRECISION_PCT, |p| p.threshold_pct)
                ))
            )]
        ))
    );
}

fn effects_table(view: &View<'_>, o: &mut String) {
    let s = &view.summary;
    if s.effects.is_empty() {
        return;
    }
    let with_aa = s.aa.is_some();
    let c = &view.cat;
    let l = |id: &str| esc(&c.tr(id, &[]));
    let header: String = crate::summary::EFFECTS_COLUMNS
        .iter()
        .map(|id| format!("<th>{}</th>", l(id)))
        .collect();
    let _ = writeln!(
        o,
        "<h2>{}</h2>\n<p>{}{}</p>\n<table>\n<tr>{header}{}</tr>",
        l("html-effects"),
        l("term-effects-note"),
        if with_aa {
            format!(" {}", l("term-effects-aa-note"))
        } else {
            String::new()
        },
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
            esc(&crate::summary::ratio_text_in(&e.ratio, c))
        );
        if with_aa {
            let _ = write!(
                o,
                "<td class=\"num\">{}</td>",
                esc(&c.nums_in(&crate::summary::aa_cell(s, &e.workload, &e.metric)))
            );
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

fn aa_table(view: &View<'_>, o: &mut String) {
    let Some(aa) = &view.summary.aa else { return };
    let c = &view.cat;
    let l = |id: &str| esc(&c.tr(id, &[]));
    let _ = writeln!(
        o,
        "<h2>{}</h2>\n<p>{}</p>\n<table>\n<tr><th>{}</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th></tr>",
        l("html-aa"),
        esc(&crate::summary::aa_sentence_in(aa, c)),
        l("summary-col-workload"),
        l("summary-col-metric"),
        l("summary-col-n"),
        l("term-col-aa-ratio"),
        l("term-col-resolves"),
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
            esc(&crate::summary::ratio_text_in(&r.ratio, c)),
            esc(&c.nums_in(&crate::summary::pct_text(r.resolution_pct)))
        );
    }
    o.push_str("</table>\n");
}
