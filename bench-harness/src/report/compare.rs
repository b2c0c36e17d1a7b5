//! `isolab compare RUN_A RUN_B`: the same metrics side by side, the change B/A, and whether the
//! two 95% intervals of the medians separate.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use workloads::Better;

use super::markdown::{arrow, cell};
use super::{CompareFormat, ReportError, View};
use crate::stats::MedianCi;
use crate::store::StoredRun;
use crate::summary::fmt_num;

/// One metric of one backend in both runs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CompareRow {
    workload: String,
    metric: String,
    unit: String,
    better: Better,
    backend: String,
    a: MedianCi,
    b: MedianCi,
    /// median(B) / median(A); absent when A's median is 0.
    change: Option<f64>,
    /// The two intervals do not overlap.
    separated: bool,
    /// `better`, `worse` or `same` (same: the intervals overlap).
    verdict: &'static str,
    /// The noise floor of this metric from the runs' A/A checks (the wider, percent), when
    /// either run had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    aa_resolution_pct: Option<f64>,
}

/// A field of the environment that differs between the runs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EnvDifference {
    field: String,
    a: String,
    b: String,
}

#[derive(Debug, Serialize)]
struct Comparison {
    run_a: String,
    run_b: String,
    environment_differences: Vec<EnvDifference>,
    rows: Vec<CompareRow>,
    /// `workload / metric / backend` found only in A.
    only_in_a: Vec<String>,
    /// `workload / metric / backend` found only in B.
    only_in_b: Vec<String>,
    /// Each run's A/A sentence, when it had an A/A check.
    noise_floors: Vec<String>,
}

/// Whether two intervals are disjoint.
fn separated(a: &MedianCi, b: &MedianCi) -> bool {
    a.hi < b.lo || b.hi < a.lo
}

fn factors_text(s: &crate::suite::Suite) -> String {
    if s.factors.is_empty() {
        return "none".into();
    }
    s.factors
        .iter()
        .map(|f| format!("{}={}", f.name, f.values.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn env_differences(a: &StoredRun, b: &StoredRun) -> Vec<EnvDifference> {
    let (ma, mb) = (&a.manifest, &b.manifest);
    let (ha, hb) = (&ma.host, &mb.host);
    let pairs: Vec<(&str, String, String)> = vec![
        ("host", ha.hostname.clone(), hb.hostname.clone()),
        ("kernel", ha.kernel.clone(), hb.kernel.clone()),
        ("CPU", ha.cpu_model.clone(), hb.cpu_model.clone()),
        ("cores", ha.cores.to_string(), hb.cores.to_string()),
        (
            "memory",
            format!("{} MiB", ha.memory_mib),
            format!("{} MiB", hb.memory_mib),
        ),
        (
            "CPU governor",
            ha.cpu_governor.clone().unwrap_or_default(),
            hb.cpu_governor.clone().unwrap_or_default(),
        ),
        ("KVM", ha.kvm.describe().into(), hb.kvm.describe().into()),
        (
            "cgroups",
            format!("{:?}", ha.cgroups),
            format!("{:?}", hb.cgroups),
        ),
        (
            "isolab",
            format!("{} ({})", ma.isolab_version, ma.git_commit),
            format!("{} ({})", mb.isolab_version, mb.git_commit),
        ),
        (
            "agent sha256",
            ma.agent_sha256.clone(),
            mb.agent_sha256.clone(),
        ),
        (
            "repetitions / warm-up",
            format!("{} / {}", ma.suite.reps, ma.suite.warmup),
            format!("{} / {}", mb.suite.reps, mb.suite.warmup),
        ),
        (
            "sandbox",
            format!("{:?}", ma.suite.limits),
            format!("{:?}", mb.suite.limits),
        ),
        ("factors", factors_text(&ma.suite), factors_text(&mb.suite)),
        (
            "status",
            super::status_word(ma.status).into(),
            super::status_word(mb.status).into(),
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, x, y)| x != y)
        .map(|(f, a, b)| EnvDifference {
            field: f.into(),
            a,
            b,
        })
        .collect()
}

fn build(a: &StoredRun, b: &StoredRun) -> Comparison {
    let va = View::new(a);
    let vb = View::new(b);
    let key =
        |r: &crate::summary::SummaryRow| (r.workload.clone(), r.metric.clone(), r.backend.clone());
    let b_rows: BTreeMap<_, _> = vb.summary.rows.iter().map(|r| (key(r), r)).collect();
    let mut rows = Vec::new();
    let mut only_in_a = Vec::new();
    for ra in &va.summary.rows {
        let Some(rb) = b_rows.get(&key(ra)) else {
            only_in_a.push(format!("{} / {} / {}", ra.workload, ra.metric, ra.backend));
            continue;
        };
        let change = if ra.median.median != 0.0 {
            Some(rb.median.median / ra.median.median).filter(|c| c.is_finite())
        } else {
            None
        };
        let sep = separated(&ra.median, &rb.median);
        let higher = rb.median.median > ra.median.median;
        let verdict = match (sep, higher, ra.better) {
            (false, _, _) => "same",
            (true, true, Better::Higher) | (true, false, Better::Lower) => "better",
            (true, _, _) => "worse",
        };
        let aa_resolution_pct = [&va.summary, &vb.summary]
            .iter()
            .filter_map(|s| s.aa.as_ref()?.row(&ra.workload, &ra.metric))
            .map(|r| r.resolution_pct)
            .reduce(f64::max);
        rows.push(CompareRow {
            aa_resolution_pct,
            workload: ra.workload.clone(),
            metric: ra.metric.clone(),
            unit: ra.unit.clone(),
            better: ra.better,
            backend: ra.backend.clone(),
            a: ra.median,
            b: rb.median,
            change,
            separated: sep,
            verdict,
        });
    }
    let a_keys: std::collections::BTreeSet<_> = va.summary.rows.iter().map(key).collect();
    let only_in_b = vb
        .summary
        .rows
        .iter()
        .filter(|r| !a_keys.contains(&key(r)))
        .map(|r| format!("{} / {} / {}", r.workload, r.metric, r.backend))
        .collect();
    let noise_floors = [("A", &va), ("B", &vb)]
        .iter()
        .filter_map(|(which, v)| {
            v.summary
                .aa
                .as_ref()
                .map(|aa| format!("Run {which}: {}", crate::summary::aa_sentence(aa)))
        })
        .collect();
    Comparison {
        noise_floors,
        run_a: a.manifest.run_id.clone(),
        run_b: b.manifest.run_id.clone(),
        environment_differences: env_differences(a, b),
        rows,
        only_in_a,
        only_in_b,
    }
}

fn ci(m: &MedianCi) -> String {
    format!(
        "{} [{}, {}]",
        fmt_num(m.median),
        fmt_num(m.lo),
        fmt_num(m.hi)
    )
}

fn change_text(c: Option<f64>) -> String {
    c.map_or_else(|| "-".into(), |c| format!("{}x", fmt_num(c)))
}

fn notes(c: &Comparison, out: &mut String, bullet: &str) {
    if c.environment_differences.is_empty() {
        let _ = writeln!(
            out,
            "{bullet}Both runs were made on the same host, kernel and settings as recorded in their manifests."
        );
    } else {
        let _ = writeln!(
            out,
            "{bullet}The runs differ in their environment; a change may come from any of these:"
        );
        for d in &c.environment_differences {
            let _ = writeln!(out, "    - {}: A = {}, B = {}", d.field, d.a, d.b);
        }
    }
    let _ = writeln!(
        out,
        "{bullet}change = median(B) / median(A). \"separated\": the two 95% intervals of the medians do not \
         overlap, so the change is unlikely to be noise; verdict says whether B is better or worse for \
         this metric (↑ higher is better, ↓ lower)."
    );
    for n in &c.noise_floors {
        let _ = writeln!(out, "{bullet}{n}");
    }
    if c.rows.iter().any(|r| r.aa_resolution_pct.is_some()) {
        let _ = writeln!(
            out,
            "{bullet}A/A: how far that metric's A'/A interval reached from 1 (the wider of the two \
             runs); a change smaller than that is within this host's noise."
        );
    }
    if !c.only_in_a.is_empty() {
        let _ = writeln!(out, "{bullet}Only in A: {}", c.only_in_a.join("; "));
    }
    if !c.only_in_b.is_empty() {
        let _ = writeln!(out, "{bullet}Only in B: {}", c.only_in_b.join("; "));
    }
}

fn aa_text(r: &CompareRow) -> String {
    r.aa_resolution_pct
        .map(crate::summary::pct_text)
        .unwrap_or_default()
}

fn term(c: &Comparison) -> String {
    let with_aa = c.rows.iter().any(|r| r.aa_resolution_pct.is_some());
    let mut header = vec![
        "workload",
        "metric",
        "backend",
        "A median [95% CI]",
        "B median [95% CI]",
        "B/A",
        "intervals",
        "verdict",
    ];
    if with_aa {
        header.push("A/A");
    }
    let lines: Vec<Vec<String>> = c
        .rows
        .iter()
        .map(|r| {
            let mut l = vec![
                r.workload.clone(),
                format!("{} ({} {})", r.metric, r.unit, arrow(r.better)),
                r.backend.clone(),
                ci(&r.a),
                ci(&r.b),
                change_text(r.change),
                if r.separated {
                    "separated".into()
                } else {
                    "overlap".into()
                },
                r.verdict.into(),
            ];
            if with_aa {
                l.push(aa_text(r));
            }
            l
        })
        .collect();
    let mut out = format!("Comparing A = {} with B = {}\n\n", c.run_a, c.run_b);
    out.push_str(&crate::summary::aligned_table(&header, &lines, &[], false));
    if c.rows.is_empty() {
        let _ = writeln!(out, "(no metric was measured in both runs)");
    }
    out.push('\n');
    notes(c, &mut out, "");
    out
}

fn markdown(c: &Comparison) -> String {
    let mut out = format!(
        "# isolab comparison: A = {} , B = {}\n\n",
        cell(&c.run_a),
        cell(&c.run_b)
    );
    let with_aa = c.rows.iter().any(|r| r.aa_resolution_pct.is_some());
    let _ = writeln!(
        out,
        "| Workload | Metric | Backend | A median [95% CI] | B median [95% CI] | B/A | Intervals | Verdict |{}\n\
         |---|---|---|--:|--:|--:|---|---|{}",
        if with_aa { " A/A |" } else { "" },
        if with_aa { "--:|" } else { "" }
    );
    for r in &c.rows {
        let _ = writeln!(
            out,
            "| {} | {} ({} {}) | {} | {} | {} | {} | {} | {} |{}",
            cell(&r.workload),
            cell(&r.metric),
            cell(&r.unit),
            arrow(r.better),
            cell(&r.backend),
            ci(&r.a),
            ci(&r.b),
            change_text(r.change),
            if r.separated { "separated" } else { "overlap" },
            r.verdict,
            if with_aa {
                format!(" {} |", aa_text(r))
            } else {
                String::new()
            }
        );
    }
    out.push('\n');
    notes(c, &mut out, "- ");
    out
}

/// Compares run `a` with run `b`: every (workload, metric, backend) summarised in both, with the
/// change B/A and whether the intervals separate; environment differences from the manifests.
pub fn compare(a: &StoredRun, b: &StoredRun, format: CompareFormat) -> Result<String, ReportError> {
    let c = build(a, b);
    Ok(match format {
        CompareFormat::Term => term(&c),
        CompareFormat::Md => markdown(&c),
        CompareFormat::Json => serde_json::to_string_pretty(&c)? + "\n",
    })
}
