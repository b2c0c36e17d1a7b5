//! Reports of a density run, recomputed from its stored rounds: the terminal summary
//! (`isolab density` prints it, `isolab report` prints it again), Markdown, LaTeX, CSV (every
//! instance's start and every round's reading), JSON, and one HTML file with the charts.

use std::fmt::Write as _;

use super::analysis::{self, BackendSummary, PerCount, Slope, Summary};
use super::instance::Kind;
use super::record::DensityRun;
use crate::report::{Chart, ReportError, ReportFormat};
use crate::stats::MedianCi;
use crate::summary::{aligned_table, fmt_num};

/// Renders `run` in `format`.
pub fn render(run: &DensityRun, format: ReportFormat) -> Result<String, ReportError> {
    let s = analysis::summarise(run);
    match format {
        ReportFormat::Term => Ok(term(run, &s)),
        ReportFormat::Md => Ok(markdown(run, &s)),
        ReportFormat::Latex => Ok(latex(run, &s)),
        ReportFormat::Csv => Ok(csv(run)),
        ReportFormat::Json => Ok(serde_json::to_string_pretty(&serde_json::json!({
            "manifest": run.manifest,
            "summary": s,
            "method": method(run),
        }))?),
        ReportFormat::Html => html(run, &s),
    }
}

/// The charts of a density run, and notes on those left out.
pub fn charts(run: &DensityRun) -> Result<(Vec<Chart>, Vec<String>), ReportError> {
    super::charts::build(
        &analysis::summarise(run),
        &crate::i18n::Catalogue::new(crate::i18n::Lang::En),
    )
}

fn mib_ci(m: &Option<MedianCi>) -> String {
    match m {
        Some(m) if m.n > 1 => format!(
            "{} [{}, {}]",
            fmt_num(m.median),
            fmt_num(m.lo),
            fmt_num(m.hi)
        ),
        Some(m) => fmt_num(m.median),
        None => "-".into(),
    }
}

fn slope_text(s: &Option<Slope>) -> String {
    match s {
        Some(s) => format!(
            "{} [{}, {}]",
            fmt_num(s.per_instance_kib / 1024.0),
            fmt_num(s.lo / 1024.0),
            fmt_num(s.hi / 1024.0)
        ),
        None => "-".into(),
    }
}

fn count_text(x: f64) -> String {
    let n = x.max(0.0).round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fit_text(b: &BackendSummary) -> String {
    match &b.fit {
        Some(f) => match f.hi {
            Some(hi) => format!(
                "{} [{}, {}]",
                count_text(f.instances),
                count_text(f.lo),
                count_text(hi)
            ),
            None => format!(
                "{} [{}, no bound]",
                count_text(f.instances),
                count_text(f.lo)
            ),
        },
        None => "-".into(),
    }
}

/// The method in a few sentences, for every format.
pub fn method(run: &DensityRun) -> String {
    let m = &run.manifest;
    let ws = if m.working_set_kib == 0 {
        "idle (no working set)".to_owned()
    } else {
        format!("a working set of {} written", size_text(m.working_set_kib))
    };
    format!(
        "Each instance runs isolab's agent in its `wait` mode: {ws}, then it reports ready and \
         waits. For each backend and N ({counts}), {rounds} round(s): the host's /proc/meminfo is \
         read just before the first start ({samples}), N instances start ({parallel} at a time), \
         and once all are ready and have settled {settle:.1} s the host is read again; the drop \
         of MemAvailable is what the N instances cost the host, whatever kind of memory it is. \
         Every instance's processes' PSS (smaps_rollup) is summed beside it: PSS counts a page \
         shared by k processes as 1/k in each, but misses what the kernel keeps for an instance \
         (namespaces, cgroups, page tables). The marginal memory per instance is the slope of \
         the drop against N (least squares over every round, 95% interval by resampling rounds \
         within each N) and the fixed cost its intercept; instances that fit = (MemAvailable − \
         {headroom}% of MemTotal − fixed cost) ÷ marginal. A container's memory cgroup's charge \
         is shown beside as the cgroup's view; it is not a footprint (it counts page cache \
         charged to whoever touched it first, and on cgroup v1 moves in per-CPU batches of \
         64 pages). Start latency is from the start call to the agent's ready marker, for every \
         instance of the storm and for {beside} more started one at a time beside N; teardown \
         from the first kill to the last reap with every cgroup removed; then the time until \
         MemAvailable is back at its baseline. KSM: {ksm}.",
        counts = m
            .counts
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        rounds = m.rounds,
        samples = "median of several samples, each field on its own",
        parallel = m.parallel.text(),
        settle = m.settle_s,
        headroom = m.headroom_pct,
        beside = m.beside,
        ksm = ksm_text(run),
    )
}

fn ksm_text(run: &DensityRun) -> String {
    let m = &run.manifest;
    let host = match &m.ksm_host {
        Some(k) => format!("the host had run = {}", k.run),
        None => "this kernel has no KSM".into(),
    };
    match m.ksm {
        super::ksm::KsmMode::Host => format!("left as the host had it ({host})"),
        super::ksm::KsmMode::On => format!(
            "on for the run ({host}, put back after); a VMM marks its guest's RAM mergeable, so \
             KSM can share identical guest pages between VMs (each round waits until two full \
             scans in a row barely change what it shares, and reports what its host-wide \
             counters grew by); a native process or a container marks no memory mergeable, so \
             KSM finds nothing of theirs"
        ),
        super::ksm::KsmMode::Off => format!("off for the run ({host}, put back after)"),
    }
}

fn size_text(kib: u64) -> String {
    if kib.is_multiple_of(1 << 20) {
        format!("{} GiB", kib >> 20)
    } else if kib.is_multiple_of(1024) {
        format!("{} MiB", kib >> 10)
    } else {
        format!("{kib} KiB")
    }
}

fn header_lines(run: &DensityRun) -> Vec<String> {
    let m = &run.manifest;
    vec![
        format!(
            "Density run {} on {} (kernel {}, {} cores, {} MiB), {}: {}",
            m.run_id,
            m.host.hostname,
            m.host.kernel,
            m.host.cores,
            m.host.memory_mib,
            m.started_at,
            crate::report::status_word(m.status)
        ),
        format!(
            "Instances: {}; N = {}; {} round(s) each; {} at a time; {} beside N",
            if m.working_set_kib == 0 {
                "idle".to_owned()
            } else {
                format!("working set {}", size_text(m.working_set_kib))
            },
            m.counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            m.rounds,
            m.parallel.text(),
            m.beside
        ),
    ]
}

fn headline_rows(s: &Summary) -> Vec<Vec<String>> {
    s.backends
        .iter()
        .map(|b| {
            vec![
                b.label(),
                slope_text(&b.marginal),
                b.marginal
                    .map_or("-".into(), |m| fmt_num(m.fixed_kib / 1024.0)),
                slope_text(&b.pss_marginal),
                fit_text(b),
                b.marginal
                    .map_or("-".into(), |m| format!("{} at {} N", m.points, m.counts)),
            ]
        })
        .collect()
}

const HEADLINE: [&str; 6] = [
    "backend",
    "marginal MiB/instance [95% CI]",
    "fixed MiB",
    "PSS MiB/instance [95% CI]",
    "instances that fit [CI]",
    "rounds",
];

fn percentiles(p: &Option<analysis::Percentiles>) -> [String; 5] {
    match p {
        Some(p) => [
            fmt_num(p.p50),
            fmt_num(p.p90),
            fmt_num(p.p99),
            fmt_num(p.max),
            fmt_num(p.last),
        ],
        None => std::array::from_fn(|_| "-".to_owned()),
    }
}

fn per_n_rows(s: &Summary) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for b in &s.backends {
        for (i, c) in b.counts.iter().enumerate() {
            let [p50, p90, p99, max, last] = percentiles(&c.start);
            rows.push(vec![
                if i == 0 { b.label() } else { String::new() },
                c.count.to_string(),
                c.rounds.to_string(),
                mib_ci(&c.drop_mib),
                c.others_anon_mib.map_or("-".into(), |m| fmt_num(m.median)),
                mib_ci(&c.pss_mib),
                mib_ci(&c.cgroup_mib),
                p50,
                p90,
                p99,
                max,
                last,
                c.beside.map_or("-".into(), |p| fmt_num(p.p50)),
                c.teardown_ms.map_or("-".into(), |m| fmt_num(m.median)),
                match (c.recovery_ms, c.not_recovered) {
                    (Some(m), 0) => fmt_num(m.median),
                    (Some(m), k) => format!("{} ({k} not back)", fmt_num(m.median)),
                    (None, 0) => "-".into(),
                    (None, k) => format!("not back ({k})"),
                },
            ]);
        }
    }
    rows
}

const PER_N: [&str; 15] = [
    "backend",
    "N",
    "rounds",
    "drop/N MiB",
    "others' anon/N",
    "PSS/N MiB",
    "cgroup view/N MiB",
    "start p50 ms",
    "p90",
    "p99",
    "max",
    "last",
    "one more p50 ms",
    "teardown ms",
    "memory back ms",
];

fn largest(b: &BackendSummary) -> Option<&PerCount> {
    b.counts.iter().rev().find(|c| c.drop_mib.is_some())
}

/// Sentences under the tables: the components, the phases, the floor, KSM, stops.
fn notes(run: &DensityRun, s: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    for b in &s.backends {
        if let Some(c) = largest(b) {
            let parts: Vec<String> = c
                .components
                .iter()
                .filter(|(_, v)| v.abs() >= 0.001)
                .map(|(n, v)| format!("{n} {}", fmt_num(*v)))
                .collect();
            if !parts.is_empty() {
                out.push(format!(
                    "{} at N = {}: what grew in /proc/meminfo per instance (MiB): {}.",
                    b.label(),
                    c.count,
                    parts.join(", ")
                ));
            }
            if b.backend == Kind::Container && !c.phases.is_empty() {
                let phases: Vec<String> = c
                    .phases
                    .iter()
                    .map(|(n, v)| format!("{n} {}", fmt_num(*v)))
                    .collect();
                out.push(format!(
                    "container start phases at N = {} (median ms after its start began): {}.",
                    c.count,
                    phases.join(", ")
                ));
            }
            if let Some(v) = c.vm {
                let mut text = format!(
                    "{} at N = {}: per VM (MiB, PSS of its VMM process, median [95% CI]): guest \
                     RAM touched {}, VMM overhead {}",
                    b.label(),
                    c.count,
                    mib_ci(&Some(v.guest_ram_mib)),
                    mib_ci(&Some(v.vmm_overhead_mib)),
                );
                if let (Some(used), Some(total)) = (v.guest_used_mib, v.guest_total_mib) {
                    text.push_str(&format!(
                        "; inside the guest, its kernel and agent use {} of the {} its kernel \
                         manages (MemTotal − MemAvailable, and MemTotal)",
                        mib_ci(&Some(used)),
                        fmt_num(total.median)
                    ));
                }
                text.push('.');
                out.push(text);
            }
            if let Some(k) = c.ksm {
                out.push(format!(
                    "{} at N = {}: KSM merged {} pages into {} (pages_sharing and pages_shared \
                     grown during the round, medians over {} round(s)): {} MiB saved, settled \
                     after {} ms{}.",
                    b.label(),
                    c.count,
                    count_text(k.pages_sharing + k.pages_shared),
                    count_text(k.pages_shared),
                    k.rounds,
                    fmt_num(k.saved_mib),
                    fmt_num(k.waited_ms),
                    if k.unsettled > 0 {
                        format!(
                            " ({} round(s) did not settle within --ksm-settle)",
                            k.unsettled
                        )
                    } else {
                        String::new()
                    }
                ));
            }
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
        .map(|(b, c)| format!("{} N = {}", b.label(), c.count))
        .collect();
    if !noisy.is_empty() {
        out.push(format!(
            "The host's other processes moved their anonymous memory by more than a quarter of \
             the drop meanwhile ({}): those drops measure the rest of the host as much as the \
             instances; their intervals say how much. Trust the largest N and PSS most, or \
             measure on a quieter host.",
            noisy.join(", ")
        ));
    }
    if let (Some(c), Some(f)) = (s.of(Kind::Container), s.of(Kind::Floor)) {
        if let (Some(a), Some(b)) = (c.marginal, f.marginal) {
            out.push(format!(
                "The container's marginal memory ({} MiB [{}, {}]) and its floor's ({} MiB [{}, \
                 {}]) {} within their intervals.",
                fmt_num(a.per_instance_kib / 1024.0),
                fmt_num(a.lo / 1024.0),
                fmt_num(a.hi / 1024.0),
                fmt_num(b.per_instance_kib / 1024.0),
                fmt_num(b.lo / 1024.0),
                fmt_num(b.hi / 1024.0),
                if analysis::agree(&a, &b) {
                    "agree"
                } else {
                    "do not agree"
                }
            ));
        }
    }
    for st in &s.stops {
        out.push(format!(
            "{} stopped at N = {} ({}): {}",
            st.backend.label(),
            st.count,
            st.kind,
            st.reason
        ));
    }
    let left: usize = s
        .backends
        .iter()
        .flat_map(|b| &b.counts)
        .map(|c| c.left_behind)
        .sum();
    if left > 0 {
        out.push(format!(
            "{left} round(s) left something behind after the teardown (see {}); run `isolab \
             doctor --clean`.",
            super::record::ROUNDS_FILE
        ));
    }
    for b in run
        .manifest
        .backends
        .iter()
        .filter(|b| b.facts.get(EMULATED_FACT).is_some_and(|v| v == "true"))
    {
        out.push(format!(
            "{} ran inside the emulated machine (QEMU TCG with AMD-V, --vm-in-emulator): its \
             memory figures are what the guests and VMM processes did and are valid, measured \
             against the emulated machine's memory (so are its \"instances that fit\"); its \
             times are emulated, never performance figures.",
            b.backend.label()
        ));
    }
    if run.torn_tail {
        out.push(
            "The last round's line was torn (the run was killed while writing it) and is left out."
                .into(),
        );
    }
    out
}

/// The backend fact that says its instances ran in the emulated machine.
pub const EMULATED_FACT: &str = "emulated";

fn term(run: &DensityRun, s: &Summary) -> String {
    let mut o = String::new();
    for l in header_lines(run) {
        let _ = writeln!(o, "{l}");
    }
    let _ = writeln!(
        o,
        "\nMemory per instance, one meter for every backend (the host's MemAvailable drop \
         against N; PSS beside it; fit with {}% headroom):",
        s.headroom_pct
    );
    o.push_str(&aligned_table(&HEADLINE, &headline_rows(s), &[2], false));
    let _ = writeln!(
        o,
        "\nPer N (medians over the rounds [interval]; the cgroup view is what the containers' \
         memory cgroups charge, not a footprint):"
    );
    o.push_str(&aligned_table(
        &PER_N,
        &per_n_rows(s),
        &(1..PER_N.len()).collect::<Vec<_>>(),
        true,
    ));
    o.push('\n');
    for n in notes(run, s) {
        let _ = writeln!(o, "- {n}");
    }
    let _ = writeln!(o, "\nMethod: {}", method(run));
    o
}

fn md_table(header: &[&str], rows: &[Vec<String>]) -> String {
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

fn markdown(run: &DensityRun, s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# isolab density run {}\n", run.manifest.run_id);
    for l in header_lines(run) {
        let _ = writeln!(o, "{l}  ");
    }
    let _ = writeln!(
        o,
        "\n## Memory per instance (one meter for every backend)\n"
    );
    o.push_str(&md_table(&HEADLINE, &headline_rows(s)));
    let _ = writeln!(o, "\n## Per N\n");
    o.push_str(&md_table(&PER_N, &per_n_rows(s)));
    o.push('\n');
    for n in notes(run, s) {
        let _ = writeln!(o, "- {n}");
    }
    let _ = writeln!(o, "\n## Method\n\n{}", method(run));
    o
}

fn latex_escape(s: &str) -> String {
    s.replace('\\', "\\textbackslash{}")
        .replace('&', "\\&")
        .replace('%', "\\%")
        .replace('_', "\\_")
        .replace('#', "\\#")
}

fn latex(run: &DensityRun, s: &Summary) -> String {
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
    for r in headline_rows(s) {
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

fn html(run: &DensityRun, s: &Summary) -> Result<String, ReportError> {
    use crate::report::esc;
    let (charts, chart_notes) =
        super::charts::build(s, &crate::i18n::Catalogue::new(crate::i18n::Lang::En))?;
    let mut o = String::new();
    o.push_str(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n\
         <meta charset=\"utf-8\" />\n",
    );
    let _ = writeln!(
        o,
        "<title>isolab density: {}</title>\n<style>{}</style>\n</head>\n<body>",
        esc(&run.manifest.run_id),
        crate::report::HTML_STYLE
    );
    let _ = writeln!(
        o,
        "<h1>isolab density: run {}</h1>",
        esc(&run.manifest.run_id)
    );
    for l in header_lines(run) {
        let _ = writeln!(o, "<p class=\"muted\">{}</p>", esc(&l));
    }
    let table = |o: &mut String, header: &[&str], rows: &[Vec<String>]| {
        o.push_str("<table>\n<tr>");
        for h in header {
            let _ = write!(o, "<th>{}</th>", esc(h));
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
        "<h2>Memory per instance: one meter for every backend</h2>\n<p>The marginal memory is \
         the slope of the host's MemAvailable drop against the number of instances; PSS is \
         beside it; instances that fit keep {}% of the host's memory free.</p>",
        s.headroom_pct
    );
    table(&mut o, &HEADLINE, &headline_rows(s));
    for c in &charts {
        let _ = writeln!(
            o,
            "<figure>{}<figcaption>{}</figcaption></figure>",
            c.svg,
            esc(caption(c.name))
        );
    }
    for n in chart_notes {
        let _ = writeln!(o, "<p class=\"muted\">Chart not drawn: {}</p>", esc(&n));
    }
    let _ = writeln!(o, "<h2>Per N</h2>");
    table(&mut o, &PER_N, &per_n_rows(s));
    o.push_str("<ul>\n");
    for n in notes(run, s) {
        let _ = writeln!(o, "<li>{}</li>", esc(&n));
    }
    o.push_str("</ul>\n");
    let _ = writeln!(o, "<h2>Method</h2>\n<p>{}</p>", esc(&method(run)));
    o.push_str("</body>\n</html>\n");
    Ok(o)
}

fn caption(name: &str) -> &'static str {
    match name {
        "density_memory" => {
            "Host memory per instance against the number of instances running. Filled points: \
             the host's MemAvailable drop divided by N (median over the rounds; whiskers its \
             interval, cut at the chart's edge where a shared host's noise dwarfs a few \
             instances); hollow points on dashed lines: PSS per instance; thin line: the \
             marginal memory (the slope over every N). The same meter for every backend."
        }
        "density_components" => {
            "What grew in /proc/meminfo per instance at each backend's largest N: anonymous \
             memory is the processes' own; page tables, kernel stacks, slab and per-CPU memory \
             are what the kernel keeps for them (namespaces, cgroups)."
        }
        "density_start" => {
            "Start latency against N: from the start call to the agent's ready marker, p50 \
             (solid) and p99 (dashed) over every instance of every round."
        }
        _ => "",
    }
}
