//! Suites: which workloads to run, how often, on which backends, with what sandbox size.
//!
//! A suite is a TOML file (see `suites/default.toml`, built in as the default). Errors name the
//! file, line and column, because a suite that silently ran something else would waste a run.

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use workloads::spec::WORKLOAD_KINDS;
use workloads::Workload;

use crate::backend::{BackendKind, SandboxLimits};

/// The built-in default suite's text.
pub const DEFAULT_SUITE: &str = include_str!("../suites/default.toml");

/// One workload of a suite, with the name reports use for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteWorkload {
    /// Unique within the suite; defaults to the kind.
    pub name: String,
    /// The workload and its parameters.
    pub workload: Workload,
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
            BackendKind::ALL
                .iter()
                .map(|k| toml::Spanned::new(0..0, k.name().to_owned()))
                .collect()
        }) {
            let kind = BackendKind::from_name(b.get_ref()).ok_or_else(|| {
                at(
                    b.span().start,
                    format!(
                        "unknown backend {:?}; choose from native, container, vm",
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
            workloads.push(SuiteWorkload { name, workload });
        }
        let suite = Suite {
            source: source_name.to_owned(),
            reps: raw.reps.unwrap_or(10),
            warmup: raw.warmup.unwrap_or(1),
            backends,
            limits,
            workloads,
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
        Ok(())
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
        assert_eq!(s.backends, BackendKind::ALL.to_vec());
        assert!(s.reps >= 5);
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
