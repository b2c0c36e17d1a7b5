//! Reports of a density run, recomputed from its stored rounds: the terminal summary
//! (`isolab density` prints it, `isolab report` prints it again), Markdown, LaTeX, CSV (every
//! instance's start and every round's reading), JSON, and one HTML file with the charts.
//!
//! The terminal, Markdown and HTML reports are written in a language: every sentence, label and
//! table header comes from the message catalogue (`density-*` in bench-harness/i18n/en.ftl) and
//! every number is written the language's way ([`Catalogue::num`]). CSV, LaTeX and JSON are data
//! for other tools and papers and stay English.

use std::fmt::Write as _;

use super::analysis::{self, BackendSummary, PerCount, Slope, Summary};
use super::charts::{kind_label, label, part};
use super::instance::Kind;
use super::record::{DensityRun, Parallel};
use crate::i18n::{Catalogue, Lang};
use crate::report::{Chart, ReportError, ReportFormat};
use crate::stats::MedianCi;
use crate::summary::{aligned_table, fmt_num};

/// Renders `run` in `format`, in English.
pub fn render(run: &DensityRun, format: ReportFormat) -> Result<String, ReportError> {
    render_in(run, format, Lang::En)
}

/// [`render`] in `lang`: the terminal, Markdown and HTML reports (charts included) in the
/// language's words and numbers; CSV, LaTeX and JSON stay English.
pub fn render_in(
    run: &DensityRun,
    format: ReportFormat,
    lang: Lang,
) -> Result<String, ReportError> {
    let s = analysis::summarise(run);
    let cat = Catalogue::new(lang);
    let en = Catalogue::new(Lang::En);
    match format {
        ReportFormat::Term => Ok(term(run, &s, &cat)),
        ReportFormat::Md => Ok(markdown(run, &s, &cat)),
        ReportFormat::Latex => Ok(latex(run, &s, &en)),
        ReportFormat::Csv => Ok(csv(run)),
        ReportFormat::Json => Ok(serde_json::to_string_pretty(&serde_json::json!({
            "manifest": run.manifest,
            "summary": s,
            "method": method(run, &en),
        }))?),
        ReportFormat::Html => html(run, &s, &cat),
    }
}

/// The charts of a density run, and notes on those left out, in English.
pub fn charts(run: &DensityRun) -> Result<(Vec<Chart>, Vec<String>), ReportError> {
    charts_in(run, Lang::En)
}

/// [`charts`] in `lang`.
pub fn charts_in(run: &DensityRun, lang: Lang) -> Result<(Vec<Chart>, Vec<String>), ReportError> {
    super::charts::build(&analysis::summarise(run), &Catalogue::new(lang))
}

/// A number the English way (`0.8789`), rewritten for the catalogue's language.
fn num(cat: &Catalogue, v: f64) -> String {
    cat.num(&fmt_num(v))
}

/// `median [lo, hi]` (a list separator that is not the decimal comma in French).
fn interval(cat: &Catalogue, median: f64, lo: f64, hi: f64) -> String {
    let sep = cat.interval_sep();
    format!(
        "{} [{}{sep} {}]",
        num(cat, median),
        num(cat, lo),
        num(cat, hi)
    )
}

fn mib_ci(m: &Option<MedianCi>, cat: &Catalogue) -> String {
    match m {
        Some(m) if m.n > 1 => interval(cat, m.median, m.lo, m.hi),
        Some(m) => num(cat, m.median),
        None => "-".into(),
    }
}

fn slope_text(s: &Option<Slope>, cat: &Catalogue) -> String {
    match s {
        Some(s) => interval(
            cat,
            s.per_instance_kib / 1024.0,
            s.lo / 1024.0,
            s.hi / 1024.0,
        ),
        None => "-".into(),
    }
}

/// A count of things, rounded: English groups thousands with commas (`99,000`), French as its
/// numbers do (`99 000`).
fn count_text(x: f64, cat: &Catalogue) -> String {
    let n = x.max(0.0).round() as u64;
    let s = n.to_string();
    if cat.lang() == Lang::Fr {
        return cat.num(&s);
    }
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fit_text(b: &BackendSummary, cat: &Catalogue) -> String {
    let sep = cat.interval_sep();
    match &b.fit {
        Some(f) => format!(
            "{} [{}{sep} {}]",
            count_text(f.instances, cat),
            count_text(f.lo, cat),
            f.hi.map_or_else(|| cat.tr("density-no-bound", &[]), |hi| count_text(hi, cat))
        ),
        None => "-".into(),
    }
}

/// `3 rounds`, in the catalogue's language.
pub(crate) fn rounds_text(n: usize, cat: &Catalogue) -> String {
    cat.tr_n("density-rounds", n, &[("count", &cat.num(&n.to_string()))])
}

/// How many instances started at a time (`4`, `all`).
pub(crate) fn parallel_text(p: Parallel, cat: &Catalogue) -> String {
    match p {
        Parallel::All => cat.tr("density-parallel-all", &[]),
        Parallel::At(n) => n.to_string(),
    }
}

/// The Ns of the run (`1, 10, 100`).
pub(crate) fn counts_text(run: &DensityRun, cat: &Catalogue) -> String {
    run.manifest
        .counts
        .iter()
        .map(|n| cat.num(&n.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A size given in KiB, in the largest whole unit (`64 MiB`, `1 GiB`).
fn size_text(kib: u64, cat: &Catalogue) -> String {
    if kib.is_multiple_of(1 << 20) {
        cat.with_unit(&(kib >> 20).to_string(), "GiB")
    } else if kib.is_multiple_of(1024) {
        cat.with_unit(&(kib >> 10).to_string(), "MiB")
    } else {
        cat.with_unit(&kib.to_string(), "KiB")
    }
}

/// The method in a few sentences, for every format and the book (plain text: the book escapes
/// it for Markdown).
pub(crate) fn method(run: &DensityRun, cat: &Catalogue) -> String {
    let m = &run.manifest;
    let ws = if m.working_set_kib == 0 {
        cat.tr("density-ws-idle", &[])
    } else {
        cat.tr(
            "density-ws-written",
            &[("size", &size_text(m.working_set_kib, cat))],
        )
    };
    cat.tr(
        "density-method",
        &[
            ("ws", &ws),
            ("counts", &counts_text(run, cat)),
            ("rounds", &rounds_text(m.rounds as usize, cat)),
            ("parallel", &parallel_text(m.parallel, cat)),
            ("settle", &cat.with_unit(&format!("{:.1}", m.settle_s), "s")),
            ("headroom", &cat.percent(&m.headroom_pct.to_string())),
            ("beside", &m.beside.to_string()),
            ("ksm", &ksm_text(run, cat)),
        ],
    )
}

fn ksm_text(run: &DensityRun, cat: &Catalogue) -> String {
    let m = &run.manifest;
    let host = match &m.ksm_host {
        Some(k) => cat.tr("density-ksm-host-run", &[("run", &k.run.to_string())]),
        None => cat.tr("density-ksm-host-none", &[]),
    };
    let id = match m.ksm {
        super::ksm::KsmMode::Host => "density-ksm-host",
        super::ksm::KsmMode::On => "density-ksm-on",
        super::ksm::KsmMode::Off => "density-ksm-off",
    };
    cat.tr(id, &[("host", &host)])
}

fn header_lines(run: &DensityRun, cat: &Catalogue) -> Vec<String> {
    let m = &run.manifest;
    let ws = if m.working_set_kib == 0 {
        cat.tr("density-report-idle", &[])
    } else {
        cat.tr(
            "density-report-working-set",
            &[("size", &size_text(m.working_set_kib, cat))],
        )
    };
    vec![
        cat.tr(
            "density-report-run-line",
            &[
                ("run", &m.run_id),
                ("host", &m.host.hostname),
                ("kernel", &m.host.kernel),
                ("cores", &m.host.cores.to_string()),
                (
                    "memory",
                    &cat.with_unit(&m.host.memory_mib.to_string(), "MiB"),
                ),
                ("started", &m.started_at),
                (
                    "status",
                    &cat.tr(crate::report::methodology::status_id(m.status), &[]),
                ),
            ],
        ),
        cat.tr(
            "density-report-instances",
            &[
                ("ws", &ws),
                ("counts", &counts_text(run, cat)),
                ("rounds", &rounds_text(m.rounds as usize, cat)),
                ("parallel", &parallel_text(m.parallel, cat)),
                ("beside", &m.beside.to_string()),
            ],
        ),
    ]
}

fn headline_rows(s: &Summary, cat: &Catalogue) -> Vec<Vec<String>> {
    s.backends
        .iter()
        .map(|b| {
            vec![
                label(b, cat),
                slope_text(&b.marginal, cat),
                b.marginal
                    .map_or("-".into(), |m| num(cat, m.fixed_kib / 1024.0)),
                slope_text(&b.pss_marginal, cat),
                fit_text(b, cat),
                b.marginal.map_or("-".into(), |m| {
                    cat.tr(
                        "density-rounds-at",
                        &[
                            ("points", &m.points.to_string()),
                            ("counts", &m.counts.to_string()),
                        ],
                    )
                }),
            ]
        })
        .collect()
}

/// The catalogue ids of the headline table's columns.
const HEADLINE: [&str; 6] = [
    "density-col-backend",
    "density-col-marginal",
    "density-col-fixed",
    "density-col-pss",
    "density-col-fit",
    "density-col-rounds",
];

fn percentiles(p: &Option<analysis::Percentiles>, cat: &Catalogue) -> [String; 5] {
    match p {
        Some(p) => [p.p50, p.p90, p.p99, p.max, p.last].map(|v| num(cat, v)),
        None => std::array::from_fn(|_| "-".to_owned()),
    }
}

fn per_n_rows(s: &Summary, cat: &Catalogue) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for b in &s.backends {
        for (i, c) in b.counts.iter().enumerate() {
            let [p50, p90, p99, max, last] = percentiles(&c.start, cat);
            rows.push(vec![
                if i == 0 { label(b, cat) } else { String::new() },
                c.count.to_string(),
                c.rounds.to_string(),
                mib_ci(&c.drop_mib, cat),
                c.others_anon_mib.map_or("-".into(), |m| num(cat, m.median)),
                mib_ci(&c.pss_mib, cat),
                mib_ci(&c.cgroup_mib, cat),
                p50,
                p90,
                p99,
                max,
                last,
                c.beside.map_or("-".into(), |p| num(cat, p.p50)),
                c.teardown_ms.map_or("-".into(), |m| num(cat, m.median)),
                match (c.recovery_ms, c.not_recovered) {
                    (Some(m), 0) => num(cat, m.median),
                    (Some(m), k) => {
                        cat.tr_n("density-not-back-some", k, &[("ms", &num(cat, m.median))])
                    }
                    (None, 0) => "-".into(),
                    (None, k) => cat.tr_n("density-not-back", k, &[]),
                },
            ]);
        }
    }
    rows
}

/// The catalogue ids of the per-N table's columns.
const PER_N: [&str; 15] = [
    "density-col-backend",
    "density-col-n",
    "density-col-rounds",
    "density-col-drop",
    "density-col-others",
    "density-col-pss-n",
    "density-col-cgroup",
    "density-col-start-p50",
    "density-col-p90",
    "density-col-p99",
    "density-col-max",
    "density-col-last",
    "density-col-beside",
    "density-col-teardown",
    "density-col-recovery",
];

/// A table's header in the catalogue's language.
fn header(ids: &[&str], cat: &Catalogue) -> Vec<String> {
    ids.iter().map(|id| cat.tr(id, &[])).collect()
}

fn largest(b: &BackendSummary) -> Option<&PerCount> {
    b.counts.iter().rev().find(|c| c.drop_mib.is_some())
}

/// Whether the container's marginal memory agrees with its floor's, in a sentence (none when
/// the run lacks either).
pub(crate) fn floor_sentence(s: &Summary, cat: &Catalogue) -> Option<String> {
    let c = s.of(Kind::Container)?.marginal?;
    let f = s.of(Kind::Floor)?.marginal?;
    let mib = |kib: f64| cat.with_unit(&fmt_num(kib / 1024.0), "MiB");
    let n = |kib: f64| num(cat, kib / 1024.0);
    Some(cat.tr(
        if analysis::agree(&c, &f) {
            "density-floor-agree"
        } else {
            "density-floor-disagree"
        },
        &[
            ("container", &mib(c.per_instance_kib)),
            ("clo", &n(c.lo)),
            ("chi", &n(c.hi)),
            ("floor", &mib(f.per_instance_kib)),
            ("flo", &n(f.lo)),
            ("fhi", &n(f.hi)),
        ],
    ))
}

/// Why a backend stopped before the largest N, in a few words (`refused`, `floor` ...).
fn stop_kind(kind: &str, cat: &Catalogue) -> String {
    let id = format!("density-stop-{kind}");
    if cat.has(&id) {
        cat.tr(&id, &[])
    } else {
        kind.to_owned()
    }
}

/// Sentences under the tables: the components, the phases, the floor, KSM, stops.
fn notes(run: &DensityRun, s: &Summary, cat: &Catalogue) -> Vec<String> {
    let mut out = Vec::new();
    for b in &s.backends {
        let Some(c) = largest(b) else {
            continue;
        };
        let n = c.count.to_string();
        let parts: Vec<String> = c
            .components
            .iter()
            .filter(|(_, v)| v.abs() >= 0.001)
            .map(|(name, v)| format!("{} {}", part(name, cat), num(cat, *v)))
            .collect();
        if !parts.is_empty() {
            out.push(cat.tr(
                "density-note-components",
                &[
                    ("backend", &label(b, cat)),
                    ("n", &n),
                    ("parts", &parts.join(", ")),
                ],
            ));
        }
        if b.backend == Kind::Container && !c.phases.is_empty() {
            let phases: Vec<String> = c
                .phases
                .iter()
                .map(|(name, v)| format!("{name} {}", num(cat, *v)))
                .collect();
            out.push(cat.tr(
                "density-note-phases",
                &[("n", &n), ("phases", &phases.join(", "))],
            ));
        }
        if let Some(v) = c.vm {
            let inside = match (v.guest_used_mib, v.guest_total_mib) {
                (Some(used), Some(total)) => cat.tr(
                    "density-note-vm-inside",
                    &[
                        ("used", &mib_ci(&Some(used), cat)),
                        ("total", &num(cat, total.median)),
                    ],
                ),
                _ => String::new(),
            };
            out.push(cat.tr(
                "density-note-vm",
                &[
                    ("backend", &label(b, cat)),
                    ("n", &n),
                    ("guest", &mib_ci(&Some(v.guest_ram_mib), cat)),
                    ("vmm", &mib_ci(&Some(v.vmm_overhead_mib), cat)),
                    ("inside", &inside),
                ],
            ));
        }
        if let Some(k) = c.ksm {
            let unsettled = if k.unsettled > 0 {
                cat.tr_n("density-note-ksm-unsettled", k.unsettled, &[])
            } else {
                String::new()
            };
            out.push(cat.tr(
                "density-note-ksm",
                &[
                    ("backend", &label(b, cat)),
                    ("n", &n),
                    ("pages", &count_text(k.pages_sharing + k.pages_shared, cat)),
                    ("into", &count_text(k.pages_shared, cat)),
                    ("rounds", &rounds_text(k.rounds, cat)),
                    ("saved", &cat.with_unit(&fmt_num(k.saved_mib), "MiB")),
                    ("waited", &cat.with_unit(&fmt_num(k.waited_ms), "ms")),
                    ("unsettled", &unsettled),
                ],
            ));
        }
    }
    let noisy: Vec<String> = s
        .backends
        .iter()
        .flat_map(|b| b.counts.iter().map(move |c| (b, c)))
        .filter(|(_, c)| match (c.others_anon_mib, c.drop_mib) {
            (Some(o), Some(d)) => o.median.abs() > 0.25 * d.median.abs().max(0.01),
            _ => false,
        })
        .map(|(b, c)| format!("{} N = {}", label(b, cat), c.count))
        .collect();
    if !noisy.is_empty() {
        out.push(cat.tr("density-note-noisy", &[("which", &noisy.join(", "))]));
    }
    out.extend(floor_sentence(s, cat));
    for st in &s.stops {
        out.push(cat.tr(
            "density-note-stopped",
            &[
                ("backend", &kind_label(st.backend, cat)),
                ("n", &cat.num(&st.count.to_string())),
                ("kind", &stop_kind(&st.kind, cat)),
                ("why", &st.reason),
            ],
        ));
    }
    let left: usize = s
        .backends
        .iter()
        .flat_map(|b| &b.counts)
        .map(|c| c.left_behind)
        .sum();
    if left > 0 {
        out.push(cat.tr_n(
            "density-note-left-behind",
            left,
            &[("file", super::record::ROUNDS_FILE)],
        ));
    }
    for b in run
        .manifest
        .backends
        .iter()
        .filter(|b| b.facts.get(EMULATED_FACT).is_some_and(|v| v == "true"))
    {
        out.push(cat.tr(
            "density-note-emulated",
            &[("backend", &kind_label(b.backend, cat))],
        ));
    }
    if run.torn_tail {
        out.push(cat.tr("density-note-torn", &[]));
    }
    out
}

/// The backend fact that says its instances ran in the emulated machine.
pub const EMULATED_FACT: &str = "emulated";

fn term(run: &DensityRun, s: &Summary, cat: &Catalogue) -> String {
    let mut o = String::new();
    for l in header_lines(run, cat) {
        let _ = writeln!(o, "{l}");
    }
    let headroom = cat.percent(&s.headroom_pct.to_string());
    let _ = writeln!(
        o,
        "\n{}",
        cat.tr("density-report-memory-intro", &[("headroom", &headroom)])
    );
    let head = header(&HEADLINE, cat);
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    o.push_str(&aligned_table(&head, &headline_rows(s, cat), &[2], false));
    let _ = writeln!(o, "\n{}", cat.tr("density-report-per-n-intro", &[]));
    let head = header(&PER_N, cat);
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    o.push_str(&aligned_table(
        &head,
        &per_n_rows(s, cat),
        &(1..PER_N.len()).collect::<Vec<_>>(),
        true,
    ));
    o.push('\n');
    for n in notes(run, s, cat) {
        let _ = writeln!(o, "- {n}");
    }
    let _ = writeln!(
        o,
        "\n{} {}",
        cat.tr("density-report-method-label", &[]),
        method(run, cat)
    );
    o
}

fn md_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "| {} |", header.join(" | "));
    let _ = writeln!(
        o,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(o, "| {} |", r.join(" | "));
    }
    o
}

fn markdown(run: &DensityRun, s: &Summary, cat: &Catalogue) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# {}\n",
        cat.tr("density-report-title", &[("run", &run.manifest.run_id)])
    );
    for l in header_lines(run, cat) {
        let _ = writeln!(o, "{l}  ");
    }
    let _ = writeln!(o, "\n## {}\n", cat.tr("density-report-memory-heading", &[]));
    o.push_str(&md_table(&header(&HEADLINE, cat), &headline_rows(s, cat)));
    let _ = writeln!(o, "\n## {}\n", cat.tr("density-report-per-n-heading", &[]));
    o.push_str(&md_table(&header(&PER_N, cat), &per_n_rows(s, cat)));
    o.push('\n');
    for n in notes(run, s, cat) {
        let _ = writeln!(o, "- {n}");
    }
    let _ = writeln!(
        o,
        "\n## {}\n\n{}",
        cat.tr("density-report-method-heading", &[]),
        method(run, cat)
    );
    o
}

fn latex_escape(s: &str) -> String {
    s.replace('\\', "\\textbackslash{}")
        .replace('&', "\\&")
        .replace('%', "\\%")
        .replace('_', "\\_")
        .replace('#', "\\#")
}

fn latex(run: &DensityRun, s: &Summary, cat: &Catalogue) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "% isolab density run {} — marginal memory per instance (MemAvailable drop vs N)",
        run.manifest.run_id
    );
    let _ = writeln!(o, "\\begin{{tabular}}{{lllll}}\n\\toprule");
    let _ = writeln!(
        o,
        "backend & marginal MiB/instance [95\\% CI] & fixed MiB & PSS MiB/instance & fit ({}\\% headroom) \\\\\n\\midrule",
        s.headroom_pct
    );
    for r in headline_rows(s, cat) {
        let _ = writeln!(
            o,
            "{} \\\\",
            r[..5]
                .iter()
                .map(|c| latex_escape(c))
                .collect::<Vec<_>>()
                .join(" & ")
        );
    }
    let _ = writeln!(o, "\\bottomrule\n\\end{{tabular}}");
    o
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One row per round (its readings) and one per instance start.
fn csv(run: &DensityRun) -> String {
    let mut o = String::from(
        "record,backend,count,round,instance,ready,drop_kib,pss_kib,cgroup_charged_kib,baseline_available_kib,loaded_available_kib,ready_ms,since_storm_ms,teardown_ms,recovery_ms,failure\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    for r in &run.rounds {
        let _ = writeln!(
            o,
            "round,{},{},{},,{},{},{},{},{},{},,,{},{},{}",
            r.backend.name(),
            r.count,
            r.round,
            r.ready,
            r.drop_kib().map_or(String::new(), |d| d.to_string()),
            r.pss_total_kib().map_or(String::new(), |d| d.to_string()),
            r.cgroup
                .map_or(String::new(), |c| c.charged_kib.to_string()),
            r.baseline.meminfo.mem_available,
            r.loaded
                .as_ref()
                .map_or(String::new(), |l| l.meminfo.mem_available.to_string()),
            opt(r.teardown_ms),
            opt(r.recovery_ms),
            csv_cell(r.stopped.as_ref().map_or("", |s| s.reason.as_str()))
        );
        for (i, st) in r.starts.iter().enumerate() {
            let _ = writeln!(
                o,
                "start,{},{},{},{i},{},,{},,,,{},{},,,{}",
                r.backend.name(),
                r.count,
                r.round,
                st.ready_ms.is_some(),
                r.pss_kib.get(i).map_or(String::new(), |p| p.to_string()),
                opt(st.ready_ms),
                opt(st.since_storm_ms),
                csv_cell(st.failure.as_deref().unwrap_or(""))
            );
        }
    }
    o
}

fn html(run: &DensityRun, s: &Summary, cat: &Catalogue) -> Result<String, ReportError> {
    use crate::report::esc;
    let (charts, chart_notes) = super::charts::build(s, cat)?;
    let run_id = &run.manifest.run_id;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"{}\">\n<head>\n\
         <meta charset=\"utf-8\" />",
        cat.lang().code()
    );
    let _ = writeln!(
        o,
        "<title>{}</title>\n<style>{}</style>\n</head>\n<body>",
        esc(&cat.tr("density-report-title", &[("run", run_id)])),
        crate::report::HTML_STYLE
    );
    let _ = writeln!(
        o,
        "<h1>{}</h1>",
        esc(&cat.tr("density-report-title", &[("run", run_id)]))
    );
    for l in header_lines(run, cat) {
        let _ = writeln!(o, "<p class=\"muted\">{}</p>", esc(&l));
    }
    let table = |o: &mut String, ids: &[&str], rows: &[Vec<String>]| {
        o.push_str("<table>\n<tr>");
        for h in header(ids, cat) {
            let _ = write!(o, "<th>{}</th>", esc(&h));
        }
        o.push_str("</tr>\n");
        for r in rows {
            o.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                let class = if i == 0 { "" } else { " class=\"num\"" };
                let _ = write!(o, "<td{class}>{}</td>", esc(c));
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</table>\n");
    };
    let _ = writeln!(
        o,
        "<h2>{}</h2>\n<p>{}</p>",
        esc(&cat.tr("density-report-memory-heading", &[])),
        esc(&cat.tr(
            "density-report-memory-lead",
            &[("headroom", &cat.percent(&s.headroom_pct.to_string()))]
        ))
    );
    table(&mut o, &HEADLINE, &headline_rows(s, cat));
    for c in &charts {
        let _ = writeln!(
            o,
            "<figure>{}<figcaption>{}</figcaption></figure>",
            c.svg,
            esc(&caption(c.name, cat))
        );
    }
    for n in chart_notes {
        let _ = writeln!(
            o,
            "<p class=\"muted\">{}</p>",
            esc(&cat.tr("density-report-chart-not-drawn", &[("why", &n)]))
        );
    }
    let _ = writeln!(
        o,
        "<h2>{}</h2>",
        esc(&cat.tr("density-report-per-n-heading", &[]))
    );
    table(&mut o, &PER_N, &per_n_rows(s, cat));
    o.push_str("<ul>\n");
    for n in notes(run, s, cat) {
        let _ = writeln!(o, "<li>{}</li>", esc(&n));
    }
    o.push_str("</ul>\n");
    let _ = writeln!(
        o,
        "<h2>{}</h2>\n<p>{}</p>",
        esc(&cat.tr("density-report-method-heading", &[])),
        esc(&method(run, cat))
    );
    o.push_str("</body>\n</html>\n");
    Ok(o)
}

/// A chart's caption: the book's (`figure-caption-density-memory` for `density_memory`).
fn caption(name: &str, cat: &Catalogue) -> String {
    let id = format!("figure-caption-{}", name.replace('_', "-"));
    if cat.has(&id) {
        cat.tr(&id, &[])
    } else {
        String::new()
    }
}
