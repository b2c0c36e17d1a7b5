//! The methodology paragraph and the caveats, written from the run itself, and the environment
//! facts every format prints.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{backend_label, status_word, View};
use crate::host::Platform;
use crate::stats::BOOTSTRAP_RESAMPLES;
use crate::summary::LEVEL;

/// One failed measured trial, for the failure lists.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FailedTrial {
    pub trial: usize,
    pub backend: String,
    pub workload: String,
    pub repetition: u32,
    pub reason: String,
}

pub(crate) fn failed_trials(view: &View<'_>) -> Vec<FailedTrial> {
    view.failed()
        .map(|s| FailedTrial {
            trial: s.trial,
            backend: backend_label(s),
            workload: s.workload.clone(),
            repetition: s.repetition,
            reason: s
                .failure
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        })
        .collect()
}

/// Failed measured trials of one column for one reason: what the failure tables show, one row
/// per column and reason (the JSON report keeps every trial).
#[derive(Debug, Clone)]
pub(crate) struct FailedGroup {
    pub backend: String,
    pub reason: String,
    /// Trial numbers, in order.
    pub trials: Vec<usize>,
    /// Workloads hit, in first-seen order.
    pub workloads: Vec<String>,
}

impl FailedGroup {
    /// The trial numbers as ranges: `3, 7-9, 12`.
    pub(crate) fn trial_ranges(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < self.trials.len() {
            let start = self.trials[i];
            let mut end = start;
            while i + 1 < self.trials.len() && self.trials[i + 1] == end + 1 {
                i += 1;
                end = self.trials[i];
            }
            out.push(if end == start {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
            i += 1;
        }
        out.join(", ")
    }
}

pub(crate) fn failed_groups(view: &View<'_>) -> Vec<FailedGroup> {
    let mut groups: Vec<FailedGroup> = Vec::new();
    for f in failed_trials(view) {
        let g = match groups
            .iter_mut()
            .position(|g| g.backend == f.backend && g.reason == f.reason)
        {
            Some(i) => &mut groups[i],
            None => {
                groups.push(FailedGroup {
                    backend: f.backend.clone(),
                    reason: f.reason.clone(),
                    trials: Vec::new(),
                    workloads: Vec::new(),
                });
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        g.trials.push(f.trial);
        if !g.workloads.contains(&f.workload) {
            g.workloads.push(f.workload);
        }
    }
    for g in &mut groups {
        g.trials.sort_unstable();
    }
    groups
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn list(items: &[String]) -> String {
    match items {
        [] => "none".into(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Backend labels that have at least one stored measured sample, in display order.
pub(crate) fn backends_present(view: &View<'_>) -> Vec<String> {
    let set: BTreeSet<String> = view
        .run
        .samples
        .iter()
        .filter(|s| !s.warmup)
        .map(backend_label)
        .collect();
    let mut v: Vec<String> = set.into_iter().collect();
    v.sort_by_key(|b| view.label_key(b));
    v
}

/// The methodology paragraph, from the run's own numbers.
pub(crate) fn paragraph(view: &View<'_>) -> String {
    let m = view.manifest();
    let measured = view.summary.measured_samples;
    let failed = view.failed().count();
    let emulated = view
        .run
        .samples
        .iter()
        .filter(|s| !s.warmup && s.emulated)
        .count();
    let ok = view
        .run
        .samples
        .iter()
        .filter(|s| s.is_measured_ok())
        .count();
    let backends = backends_present(view);
    let workloads = view
        .workloads
        .iter()
        .filter(|w| view.run.samples.iter().any(|s| &s.workload == *w))
        .count();
    let mut p = format!(
        "Run {} measured {} of {} on {} ({} planned per column and workload{}), \
         after {} per column and workload ({} stored but not summarised). ",
        m.run_id,
        plural(measured, "trial", "trials"),
        plural(workloads, "workload", "workloads"),
        list(&backends),
        plural(m.suite.reps as usize, "repetition", "repetitions"),
        if m.suite.until_ci.is_some() {
            ", more where --until-ci asked for them"
        } else {
            ""
        },
        plural(m.suite.warmup as usize, "warm-up round", "warm-up rounds"),
        plural(
            view.summary.warmup_samples,
            "warm-up sample",
            "warm-up samples"
        ),
    );
    if let Some(f) = crate::summary::factors_sentence(&view.summary) {
        p.push_str(&f);
        p.push(' ');
    }
    p.push_str(&format!(
        "{ok} produced a result that enters the statistics; {failed} failed and {emulated} ran in an \
         emulated machine (both are listed, neither is summarised as performance). "
    ));
    p.push_str(&format!(
        "In every repetition each workload ran once per column (a backend with its factor values), \
         the columns in an order shuffled anew (seed {}), so slow drift of the host falls on all \
         columns alike. ",
        m.seed
    ));
    if let Some(u) = &m.until_ci {
        p.push_str(&format!(
            "Repetitions were added by rule (--until-ci {}%): rounds of one more repetition of \
             every column, interleaved, for each workload with a headline interval reaching \
             further than that from its median, up to {} repetitions and {:.0} s; {} round(s) \
             were added and the rule {}. ",
            u.rule_pct,
            u.max_reps,
            u.max_wall_s,
            u.extra_rounds,
            match u.stopped {
                crate::manifest::StopReason::Converged => "was met".to_owned(),
                other => format!("was not met everywhere ({})", other.describe()),
            }
        ));
    }
    if let Some(aa) = &view.summary.aa {
        p.push_str(&format!(
            "As an A/A check, column {} ran twice as if it were two ({} and {}), interleaved like \
             the others; their ratio shows the smallest difference this host resolved during the \
             run. ",
            aa.a.trim_end_matches(" A"),
            aa.a,
            aa.b
        ));
    }
    p.push_str(&format!(
        "Each figure is the median of its samples with a distribution-free {:.0}% confidence interval \
         from order statistics (binomial ranks; no normality is assumed; with fewer than 6 samples \
         {:.0}% is out of reach and min..max is given with its actual coverage). Ratios to native are \
         median(backend) / median(native) with a {:.0}% percentile-bootstrap interval \
         ({BOOTSTRAP_RESAMPLES} resamples, fixed seed, so every number can be recomputed from \
         samples.jsonl). ",
        LEVEL * 100.0,
        LEVEL * 100.0,
        LEVEL * 100.0
    ));
    p.push_str(&format!(
        "Sandbox size: {} MiB of memory and {} for container and VM alike. \
         Host: {} ({}, {}, {} MiB), kernel {}, {}, cgroups {:?}.",
        m.suite.limits.memory_mib,
        plural(m.suite.limits.vcpus as usize, "CPU", "CPUs"),
        m.host.hostname,
        m.host.cpu_model,
        plural(m.host.cores, "core", "cores"),
        m.host.memory_mib,
        m.host.kernel,
        m.host.kvm.describe(),
        m.host.cgroups
    ));
    p
}

/// Everything a reader must know before trusting a number of this run.
pub(crate) fn caveats(view: &View<'_>) -> Vec<String> {
    let m = view.manifest();
    let mut c = Vec::new();
    if view.is_partial() {
        c.push(format!(
            "Partial run: status {}, {} of {} planned trials stored. The figures use the samples that \
             exist; some backends or workloads may have fewer repetitions than planned.",
            status_word(m.status),
            view.run.samples.len(),
            m.planned_trials
        ));
    }
    if view.run.torn_tail {
        c.push(
            "The last line of samples.jsonl was incomplete (the run was killed while writing it) \
             and was skipped."
                .into(),
        );
    }
    let present = backends_present(view);
    for b in &m.suite.backends {
        let name = b.name();
        let has = present
            .iter()
            .any(|p| p == name || p.starts_with(&format!("{name} ")));
        let ok = view
            .run
            .samples
            .iter()
            .any(|s| s.backend == name && s.is_measured_ok());
        if !has {
            let why = m
                .backends
                .get(name)
                .and_then(|st| st.note.clone())
                .unwrap_or_else(|| "no trial of it was stored".into());
            c.push(format!("Backend {name} has no samples in this run: {why}."));
        } else if !ok
            && !view
                .run
                .samples
                .iter()
                .any(|s| s.backend == name && s.emulated)
        {
            c.push(format!(
                "Backend {name} produced no successful measured trial; it appears only in the failure list."
            ));
        }
    }
    let emulated = view
        .run
        .samples
        .iter()
        .filter(|s| !s.warmup && s.emulated)
        .count();
    if emulated > 0 {
        c.push(format!(
            "{} ran the VM inside an emulated machine (no hardware virtualization). They are \
             labelled \"vm (emulated)\", have no ratio to native, and are left out of the timing \
             charts: they show that the VM works and what it counts (memory, exits), not how fast \
             it is.",
            plural(emulated, "sample", "samples")
        ));
    }
    if view
        .summary
        .rows
        .iter()
        .any(|r| r.median.coverage + 1e-9 < LEVEL)
    {
        c.push(format!(
            "Some figures rest on fewer than 6 samples: their interval is min..max and covers the \
             median with less than {:.0}% probability (marked *).",
            LEVEL * 100.0
        ));
    }
    for col in m.columns.iter().filter(|c| !c.available) {
        let backend_has_other = m
            .columns
            .iter()
            .any(|o| o.available && o.column.backend == col.column.backend);
        if backend_has_other {
            c.push(format!(
                "Column {} did not run: {}.",
                col.column.label,
                col.note.as_deref().unwrap_or("no reason recorded")
            ));
        }
    }
    if let Some(p) = &view.summary.precision {
        let wide = p.wide().count();
        if wide > 0 {
            c.push(format!(
                "{} of {} headline intervals reach further than {} from their median (marked ~); \
                 differences smaller than that are not resolved by them.",
                wide,
                p.checks.len(),
                crate::summary::pct_text(p.threshold_pct)
            ));
        }
    }
    if let Some(floor) = view.summary.aa.as_ref().and_then(|a| a.floor_pct) {
        c.push(format!(
            "The A/A check of this run puts the noise floor at {}: a ratio closer to 1 than that \
             (a factor's effect, or a backend against native) cannot be told from noise here.",
            crate::summary::pct_text(floor)
        ));
    }
    // One line per column and reason, however many workloads it hit.
    for g in crate::summary::grouped_failures(&view.summary) {
        c.push(format!("{}.", g.sentence()));
    }
    c
}

/// Environment facts as (label, value) pairs, for the manifest tables.
pub(crate) fn environment(view: &View<'_>) -> Vec<(String, String)> {
    let m = view.manifest();
    let h = &m.host;
    let mut v: Vec<(String, String)> = vec![
        ("run".into(), m.run_id.clone()),
        ("status".into(), status_word(m.status).into()),
        ("started".into(), m.started_at.clone()),
        (
            "ended".into(),
            m.ended_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "wall time".into(),
            m.wall_s.map_or_else(|| "-".into(), |w| format!("{w:.1} s")),
        ),
        ("host".into(), h.hostname.clone()),
        ("kernel".into(), h.kernel.clone()),
        ("CPU".into(), format!("{} ({} cores)", h.cpu_model, h.cores)),
        ("memory".into(), format!("{} MiB", h.memory_mib)),
        (
            "CPU governor".into(),
            h.cpu_governor
                .clone()
                .unwrap_or_else(|| "not readable".into()),
        ),
        ("KVM".into(), h.kvm.describe().into()),
        ("cgroups".into(), format!("{:?}", h.cgroups)),
        ("host boot_id".into(), h.boot_id.clone()),
    ];
    v.extend(platform_rows(h.platform.as_ref()));
    v.extend([
        (
            "isolab".into(),
            format!("{} ({})", m.isolab_version, m.git_commit),
        ),
        ("agent sha256".into(), m.agent_sha256.clone()),
        ("suite".into(), m.suite.source.clone()),
        (
            "repetitions / warm-up".into(),
            format!("{} / {}", m.suite.reps, m.suite.warmup),
        ),
        (
            "sandbox".into(),
            format!(
                "{} MiB, {} vCPU, {} pids",
                m.suite.limits.memory_mib, m.suite.limits.vcpus, m.suite.limits.pids_max
            ),
        ),
        ("shuffle seed".into(), m.seed.to_string()),
        (
            "columns".into(),
            if m.columns.is_empty() {
                "one per backend".into()
            } else {
                m.columns
                    .iter()
                    .map(|c| c.column.label.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ),
        (
            "trials stored / planned".into(),
            format!("{} / {}", view.run.samples.len(), m.planned_trials),
        ),
        ("command".into(), m.command.join(" ")),
    ]);
    if let Some(u) = &m.until_ci {
        v.push((
            "--until-ci".into(),
            format!(
                "{}% (caps {} repetitions, {:.0} s): {} round(s) added, {}",
                u.rule_pct,
                u.max_reps,
                u.max_wall_s,
                u.extra_rounds,
                u.stopped.describe()
            ),
        ));
    }
    for (name, st) in &m.backends {
        let mut val = if st.available {
            "available".to_string()
        } else {
            "unavailable".to_string()
        };
        if let Some(n) = &st.note {
            val.push_str(": ");
            val.push_str(n);
        }
        for (k, f) in &st.facts {
            val.push_str(&format!("; {k}={f}"));
        }
        v.push((format!("backend {name}"), val));
    }
    v
}

/// The platform settings of the host (microcode, mitigations, boost, SMT, NUMA, THP, KSM, the
/// command line) as environment rows; one row saying they were not recorded for older runs.
fn platform_rows(p: Option<&Platform>) -> Vec<(String, String)> {
    let Some(p) = p else {
        return vec![(
            "platform".into(),
            "not recorded (the run was made by an isolab that did not record microcode, \
             mitigations, boost, SMT, NUMA, THP, KSM or the kernel command line)"
                .into(),
        )];
    };
    let or_absent = |v: &Option<String>| {
        v.clone()
            .unwrap_or_else(|| "not exposed by this host".into())
    };
    let smt = match (&p.smt, p.smt_active) {
        (Some(c), Some(a)) => format!("{c} ({})", if a { "active" } else { "inactive" }),
        (Some(c), None) => c.clone(),
        (None, _) => "not exposed by this host".into(),
    };
    let numa = match &p.numa_nodes {
        None => "not exposed by this host".into(),
        Some(nodes) => {
            let list: Vec<String> = nodes
                .iter()
                .map(|n| match n.memory_mib {
                    Some(m) => format!("node {}: CPUs {}, {m} MiB", n.node, n.cpus),
                    None => format!("node {}: CPUs {}", n.node, n.cpus),
                })
                .collect();
            format!("{}: {}", nodes.len(), list.join("; "))
        }
    };
    let ksm = match &p.ksm {
        None => "not exposed by this host".into(),
        Some(k) => {
            let state = match k.run {
                0 => "stopped".to_owned(),
                1 => "merging".to_owned(),
                2 => "unmerging".to_owned(),
                n => format!("run = {n}"),
            };
            let mut parts = vec![state];
            if let Some(n) = k.pages_to_scan {
                parts.push(format!("{n} pages per scan"));
            }
            if let Some(ms) = k.sleep_millisecs {
                parts.push(format!("{ms} ms between scans"));
            }
            if let Some(n) = k.pages_sharing {
                parts.push(format!("{n} pages sharing at the start"));
            }
            parts.join(", ")
        }
    };
    let mitigations = if p.mitigations.is_empty() {
        "not exposed by this host".into()
    } else {
        p.mitigations
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    vec![
        ("CPU signature".into(), or_absent(&p.cpu_signature)),
        ("microcode".into(), or_absent(&p.microcode)),
        ("CPU vulnerabilities".into(), mitigations),
        ("cpufreq driver".into(), or_absent(&p.cpufreq_driver)),
        ("boost".into(), or_absent(&p.boost)),
        ("SMT".into(), smt),
        ("NUMA nodes".into(), numa),
        (
            "transparent huge pages".into(),
            match (&p.thp_enabled, &p.thp_defrag) {
                (None, None) => "not exposed by this host".into(),
                (e, d) => format!("enabled {}, defrag {}", or_absent(e), or_absent(d)),
            },
        ),
        ("KSM".into(), ksm),
        ("clock source".into(), or_absent(&p.clocksource)),
        ("kernel build".into(), or_absent(&p.kernel_build)),
        ("kernel command line".into(), or_absent(&p.kernel_cmdline)),
    ]
}
