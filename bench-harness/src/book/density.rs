//! The book's capacity figures, from a density run (`isolab density`, given to `isolab book` with
//! `--density RUN_DIR`): memory per instance on one meter for every backend, how many fit, start
//! under load. Without such a run every value says it was not measured, and how to measure it.

use std::fmt::Write as _;

use super::facts::{md_text, NOT_MEASURED};
use crate::density::analysis::{self, BackendSummary, PerCount, Summary};
use crate::density::instance::Kind;
use crate::density::record::DensityRun;
use crate::density::render;
use crate::summary::fmt_num;

/// The backends a `density` placeholder may name.
pub(crate) const DENSITY_BACKENDS: [&str; 4] = ["native", "container", "floor", "vm"];

/// The values a `density BACKEND WHAT` placeholder may ask for.
pub(crate) const DENSITY_VALUES: [&str; 14] = [
    "marginal",
    "fixed",
    "pss",
    "fit",
    "cgroup",
    "start-p50",
    "start-p99",
    "start-max",
    "beside",
    "teardown",
    "recovery",
    "largest-n",
    "vm-split",
    "ksm",
];

/// A density run and its summary, if the book has one.
#[derive(Debug, Default)]
pub(crate) struct DensityFacts {
    run: Option<(DensityRun, Summary)>,
}

fn mib(kib: f64) -> String {
    format!("{} MiB", fmt_num(kib / 1024.0))
}

/// `0.88 MiB per instance [95% CI 0.87–0.89]`.
fn slope_text(s: Option<analysis::Slope>) -> Option<String> {
    s.map(|s| {
        format!(
            "{} per instance [95% CI {}–{}]",
            mib(s.per_instance_kib),
            fmt_num(s.lo / 1024.0),
            fmt_num(s.hi / 1024.0)
        )
    })
}

impl DensityFacts {
    pub(crate) fn new(run: Option<&DensityRun>) -> Self {
        Self {
            run: run.map(|r| (r.clone(), analysis::summarise(r))),
        }
    }

    fn no_run() -> String {
        format!(
            "*{NOT_MEASURED} (no density run: measure one with `isolab density`, then build the \
             book with `isolab book --density RUN_DIR`)*"
        )
    }

    fn backend(&self, name: &str) -> Result<(&DensityRun, &BackendSummary), String> {
        let Some((run, s)) = &self.run else {
            return Err(Self::no_run());
        };
        let kind = Kind::from_name(name).ok_or_else(|| format!("unknown backend {name}"))?;
        s.of(kind).map(|b| (run, b)).ok_or_else(|| {
            let why = run
                .manifest
                .stops
                .iter()
                .find(|st| st.backend == kind)
                .map_or_else(
                    || {
                        format!(
                            "{} was not in density run {}",
                            kind.label(),
                            run.manifest.run_id
                        )
                    },
                    |st| st.reason.clone(),
                );
            format!("*{NOT_MEASURED} ({})*", md_text(&why))
        })
    }

    /// The run's id, or that there is none.
    pub(crate) fn run_id(&self) -> String {
        match &self.run {
            Some((r, _)) => md_text(&r.manifest.run_id),
            None => Self::no_run(),
        }
    }

    /// The density run's method, in prose.
    pub(crate) fn method(&self) -> String {
        match &self.run {
            Some((r, _)) => md_text(&render::method(r)),
            None => Self::no_run(),
        }
    }

    /// One figure of a backend (`{{isolab:density BACKEND WHAT}}`).
    pub(crate) fn value(&self, backend: &str, what: &str) -> String {
        self.value_of(backend, what)
            .unwrap_or_else(|missing| missing)
    }

    /// A value, labelled where it was measured in the emulated machine: its memory figures are
    /// that machine's, its times are not performance figures.
    fn value_of(&self, backend: &str, what: &str) -> Result<String, String> {
        let text = self.plain_value_of(backend, what)?;
        let (_, b) = self.backend(backend)?;
        Ok(match (b.emulated, what) {
            (false, _) | (true, "largest-n") => text,
            (
                true,
                "start-p50" | "start-p99" | "start-max" | "beside" | "teardown" | "recovery",
            ) => {
                format!("{text}, emulated: not a performance figure")
            }
            (true, _) => format!("{text}, in the emulated machine"),
        })
    }

    fn plain_value_of(&self, backend: &str, what: &str) -> Result<String, String> {
        let (run, b) = self.backend(backend)?;
        let largest = b
            .counts
            .iter()
            .rev()
            .find(|c| c.start.is_some())
            .ok_or_else(|| format!("*{NOT_MEASURED} (no instance of {backend} got ready)*"))?;
        let missing = |why: &str| format!("*{NOT_MEASURED} ({why})*");
        let at = |c: &PerCount| format!(" at N = {}", c.count);
        Ok(match what {
            "marginal" => {
                let s = b
                    .marginal
                    .ok_or_else(|| missing("fewer than two Ns measured"))?;
                format!(
                    "{} per instance [95% CI {}–{}]",
                    mib(s.per_instance_kib),
                    fmt_num(s.lo / 1024.0),
                    fmt_num(s.hi / 1024.0)
                )
            }
            "fixed" => {
                let s = b
                    .marginal
                    .ok_or_else(|| missing("fewer than two Ns measured"))?;
                mib(s.fixed_kib)
            }
            "pss" => {
                slope_text(b.pss_marginal).ok_or_else(|| missing("fewer than two Ns measured"))?
            }
            "fit" => {
                let f = b
                    .fit
                    .ok_or_else(|| missing("no positive marginal memory"))?;
                let hi = f.hi.map_or("no bound".to_owned(), |h| format!("{h:.0}"));
                format!(
                    "{:.0} instances [{:.0}–{hi}] with {}% of the host's memory kept free",
                    f.instances, f.lo, run.manifest.headroom_pct
                )
            }
            "cgroup" => {
                let c = b
                    .counts
                    .iter()
                    .rev()
                    .find(|c| c.cgroup_mib.is_some())
                    .ok_or_else(|| missing("only a container has a cgroup of its own"))?;
                let m = c.cgroup_mib.ok_or_else(|| missing("no cgroup"))?;
                format!("{} MiB per instance{}", fmt_num(m.median), at(c))
            }
            "start-p50" | "start-p99" | "start-max" => {
                let p = largest.start.ok_or_else(|| missing("no start"))?;
                let v = match what {
                    "start-p50" => p.p50,
                    "start-p99" => p.p99,
                    _ => p.max,
                };
                format!(
                    "{} ms{} ({} at a time, n = {})",
                    fmt_num(v),
                    at(largest),
                    run.manifest.parallel.text(),
                    p.n
                )
            }
            "beside" => {
                let p = largest
                    .beside
                    .ok_or_else(|| missing("no start beside N was measured"))?;
                format!(
                    "{} ms beside N = {} running (n = {})",
                    fmt_num(p.p50),
                    largest.count,
                    p.n
                )
            }
            "teardown" => {
                let t = largest
                    .teardown_ms
                    .ok_or_else(|| missing("no teardown was timed"))?;
                format!("{} ms for {} instances", fmt_num(t.median), largest.count)
            }
            "recovery" => match largest.recovery_ms {
                Some(t) => format!("{} ms", fmt_num(t.median)),
                None => missing("MemAvailable was not back within the wait"),
            },
            "largest-n" => largest.count.to_string(),
            "vm-split" => {
                let (c, v) = b
                    .counts
                    .iter()
                    .rev()
                    .find_map(|c| Some((c, c.vm?)))
                    .ok_or_else(|| missing("only a VM has a guest and a VMM"))?;
                let mut text = format!(
                    "{} MiB of guest RAM touched and {} MiB of the VMM's own per VM (PSS of its \
                     VMM process){}",
                    fmt_num(v.guest_ram_mib.median),
                    fmt_num(v.vmm_overhead_mib.median),
                    at(c)
                );
                if let (Some(used), Some(total)) = (v.guest_used_mib, v.guest_total_mib) {
                    text.push_str(&format!(
                        "; inside, the guest's kernel and agent used {} MiB of the {} MiB its \
                         kernel manages",
                        fmt_num(used.median),
                        fmt_num(total.median)
                    ));
                }
                text
            }
            "ksm" => {
                let (c, k) = b
                    .counts
                    .iter()
                    .rev()
                    .find_map(|c| Some((c, c.ksm?)))
                    .ok_or_else(|| missing("KSM was not on for this run: `--ksm on`"))?;
                format!(
                    "{} pages merged into {} ({} MiB saved) after {} s{}",
                    fmt_num(k.pages_sharing + k.pages_shared),
                    fmt_num(k.pages_shared),
                    fmt_num(k.saved_mib),
                    fmt_num(k.waited_ms / 1000.0),
                    at(c)
                )
            }
            other => {
                return Err(format!(
                    "unknown density value `{other}`; choose from {}",
                    DENSITY_VALUES.join(", ")
                ))
            }
        })
    }

    /// The capacity table: per backend the marginal memory, fixed cost, PSS, how many fit, start.
    pub(crate) fn capacity_table(&self) -> String {
        let Some((run, s)) = &self.run else {
            return Self::no_run();
        };
        let mut o = format!(
            "| backend | marginal memory per instance (MemAvailable drop vs N) | fixed cost | PSS per instance | instances that fit, {}% kept free | start p50 / p99 at the largest N | teardown |\n|---|---|---|---|---|---|---|\n",
            run.manifest.headroom_pct
        );
        for b in &s.backends {
            let name = b.backend.name();
            let v = |w: &str| self.value(name, w);
            let start = match (
                self.value_of(name, "start-p50"),
                self.value_of(name, "start-p99"),
            ) {
                (Ok(a), Ok(c)) => format!("{a} / {c}"),
                (Err(e), _) | (_, Err(e)) => e,
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {start} | {} |",
                b.label(),
                v("marginal"),
                v("fixed"),
                v("pss"),
                v("fit"),
                v("teardown")
            );
        }
        for st in &run.manifest.stops {
            let _ = writeln!(
                o,
                "\n- {} stopped at N = {}: {}",
                st.backend.label(),
                st.count,
                md_text(&st.reason)
            );
        }
        let _ = writeln!(
            o,
            "\n*From density run {} ({} round(s) per N, N = {}).*",
            md_text(&run.manifest.run_id),
            run.manifest.rounds,
            run.manifest
                .counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        o
    }

    /// Whether the container's marginal memory agrees with its floor's, in a sentence.
    pub(crate) fn floor_sentence(&self) -> String {
        let Some((_, s)) = &self.run else {
            return Self::no_run();
        };
        match (
            s.of(Kind::Container).and_then(|b| b.marginal),
            s.of(Kind::Floor).and_then(|b| b.marginal),
        ) {
            (Some(c), Some(f)) => format!(
                "The container's marginal memory ({} [{}–{}]) and its floor's ({} [{}–{}]) {} \
                 within their 95% intervals.",
                mib(c.per_instance_kib),
                fmt_num(c.lo / 1024.0),
                fmt_num(c.hi / 1024.0),
                mib(f.per_instance_kib),
                fmt_num(f.lo / 1024.0),
                fmt_num(f.hi / 1024.0),
                if analysis::agree(&c, &f) {
                    "agree"
                } else {
                    "do not agree"
                }
            ),
            _ => format!(
                "*{NOT_MEASURED} (the density run has no marginal memory for the container and \
                 its floor)*"
            ),
        }
    }
}
