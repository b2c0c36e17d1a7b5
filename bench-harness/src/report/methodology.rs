//! The methodology paragraph and the caveats, written from the run itself, and the environment
//! facts every format prints.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{backend_label, View};
use crate::host::Platform;
use crate::i18n::Catalogue;
use crate::stats::BOOTSTRAP_RESAMPLES;
use crate::summary::{stop_reason_catalogue_id as stop_reason_id, LEVEL};

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

/// `a, b and c` in the catalogue's language.
pub(crate) fn list(cat: &Catalogue, items: &[String]) -> String {
    match items {
        [] => cat.tr("list-none", &[]),
        [a] => a.clone(),
        [rest @ .., last] => cat.tr("list-and", &[("rest", &rest.join(", ")), ("last", last)]),
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

/// The methodology paragraph, from the run's own numbers, in the catalogue's language.
pub(crate) fn paragraph(view: &View<'_>, cat: &Catalogue) -> String {
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
    let n = |x: usize| cat.num(&x.to_string());
    let count = |id: &str, x: usize| cat.tr_n(id, x, &[("count", &n(x))]);
    let mut p = cat.tr(
        "method-trials",
        &[
            ("run", &m.run_id),
            ("trials", &count("count-trials", measured)),
            ("workloads", &count("count-workloads", workloads)),
            ("backends", &list(cat, &backends)),
            ("reps", &count("count-repetitions", m.suite.reps as usize)),
            (
                "until",
                &if m.suite.until_ci.is_some() {
                    cat.tr("method-more-until-ci", &[])
                } else {
                    String::new()
                },
            ),
            (
                "warmup",
                &count("count-warmup-rounds", m.suite.warmup as usize),
            ),
            (
                "warmup-samples",
                &count("count-warmup-samples", view.summary.warmup_samples),
            ),
        ],
    );
    p.push(' ');
    if let Some(f) = crate::summary::factors_sentence_in(&view.summary, cat) {
        p.push_str(&f);
        p.push(' ');
    }
    p.push_str(&cat.tr(
        "method-outcomes",
        &[
            ("ok", &n(ok)),
            ("failed", &n(failed)),
            ("emulated", &n(emulated)),
        ],
    ));
    p.push(' ');
    p.push_str(&cat.tr("method-shuffle", &[("seed", &m.seed.to_string())]));
    p.push(' ');
    if let Some(u) = &m.until_ci {
        p.push_str(&cat.tr(
            "method-until-ci",
            &[
                ("pct", &cat.percent(&u.rule_pct.to_string())),
                ("max-reps", &n(u.max_reps as usize)),
                (
                    "max-wall",
                    &cat.with_unit(&format!("{:.0}", u.max_wall_s), "s"),
                ),
                ("rounds", &n(u.extra_rounds as usize)),
                (
                    "outcome",
                    &match u.stopped {
                        crate::manifest::StopReason::Converged => cat.tr("method-until-met", &[]),
                        other => cat.tr(
                            "method-until-not-met",
                            &[("why", &cat.tr(stop_reason_id(other), &[]))],
                        ),
                    },
                ),
            ],
        ));
        p.push(' ');
    }
    if let Some(aa) = &view.summary.aa {
        p.push_str(&cat.tr(
            "method-aa",
            &[
                ("column", aa.a.trim_end_matches(" A")),
                ("a", &aa.a),
                ("b", &aa.b),
            ],
        ));
        p.push(' ');
    }
    let level = cat.percent(&format!("{:.0}", LEVEL * 100.0));
    p.push_str(&cat.tr(
        "method-statistics",
        &[("level", &level), ("resamples", &n(BOOTSTRAP_RESAMPLES))],
    ));
    p.push(' ');
    p.push_str(&cat.tr(
        "method-sandbox",
        &[
            (
                "memory",
                &cat.with_unit(&m.suite.limits.memory_mib.to_string(), "MiB"),
            ),
            ("cpus", &count("count-cpus", m.suite.limits.vcpus as usize)),
            ("host", &m.host.hostname),
            ("cpu-model", &m.host.cpu_model),
            ("cores", &count("count-cores", m.host.cores)),
            (
                "host-memory",
                &cat.with_unit(&m.host.memory_mib.to_string(), "MiB"),
            ),
            ("kernel", &m.host.kernel),
            ("kvm", &cat.tr(kvm_id(m.host.kvm), &[])),
            ("cgroups", &format!("{:?}", m.host.cgroups)),
        ],
    ));
    p
}

/// The catalogue id of a run's status.
pub(crate) fn status_id(s: crate::manifest::RunStatus) -> &'static str {
    use crate::manifest::RunStatus;
    match s {
        RunStatus::Running => "status-running",
        RunStatus::Complete => "status-complete",
        RunStatus::Interrupted => "status-interrupted",
        RunStatus::Failed => "status-failed",
    }
}

/// The catalogue id of the host's kind of KVM.
pub(crate) fn kvm_id(k: crate::host::KvmFlavour) -> &'static str {
    use crate::host::KvmFlavour;
    match k {
        KvmFlavour::HardwareIntel => "kvm-intel",
        KvmFlavour::HardwareAmd => "kvm-amd",
        KvmFlavour::Pvm => "kvm-pvm",
        KvmFlavour::Unknown => "kvm-unknown",
        KvmFlavour::None => "kvm-none",
    }
}

/// Memory metrics of a trial and the catalogue id of the meter each is.
const MEMORY_METERS: [(&str, &str); 4] = [
    ("host.peak_rss", "meter-peak-rss"),
    ("host.cgroup_peak", "meter-cgroup"),
    ("host.guest_ram_touched", "meter-guest-ram-touched"),
    ("host.vmm_overhead", "meter-vmm-overhead"),
];

/// Whether any sample of the run has metric `name`.
fn has_metric(view: &View<'_>, name: &str) -> bool {
    view.run
        .samples
        .iter()
        .any(|s| s.metrics.iter().any(|x| x.name == name))
}

/// Everything a reader must know before trusting a number of this run, in the catalogue's
/// language (the reasons quoted from the run stay as the run recorded them).
pub(crate) fn caveats(view: &View<'_>, cat: &Catalogue) -> Vec<String> {
    let m = view.manifest();
    let n = |x: usize| cat.num(&x.to_string());
    let mut c = Vec::new();
    if view.is_partial() {
        c.push(cat.tr(
            "caveat-partial",
            &[
                ("status", &cat.tr(status_id(m.status), &[])),
                ("stored", &n(view.run.samples.len())),
                ("planned", &n(m.planned_trials)),
            ],
        ));
    }
    if view.run.torn_tail {
        c.push(cat.tr("caveat-torn-tail", &[]));
    }
    // Each backend's memory figures come from its own meter: say so wherever they are shown.
    let meters: Vec<String> = MEMORY_METERS
        .iter()
        .filter(|(metric, _)| has_metric(view, metric))
        .map(|(_, meter)| cat.tr(meter, &[]))
        .collect();
    if !meters.is_empty() {
        c.push(cat.tr("caveat-memory-meters", &[("meters", &meters.join("; "))]));
    }
    if has_metric(view, "host.cgroup_cpu_user") {
        c.push(cat.tr("caveat-cpu-meters", &[]));
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
                .unwrap_or_else(|| cat.tr("caveat-no-trial-stored", &[]));
            c.push(cat.tr(
                "caveat-backend-no-samples",
                &[("backend", name), ("why", why.trim_end_matches('.'))],
            ));
        } else if !ok
            && !view
                .run
                .samples
                .iter()
                .any(|s| s.backend == name && s.emulated)
        {
            c.push(cat.tr("caveat-backend-no-success", &[("backend", name)]));
        }
    }
    let emulated = view
        .run
        .samples
        .iter()
        .filter(|s| !s.warmup && s.emulated)
        .count();
    if emulated > 0 {
        c.push(cat.tr_n("caveat-emulated", emulated, &[("count", &n(emulated))]));
    }
    if view
        .summary
        .rows
        .iter()
        .any(|r| r.median.coverage + 1e-9 < LEVEL)
    {
        c.push(cat.tr(
            "caveat-few-samples",
            &[("level", &cat.percent(&format!("{:.0}", LEVEL * 100.0)))],
        ));
    }
    for col in m.columns.iter().filter(|c| !c.available) {
        let backend_has_other = m
            .columns
            .iter()
            .any(|o| o.available && o.column.backend == col.column.backend);
        if backend_has_other {
            c.push(
                cat.tr(
                    "caveat-column-not-run",
                    &[
                        ("column", &col.column.label),
                        (
                            "why",
                            &col.note
                                .clone()
                                .unwrap_or_else(|| cat.tr("avail-no-reason", &[])),
                        ),
                    ],
                ),
            );
        }
    }
    if let Some(p) = &view.summary.precision {
        let wide = p.wide().count();
        if wide > 0 {
            c.push(cat.tr(
                "caveat-wide",
                &[
                    ("wide", &n(wide)),
                    ("total", &n(p.checks.len())),
                    (
                        "pct",
                        &cat.nums_in(&crate::summary::pct_text(p.threshold_pct)),
                    ),
                ],
            ));
        }
    }
    if let Some(floor) = view.summary.aa.as_ref().and_then(|a| a.floor_pct) {
        c.push(cat.tr(
            "caveat-aa-floor",
            &[("pct", &cat.nums_in(&crate::summary::pct_text(floor)))],
        ));
    }
    // One line per column and reason, however many workloads it hit.
    for g in crate::summary::grouped_failures(&view.summary) {
        c.push(cat.tr_n(
            if g.reason.starts_with("unavailable:") {
                "caveat-failures-not-run"
            } else {
                "caveat-failures"
            },
            g.count,
            &[
                ("backend", &g.backend),
                ("count", &n(g.count)),
                ("workloads", &g.workloads.join(", ")),
                ("reason", g.reason.trim_end_matches('.')),
            ],
        ));
    }
    c
}

/// Environment facts as (label, value) pairs, for the manifest tables, labels and the words
/// isolab writes in the catalogue's language (values the host or the run recorded stay as
/// recorded).
pub(crate) fn environment(view: &View<'_>, cat: &Catalogue) -> Vec<(String, String)> {
    let m = view.manifest();
    let h = &m.host;
    let l = |id: &str| cat.tr(id, &[]);
    let mut v: Vec<(String, String)> = vec![
        (l("env-run"), m.run_id.clone()),
        (l("env-status"), l(status_id(m.status))),
        (l("env-started"), m.started_at.clone()),
        (
            l("env-ended"),
            m.ended_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            l("env-wall-time"),
            m.wall_s
                .map_or_else(|| "-".into(), |w| cat.with_unit(&format!("{w:.1}"), "s")),
        ),
        (l("env-host"), h.hostname.clone()),
        (l("env-kernel"), h.kernel.clone()),
        (
            l("env-cpu"),
            cat.tr(
                "env-cpu-value",
                &[("model", &h.cpu_model), ("cores", &h.cores.to_string())],
            ),
        ),
        (
            l("env-memory"),
            cat.with_unit(&h.memory_mib.to_string(), "MiB"),
        ),
        (
            l("env-governor"),
            h.cpu_governor
                .clone()
                .unwrap_or_else(|| l("env-not-readable")),
        ),
        ("KVM".into(), l(kvm_id(h.kvm))),
        ("cgroups".into(), format!("{:?}", h.cgroups)),
        (l("env-boot-id"), h.boot_id.clone()),
    ];
    v.extend(platform_rows(cat, h.platform.as_ref()));
    v.extend([
        (
            "isolab".into(),
            format!("{} ({})", m.isolab_version, m.git_commit),
        ),
        (l("env-agent-sha"), m.agent_sha256.clone()),
        (l("env-suite"), m.suite.source.clone()),
        (
            l("env-reps"),
            format!("{} / {}", m.suite.reps, m.suite.warmup),
        ),
        (
            l("env-sandbox"),
            cat.tr(
                "env-sandbox-value",
                &[
                    (
                        "memory",
                        &cat.with_unit(&m.suite.limits.memory_mib.to_string(), "MiB"),
                    ),
                    ("vcpus", &m.suite.limits.vcpus.to_string()),
                    ("pids", &m.suite.limits.pids_max.to_string()),
                ],
            ),
        ),
        (l("env-seed"), m.seed.to_string()),
        (
            l("env-columns"),
            if m.columns.is_empty() {
                l("env-one-per-backend")
            } else {
                m.columns
                    .iter()
                    .map(|c| c.column.label.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ),
        (
            l("env-trials"),
            format!("{} / {}", view.run.samples.len(), m.planned_trials),
        ),
        (l("env-command"), m.command.join(" ")),
    ]);
    if let Some(u) = &m.until_ci {
        v.push((
            "--until-ci".into(),
            cat.tr(
                "env-until-ci",
                &[
                    ("pct", &cat.percent(&u.rule_pct.to_string())),
                    ("max-reps", &u.max_reps.to_string()),
                    (
                        "max-wall",
                        &cat.with_unit(&format!("{:.0}", u.max_wall_s), "s"),
                    ),
                    ("rounds", &u.extra_rounds.to_string()),
                    ("why", &l(stop_reason_id(u.stopped))),
                ],
            ),
        ));
    }
    for (name, st) in &m.backends {
        let mut val = if st.available {
            l("env-available")
        } else {
            l("env-unavailable")
        };
        if let Some(n) = &st.note {
            val.push_str(": ");
            val.push_str(n);
        }
        for (k, f) in &st.facts {
            val.push_str(&format!("; {k}={f}"));
        }
        v.push((cat.tr("env-backend", &[("backend", name)]), val));
    }
    v
}

/// The platform settings of the host (microcode, mitigations, boost, SMT, NUMA, THP, KSM, the
/// command line) as environment rows; one row saying they were not recorded for older runs.
fn platform_rows(cat: &Catalogue, p: Option<&Platform>) -> Vec<(String, String)> {
    let l = |id: &str| cat.tr(id, &[]);
    let Some(p) = p else {
        return vec![(l("env-platform"), l("env-platform-not-recorded"))];
    };
    let or_absent = |v: &Option<String>| v.clone().unwrap_or_else(|| l("env-not-exposed"));
    let smt = match (&p.smt, p.smt_active) {
        (Some(c), Some(a)) => format!(
            "{c} ({})",
            if a {
                l("env-active")
            } else {
                l("env-inactive")
            }
        ),
        (Some(c), None) => c.clone(),
        (None, _) => l("env-not-exposed"),
    };
    let numa = match &p.numa_nodes {
        None => l("env-not-exposed"),
        Some(nodes) => {
            let list: Vec<String> = nodes
                .iter()
                .map(|n| {
                    let node = cat.tr(
                        "env-numa-node",
                        &[("node", &n.node.to_string()), ("cpus", &n.cpus)],
                    );
                    match n.memory_mib {
                        Some(m) => format!("{node}, {}", cat.with_unit(&m.to_string(), "MiB")),
                        None => node,
                    }
                })
                .collect();
            format!("{}: {}", nodes.len(), list.join("; "))
        }
    };
    let ksm = match &p.ksm {
        None => l("env-not-exposed"),
        Some(k) => {
            let state = match k.run {
                0 => l("env-ksm-stopped"),
                1 => l("env-ksm-merging"),
                2 => l("env-ksm-unmerging"),
                n => format!("run = {n}"),
            };
            let mut parts = vec![state];
            if let Some(n) = k.pages_to_scan {
                parts.push(cat.tr("env-ksm-pages-per-scan", &[("n", &n.to_string())]));
            }
            if let Some(ms) = k.sleep_millisecs {
                parts.push(cat.tr("env-ksm-sleep", &[("ms", &ms.to_string())]));
            }
            if let Some(n) = k.pages_sharing {
                parts.push(cat.tr("env-ksm-sharing", &[("n", &n.to_string())]));
            }
            parts.join(", ")
        }
    };
    let mitigations = if p.mitigations.is_empty() {
        l("env-not-exposed")
    } else {
        p.mitigations
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    vec![
        (l("env-cpu-signature"), or_absent(&p.cpu_signature)),
        (l("env-microcode"), or_absent(&p.microcode)),
        (l("env-vulnerabilities"), mitigations),
        (l("env-cpufreq"), or_absent(&p.cpufreq_driver)),
        ("boost".into(), or_absent(&p.boost)),
        ("SMT".into(), smt),
        (l("env-numa"), numa),
        (
            l("env-thp"),
            match (&p.thp_enabled, &p.thp_defrag) {
                (None, None) => l("env-not-exposed"),
                (e, d) => cat.tr(
                    "env-thp-value",
                    &[("enabled", &or_absent(e)), ("defrag", &or_absent(d))],
                ),
            },
        ),
        ("KSM".into(), ksm),
        (l("env-clocksource"), or_absent(&p.clocksource)),
        (l("env-kernel-build"), or_absent(&p.kernel_build)),
        (l("env-cmdline"), or_absent(&p.kernel_cmdline)),
    ]
}
