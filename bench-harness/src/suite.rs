//! Suites: which workloads to run, how often, on which backends, with what sandbox size.
//!
//! A suite is a TOML file (see `suites/default.toml`, built in as the default). Errors name the
//! file, line and column, because a suite that silently ran something else would waste a run.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use workloads::spec::WORKLOAD_KINDS;
use workloads::Workload;

use crate::backend::{BackendKind, SandboxLimits};
use crate::factors::{self, FactorLevels};

/// The built-in default suite's text.
pub const DEFAULT_SUITE: &str = include_str!("../suites/default.toml");

/// One workload of a suite, with the name reports use for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteWorkload {
    /// Unique within the suite; defaults to the kind.
    pub name: String,
    /// The workload and its parameters.
    pub workload: Workload,
    /// Its headline metrics (`primary = [...]` in the suite; else the built-in suite's for its
    /// kind): what `--until-ci` narrows and the summary's precision line counts. `None` in runs
    /// made before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<Vec<String>>,
}

impl SuiteWorkload {
    /// The headline metrics: the declared ones, else the built-in suite's for this kind.
    pub fn primary_metrics(&self) -> Vec<String> {
        self.primary
            .clone()
            .unwrap_or_else(|| default_primary(self.workload.kind()))
    }
}

/// The headline metrics the built-in suite declares for workload `kind` (none for an unknown
/// kind).
pub fn default_primary(kind: &str) -> Vec<String> {
    let Ok(table) = toml::from_str::<toml::Table>(DEFAULT_SUITE) else {
        return Vec::new();
    };
    let entries = table.get("workload").and_then(toml::Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter_map(toml::Value::as_table)
        .find(|w| w.get("kind").and_then(toml::Value::as_str) == Some(kind))
        .and_then(|w| w.get("primary")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// `--until-ci`: repetitions by rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UntilCi {
    /// Stop when every headline metric's 95% interval lies within this many percent of its
    /// median (on both sides).
    pub pct: f64,
    /// Never more measured repetitions than this per column and workload.
    pub max_reps: u32,
    /// Start no new round of repetitions when it would end after this many seconds of the run.
    pub max_wall_s: f64,
}

/// Default wall-clock cap of `--until-ci`, seconds.
pub const DEFAULT_MAX_WALL_S: f64 = 3600.0;
/// Default repetition cap of `--until-ci`, as a multiple of the suite's repetitions.
pub const DEFAULT_MAX_REPS_FACTOR: u32 = 10;

impl UntilCi {
    /// The rule with its default caps for a suite of `reps` repetitions.
    pub fn with_defaults(pct: f64, reps: u32) -> Self {
        Self {
            pct,
            max_reps: reps.saturating_mul(DEFAULT_MAX_REPS_FACTOR),
            max_wall_s: DEFAULT_MAX_WALL_S,
        }
    }
}

/// Parses `5%`, `5` or `0.5%` (the `--until-ci` argument and the suite's `until_ci`).
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let v: f64 = t
        .strip_suffix('%')
        .unwrap_or(t)
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage; write e.g. 5%"))?;
    if !(v > 0.0 && v < 100.0) {
        return Err(format!(
            "{text:?}: the interval rule must be between 0% and 100%, e.g. 5%"
        ));
    }
    Ok(v)
}

/// Parses a duration such as `90s`, `30m`, `1h 30m` (the `--max-wall` argument), in seconds.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. 90s, 30m or 2h"))?;
    if d.is_zero() {
        return Err(format!("{text:?}: the wall-clock cap must be more than 0"));
    }
    Ok(d.as_secs_f64())
}

/// A parsed, validated suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    /// Where it came from (`built-in default` or a path).
    pub source: String,
    /// Measured repetitions.
    pub reps: u32,
    /// Warm-up rounds.
    pub warmup: u32,
    /// Backends, in the order given.
    pub backends: Vec<BackendKind>,
    /// Sandbox size.
    pub limits: SandboxLimits,
    /// Workloads, in the order given.
    pub workloads: Vec<SuiteWorkload>,
    /// Factors varied side by side (`[factors]`, `--factor`): every combination is a column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<FactorLevels>,
    /// The column duplicated as an A/A check (`aa`, `--aa`): `BACKEND[:FACTOR=VALUE,...]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aa: Option<String>,
    /// Repetitions by rule (`until_ci`, `--until-ci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ci: Option<UntilCi>,
    /// Rows of published tables that this suite's workloads stand for (`[replicates.STUDY]`):
    /// the reports print the published ratios to native beside the measured ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicates: Vec<Replicate>,
}

/// One row of a published table and the workload and metric of the suite that stand for it
/// (`linpack = "linpack.matmul_gflops"` under `[replicates.felter2014]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicate {
    /// The study ([`crate::published::study`]).
    pub study: String,
    /// Its row.
    pub row: String,
    /// The suite's workload (by name).
    pub workload: String,
    /// The workload's metric.
    pub metric: String,
}

/// A suite that cannot be used. Messages name the place and the fix.
#[derive(Debug, Error)]
pub enum SuiteError {
    /// The file cannot be read.
    #[error("cannot read suite file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax or a wrong value, at a place.
    #[error("{source_name}:{line}:{column}: {message}")]
    At {
        /// File name.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A problem that has no single place.
    #[error("{source_name}: {message}")]
    Invalid {
        /// File name.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    reps: Option<u32>,
    warmup: Option<u32>,
    backends: Option<Vec<toml::Spanned<String>>>,
    limits: Option<RawLimits>,
    factors: Option<toml::Spanned<toml::Table>>,
    aa: Option<toml::Spanned<String>>,
    until_ci: Option<toml::Spanned<toml::Value>>,
    max_reps: Option<toml::Spanned<u32>>,
    max_wall: Option<toml::Spanned<String>>,
    #[serde(default)]
    replicates: BTreeMap<String, toml::Spanned<BTreeMap<String, toml::Spanned<String>>>>,
    #[serde(default)]
    workload: Vec<toml::Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mib: Option<u64>,
    vcpus: Option<u32>,
    pids_max: Option<u64>,
}

/// A TOML string, integer, float or boolean as text (factor values may be written `2` or `"2"`).
fn toml_scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(if *b { "on" } else { "off" }.to_owned()),
        _ => None,
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

impl Suite {
    /// The built-in default suite.
    pub fn default_suite() -> Result<Suite, SuiteError> {
        Self::parse(DEFAULT_SUITE, "built-in default suite")
    }

    /// Reads and parses a suite file.
    pub fn from_file(path: &Path) -> Result<Suite, SuiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses suite text; `source_name` is used in messages.
    pub fn parse(text: &str, source_name: &str) -> Result<Suite, SuiteError> {
        let at = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            SuiteError::At {
                source_name: source_name.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: RawSuite = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().to_owned())
        })?;
        let mut backends = Vec::new();
        for b in raw.backends.unwrap_or_else(|| {
            BackendKind::DEFAULT
                .iter()
                .map(|k| toml::Spanned::new(0..0, k.name().to_owned()))
                .collect()
        }) {
            let kind = BackendKind::from_name(b.get_ref()).ok_or_else(|| {
                at(
                    b.span().start,
                    format!(
                        "unknown backend {:?}; choose from native, container, vm, qemu-tcg",
                        b.get_ref()
                    ),
                )
            })?;
            if !backends.contains(&kind) {
                backends.push(kind);
            }
        }
        let defaults = SandboxLimits::default();
        let limits = raw.limits.map_or(defaults, |l| SandboxLimits {
            memory_mib: l.memory_mib.unwrap_or(defaults.memory_mib),
            vcpus: l.vcpus.unwrap_or(defaults.vcpus),
            pids_max: l.pids_max.unwrap_or(defaults.pids_max),
        });
        let mut workloads: Vec<SuiteWorkload> = Vec::new();
        for entry in raw.workload {
            let span = entry.span();
            let mut table = entry.into_inner();
            let name = match table.remove("name") {
                None => None,
                Some(toml::Value::String(s)) => Some(s),
                Some(_) => return Err(at(span.start, "`name` must be a string".into())),
            };
            let primary = match table.remove("primary") {
                None => None,
                Some(toml::Value::Array(a)) => Some(
                    a.iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<Vec<String>>>()
                        .ok_or_else(|| {
                            at(
                                span.start,
                                "`primary` must be a list of metric names, e.g. primary = [\"tcp_rtt\"]"
                                    .into(),
                            )
                        })?,
                ),
                Some(_) => {
                    return Err(at(
                        span.start,
                        "`primary` must be a list of metric names, e.g. primary = [\"tcp_rtt\"]"
                            .into(),
                    ))
                }
            };
            let kind = match table.get("kind") {
                Some(toml::Value::String(s)) => s.clone(),
                _ => {
                    return Err(at(
                        span.start,
                        format!(
                            "every [[workload]] needs kind = \"...\", one of: {}",
                            WORKLOAD_KINDS.join(", ")
                        ),
                    ))
                }
            };
            if !WORKLOAD_KINDS.contains(&kind.as_str()) {
                return Err(at(
                    span.start,
                    format!(
                        "unknown workload kind {kind:?}; choose from: {}",
                        WORKLOAD_KINDS.join(", ")
                    ),
                ));
            }
            let workload: Workload =
                toml::Value::Table(table)
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        at(span.start, format!("workload {kind:?}: {}", e.message()))
                    })?;
            let name = name.unwrap_or_else(|| kind.clone());
            if workloads.iter().any(|w| w.name == name) {
                return Err(at(
                    span.start,
                    format!("two workloads are named {name:?}; give one a `name = \"...\"`"),
                ));
            }
            let primary = Some(primary.unwrap_or_else(|| default_primary(&kind)));
            workloads.push(SuiteWorkload {
                name,
                workload,
                primary,
            });
        }
        let mut factors = Vec::new();
        if let Some(table) = raw.factors {
            let start = table.span().start;
            // In the order of the file (a TOML table is sorted by key): the first factor varies
            // slowest.
            let mut entries: Vec<(String, toml::Value)> = table.into_inner().into_iter().collect();
            let pos = |k: &str| text[start..].find(&format!("\n{k}")).unwrap_or(usize::MAX);
            entries.sort_by_key(|(k, _)| pos(k));
            for (name, value) in entries {
                let values: Option<Vec<String>> = match &value {
                    toml::Value::Array(a) => a.iter().map(toml_scalar).collect(),
                    v => toml_scalar(v).map(|s| vec![s]),
                };
                let values = values.ok_or_else(|| {
                    at(
                        start,
                        format!(
                            "factor {name}: write a list of values, e.g. {name} = [\"a\", \"b\"]"
                        ),
                    )
                })?;
                let checked = factors::check(&FactorLevels { name, values })
                    .map_err(|e| at(start, e.to_string()))?;
                factors.push(checked);
            }
        }
        let reps = raw.reps.unwrap_or(10);
        let until_ci = match raw.until_ci {
            None => None,
            Some(v) => {
                let span = v.span();
                let text_value = toml_scalar(v.get_ref()).unwrap_or_default();
                let pct = parse_percent(&text_value).map_err(|e| at(span.start, e))?;
                let mut rule = UntilCi::with_defaults(pct, reps);
                if let Some(m) = &raw.max_reps {
                    rule.max_reps = *m.get_ref();
                }
                if let Some(w) = &raw.max_wall {
                    rule.max_wall_s =
                        parse_duration(w.get_ref()).map_err(|e| at(w.span().start, e))?;
                }
                Some(rule)
            }
        };
        if until_ci.is_none() {
            if let Some(span) = raw
                .max_reps
                .as_ref()
                .map(|m| m.span())
                .or_else(|| raw.max_wall.as_ref().map(|w| w.span()))
            {
                return Err(at(
                    span.start,
                    "max_reps and max_wall are the caps of until_ci; set until_ci too".into(),
                ));
            }
        }
        let mut replicates = Vec::new();
        for (study_id, rows) in raw.replicates {
            let Some(study) = crate::published::study(&study_id) else {
                return Err(at(
                    rows.span().start,
                    format!(
                        "unknown study {study_id:?} in [replicates]; isolab knows: {}",
                        crate::published::STUDIES
                            .iter()
                            .map(|s| s.id)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            for (row_id, target) in rows.into_inner() {
                let pos = target.span().start;
                let row = study.row(&row_id).ok_or_else(|| {
                    at(
                        pos,
                        format!(
                            "{study_id} has no row {row_id:?}; its rows: {}",
                            study.row_ids()
                        ),
                    )
                })?;
                let Some((workload, metric)) = target.get_ref().split_once('.') else {
                    return Err(at(
                        pos,
                        format!(
                            "write {row_id} = \"WORKLOAD.METRIC\", e.g. \"{}.{}\"",
                            row.kinds.first().unwrap_or(&"cpu"),
                            row.metric_hint
                        ),
                    ));
                };
                let entry = workloads
                    .iter()
                    .find(|w| w.name == workload)
                    .ok_or_else(|| {
                        at(
                            pos,
                            format!("{row_id}: the suite has no workload named {workload:?}"),
                        )
                    })?;
                row.check_workload(&entry.workload)
                    .map_err(|e| at(pos, e))?;
                replicates.push(Replicate {
                    study: study_id.clone(),
                    row: row_id,
                    workload: workload.to_owned(),
                    metric: metric.to_owned(),
                });
            }
        }
        let suite = Suite {
            replicates,
            source: source_name.to_owned(),
            reps,
            warmup: raw.warmup.unwrap_or(1),
            backends,
            limits,
            workloads,
            factors,
            aa: raw.aa.map(toml::Spanned::into_inner),
            until_ci,
        };
        suite.validate()?;
        Ok(suite)
    }

    /// Checks the values that parse but cannot run.
    pub fn validate(&self) -> Result<(), SuiteError> {
        let invalid = |message: String| SuiteError::Invalid {
            source_name: self.source.clone(),
            message,
        };
        if self.workloads.is_empty() {
            return Err(invalid(
                "the suite has no [[workload]]; add at least one".into(),
            ));
        }
        if self.backends.is_empty() {
            return Err(invalid("the suite lists no backends".into()));
        }
        if self.reps == 0 {
            return Err(invalid("reps must be at least 1".into()));
        }
        if self.limits.memory_mib < 64 || self.limits.vcpus == 0 || self.limits.pids_max < 16 {
            return Err(invalid(
                "limits too small (the suite's [limits], or --vcpus / --memory-mib): memory_mib ≥ 64, vcpus ≥ 1, pids_max ≥ 16".into(),
            ));
        }
        // Bounds of what the VMM and a container runtime can sensibly be given.
        if self.limits.vcpus > 64 || self.limits.memory_mib > 1 << 20 {
            return Err(invalid(
                "limits too large (the suite's [limits], or --vcpus / --memory-mib): vcpus ≤ 64, memory_mib ≤ 1048576 (1 TiB)".into(),
            ));
        }
        if let Some(rule) = &self.until_ci {
            if !(rule.pct > 0.0 && rule.pct < 100.0) {
                return Err(invalid(
                    "until_ci must be between 0% and 100%, e.g. 5%".into(),
                ));
            }
            if rule.max_reps < self.reps {
                return Err(invalid(format!(
                    "max_reps ({}) is below reps ({}); the cap of --until-ci counts every measured \
                     repetition, so it must be at least reps",
                    rule.max_reps, self.reps
                )));
            }
            if !(rule.max_wall_s.is_finite() && rule.max_wall_s > 0.0) {
                return Err(invalid("max_wall must be a positive duration".into()));
            }
        }
        for r in &self.replicates {
            self.check_replicate(r)
                .map_err(|e| invalid(format!("[replicates.{}] {}: {e}", r.study, r.row)))?;
        }
        self.columns().map_err(|e| invalid(e.to_string()))?;
        Ok(())
    }

    /// Why replicated row `r` no longer has a workload that can stand for it (after a change
    /// of the suite), or `Ok`.
    fn check_replicate(&self, r: &Replicate) -> Result<(), String> {
        let row = crate::published::study(&r.study)
            .and_then(|s| s.row(&r.row))
            .ok_or_else(|| "no such published row".to_owned())?;
        let w = self
            .workloads
            .iter()
            .find(|w| w.name == r.workload)
            .ok_or_else(|| format!("the suite has no workload named {:?}", r.workload))?;
        row.check_workload(&w.workload)
    }

    /// The columns of this suite's runs: every backend crossed with the factors that apply to
    /// it, and the A/A copy.
    pub fn columns(&self) -> Result<Vec<factors::Column>, factors::FactorError> {
        let checked = factors::check_all(&self.factors, &self.backends)?;
        factors::columns(&self.backends, &checked, self.aa.as_deref())
    }

    /// Sets factor `levels`, replacing the suite's factor of the same name.
    pub fn set_factor(&mut self, levels: FactorLevels) {
        match self.factors.iter_mut().find(|f| f.name == levels.name) {
            Some(f) => *f = levels,
            None => self.factors.push(levels),
        }
    }

    /// The headline metrics of each workload, by workload name.
    pub fn primary_metrics(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.workloads
            .iter()
            .map(|w| (w.name.clone(), w.primary_metrics()))
            .collect()
    }

    /// Keeps only the workloads whose name or kind is in `names`. Unknown names are errors.
    pub fn retain_workloads(&mut self, names: &[String]) -> Result<(), SuiteError> {
        for n in names {
            let known = self
                .workloads
                .iter()
                .any(|w| &w.name == n || w.workload.kind() == n);
            if !known {
                let message = if WORKLOAD_KINDS.contains(&n.as_str()) {
                    format!("workload {n:?} is not in this suite; add it to the suite file")
                } else {
                    format!(
                        "unknown workload {n:?}; choose from: {}",
                        self.workloads
                            .iter()
                            .map(|w| w.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(SuiteError::Invalid {
                    source_name: self.source.clone(),
                    message,
                });
            }
        }
        self.workloads
            .retain(|w| names.iter().any(|n| &w.name == n || w.workload.kind() == n));
        let kept = &self.workloads;
        self.replicates
            .retain(|r| kept.iter().any(|w| w.name == r.workload));
        Ok(())
    }

    /// Sets the queue depth of every `io-rand` workload (`isolab run --io-depth N`, over the
    /// suite's `depth`). A run without one, or a depth outside 1..=1024, is an error: the flag
    /// would otherwise do nothing, or fail in every sandbox.
    pub fn set_io_depth(&mut self, depth: u32) -> Result<(), SuiteError> {
        let invalid = |message: String| SuiteError::Invalid {
            source_name: self.source.clone(),
            message,
        };
        let max = workloads::kernels::io::rand::MAX_DEPTH;
        if !(1..=max).contains(&u64::from(depth)) {
            return Err(invalid(format!(
                "--io-depth {depth}: the queue depth must be from 1 to {max}"
            )));
        }
        let mut found = false;
        for w in &mut self.workloads {
            if let Workload::IoRand(p) = &mut w.workload {
                p.depth = depth;
                found = true;
            }
        }
        if !found {
            return Err(invalid(
                "--io-depth sets the queue depth of io-rand, and this run has no io-rand workload; add `--workload io-rand` or an io-rand to the suite".into(),
            ));
        }
        // A published row measured at another depth is no longer replicated by this run.
        let kept: Vec<Replicate> = self
            .replicates
            .iter()
            .filter(|r| self.check_replicate(r).is_ok())
            .cloned()
            .collect();
        self.replicates = kept;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_suite_parses_and_covers_every_workload() {
        let s = Suite::default_suite().unwrap();
        let kinds: Vec<&str> = s.workloads.iter().map(|w| w.workload.kind()).collect();
        for k in WORKLOAD_KINDS {
            assert!(kinds.contains(k), "default suite lacks {k}");
        }
        assert_eq!(s.backends, BackendKind::DEFAULT.to_vec());
        assert!(s.reps >= 5);
    }

    #[test]
    fn the_felter_suite_parses_and_says_which_rows_it_replicates() {
        let text = include_str!("../suites/felter.toml");
        let s = Suite::parse(text, "felter.toml").unwrap();
        let rows: Vec<&str> = s.replicates.iter().map(|r| r.row.as_str()).collect();
        for row in [
            "linpack",
            "stream-copy",
            "stream-triad",
            "randomaccess",
            "fio-seq-read",
            "fio-rand-read-qd128",
            "fio-rand-write-qd128",
            "netperf-tcp-rr",
            "netperf-udp-rr",
            "nuttcp-stream",
        ] {
            assert!(rows.contains(&row), "{row} missing from {rows:?}");
        }
        assert!(s.replicates.iter().all(|r| r.study == "felter2014"));
        // Every row of the study is either replicated or named in the file as waiting.
        let study = crate::published::study("felter2014").unwrap();
        for row in study.rows {
            assert!(
                rows.contains(&row.id) || text.contains(&format!("# {} = ", row.id)),
                "felter.toml neither replicates nor mentions {}",
                row.id
            );
        }
    }

    #[test]
    fn another_io_depth_no_longer_stands_for_their_qd_128() {
        let mut s = Suite::parse(include_str!("../suites/felter.toml"), "felter.toml").unwrap();
        let before = s.replicates.len();
        s.set_io_depth(32).unwrap();
        s.validate().unwrap();
        let rows: Vec<&str> = s.replicates.iter().map(|r| r.row.as_str()).collect();
        assert_eq!(rows.len(), before - 2, "{rows:?}");
        assert!(!rows.iter().any(|r| r.contains("qd128")), "{rows:?}");
        // Set back to their depth, the rows are not invented again: the run said what it ran.
        s.set_io_depth(128).unwrap();
        assert_eq!(s.replicates.len(), before - 2);
    }

    #[test]
    fn replicated_rows_name_a_workload_of_the_right_kind() {
        let head = "[[workload]]\nname = \"linpack\"\nkind = \"cpu\"\n\
                    [[workload]]\nkind = \"io-rand\"\n[replicates.felter2014]\n";
        let s = Suite::parse(
            &format!("{head}linpack = \"linpack.matmul_gflops\"\n"),
            "f.toml",
        )
        .unwrap();
        assert_eq!(
            s.replicates,
            vec![Replicate {
                study: "felter2014".into(),
                row: "linpack".into(),
                workload: "linpack".into(),
                metric: "matmul_gflops".into(),
            }]
        );
        let bad = |line: &str| {
            Suite::parse(&format!("{head}{line}\n"), "f.toml")
                .unwrap_err()
                .to_string()
        };
        let e = bad("stream-triad = \"linpack.stream_triad\"");
        assert!(e.starts_with("f.toml:7:") && e.contains("mem-bw"), "{e}");
        assert!(bad("linpak = \"linpack.x\"").contains("its rows: linpack"));
        assert!(bad("linpack = \"cpu.matmul_gflops\"").contains("no workload named \"cpu\""));
        assert!(bad("linpack = \"linpack\"").contains("WORKLOAD.METRIC"));
        // io-rand at depth 1 does not stand for their QD 128.
        assert!(bad("fio-rand-read-qd128 = \"io-rand.rand_read_iops\"").contains("128"));
        let e = Suite::parse(&format!("{head}[replicates.nobody]\n"), "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("felter2014"), "{e}");
        // Leaving the workload out of a run leaves its row out too.
        let mut s = s;
        s.retain_workloads(&["io-rand".into()]).unwrap();
        assert!(s.replicates.is_empty());
    }

    #[test]
    fn errors_name_line_and_column() {
        let text = "reps = 3\n\n[[workload]]\nkind = \"cpu\"\nmatrx_n = 4\n";
        let e = Suite::parse(text, "s.toml").unwrap_err().to_string();
        assert!(e.starts_with("s.toml:3:1:"), "{e}");
        assert!(e.contains("matrx_n"), "{e}");

        let e = Suite::parse("reps = \"many\"\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:1:8:"), "{e}");

        let text = "backends = [\"native\", \"kvm\"]\n[[workload]]\nkind = \"noop\"\n";
        let e = Suite::parse(text, "s.toml").unwrap_err().to_string();
        assert!(e.starts_with("s.toml:1:23:") && e.contains("kvm"), "{e}");

        let e = Suite::parse("[[workload]]\nkind = \"gpu\"\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("unknown workload kind"), "{e}");
        let e = Suite::parse(
            "[[workload]]\nkind = \"noop\"\n[[workload]]\nkind = \"noop\"\n",
            "s",
        )
        .unwrap_err();
        assert!(e.to_string().contains("two workloads are named"), "{e}");
    }

    #[test]
    fn factors_rules_and_primary_metrics_come_from_the_file() {
        let text =
            "reps = 4\n[limits]\nvcpus = 1\n[factors]\nvcpus = [2, 1]\nuserns = [\"on\", false]\n\
                    memory-mib = 256\n\
                    [[workload]]\nkind = \"noop\"\n\
                    [[workload]]\nkind = \"timer\"\nprimary = [\"nanosleep_overshoot_p99\"]\n";
        let s = Suite::parse(text, "s").unwrap();
        // The file's order (not the key order): the first factor varies slowest.
        let names: Vec<&str> = s.factors.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["vcpus", "userns", "memory-mib"]);
        assert_eq!(s.factors[0].values, ["2", "1"]);
        assert_eq!(s.factors[1].values, ["on", "off"]);
        assert_eq!(s.factors[2].values, ["256"]);
        assert_eq!(s.workloads[0].primary_metrics(), ["host.start_to_ready"]);
        assert_eq!(
            s.workloads[1].primary_metrics(),
            ["nanosleep_overshoot_p99"]
        );
        assert!(s.until_ci.is_none());

        let s = Suite::parse(
            "reps = 4\nuntil_ci = \"2.5%\"\nmax_wall = \"90s\"\n[[workload]]\nkind = \"noop\"\n",
            "s",
        )
        .unwrap();
        let rule = s.until_ci.unwrap();
        assert_eq!((rule.pct, rule.max_reps, rule.max_wall_s), (2.5, 40, 90.0));

        for (text, want) in [
            ("[factors]\nseccompx = [\"a\"]\n", "s:1:1: unknown factor"),
            (
                "[factors]\nvm-in-emulator = [\"off\", \"on\"]\n",
                "cannot vary within one run",
            ),
            ("[factors]\nvcpus = [0]\n", "is not a value of it"),
            ("max_reps = 3\n", "set until_ci too"),
            ("until_ci = \"120%\"\n", "between 0% and 100%"),
            (
                "until_ci = 5\nmax_reps = 2\nreps = 3\n",
                "max_reps (2) is below reps (3)",
            ),
            ("until_ci = 5\nmax_wall = \"soon\"\n", "is not a duration"),
            ("aa = \"docker\"\n", "unknown backend"),
            (
                "backends = [\"native\"]\n[factors]\nuserns = [\"on\"]\n",
                "applies to container only",
            ),
        ] {
            let text = format!("{text}[[workload]]\nkind = \"noop\"\n");
            let e = Suite::parse(&text, "s").unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = Suite::parse("[[workload]]\nkind = \"noop\"\nprimary = \"t\"\n", "s").unwrap_err();
        assert!(e.to_string().contains("list of metric names"), "{e}");
    }

    #[test]
    fn percent_and_duration_arguments() {
        assert_eq!(parse_percent("5%"), Ok(5.0));
        assert_eq!(parse_percent(" 0.5 "), Ok(0.5));
        assert!(parse_percent("0%").is_err() && parse_percent("five").is_err());
        assert_eq!(parse_duration("1h 30m"), Ok(5400.0));
        assert!(parse_duration("0s").is_err() && parse_duration("1 fortnight").is_err());
    }

    #[test]
    fn the_built_in_suite_declares_primary_metrics_for_every_kind() {
        let s = Suite::default_suite().unwrap();
        for w in &s.workloads {
            assert!(w.primary.is_some(), "{} has no primary", w.name);
            assert_eq!(
                w.primary_metrics(),
                default_primary(w.workload.kind()),
                "{}",
                w.name
            );
            if w.workload.kind() != "inspect" {
                assert!(!w.primary_metrics().is_empty(), "{}", w.name);
            }
        }
    }

    #[test]
    fn named_entries_and_filtering() {
        let text = "[[workload]]\nname = \"lat-small\"\nkind = \"mem-lat\"\nworking_set_kib = 16\n\
                    [[workload]]\nkind = \"noop\"\n";
        let mut s = Suite::parse(text, "s").unwrap();
        assert_eq!(s.workloads[0].name, "lat-small");
        s.retain_workloads(&["mem-lat".into()]).unwrap();
        assert_eq!(s.workloads.len(), 1);
        assert!(s.retain_workloads(&["bogus".into()]).is_err());
    }

    #[test]
    fn io_depth_sets_every_io_rand_and_refuses_runs_without_one() {
        let mut suite = Suite::default_suite().unwrap();
        suite.set_io_depth(32).unwrap();
        let depths: Vec<u32> = suite
            .workloads
            .iter()
            .filter_map(|w| match &w.workload {
                Workload::IoRand(p) => Some(p.depth),
                _ => None,
            })
            .collect();
        assert_eq!(depths, [32]);
        assert!(suite.set_io_depth(0).is_err());
        assert!(suite.set_io_depth(5000).is_err());
        suite.retain_workloads(&["noop".to_owned()]).unwrap();
        let err = suite.set_io_depth(8).unwrap_err();
        assert!(err.to_string().contains("no io-rand"), "{err}");
        // And in a suite file.
        let s = Suite::parse("[[workload]]\nkind = \"io-rand\"\ndepth = 16\n", "t.toml").unwrap();
        assert!(matches!(&s.workloads[0].workload, Workload::IoRand(p) if p.depth == 16));
    }
}
