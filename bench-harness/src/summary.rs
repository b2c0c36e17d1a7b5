//! The summary of a run: per workload, metric and column (a backend with its factor values), the
//! median with its 95% interval, the number of samples, and the ratio to native with its
//! interval; the effect of each factor as a ratio with its interval; the A/A check (the same
//! column run twice) as the host's noise floor; and how many headline intervals are narrow.
//! `isolab run` prints it from the samples it just stored and `isolab report` from the same file,
//! so both print the same numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use workloads::Better;

use crate::factors::{self, Column, FactorLevels, AA_FACTOR};
use crate::i18n::{Catalogue, Lang};
use crate::manifest::UntilCiOutcome;
use crate::sample::Sample;
use crate::stats::{self, MedianCi, RatioCi};
use crate::store::StoredRun;

/// Confidence level of every interval isolab prints.
pub const LEVEL: f64 = 0.95;

/// Without `--until-ci`, a headline interval reaching further than this many percent from its
/// median is flagged as wide.
pub const DEFAULT_PRECISION_PCT: f64 = 10.0;

/// One line of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Suite entry name.
    pub workload: String,
    /// Metric name.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Direction.
    pub better: Better,
    /// Column label: the backend and its factor values (`container userns=on`), with
    /// ` (emulated)` for emulated samples.
    pub backend: String,
    /// Median and interval.
    pub median: MedianCi,
    /// Ratio to native (None for native itself, emulated samples, or no native data).
    pub vs_native: Option<RatioCi>,
    /// The interval reaches further from the median than the run's precision threshold.
    #[serde(default)]
    pub wide: bool,
}

impl SummaryRow {
    /// A time or a rate measured inside an emulated machine: never a performance figure, so every
    /// table cell that shows one carries [`EMULATED_MARK`] in the cell itself.
    pub fn is_emulated_time(&self) -> bool {
        self.backend.ends_with("(emulated)") && is_time_or_rate(&self.unit)
    }

    /// What follows a median or an interval of this row in a table cell: [`EMULATED_MARK`] for
    /// an emulated time, else nothing.
    pub fn cell_mark(&self) -> &'static str {
        if self.is_emulated_time() {
            EMULATED_MARK
        } else {
            ""
        }
    }
}

/// The label an emulated time carries in its own table cell.
pub const EMULATED_MARK: &str = " (emulated time)";

/// Whether a unit is a time (`ns` … `s`), a time per something or a rate: what an emulated
/// machine distorts.
pub fn is_time_or_rate(unit: &str) -> bool {
    const TIMES: [&str; 5] = ["ns", "µs", "us", "ms", "s"];
    // A rate (`MB/s`, `IOPS`), a time, or a time per something (`ns/call`, `ms/Gbit`): all
    // of them are the clock's, and an emulated clock's are not performance figures.
    let per = unit
        .split_once('/')
        .map_or(unit, |(numerator, _)| numerator);
    unit.ends_with("/s") || unit == "IOPS" || TIMES.contains(&per)
}

/// Failed trials of one column and workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    /// Column label.
    pub backend: String,
    /// Workload.
    pub workload: String,
    /// How many trials failed.
    pub count: usize,
    /// The first reason seen.
    pub reason: String,
}

/// A factor of the run and the backends it was crossed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorScope {
    /// The factor.
    pub factor: String,
    /// Its values; the first is the reference of its effects.
    pub values: Vec<String>,
    /// The run's backends it applies to.
    pub backends: Vec<String>,
    /// The run's backends it does not apply to (not crossed with it).
    pub not_applied: Vec<String>,
}

/// The effect of changing one factor, the others held fixed: median(to) / median(from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The factor changed.
    pub factor: String,
    /// The backend.
    pub backend: String,
    /// The other factors' values held fixed (`vcpus=1`), empty when there are none.
    pub with: String,
    /// The reference level.
    pub from: String,
    /// The level compared with it.
    pub to: String,
    /// Workload.
    pub workload: String,
    /// Metric.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Direction.
    pub better: Better,
    /// One of the workload's headline metrics.
    pub headline: bool,
    /// Samples at the reference level.
    pub n_from: usize,
    /// Samples at the compared level.
    pub n_to: usize,
    /// median(to) / median(from) with its bootstrap interval.
    pub ratio: RatioCi,
}

/// One metric of the A/A check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AaRow {
    /// Workload.
    pub workload: String,
    /// Metric.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// One of the workload's headline metrics.
    pub headline: bool,
    /// Samples of A.
    pub n_a: usize,
    /// Samples of A'.
    pub n_b: usize,
    /// median(A') / median(A) with its bootstrap interval.
    pub ratio: RatioCi,
    /// How far the interval reaches from 1, percent ([`resolution_pct`]): the smallest
    /// difference this metric resolves now.
    pub resolution_pct: f64,
}

/// The A/A check: one column run twice as if it were two, interleaved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AaCheck {
    /// Label of the original column.
    pub a: String,
    /// Label of its copy.
    pub b: String,
    /// Every metric both have.
    pub rows: Vec<AaRow>,
    /// The median of the headline metrics' resolutions, percent: differences smaller than this
    /// cannot be told from noise on this host now. `None` without headline metrics.
    pub floor_pct: Option<f64>,
    /// The headline metric with the widest resolution: (workload, metric, percent).
    pub widest: Option<(String, String, f64)>,
}

impl AaCheck {
    /// The A/A row of `workload` / `metric`.
    pub fn row(&self, workload: &str, metric: &str) -> Option<&AaRow> {
        self.rows
            .iter()
            .find(|r| r.workload == workload && r.metric == metric)
    }
}

/// One headline interval and whether it is narrow enough.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadlineCheck {
    /// Workload.
    pub workload: String,
    /// Metric.
    pub metric: String,
    /// Column label.
    pub column: String,
    /// Samples.
    pub n: usize,
    /// How far the interval reaches from the median, percent (`None` when the median is 0).
    pub spread_pct: Option<f64>,
    /// Within the threshold.
    pub within: bool,
}

/// How narrow the headline intervals are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Precision {
    /// Intervals reaching further than this many percent from their median are wide.
    pub threshold_pct: f64,
    /// The threshold is the run's `--until-ci` rule (else [`DEFAULT_PRECISION_PCT`]).
    pub from_rule: bool,
    /// Every headline metric of every column with samples.
    pub checks: Vec<HeadlineCheck>,
    /// Headline metrics (workload, metric, column) without any successful sample.
    pub no_samples: Vec<(String, String, String)>,
    /// What `--until-ci` did, when it was used.
    pub until_ci: Option<UntilCiOutcome>,
}

impl Precision {
    /// The checks that failed.
    pub fn wide(&self) -> impl Iterator<Item = &HeadlineCheck> {
        self.checks.iter().filter(|c| !c.within)
    }
}

/// The whole summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rows in display order.
    pub rows: Vec<SummaryRow>,
    /// Failed or unavailable trials, grouped.
    pub failures: Vec<FailureGroup>,
    /// Measured (non-warm-up) samples, ok or not.
    pub measured_samples: usize,
    /// Warm-up samples left out.
    pub warmup_samples: usize,
    /// The run's factors and which backends each applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<FactorScope>,
    /// Every factor's effect on every metric, per backend and combination of the other factors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
    /// The A/A check, when the run had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aa: Option<AaCheck>,
    /// How narrow the headline intervals are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
}

/// How far `m`'s interval reaches from its median, in percent of the median; `None` for a median
/// of 0.
pub fn spread_pct(m: &MedianCi) -> Option<f64> {
    let reach = (m.hi - m.median).max(m.median - m.lo);
    (m.median != 0.0).then(|| 100.0 * reach / m.median.abs())
}

/// Whether `m`'s interval lies within `pct` percent of its median on both sides (the rule of
/// `--until-ci`). A median of 0 passes only with an interval of width 0.
pub fn within_rule(m: &MedianCi, pct: f64) -> bool {
    match spread_pct(m) {
        Some(s) => s <= pct,
        None => m.lo == m.hi,
    }
}

/// The backend name a column label starts with.
fn label_backend(label: &str) -> &str {
    label.split(' ').next().unwrap_or(label)
}

/// The sort key of a column label: backend (native, container, vm, qemu-tcg), then the column's place in
/// the run (`columns`, in plan order), emulated after real, then the label.
pub fn label_key(label: &str, columns: &[String]) -> (usize, usize, bool, String) {
    let emulated = label.ends_with("(emulated)");
    let base = label.trim_end_matches(" (emulated)");
    let backend = ["native", "container", "vm", "qemu-tcg"]
        .iter()
        .position(|b| *b == label_backend(label))
        .unwrap_or(9);
    let pos = columns.iter().position(|c| c == base).unwrap_or(usize::MAX);
    (backend, pos, emulated, label.to_owned())
}

/// Where a host metric goes among the host metrics: time first, then memory, CPU, I/O, exits.
fn host_metric_rank(name: &str) -> usize {
    const ORDER: &[&str] = &[
        "host.start_to_ready",
        "host.boot_to_agent",
        "host.teardown",
        "host.wall",
        "host.peak_rss",
        "host.cgroup_peak",
        "host.guest_ram_touched",
        "host.vmm_overhead",
        "host.cgroup_anon",
        "host.cgroup_file",
        "host.cgroup_kernel",
        "host.cpu_user",
        "host.cpu_sys",
        "host.cgroup_cpu_user",
        "host.cgroup_cpu_sys",
        "host.cgroup_cpu_total",
        "host.io_read",
        "host.io_write",
    ];
    ORDER.iter().position(|o| *o == name).unwrap_or(ORDER.len())
}

/// What a summary is computed from besides the samples; all of it is in a run's manifest.
#[derive(Debug, Clone, Default)]
pub struct SummaryInput {
    /// Workload names in display order.
    pub workload_order: Vec<String>,
    /// The run's columns in plan order (empty for runs made before factors existed).
    pub columns: Vec<Column>,
    /// The run's factors.
    pub factors: Vec<FactorLevels>,
    /// The run's backends, for the factors' scope.
    pub backends: Vec<String>,
    /// Headline metrics per workload name.
    pub primary: BTreeMap<String, Vec<String>>,
    /// The `--until-ci` rule, percent.
    pub rule_pct: Option<f64>,
    /// What `--until-ci` did.
    pub until_ci: Option<UntilCiOutcome>,
}

impl SummaryInput {
    /// Everything a stored run's manifest says about how to summarise it.
    pub fn of_run(run: &StoredRun) -> Self {
        let m = &run.manifest;
        Self {
            workload_order: workload_order(run),
            columns: m.columns.iter().map(|c| c.column.clone()).collect(),
            factors: m.suite.factors.clone(),
            backends: m.suite.backends.iter().map(|b| b.name().into()).collect(),
            primary: m.suite.primary_metrics(),
            rule_pct: m.suite.until_ci.map(|u| u.pct),
            until_ci: m.until_ci.clone(),
        }
    }
}

/// Workload names in suite order, then any others found in the samples.
pub fn workload_order(run: &StoredRun) -> Vec<String> {
    let mut workloads: Vec<String> = run
        .manifest
        .suite
        .workloads
        .iter()
        .map(|w| w.name.clone())
        .collect();
    for s in &run.samples {
        if !workloads.contains(&s.workload) {
            workloads.push(s.workload.clone());
        }
    }
    workloads
}

/// The summary of a stored run, with its factors, A/A check and precision from its manifest.
pub fn summarise_run(run: &StoredRun) -> Summary {
    summarise_with(&run.samples, &SummaryInput::of_run(run))
}

/// Computes the summary of `samples`. Workloads appear in the order of `workload_order` (the
/// suite's), metrics in the order the agent reported them, backends native, container, vm.
pub fn summarise(samples: &[Sample], workload_order: &[String]) -> Summary {
    summarise_with(
        samples,
        &SummaryInput {
            workload_order: workload_order.to_vec(),
            ..SummaryInput::default()
        },
    )
}

type Values = BTreeMap<(String, String), BTreeMap<String, Vec<f64>>>;

/// Computes the summary of `samples` with what `input` says about the run.
pub fn summarise_with(samples: &[Sample], input: &SummaryInput) -> Summary {
    // (workload, metric) -> column label -> values; plus first-seen order of metrics.
    let mut values: Values = BTreeMap::new();
    let mut meta: Meta = BTreeMap::new();
    let mut failures: BTreeMap<(String, String), FailureGroup> = BTreeMap::new();
    let mut measured = 0;
    let mut warmup = 0;
    for s in samples {
        if s.warmup {
            warmup += 1;
            continue;
        }
        measured += 1;
        let label = s.label();
        if let Some(f) = &s.failure {
            failures
                .entry((label.clone(), s.workload.clone()))
                .and_modify(|g| g.count += 1)
                .or_insert_with(|| FailureGroup {
                    backend: label.clone(),
                    workload: s.workload.clone(),
                    count: 1,
                    reason: f.to_string(),
                });
            continue;
        }
        for (i, m) in s.metrics.iter().enumerate() {
            let key = (s.workload.clone(), m.name.clone());
            meta.entry(key.clone())
                .or_insert_with(|| (m.unit.clone(), m.better, i));
            values
                .entry(key)
                .or_default()
                .entry(label.clone())
                .or_default()
                .push(m.value);
        }
    }
    let workload_order = &input.workload_order;
    let workload_pos = |w: &str| {
        workload_order
            .iter()
            .position(|x| x == w)
            .unwrap_or(usize::MAX)
    };
    let labels: Vec<String> = input.columns.iter().map(|c| c.label.clone()).collect();
    let baseline = input
        .columns
        .iter()
        .find(|c| c.backend == crate::backend::BackendKind::Native && !c.is_aa_copy())
        .map_or_else(|| "native".to_owned(), |c| c.label.clone());
    let is_headline = |w: &str, m: &str| {
        input
            .primary
            .get(w)
            .is_some_and(|p| p.iter().any(|x| x == m))
    };
    let threshold = input.rule_pct.unwrap_or(DEFAULT_PRECISION_PCT);
    let keys = sorted_keys(&values, &meta, workload_order);
    let mut rows = Vec::new();
    let mut checks = Vec::new();
    for &key in &keys {
        let Some(by_label) = values.get(key) else {
            continue;
        };
        let Some((unit, better, _)) = meta.get(key) else {
            continue;
        };
        let native = by_label.get(&baseline);
        let mut cols: Vec<&String> = by_label.keys().collect();
        cols.sort_by_key(|b| label_key(b, &labels));
        for b in cols {
            let vals = &by_label[b];
            let Some(median) = stats::median_ci(vals, LEVEL) else {
                continue;
            };
            let emulated = b.ends_with("(emulated)");
            let vs_native = match native {
                Some(n) if *b != baseline && !emulated => stats::ratio_ci(vals, n, LEVEL),
                _ => None,
            };
            let within = within_rule(&median, threshold);
            if !emulated && is_headline(&key.0, &key.1) {
                checks.push(HeadlineCheck {
                    workload: key.0.clone(),
                    metric: key.1.clone(),
                    column: b.clone(),
                    n: median.n,
                    spread_pct: spread_pct(&median),
                    within,
                });
            }
            rows.push(SummaryRow {
                workload: key.0.clone(),
                metric: key.1.clone(),
                unit: unit.clone(),
                better: *better,
                backend: b.clone(),
                median,
                vs_native,
                wide: !emulated && !within,
            });
        }
    }
    let mut failures: Vec<FailureGroup> = failures.into_values().collect();
    failures.sort_by_key(|f| (workload_pos(&f.workload), label_key(&f.backend, &labels)));

    // Headline metrics a column never reported although the workload ran there (a misspelt
    // `primary`, a metric one backend lacks): they cannot be narrowed, say so.
    let mut no_samples = Vec::new();
    // Only columns where the workload succeeded: failed trials are reported as failures.
    let ran: std::collections::BTreeSet<(&str, String)> = samples
        .iter()
        .filter(|s| s.is_measured_ok())
        .map(|s| (s.workload.as_str(), s.label()))
        .collect();
    for (w, metrics) in &input.primary {
        for m in metrics {
            for c in input
                .columns
                .iter()
                .filter(|c| ran.contains(&(w.as_str(), c.label.clone())))
            {
                let has = values
                    .get(&(w.clone(), m.clone()))
                    .is_some_and(|v| v.contains_key(&c.label));
                if !has {
                    no_samples.push((w.clone(), m.clone(), c.label.clone()));
                }
            }
        }
    }
    no_samples.sort_by_key(|(w, m, c)| (workload_pos(w), m.clone(), label_key(c, &labels)));
    let precision = (!checks.is_empty() || input.until_ci.is_some()).then(|| Precision {
        threshold_pct: threshold,
        from_rule: input.rule_pct.is_some(),
        checks,
        no_samples,
        until_ci: input.until_ci.clone(),
    });

    let effects = effects(&values, &keys, &meta, input, &is_headline);
    let aa = aa_check(&values, &keys, &meta, input, &is_headline);
    let backends: Vec<crate::backend::BackendKind> = input
        .backends
        .iter()
        .filter_map(|b| crate::backend::BackendKind::from_name(b))
        .collect();
    let factors = factors::scope(&input.factors, &backends)
        .into_iter()
        .map(|(factor, values, on)| FactorScope {
            not_applied: input
                .backends
                .iter()
                .filter(|b| !on.contains(b))
                .cloned()
                .collect(),
            factor,
            values,
            backends: on,
        })
        .collect();
    Summary {
        rows,
        failures,
        measured_samples: measured,
        warmup_samples: warmup,
        factors,
        effects,
        aa,
        precision,
    }
}

type Meta = BTreeMap<(String, String), (String, Better, usize)>;

/// The (workload, metric) keys of `values` in display order: workloads in `workload_order`, the
/// agent's metrics in the order it reported them, then the host's in a fixed order (backends
/// report different subsets, so first-seen order would depend on the shuffle).
fn sorted_keys<'v>(
    values: &'v Values,
    meta: &Meta,
    workload_order: &[String],
) -> Vec<&'v (String, String)> {
    let pos = |w: &str| {
        workload_order
            .iter()
            .position(|x| x == w)
            .unwrap_or(usize::MAX)
    };
    let mut keys: Vec<&(String, String)> = values.keys().collect();
    keys.sort_by_key(|(w, m)| {
        let order = if m.starts_with("host.") {
            host_metric_rank(m)
        } else {
            meta.get(&(w.clone(), m.clone())).map_or(0, |x| x.2)
        };
        (pos(w), w.clone(), m.starts_with("host."), order, m.clone())
    });
    keys
}

/// Every factor's effect: for each backend it applies to and each combination of the other
/// factors' values, the ratio of each of its values to its first, per metric.
fn effects(
    values: &Values,
    keys: &[&(String, String)],
    meta: &Meta,
    input: &SummaryInput,
    is_headline: &dyn Fn(&str, &str) -> bool,
) -> Vec<Effect> {
    let mut out = Vec::new();
    for f in input.factors.iter().filter(|f| f.values.len() > 1) {
        let reference = &f.values[0];
        // Columns that have this factor, copies of an A/A check left out.
        let cols: Vec<&Column> = input
            .columns
            .iter()
            .filter(|c| c.factors.contains_key(&f.name) && !c.is_aa_copy())
            .collect();
        for from in cols.iter().filter(|c| &c.factors[&f.name] == reference) {
            let others = |c: &Column| -> BTreeMap<String, String> {
                c.factors
                    .iter()
                    .filter(|(k, _)| **k != f.name && *k != AA_FACTOR)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            let fixed = others(from);
            let with = factors::label("", &fixed).trim().to_owned();
            for level in &f.values[1..] {
                let Some(to) = cols.iter().find(|c| {
                    c.backend == from.backend && &c.factors[&f.name] == level && others(c) == fixed
                }) else {
                    continue;
                };
                for key in keys {
                    let by_label = &values[*key];
                    let (Some(a), Some(b)) = (by_label.get(&from.label), by_label.get(&to.label))
                    else {
                        continue;
                    };
                    let Some(ratio) = stats::ratio_ci(b, a, LEVEL) else {
                        continue;
                    };
                    let Some((unit, better, _)) = meta.get(*key) else {
                        continue;
                    };
                    out.push(Effect {
                        factor: f.name.clone(),
                        backend: from.backend.name().into(),
                        with: with.clone(),
                        from: reference.clone(),
                        to: level.clone(),
                        workload: key.0.clone(),
                        metric: key.1.clone(),
                        unit: unit.clone(),
                        better: *better,
                        headline: is_headline(&key.0, &key.1),
                        n_from: a.len(),
                        n_to: b.len(),
                        ratio,
                    });
                }
            }
        }
    }
    out
}

/// How far a ratio's interval reaches from 1, in percent, symmetric on a log scale (an interval
/// down to 0.5 reaches as far as one up to 2: 100%): the smallest difference an A/A interval
/// resolves. 0 when the interval is 1 exactly.
pub fn resolution_pct(r: &RatioCi) -> f64 {
    let up = r.hi.max(1.0);
    let down = if r.lo > 0.0 {
        1.0 / r.lo.min(1.0)
    } else {
        f64::INFINITY
    };
    100.0 * (up.max(down) - 1.0)
}

/// The A/A check: A' / A for every metric both copies have.
fn aa_check(
    values: &Values,
    keys: &[&(String, String)],
    meta: &Meta,
    input: &SummaryInput,
    is_headline: &dyn Fn(&str, &str) -> bool,
) -> Option<AaCheck> {
    let b = input.columns.iter().find(|c| c.is_aa_copy())?;
    let mut a_factors = b.factors.clone();
    a_factors.insert(AA_FACTOR.into(), factors::AA_FIRST.into());
    let a = input
        .columns
        .iter()
        .find(|c| c.backend == b.backend && c.factors == a_factors)?;
    let mut rows = Vec::new();
    for &key in keys {
        let by_label = &values[key];
        let (Some(va), Some(vb)) = (by_label.get(&a.label), by_label.get(&b.label)) else {
            continue;
        };
        let Some(ratio) = stats::ratio_ci(vb, va, LEVEL) else {
            continue;
        };
        let Some((unit, _, _)) = meta.get(key) else {
            continue;
        };
        rows.push(AaRow {
            workload: key.0.clone(),
            metric: key.1.clone(),
            unit: unit.clone(),
            headline: is_headline(&key.0, &key.1),
            n_a: va.len(),
            n_b: vb.len(),
            resolution_pct: resolution_pct(&ratio),
            ratio,
        });
    }
    let mut headline: Vec<&AaRow> = rows.iter().filter(|r| r.headline).collect();
    headline.sort_by(|x, y| x.resolution_pct.total_cmp(&y.resolution_pct));
    let floor_pct = stats::median_sorted(
        &headline
            .iter()
            .map(|r| r.resolution_pct)
            .collect::<Vec<f64>>(),
    );
    let widest = headline
        .last()
        .map(|r| (r.workload.clone(), r.metric.clone(), r.resolution_pct));
    Some(AaCheck {
        a: a.label.clone(),
        b: b.label.clone(),
        rows,
        floor_pct,
        widest,
    })
}

/// A number with four significant digits, without scientific notation for everyday magnitudes.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e7).contains(&a) {
        format!("{x:.3e}")
    } else {
        let digits = 3 - (a.log10().floor() as i32);
        format!("{x:.*}", digits.clamp(0, 6) as usize)
    }
}

/// Lays out rows as an aligned text table with a rule under the header; columns in `right` are
/// right-aligned. A row whose first cell is not empty starts a group (a blank line before it)
/// when `groups` is set.
pub fn aligned_table(
    header: &[&str],
    lines: &[Vec<String>],
    right: &[usize],
    groups: bool,
) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for l in lines {
        for (w, cell) in widths.iter_mut().zip(l.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let fmt_row = |cells: &[String], out: &mut String| {
        let mut line = String::new();
        for (i, (c, w)) in cells.iter().zip(widths.iter()).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            if right.contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(pad));
            }
            line.push_str("  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    };
    let head: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    fmt_row(&head, &mut out);
    let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    let _ = writeln!(out, "{}", "─".repeat(total));
    for (i, l) in lines.iter().enumerate() {
        if groups && i > 0 && l.first().is_some_and(|c| !c.is_empty()) {
            out.push('\n');
        }
        fmt_row(l, &mut out);
    }
    out
}

/// `1.23x [1.10, 1.40]`.
pub fn ratio_text(r: &RatioCi) -> String {
    format!(
        "{}x [{}, {}]",
        fmt_ratio(r.ratio),
        fmt_ratio(r.lo),
        fmt_ratio(r.hi)
    )
}

/// `±4.2%`.
pub fn pct_text(p: f64) -> String {
    if !p.is_finite() {
        "an unbounded amount".into()
    } else if p >= 10.0 {
        format!("±{p:.0}%")
    } else {
        format!("±{p:.1}%")
    }
}

/// Which factors the run varied and which backends each applies to, as one sentence.
pub fn factors_sentence(summary: &Summary) -> Option<String> {
    factors_sentence_in(summary, &Catalogue::new(Lang::En))
}

/// [`factors_sentence`] in the catalogue's language.
pub fn factors_sentence_in(summary: &Summary, cat: &Catalogue) -> Option<String> {
    if summary.factors.is_empty() {
        return None;
    }
    let parts: Vec<String> = summary
        .factors
        .iter()
        .map(|f| {
            let on = if f.backends.is_empty() {
                cat.tr("factors-no-backend", &[])
            } else {
                f.backends.join(&format!(" {} ", cat.tr("word-and", &[])))
            };
            let mut p = cat.tr(
                "factors-item",
                &[
                    ("factor", &f.factor),
                    ("values", &f.values.join(", ")),
                    ("backends", &on),
                ],
            );
            if !f.not_applied.is_empty() {
                p.push_str(&cat.tr(
                    "factors-not-crossed",
                    &[(
                        "backends",
                        &f.not_applied.join(&format!(" {} ", cat.tr("word-or", &[]))),
                    )],
                ));
            }
            p
        })
        .collect();
    Some(cat.tr("factors-sentence", &[("factors", &parts.join("; "))]))
}

/// The precision of the headline intervals, and what `--until-ci` did, as sentences.
pub fn precision_sentences(p: &Precision) -> Vec<String> {
    precision_sentences_in(p, &Catalogue::new(Lang::En))
}

/// [`precision_sentences`] in the catalogue's language.
pub fn precision_sentences_in(p: &Precision, cat: &Catalogue) -> Vec<String> {
    let mut out = Vec::new();
    let pct = |x: f64| cat.nums_in(&pct_text(x));
    let total = p.checks.len();
    let wide: Vec<&HeadlineCheck> = p.wide().collect();
    let rule = if p.from_rule {
        cat.tr("precision-rule", &[("pct", &pct(p.threshold_pct))])
    } else {
        pct(p.threshold_pct)
    };
    let mut first = cat.tr(
        "precision-within",
        &[
            ("narrow", &(total - wide.len()).to_string()),
            ("total", &total.to_string()),
            ("rule", &rule),
        ],
    );
    if wide.is_empty() {
        first.push('.');
    } else {
        let list: Vec<String> = wide
            .iter()
            .take(8)
            .map(|c| {
                cat.tr(
                    "precision-item",
                    &[
                        ("workload", &c.workload),
                        ("metric", &c.metric),
                        ("column", &c.column),
                        (
                            "spread",
                            &c.spread_pct
                                .map_or_else(|| cat.tr("precision-median-zero", &[]), pct),
                        ),
                        ("n", &c.n.to_string()),
                    ],
                )
            })
            .collect();
        let more = if wide.len() > list.len() {
            cat.tr(
                "precision-more",
                &[("more", &(wide.len() - list.len()).to_string())],
            )
        } else {
            String::new()
        };
        first.push_str(&cat.tr(
            "precision-wider",
            &[
                ("wide", &wide.len().to_string()),
                ("list", &list.join("; ")),
                ("more", &more),
            ],
        ));
        if !p.from_rule {
            first.push(' ');
            first.push_str(&cat.tr("precision-advice", &[]));
        }
    }
    out.push(first);
    if let Some(u) = &p.until_ci {
        let reps: Vec<u32> = u.repetitions.values().copied().collect();
        let (lo, hi) = (
            reps.iter().min().copied().unwrap_or(0),
            reps.iter().max().copied().unwrap_or(0),
        );
        let span = if lo == hi {
            format!("{hi}")
        } else {
            cat.tr(
                "precision-span",
                &[("lo", &lo.to_string()), ("hi", &hi.to_string())],
            )
        };
        let mut line = cat.tr(
            "precision-until-ci",
            &[
                ("pct", &cat.percent(&u.rule_pct.to_string())),
                ("stopped", &cat.tr(stop_reason_catalogue_id(u.stopped), &[])),
                ("rounds", &u.extra_rounds.to_string()),
                ("span", &span),
                ("max-reps", &u.max_reps.to_string()),
                (
                    "max-wall",
                    &cat.with_unit(&format!("{:.0}", u.max_wall_s), "s"),
                ),
            ],
        );
        if !wide.is_empty() {
            let mut names: Vec<String> = wide
                .iter()
                .map(|c| format!("{} {}", c.workload, c.metric))
                .collect();
            names.dedup();
            line.push(' ');
            line.push_str(&cat.tr("precision-not-converged", &[("names", &names.join(", "))]));
        }
        out.push(line);
    }
    if !p.no_samples.is_empty() {
        let list: Vec<String> = p
            .no_samples
            .iter()
            .map(|(w, m, c)| {
                cat.tr(
                    "precision-no-sample-item",
                    &[("workload", w), ("metric", m), ("column", c)],
                )
            })
            .collect();
        out.push(cat.tr("precision-no-samples", &[("list", &list.join("; "))]));
    }
    out
}

/// The catalogue id of why `--until-ci` stopped.
pub(crate) fn stop_reason_catalogue_id(s: crate::manifest::StopReason) -> &'static str {
    use crate::manifest::StopReason;
    match s {
        StopReason::Running => "stop-running",
        StopReason::Converged => "stop-converged",
        StopReason::RepetitionCap => "stop-repetition-cap",
        StopReason::WallCap => "stop-wall-cap",
        StopReason::Interrupted => "stop-interrupted",
    }
}

/// The A/A check as a sentence: the noise floor of the host now.
pub fn aa_sentence(aa: &AaCheck) -> String {
    aa_sentence_in(aa, &Catalogue::new(Lang::En))
}

/// [`aa_sentence`] in the catalogue's language.
pub fn aa_sentence_in(aa: &AaCheck, cat: &Catalogue) -> String {
    match (aa.floor_pct, &aa.widest) {
        (Some(floor), Some((w, m, widest))) => cat.tr(
            "aa-sentence",
            &[
                ("b", &aa.b),
                ("a", &aa.a),
                ("floor", &cat.nums_in(&pct_text(floor))),
                (
                    "metrics",
                    &aa.rows.iter().filter(|r| r.headline).count().to_string(),
                ),
                ("widest", &cat.nums_in(&pct_text(*widest))),
                ("workload", w),
                ("metric", m),
            ],
        ),
        _ => cat.tr("aa-sentence-none", &[("b", &aa.b), ("a", &aa.a)]),
    }
}

/// The A/A interval of `workload` / `metric` as a cell, when the run has one.
pub fn aa_cell(summary: &Summary, workload: &str, metric: &str) -> String {
    summary
        .aa
        .as_ref()
        .and_then(|aa| aa.row(workload, metric))
        .map(|r| ratio_text(&r.ratio))
        .unwrap_or_default()
}

/// The effects of the headline metrics as an aligned table (the JSON report has every metric).
/// The catalogue ids of the factor-effects table's columns (terminal and HTML).
pub(crate) const EFFECTS_COLUMNS: [&str; 8] = [
    "term-col-factor",
    "summary-col-backend",
    "term-col-held-fixed",
    "term-col-change",
    "summary-col-workload",
    "summary-col-metric",
    "summary-col-n",
    "term-col-ratio-ci",
];

fn effects_table(summary: &Summary, cat: &Catalogue) -> String {
    let with_aa = summary.aa.is_some();
    let mut header_text: Vec<String> = EFFECTS_COLUMNS.iter().map(|id| cat.tr(id, &[])).collect();
    if with_aa {
        header_text.push(cat.tr("term-col-aa-ci", &[]));
    }
    let header: Vec<&str> = header_text.iter().map(String::as_str).collect();
    let lines: Vec<Vec<String>> = summary
        .effects
        .iter()
        .filter(|e| e.headline)
        .map(|e| {
            let mut l = vec![
                e.factor.clone(),
                e.backend.clone(),
                if e.with.is_empty() {
                    "-".into()
                } else {
                    e.with.clone()
                },
                format!("{} → {}", e.from, e.to),
                e.workload.clone(),
                format!("{} ({} {})", e.metric, cat.unit(&e.unit), arrow(e.better)),
                format!("{}/{}", e.n_from, e.n_to),
                ratio_text_in(&e.ratio, cat),
            ];
            if with_aa {
                l.push(cat.nums_in(&aa_cell(summary, &e.workload, &e.metric)));
            }
            l
        })
        .collect();
    if lines.is_empty() {
        return format!("{}\n", cat.tr("term-no-effects", &[]));
    }
    aligned_table(&header, &lines, &[6], false)
}

/// The A/A rows of the headline metrics as an aligned table.
fn aa_table(aa: &AaCheck, cat: &Catalogue) -> String {
    let lines: Vec<Vec<String>> = aa
        .rows
        .iter()
        .filter(|r| r.headline)
        .map(|r| {
            vec![
                r.workload.clone(),
                format!("{} ({})", r.metric, cat.unit(&r.unit)),
                format!("{}/{}", r.n_a, r.n_b),
                ratio_text_in(&r.ratio, cat),
                cat.nums_in(&pct_text(r.resolution_pct)),
            ]
        })
        .collect();
    let l = |id: &str| cat.tr(id, &[]);
    let header = [
        l("summary-col-workload"),
        l("summary-col-metric"),
        l("summary-col-n"),
        l("term-col-aa-ratio"),
        l("term-col-resolves"),
    ];
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    aligned_table(&header, &lines, &[2], false)
}

fn arrow(b: Better) -> &'static str {
    match b {
        Better::Higher => "↑",
        Better::Lower => "↓",
    }
}

/// Renders the summary as an aligned text table for a terminal, with the factors, precision and
/// A/A lines above it and the effects and A/A tables below.
pub fn render_table(summary: &Summary) -> String {
    render_table_in(summary, &Catalogue::new(Lang::En))
}

/// [`render_table`] in the catalogue's language: headers, numbers and the notes under the table.
pub fn render_table_in(summary: &Summary, cat: &Catalogue) -> String {
    let l = |id: &str| cat.tr(id, &[]);
    let header_text = [
        l("summary-col-workload"),
        l("summary-col-metric"),
        l("summary-col-backend"),
        l("summary-col-n"),
        l("summary-col-median"),
        l("summary-col-ci"),
        l("summary-col-unit"),
        l("summary-col-vs-native"),
    ];
    let header: Vec<&str> = header_text.iter().map(String::as_str).collect();
    let mut out = String::new();
    if let Some(f) = factors_sentence_in(summary, cat) {
        let _ = writeln!(out, "{f}");
    }
    if let Some(p) = &summary.precision {
        for line in precision_sentences_in(p, cat) {
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(aa) = &summary.aa {
        let _ = writeln!(out, "{}", aa_sentence_in(aa, cat));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut low_coverage = false;
    let mut wide = false;
    let mut last_workload = "";
    for r in &summary.rows {
        let mut ci_mark = String::new();
        if r.median.coverage + 1e-9 < LEVEL {
            low_coverage = true;
            ci_mark.push('*');
        }
        if r.wide {
            wide = true;
            ci_mark.push('~');
        }
        lines.push(vec![
            if r.workload == last_workload {
                String::new()
            } else {
                r.workload.clone()
            },
            r.metric.clone(),
            r.backend.clone(),
            r.median.n.to_string(),
            format!(
                "{}{}",
                cat.num(&fmt_num(r.median.median)),
                cell_mark_in(r, cat)
            ),
            if cat.lang() == Lang::Fr {
                // The decimal comma would make `[1,2, 3,4]` ambiguous: French separates the
                // bounds with a semicolon.
                format!(
                    "[{} ; {}]{ci_mark}{}",
                    cat.num(&fmt_num(r.median.lo)),
                    cat.num(&fmt_num(r.median.hi)),
                    cell_mark_in(r, cat)
                )
            } else {
                format!(
                    "[{}, {}]{ci_mark}{}",
                    fmt_num(r.median.lo),
                    fmt_num(r.median.hi),
                    cell_mark_in(r, cat)
                )
            },
            format!("{} {}", cat.unit(&r.unit), arrow(r.better)),
            r.vs_native
                .as_ref()
                .map(|v| ratio_text_in(v, cat))
                .unwrap_or_default(),
        ]);
        last_workload = &r.workload;
    }
    out.push_str(&aligned_table(&header, &lines, &[3, 4], true));
    if summary.rows.is_empty() {
        let _ = writeln!(out, "{}", l("summary-no-trials"));
    }
    let _ = writeln!(
        out,
        "\n{}",
        cat.tr(
            "summary-footer",
            &[
                ("measured", &cat.num(&summary.measured_samples.to_string())),
                ("warmup", &cat.num(&summary.warmup_samples.to_string())),
                (
                    "resamples",
                    &cat.num(&stats::BOOTSTRAP_RESAMPLES.to_string())
                ),
            ]
        )
    );
    if low_coverage {
        let _ = writeln!(out, "{}", l("summary-low-coverage"));
    }
    if wide {
        let threshold = summary
            .precision
            .as_ref()
            .map_or(DEFAULT_PRECISION_PCT, |p| p.threshold_pct);
        let _ = writeln!(
            out,
            "{}",
            cat.tr(
                "summary-wide",
                &[("pct", &cat.nums_in(&pct_text(threshold)))]
            )
        );
    }
    if summary
        .rows
        .iter()
        .any(|r| r.backend.ends_with("(emulated)"))
    {
        let _ = writeln!(out, "{}", l("summary-emulated"));
    }
    if !summary.effects.is_empty() {
        let _ = writeln!(
            out,
            "\n{}{}",
            cat.tr("term-effects-note", &[]),
            if summary.aa.is_some() {
                format!(" {}", cat.tr("term-effects-aa-note", &[]))
            } else {
                String::new()
            }
        );
        out.push_str(&effects_table(summary, cat));
    }
    if let Some(aa) = &summary.aa {
        let _ = writeln!(
            out,
            "\n{}",
            cat.tr("term-aa-note", &[("b", &aa.b), ("a", &aa.a)])
        );
        out.push_str(&aa_table(aa, cat));
    }
    for g in grouped_failures(summary) {
        let _ = writeln!(out, "{}", g.sentence_in(cat));
    }
    out
}

/// The cell mark of an emulated time in the catalogue's language.
fn cell_mark_in(r: &SummaryRow, cat: &Catalogue) -> String {
    if r.is_emulated_time() {
        format!(" ({})", cat.tr("emulated-time", &[]))
    } else {
        String::new()
    }
}

/// [`ratio_text`] in the catalogue's language (French: `1,03x [1,01 ; 1,05]`).
pub(crate) fn ratio_text_in(r: &RatioCi, cat: &Catalogue) -> String {
    if cat.lang() != Lang::Fr {
        return ratio_text(r);
    }
    format!(
        "{}x [{} ; {}]",
        cat.num(&fmt_ratio(r.ratio)),
        cat.num(&fmt_ratio(r.lo)),
        cat.num(&fmt_ratio(r.hi))
    )
}

/// Failed trials of one column for one reason, over every workload it hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureLine {
    /// Column label.
    pub backend: String,
    /// The reason.
    pub reason: String,
    /// Trials it covers.
    pub count: usize,
    /// The workloads it hit, in the run's order.
    pub workloads: Vec<String>,
}

impl FailureLine {
    /// [`FailureLine::sentence`] in the catalogue's language (the reason as the run recorded
    /// it).
    pub fn sentence_in(&self, cat: &Catalogue) -> String {
        let text = cat.tr_n(
            if self.reason.starts_with("unavailable:") {
                "caveat-failures-not-run"
            } else {
                "caveat-failures"
            },
            self.count,
            &[
                ("backend", &self.backend),
                ("count", &cat.num(&self.count.to_string())),
                ("workloads", &self.workloads.join(", ")),
                ("reason", self.reason.trim_end_matches('.')),
            ],
        );
        text.strip_suffix('.').map(str::to_owned).unwrap_or(text)
    }

    /// `vm: 13 trials (noop, cpu, ...) produced no result: unavailable: ...`.
    pub fn sentence(&self) -> String {
        let what = if self.reason.starts_with("unavailable:") {
            "not run"
        } else {
            "produced no result"
        };
        format!(
            "{}: {} trial{} ({}) {what}: {}",
            self.backend,
            self.count,
            if self.count == 1 { "" } else { "s" },
            self.workloads.join(", "),
            self.reason.trim_end_matches('.')
        )
    }
}

/// The run's failures said once per column and reason, with the number of trials each covers:
/// an unavailable backend fails every workload for one reason, and a report that repeats it per
/// workload buries everything else.
pub fn grouped_failures(summary: &Summary) -> Vec<FailureLine> {
    let mut out: Vec<FailureLine> = Vec::new();
    for f in &summary.failures {
        match out
            .iter_mut()
            .find(|g| g.backend == f.backend && g.reason == f.reason)
        {
            Some(g) => {
                g.count += f.count;
                if !g.workloads.contains(&f.workload) {
                    g.workloads.push(f.workload.clone());
                }
            }
            None => out.push(FailureLine {
                backend: f.backend.clone(),
                reason: f.reason.clone(),
                count: f.count,
                workloads: vec![f.workload.clone()],
            }),
        }
    }
    out
}

/// A ratio for tables and chart labels: `0.97`, `8.43`, `99.3`, `120`.
pub fn fmt_ratio(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workloads::Metric;

    #[test]
    fn times_per_something_and_iops_are_the_clock_s() {
        for timed in [
            "ms",
            "µs",
            "ns",
            "s",
            "MB/s",
            "Gbit/s",
            "1/s",
            "IOPS",
            "ns/call",
            "ms/Gbit",
            "µs/process",
            "ns/page",
        ] {
            assert!(is_time_or_rate(timed), "{timed}");
        }
        for counted in [
            "exits",
            "exits/op",
            "exits/packet",
            "MiB",
            "KiB",
            "faults",
            "interrupts/request",
            "requests",
            "",
        ] {
            assert!(!is_time_or_rate(counted), "{counted}");
        }
    }

    fn sample(backend: &str, workload: &str, value: f64, warmup: bool) -> Sample {
        Sample {
            trial: 0,
            backend: backend.into(),
            factors: std::collections::BTreeMap::new(),
            workload: workload.into(),
            kind: workload.into(),
            repetition: 0,
            warmup,
            started_at: String::new(),
            failure: None,
            emulated: false,
            metrics: vec![
                Metric::lower("x", "ns", value),
                Metric::lower("host.wall", "ms", 1.0),
            ],
            timeline: Vec::new(),
            agent: None,
            log_tail: None,
        }
    }

    #[test]
    fn summary_orders_groups_and_ratios() {
        let mut s = Vec::new();
        for i in 0..10 {
            s.push(sample("container", "b", 20.0 + f64::from(i), false));
            s.push(sample("native", "b", 10.0 + f64::from(i), false));
            s.push(sample("native", "a", 1.0, false));
        }
        s.push(sample("native", "b", 1000.0, true)); // warm-up: ignored
        let mut failed = sample("container", "a", 0.0, false);
        failed.failure = Some(crate::backend::TrialFailure::OutOfMemory);
        s.push(failed);
        let sum = summarise(&s, &["b".into(), "a".into()]);
        let keys: Vec<(String, String, String)> = sum
            .rows
            .iter()
            .map(|r| (r.workload.clone(), r.metric.clone(), r.backend.clone()))
            .collect();
        assert_eq!(keys[0], ("b".into(), "x".into(), "native".into()));
        assert_eq!(keys[1], ("b".into(), "x".into(), "container".into()));
        assert_eq!(keys[2].1, "host.wall");
        assert_eq!(keys.last().map(|k| k.0.as_str()), Some("a"));
        let native_b = &sum.rows[0];
        assert_eq!(native_b.median.median, 14.5);
        assert_eq!(native_b.median.n, 10);
        assert!(native_b.vs_native.is_none());
        let ratio = sum.rows[1].vs_native.unwrap();
        assert!((ratio.ratio - 24.5 / 14.5).abs() < 1e-12);
        assert_eq!(sum.warmup_samples, 1);
        assert_eq!(sum.failures.len(), 1);
        assert_eq!(sum.failures[0].reason, "killed: out of memory");
        let table = render_table(&sum);
        assert!(
            table.contains("14.50") && table.contains("1.69x"),
            "{table}"
        );
        assert!(table.contains("killed: out of memory"), "{table}");
    }

    #[test]
    fn resolution_is_symmetric_on_a_log_scale() {
        let r = |lo, hi| resolution_pct(&RatioCi { ratio: 1.0, lo, hi });
        assert!((r(0.5, 1.2) - 100.0).abs() < 1e-9);
        assert!((r(0.9, 2.0) - 100.0).abs() < 1e-9);
        assert!((r(1.02, 1.05) - 5.0).abs() < 1e-9);
        assert!((r(0.95, 0.98) - 100.0 / 19.0).abs() < 1e-9);
        assert_eq!(r(1.0, 1.0), 0.0);
        assert!(r(0.0, 1.1).is_infinite());
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(fmt_num(14.5), "14.50");
        assert_eq!(fmt_num(1234.567), "1235");
        assert_eq!(fmt_num(0.012_345), "0.01235");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(f64::NAN), "-");
    }
}
