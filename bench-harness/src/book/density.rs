//! The book's capacity figures, from a density run (`isolab density`, given to `isolab book` with
//! `--density RUN_DIR`): memory per instance on one meter for every backend, how many fit, start
//! under load. Without such a run every value says it was not measured, and how to measure it.
//! Every sentence and label comes from the catalogue (`density-*` in bench-harness/i18n/en.ftl),
//! in the book's language.

use std::fmt::Write as _;

use super::facts::md_text;
use crate::density::analysis::{self, BackendSummary, PerCount, Summary};
use crate::density::instance::Kind;
use crate::density::record::{DensityRun, Parallel};
use crate::i18n::{Catalogue, Lang};
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

/// A density run and its summary, if the book has one, and the book's language.
#[derive(Debug)]
pub(crate) struct DensityFacts {
    run: Option<(DensityRun, Summary)>,
    cat: Catalogue,
}

impl DensityFacts {
    pub(crate) fn new(run: Option<&DensityRun>, lang: Lang) -> Self {
        Self {
            run: run.map(|r| (r.clone(), analysis::summarise(r))),
            cat: Catalogue::new(lang),
        }
    }

    /// Whether the book has a density run.
    pub(crate) fn has_run(&self) -> bool {
        self.run.is_some()
    }

    /// `12.3 MiB` from KiB, in the book's number format.
    fn mib(&self, kib: f64) -> String {
        self.cat.with_unit(&fmt_num(kib / 1024.0), "MiB")
    }

    /// A number the English way, rewritten for the book's language.
    fn num(&self, v: f64) -> String {
        self.cat.num(&fmt_num(v))
    }

    /// `0.88 MiB per instance [95% CI 0.87–0.89]`.
    fn slope_text(&self, s: analysis::Slope) -> String {
        self.cat.tr(
            "density-per-instance-ci",
            &[
                ("mib", &self.mib(s.per_instance_kib)),
                ("lo", &self.num(s.lo / 1024.0)),
                ("hi", &self.num(s.hi / 1024.0)),
            ],
        )
    }

    fn missing(&self, why: &str) -> String {
        self.cat.tr("missing-value", &[("why", why)])
    }

    fn no_run(&self) -> String {
        self.missing(&self.cat.tr("density-no-run", &[]))
    }

    /// A backend's label in the book's language (`container floor`, `vm (emulated)`).
    fn label(&self, b: &BackendSummary) -> String {
        let name = match b.backend {
            Kind::Floor => self.cat.tr("density-backend-floor", &[]),
            k => k.label().to_owned(),
        };
        if b.emulated {
            self.cat
                .tr("density-backend-emulated", &[("backend", &name)])
        } else {
            name
        }
    }

    fn kind_label(&self, k: Kind) -> String {
        match k {
            Kind::Floor => self.cat.tr("density-backend-floor", &[]),
            k => k.label().to_owned(),
        }
    }

    /// `3 rounds`.
    fn rounds(&self, n: usize) -> String {
        self.cat.tr_n(
            "density-rounds",
            n,
            &[("count", &self.cat.num(&n.to_string()))],
        )
    }

    /// How many instances started at a time.
    fn parallel(&self, p: Parallel) -> String {
        match p {
            Parallel::All => self.cat.tr("density-parallel-all", &[]),
            Parallel::At(n) => n.to_string(),
        }
    }

    fn backend(&self, name: &str) -> Result<(&DensityRun, &BackendSummary), String> {
        let Some((run, s)) = &self.run else {
            return Err(self.no_run());
        };
        let kind = Kind::from_name(name).ok_or_else(|| {
            self.cat
                .tr("density-unknown-backend", &[("backend", &md_text(name))])
        })?;
        s.of(kind).map(|b| (run, b)).ok_or_else(|| {
            let why = run
                .manifest
                .stops
                .iter()
                .find(|st| st.backend == kind)
                .map_or_else(
                    || {
                        self.cat.tr(
                            "density-not-in-run",
                            &[
                                ("backend", &self.kind_label(kind)),
                                ("run", &run.manifest.run_id),
                            ],
                        )
                    },
                    |st| st.reason.clone(),
                );
            self.missing(&md_text(&why))
        })
    }

    /// The run's id, or that there is none.
    pub(crate) fn run_id(&self) -> String {
        match &self.run {
            Some((r, _)) => md_text(&r.manifest.run_id),
            None => self.no_run(),
        }
    }

    /// The density run's method, in prose.
    pub(crate) fn method(&self) -> String {
        let Some((r, _)) = &self.run else {
            return self.no_run();
        };
        let m = &r.manifest;
        let c = &self.cat;
        let ws = if m.working_set_kib == 0 {
            c.tr("density-ws-idle", &[])
        } else {
            c.tr(
                "density-ws-written",
                &[("size", &self.mib(m.working_set_kib as f64))],
            )
        };
        let host = match &m.ksm_host {
            Some(k) => c.tr("density-ksm-host-run", &[("run", &k.run.to_string())]),
            None => c.tr("density-ksm-host-none", &[]),
        };
        let ksm = match m.ksm {
            crate::density::ksm::KsmMode::Host => c.tr("density-ksm-host", &[("host", &host)]),
            crate::density::ksm::KsmMode::On => c.tr("density-ksm-on", &[("host", &host)]),
            crate::density::ksm::KsmMode::Off => c.tr("density-ksm-off", &[("host", &host)]),
        };
        let counts: Vec<String> = m.counts.iter().map(|n| c.num(&n.to_string())).collect();
        md_text(&c.tr(
            "density-method",
            &[
                ("ws", &ws),
                ("counts", &counts.join(", ")),
                ("rounds", &self.rounds(m.rounds as usize)),
                ("parallel", &self.parallel(m.parallel)),
                ("settle", &c.with_unit(&format!("{:.1}", m.settle_s), "s")),
                ("headroom", &c.percent(&m.headroom_pct.to_string())),
                ("beside", &m.beside.to_string()),
                ("ksm", &ksm),
            ],
        ))
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
            ) => self.cat.tr("density-emulated-time", &[("value", &text)]),
            (true, _) => self.cat.tr("density-emulated-size", &[("value", &text)]),
        })
    }

    fn plain_value_of(&self, backend: &str, what: &str) -> Result<String, String> {
        let (run, b) = self.backend(backend)?;
        let c = &self.cat;
        let largest = b
            .counts
            .iter()
            .rev()
            .find(|c| c.start.is_some())
            .ok_or_else(|| {
                self.missing(&c.tr("density-none-ready", &[("backend", &md_text(backend))]))
            })?;
        let missing = |id: &str| self.missing(&c.tr(id, &[]));
        let at = |p: &PerCount| c.tr("density-at-n", &[("n", &c.num(&p.count.to_string()))]);
        let ms = |v: f64| c.with_unit(&fmt_num(v), "ms");
        Ok(match what {
            "marginal" => {
                let s = b.marginal.ok_or_else(|| missing("density-few-ns"))?;
                self.slope_text(s)
            }
            "fixed" => {
                let s = b.marginal.ok_or_else(|| missing("density-few-ns"))?;
                self.mib(s.fixed_kib)
            }
            "pss" => self.slope_text(b.pss_marginal.ok_or_else(|| missing("density-few-ns"))?),
            "fit" => {
                let f = b.fit.ok_or_else(|| missing("density-no-marginal"))?;
                let hi = f.hi.map_or_else(
                    || c.tr("density-no-bound", &[]),
                    |h| c.num(&format!("{h:.0}")),
                );
                c.tr(
                    "density-fit",
                    &[
                        ("instances", &c.num(&format!("{:.0}", f.instances))),
                        ("lo", &c.num(&format!("{:.0}", f.lo))),
                        ("hi", &hi),
                        (
                            "headroom",
                            &c.percent(&run.manifest.headroom_pct.to_string()),
                        ),
                    ],
                )
            }
            "cgroup" => {
                let p = b
                    .counts
                    .iter()
                    .rev()
                    .find(|p| p.cgroup_mib.is_some())
                    .ok_or_else(|| missing("density-cgroup-only-container"))?;
                let m = p.cgroup_mib.ok_or_else(|| missing("density-no-cgroup"))?;
                c.tr(
                    "density-cgroup",
                    &[
                        ("mib", &c.with_unit(&fmt_num(m.median), "MiB")),
                        ("at", &at(p)),
                    ],
                )
            }
            "start-p50" | "start-p99" | "start-max" => {
                let p = largest.start.ok_or_else(|| missing("density-no-start"))?;
                let v = match what {
                    "start-p50" => p.p50,
                    "start-p99" => p.p99,
                    _ => p.max,
                };
                c.tr(
                    "density-start",
                    &[
                        ("ms", &ms(v)),
                        ("at", &at(largest)),
                        ("parallel", &self.parallel(run.manifest.parallel)),
                        ("n", &p.n.to_string()),
                    ],
                )
            }
            "beside" => {
                let p = largest.beside.ok_or_else(|| missing("density-no-beside"))?;
                c.tr(
                    "density-beside",
                    &[
                        ("ms", &ms(p.p50)),
                        ("count", &c.num(&largest.count.to_string())),
                        ("n", &p.n.to_string()),
                    ],
                )
            }
            "teardown" => {
                let t = largest
                    .teardown_ms
                    .ok_or_else(|| missing("density-no-teardown"))?;
                c.tr(
                    "density-teardown",
                    &[
                        ("ms", &ms(t.median)),
                        ("count", &c.num(&largest.count.to_string())),
                    ],
                )
            }
            "recovery" => match largest.recovery_ms {
                Some(t) => ms(t.median),
                None => missing("density-no-recovery"),
            },
            "largest-n" => c.num(&largest.count.to_string()),
            "vm-split" => {
                let (p, v) = b
                    .counts
                    .iter()
                    .rev()
                    .find_map(|p| Some((p, p.vm?)))
                    .ok_or_else(|| missing("density-vm-only"))?;
                let mut text = c.tr(
                    "density-vm-split",
                    &[
                        (
                            "guest",
                            &c.with_unit(&fmt_num(v.guest_ram_mib.median), "MiB"),
                        ),
                        (
                            "vmm",
                            &c.with_unit(&fmt_num(v.vmm_overhead_mib.median), "MiB"),
                        ),
                        ("at", &at(p)),
                    ],
                );
                if let (Some(used), Some(total)) = (v.guest_used_mib, v.guest_total_mib) {
                    text.push_str(&c.tr(
                        "density-vm-inside",
                        &[
                            ("used", &c.with_unit(&fmt_num(used.median), "MiB")),
                            ("total", &c.with_unit(&fmt_num(total.median), "MiB")),
                        ],
                    ));
                }
                text
            }
            "ksm" => {
                let (p, k) = b
                    .counts
                    .iter()
                    .rev()
                    .find_map(|p| Some((p, p.ksm?)))
                    .ok_or_else(|| missing("density-ksm-not-on"))?;
                c.tr(
                    "density-ksm",
                    &[
                        ("pages", &self.num(k.pages_sharing + k.pages_shared)),
                        ("into", &self.num(k.pages_shared)),
                        ("saved", &c.with_unit(&fmt_num(k.saved_mib), "MiB")),
                        ("after", &c.with_unit(&fmt_num(k.waited_ms / 1000.0), "s")),
                        ("at", &at(p)),
                    ],
                )
            }
            other => {
                return Err(c.tr(
                    "density-unknown-value",
                    &[
                        ("value", &md_text(other)),
                        ("choices", &DENSITY_VALUES.join(", ")),
                    ],
                ))
            }
        })
    }

    /// The capacity table: per backend the marginal memory, fixed cost, PSS, how many fit, start.
    pub(crate) fn capacity_table(&self) -> String {
        let Some((run, s)) = &self.run else {
            return self.no_run();
        };
        let c = &self.cat;
        let mut o = format!(
            "{}\n|---|---|---|---|---|---|---|\n",
            c.tr(
                "density-capacity-header",
                &[(
                    "headroom",
                    &c.percent(&run.manifest.headroom_pct.to_string())
                )]
            )
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
                self.label(b),
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
                "\n- {}",
                c.tr(
                    "density-stopped",
                    &[
                        ("backend", &self.kind_label(st.backend)),
                        ("n", &c.num(&st.count.to_string())),
                        ("why", &md_text(&st.reason)),
                    ]
                )
            );
        }
        let counts: Vec<String> = run
            .manifest
            .counts
            .iter()
            .map(|n| c.num(&n.to_string()))
            .collect();
        let _ = writeln!(
            o,
            "\n*{}*",
            c.tr(
                "density-from-run",
                &[
                    ("run", &md_text(&run.manifest.run_id)),
                    ("rounds", &self.rounds(run.manifest.rounds as usize)),
                    ("counts", &counts.join(", ")),
                ]
            )
        );
        o
    }

    /// Whether the container's marginal memory agrees with its floor's, in a sentence.
    pub(crate) fn floor_sentence(&self) -> String {
        let Some((_, s)) = &self.run else {
            return self.no_run();
        };
        match (
            s.of(Kind::Container).and_then(|b| b.marginal),
            s.of(Kind::Floor).and_then(|b| b.marginal),
        ) {
            (Some(c), Some(f)) => self.cat.tr(
                if analysis::agree(&c, &f) {
                    "density-floor-agree"
                } else {
                    "density-floor-disagree"
                },
                &[
                    ("container", &self.mib(c.per_instance_kib)),
                    ("clo", &self.num(c.lo / 1024.0)),
                    ("chi", &self.num(c.hi / 1024.0)),
                    ("floor", &self.mib(f.per_instance_kib)),
                    ("flo", &self.num(f.lo / 1024.0)),
                    ("fhi", &self.num(f.hi / 1024.0)),
                ],
            ),
            _ => self.missing(&self.cat.tr("density-no-floor", &[])),
        }
    }
}
