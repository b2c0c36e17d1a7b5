//! The numbers and tables the book's placeholders stand for, read from one stored run.
//!
//! Every value comes with its provenance (median, interval, number of samples) or, when the run
//! lacks it, with the sentence "not measured in this run (why)". Nothing is ever estimated: a
//! book that states a number the run did not measure would be worse than no book.
//!
//! Emulated VM samples (the VM ran inside an emulated machine) count for what they *count*
//! (exits, memory touched, what the inside looks like) and never for how long anything took.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::i18n::{Catalogue, Lang};
use crate::manifest::Manifest;
use crate::report::charts::{timeline_rows, to_mib, TimelineRow};
use crate::report::{backend_label, methodology, View};
use crate::sample::Sample;
use crate::store::StoredRun;
use crate::summary::{fmt_num, fmt_ratio, Summary, SummaryRow, LEVEL};

/// The opening words of every value the run lacks; tests and readers can search for it.
pub const NOT_MEASURED: &str = "not measured in this run";

/// The labs of the workbook, each with an answer key (`{{isolab:answer-key LAB}}`).
pub(crate) const LABS: [&str; 7] = [
    "container",
    "vm",
    "startup",
    "memory",
    "disk",
    "network",
    "security",
];

/// The three worlds the book compares, in its order.
pub(crate) const BACKENDS: [&str; 3] = ["native", "container", "vm"];

/// Every backend a placeholder may name: the three worlds and the emulator.
pub(crate) const ALL_BACKENDS: [&str; 4] = ["native", "container", "vm", "qemu-tcg"];

/// One run the book draws on, described on its own: a book built with `--vm-results` rests on
/// two runs, each with its own suite, sizes, repetitions, commit and host.
#[derive(Debug, Clone)]
pub(crate) struct RunSource {
    /// What the book takes from it (`native, container`, `vm`).
    pub role: String,
    pub run_id: String,
    pub methodology: String,
    pub environment: Vec<(String, String)>,
    /// Suite entry name → its parameters as `key=value, ...`.
    pub params: Vec<(String, String)>,
}

impl RunSource {
    fn of(run: &StoredRun, role: String, cat: &Catalogue) -> Self {
        let view = View::new(run);
        Self {
            role,
            run_id: run.manifest.run_id.clone(),
            methodology: methodology::paragraph(&view, cat),
            environment: methodology::environment(&view, cat),
            params: run
                .manifest
                .suite
                .workloads
                .iter()
                .map(|w| (w.name.clone(), workload_params(&w.workload, cat)))
                .collect(),
        }
    }

    fn params_of(&self, workload: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(w, _)| w == workload)
            .map(|(_, p)| p.as_str())
    }
}

/// A workload's parameters as `key=value, ...` (`none` for a workload without any).
pub(crate) fn workload_params(w: &workloads::Workload, cat: &Catalogue) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(w) else {
        return "-".into();
    };
    let parts: Vec<String> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "kind")
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    if parts.is_empty() {
        cat.tr("params-none", &[])
    } else {
        parts.join(", ")
    }
}

/// The backends with a measured sample in `run`, in the book's order, as one phrase.
fn roles(run: &StoredRun, cat: &Catalogue) -> String {
    let v: Vec<&str> = ALL_BACKENDS
        .into_iter()
        .filter(|b| run.samples.iter().any(|s| s.backend == *b && !s.warmup))
        .collect();
    if v.is_empty() {
        cat.tr("no-backend", &[])
    } else {
        v.join(", ")
    }
}

/// What the book knows about one run. Owns its data so the mdBook preprocessor (which must be
/// `'static`) can hold it.
#[derive(Debug)]
pub(crate) struct Facts {
    pub manifest: Manifest,
    samples: Vec<Sample>,
    summary: Summary,
    /// Suite entry names in suite order, then any others found in the samples.
    workloads: Vec<String>,
    caveats: Vec<String>,
    /// Per backend label: (phase, median ms) segments of the noop timeline, and samples used.
    timelines: Vec<TimelineRow>,
    /// The runs the book rests on: one, or the base run and the VM's run.
    sources: Vec<RunSource>,
    /// Workloads the VM's run measured with other parameters than the base run: its figures
    /// stand on their own and are never divided by native's.
    vm_other_params: Vec<String>,
    /// Each published study's table beside this run (Markdown), by study name.
    published: BTreeMap<&'static str, String>,
    /// The language the book is written in: its messages and number format.
    cat: Catalogue,
    /// The capacity figures, from a density run when the book has one.
    pub density: super::density::DensityFacts,
}

/// A median, or why there is none.
pub(crate) type Value = Result<String, String>;

impl Facts {
    pub(crate) fn new(run: &StoredRun, lang: Lang) -> Self {
        let view = View::new(run);
        let cat = Catalogue::new(lang);
        Self {
            manifest: run.manifest.clone(),
            samples: run.samples.clone(),
            caveats: methodology::caveats(&view, &cat),
            timelines: timeline_rows(&view),
            published: crate::published::STUDIES
                .iter()
                .map(|s| (s.id, published_table(&view, s, &cat)))
                .collect(),
            workloads: view.workloads.clone(),
            summary: view.summary,
            density: super::density::DensityFacts::new(None, lang),
            sources: vec![RunSource::of(run, roles(run, &cat), &cat)],
            vm_other_params: Vec::new(),
            cat,
        }
    }

    /// Study `id`'s published ratios to native beside the run's; `None` for an unknown study.
    pub(crate) fn published(&self, id: &str) -> Option<&str> {
        self.published.get(id).map(String::as_str)
    }

    /// The facts of `merged` (`base` with the VM's samples of `vm_run`, see
    /// [`super::merge_vm_run`]), each of the two runs described on its own.
    pub(crate) fn merged(
        merged: &StoredRun,
        base: &StoredRun,
        vm_run: &StoredRun,
        lang: Lang,
    ) -> Self {
        let mut f = Self::new(merged, lang);
        let mut base_only = base.clone();
        base_only.samples.retain(|s| s.backend != "vm");
        let base_src = RunSource::of(base, roles(&base_only, &f.cat), &f.cat);
        let vm_src = RunSource::of(vm_run, "vm".into(), &f.cat);
        f.vm_other_params = vm_run
            .manifest
            .suite
            .workloads
            .iter()
            .filter(|w| {
                let mine = vm_src.params_of(&w.name);
                let theirs = base_src.params_of(&w.name);
                theirs.is_some() && mine != theirs
            })
            .map(|w| w.name.clone())
            .collect();
        if vm_run.manifest.status != crate::manifest::RunStatus::Complete {
            f.caveats.insert(
                0,
                f.cat.tr(
                    "caveat-vm-run-incomplete",
                    &[
                        ("run", &vm_run.manifest.run_id),
                        (
                            "status",
                            &f.cat
                                .tr(methodology::status_id(vm_run.manifest.status), &[]),
                        ),
                    ],
                ),
            );
        }
        f.sources = vec![base_src, vm_src];
        f
    }

    /// The catalogue of the book's language.
    pub(crate) fn cat(&self) -> &Catalogue {
        &self.cat
    }

    /// The run's identifier (the base run's, in a book made of two).
    pub(crate) fn run_id(&self) -> &str {
        &self.manifest.run_id
    }

    /// The run that measured `backend`: the VM's own run in a book made of two, else the run.
    pub(crate) fn run_of(&self, backend: Option<&str>) -> &str {
        match (backend, self.sources.as_slice()) {
            (Some("vm"), [_, vm]) => &vm.run_id,
            _ => self.run_id(),
        }
    }

    /// The runs this book rests on, for its first page: `run **A**`, or both runs with what each
    /// gave.
    pub(crate) fn runs(&self) -> String {
        match self.sources.as_slice() {
            [base, vm] => self.cat.tr(
                "runs-two",
                &[
                    ("base", &md_text(&base.run_id)),
                    ("base-role", &md_text(&base.role)),
                    ("vm", &md_text(&vm.run_id)),
                    ("vm-role", &md_text(&vm.role)),
                    ("url", "09-reproducing.md"),
                ],
            ),
            _ => self.cat.tr("runs-one", &[("run", &md_text(self.run_id()))]),
        }
    }

    /// Whether the VM's figures of `workload` come from a run with other parameters.
    fn vm_params_differ(&self, backend: &str, workload: &str) -> bool {
        backend == "vm"
            && self
                .workload_entry(workload)
                .is_some_and(|e| self.vm_other_params.contains(&e))
    }

    /// Workload entries whose VM figures come from a run with other parameters.
    pub(crate) fn vm_other_params(&self) -> &[String] {
        &self.vm_other_params
    }

    /// The suite entry a placeholder's workload argument means: the entry of that name, else the
    /// first entry of that kind (suites may name entries, e.g. `cpu-small`).
    fn workload_entry(&self, workload: &str) -> Option<String> {
        if self.workloads.iter().any(|w| w == workload) {
            return Some(workload.to_owned());
        }
        let by_kind = self
            .manifest
            .suite
            .workloads
            .iter()
            .find(|w| w.workload.kind() == workload)
            .map(|w| w.name.clone());
        by_kind.or_else(|| {
            self.samples
                .iter()
                .find(|s| s.kind == workload)
                .map(|s| s.workload.clone())
        })
    }

    /// The column the book means by `backend` (`native`, `vm (emulated)`, ...): the backend's
    /// first column, so in a run that varied factors its factors' first values (and the A of an
    /// A/A check); the backend itself in a run without factors.
    pub(crate) fn column_label(&self, backend: &str) -> String {
        let (base, emulated) = match backend.strip_suffix(" (emulated)") {
            Some(b) => (b, true),
            None => (backend, false),
        };
        let label = self
            .manifest
            .columns
            .iter()
            .map(|c| &c.column)
            .find(|c| c.backend.name() == base && !c.is_aa_copy())
            .map_or_else(|| base.to_owned(), |c| c.label.clone());
        if emulated {
            format!("{label} (emulated)")
        } else {
            label
        }
    }

    fn row(&self, backend: &str, workload: &str, metric: &str) -> Option<&SummaryRow> {
        let label = self.column_label(backend);
        self.summary
            .rows
            .iter()
            .find(|r| r.backend == label && r.workload == workload && r.metric == metric)
    }

    /// `; A/A noise ±2.1%` for a comparison of `workload` / `metric`, when the run had an A/A
    /// check with that metric: the smallest difference the host resolved, beside the ratio.
    fn aa_note(&self, workload: &str, metric: &str) -> String {
        self.aa_resolution(workload, metric)
            .map(|p| {
                self.cat
                    .tr("ratio-aa-note", &[("pct", &self.cat.nums_in(&p))])
            })
            .unwrap_or_default()
    }

    /// How far the A/A interval of `workload` / `metric` reached from 1 (`±2.1%`), when the run
    /// had an A/A check with it.
    fn aa_resolution(&self, workload: &str, metric: &str) -> Option<String> {
        let aa = self.summary.aa.as_ref()?;
        let r = aa.row(workload, metric)?;
        Some(crate::summary::pct_text(r.resolution_pct))
    }

    /// The effects of the run's factors on its headline metrics, as a table with the A/A
    /// interval beside each, or why there is none.
    pub(crate) fn effects_table(&self) -> String {
        if self.summary.effects.iter().all(|e| !e.headline) {
            return self.missing_for_run("effects-none");
        }
        let with_aa = self.summary.aa.is_some();
        let mut o = self.cat.tr("effects-header", &[]);
        if with_aa {
            let _ = writeln!(o, " {} |", self.cat.tr("effects-aa-column", &[]));
        } else {
            o.push('\n');
        }
        o.push_str("|---|---|---|---|---|---|---|");
        o.push_str(if with_aa { "---|\n" } else { "\n" });
        for e in self.summary.effects.iter().filter(|e| e.headline) {
            let _ = write!(
                o,
                "| `{}` | {} | {} | {} → {} | {} | {} | {} |",
                e.factor,
                e.backend,
                if e.with.is_empty() {
                    "-".to_owned()
                } else {
                    md_cell(&e.with)
                },
                md_cell(&e.from),
                md_cell(&e.to),
                e.workload,
                md_cell(&format!("{} ({})", e.metric, e.unit)),
                ratio_n(&self.cat, &e.ratio, e.n_from, e.n_to)
            );
            if with_aa {
                let cell = self
                    .aa_resolution(&e.workload, &e.metric)
                    .map(|p| self.cat.nums_in(&p))
                    .unwrap_or_else(|| "-".into());
                let _ = write!(o, " {cell} |");
            }
            o.push('\n');
        }
        o
    }

    /// The A/A check: the sentence with the noise floor and its table, or why there is none.
    pub(crate) fn aa(&self) -> String {
        let Some(aa) = &self.summary.aa else {
            return self.missing_for_run("aa-none");
        };
        let c = &self.cat;
        let sentence = crate::summary::aa_sentence_in(aa, c);
        let mut o = format!("{}\n\n", md_text(&sentence));
        let _ = writeln!(o, "{}\n|---|---|---|---|", c.tr("aa-header", &[]));
        for r in aa.rows.iter().filter(|r| r.headline) {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                r.workload,
                md_cell(&format!("{} ({})", r.metric, r.unit)),
                ratio_n(c, &r.ratio, r.n_a, r.n_b),
                c.nums_in(&crate::summary::pct_text(r.resolution_pct))
            );
        }
        o
    }

    /// Why `backend` has no value of `metric` for `workload` in this run, as the clause that goes
    /// in parentheses after [`NOT_MEASURED`].
    pub(crate) fn why_missing(
        &self,
        backend: &str,
        workload: &str,
        metric: Option<&str>,
    ) -> String {
        let Some(entry) = self.workload_entry(workload) else {
            return self
                .cat
                .tr("why-workload-absent", &[("workload", workload)]);
        };
        let state = self.manifest.backends.get(backend);
        let planned = self
            .manifest
            .suite
            .backends
            .iter()
            .any(|b| b.name() == backend);
        if let Some(st) = state.filter(|st| !st.available) {
            return match &st.note {
                Some(note) => self.cat.tr(
                    "why-unavailable",
                    &[("backend", backend), ("reason", &short_reason(note))],
                ),
                None => self.cat.tr("why-unavailable-here", &[("backend", backend)]),
            };
        }
        let mine: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| !s.warmup && s.backend == backend && s.workload == entry)
            .collect();
        if mine.is_empty() {
            return if planned || state.is_some() {
                self.cat.tr(
                    "why-no-trial-stored",
                    &[("entry", &entry), ("backend", backend)],
                )
            } else {
                self.cat.tr("why-backend-absent", &[("backend", backend)])
            };
        }
        let ok: Vec<&&Sample> = mine.iter().filter(|s| s.failure.is_none()).collect();
        if ok.is_empty() {
            let reason = mine
                .iter()
                .find_map(|s| s.failure.as_ref().map(ToString::to_string))
                .unwrap_or_default();
            return self.cat.tr_n(
                "why-all-failed",
                mine.len(),
                &[
                    ("entry", &entry),
                    ("backend", backend),
                    ("reason", reason.trim_end_matches('.')),
                ],
            );
        }
        // Emulation explains a missing time, not a count no sample has (a run older than it).
        let reported =
            metric.is_none_or(|m| ok.iter().any(|s| s.metrics.iter().any(|x| x.name == m)));
        if reported && ok.iter().all(|s| s.emulated) {
            return self.cat.tr("why-emulated-only", &[("backend", backend)]);
        }
        match metric {
            Some(m) => self.cat.tr(
                "why-metric-absent",
                &[("backend", backend), ("metric", m), ("entry", &entry)],
            ),
            None => self.cat.tr(
                "why-no-usable-trial",
                &[("backend", backend), ("entry", &entry)],
            ),
        }
    }

    /// "Not measured in this run (why)" for a whole table the run has no data for, `why` being
    /// the catalogue's sentence `id` about the run.
    fn missing_for_run(&self, id: &str) -> String {
        let why = self.cat.tr(id, &[("run", &md_text(self.run_id()))]);
        format!("{}\n", self.cat.tr("missing-value", &[("why", &why)]))
    }

    /// The sentence for a missing value.
    pub(crate) fn missing(&self, backend: &str, workload: &str, metric: Option<&str>) -> String {
        self.cat.tr(
            "missing-value",
            &[(
                "why",
                &md_text(&self.why_missing(backend, workload, metric)),
            )],
        )
    }

    /// `3.02 ms [95% CI 2.95–3.06], n=10`, or why not.
    pub(crate) fn median(&self, backend: &str, workload: &str, metric: &str) -> Value {
        let entry = self
            .workload_entry(workload)
            .ok_or_else(|| self.missing(backend, workload, Some(metric)))?;
        let other_run = if self.vm_params_differ(backend, workload) {
            self.cat
                .tr("median-other-run", &[("run", self.run_of(Some("vm")))])
        } else {
            String::new()
        };
        if let Some(r) = self.row(backend, &entry, metric) {
            return Ok(fmt_median(&self.cat, r, &md_text(&other_run)));
        }
        // Emulated VM samples may stand for counts and sizes, never for times or rates.
        let emulated_label = format!("{backend} (emulated)");
        if let Some(r) = self.row(&emulated_label, &entry, metric) {
            if is_count_or_size(metric, &r.unit) {
                return Ok(fmt_median(
                    &self.cat,
                    r,
                    &self.cat.tr(
                        "median-counted-emulated",
                        &[("other", &md_text(&other_run))],
                    ),
                ));
            }
        }
        Err(self.missing(backend, workload, Some(metric)))
    }

    /// The median as a bare number in `unit` (for arithmetic such as the workbook's answers);
    /// `None` if missing or emulated-and-timed.
    fn median_value(&self, backend: &str, workload: &str, metric: &str) -> Option<(f64, String)> {
        let entry = self.workload_entry(workload)?;
        if let Some(r) = self.row(backend, &entry, metric) {
            return Some((r.median.median, r.unit.clone()));
        }
        let r = self.row(&format!("{backend} (emulated)"), &entry, metric)?;
        is_count_or_size(metric, &r.unit).then(|| (r.median.median, r.unit.clone()))
    }

    /// `1.03× native [95% CI 1.01–1.05]`, or why not.
    pub(crate) fn ratio(&self, backend: &str, workload: &str, metric: &str) -> Value {
        let entry = self
            .workload_entry(workload)
            .ok_or_else(|| self.missing(backend, workload, Some(metric)))?;
        if self.vm_params_differ(backend, workload) {
            return Err(self.cat.tr(
                "ratio-other-run",
                &[
                    ("entry", &md_text(&entry)),
                    ("run", &md_text(self.run_of(Some("vm")))),
                ],
            ));
        }
        let Some(r) = self.row(backend, &entry, metric) else {
            return Err(self.missing(backend, workload, Some(metric)));
        };
        match r.vs_native {
            Some(v) => Ok(self.cat.tr(
                "ratio-native",
                &[
                    ("ratio", &self.cat.times(&fmt_ratio(v.ratio))),
                    ("level", &level(&self.cat)),
                    ("lo", &self.cat.num(&fmt_ratio(v.lo))),
                    ("hi", &self.cat.num(&fmt_ratio(v.hi))),
                    ("aa", &self.aa_note(&entry, metric)),
                ],
            )),
            None => Err(self.cat.tr(
                "ratio-no-native",
                &[(
                    "why",
                    &md_text(&self.why_missing("native", workload, Some(metric))),
                )],
            )),
        }
    }

    /// A setting the run recorded for `backend` (its manifest's backend facts), as inert text,
    /// or why there is none.
    pub(crate) fn fact(&self, backend: &str, key: &str) -> String {
        match self.manifest.backends.get(backend) {
            Some(st) => match st.facts.get(key) {
                Some(v) => format!("`{}`", v.replace('`', "'")),
                // In the emulated machine the VMM is prepared and run inside it; what it knows
                // about itself (its filters, its cgroup) stays there.
                None if st
                    .facts
                    .get("emulated")
                    .is_some_and(|e| e.starts_with("true")) =>
                {
                    self.cat.tr(
                        "missing-value",
                        &[(
                            "why",
                            &md_text(&self.cat.tr(
                                "why-no-fact-emulated",
                                &[("key", key), ("backend", backend)],
                            )),
                        )],
                    )
                }
                None => self.cat.tr(
                    "missing-value",
                    &[(
                        "why",
                        &md_text(
                            &self
                                .cat
                                .tr("why-no-fact", &[("key", key), ("backend", backend)]),
                        ),
                    )],
                ),
            },
            None => self.missing(backend, "noop", None),
        }
    }

    /// The environment of each run the book rests on, side by side.
    pub(crate) fn manifest_table(&self) -> String {
        let [first, rest @ ..] = self.sources.as_slice() else {
            return String::new();
        };
        let mut o = String::from("| |");
        for src in &self.sources {
            let _ = write!(
                o,
                " {} |",
                self.cat.tr(
                    "manifest-run-column",
                    &[
                        ("run", &md_cell(&src.run_id)),
                        ("role", &md_cell(&src.role))
                    ]
                )
            );
        }
        let _ = writeln!(o, "\n|---|{}", "---|".repeat(self.sources.len()));
        for (k, v) in &first.environment {
            let _ = write!(o, "| {} | {} |", md_cell(k), md_cell(v));
            for other in rest {
                let theirs = other
                    .environment
                    .iter()
                    .find(|(ok, _)| ok == k)
                    .map_or("-", |(_, v)| v.as_str());
                let _ = write!(o, " {} |", md_cell(theirs));
            }
            o.push('\n');
        }
        o
    }

    /// Which backends ran and which did not, with the reason.
    pub(crate) fn availability(&self) -> String {
        let mut o = String::new();
        for b in ALL_BACKENDS {
            let st = self.manifest.backends.get(b);
            if b == "qemu-tcg" && st.is_none() {
                // A yardstick the run was not asked for: nothing to say.
                continue;
            }
            let ok = self
                .samples
                .iter()
                .any(|s| s.backend == b && s.is_measured_ok());
            let emulated = self
                .samples
                .iter()
                .any(|s| s.backend == b && !s.warmup && s.failure.is_none() && s.emulated);
            let c = &self.cat;
            let line = match st {
                None => c.tr("avail-absent", &[("backend", b)]),
                Some(st) if !st.available => c.tr(
                    "avail-unavailable",
                    &[
                        ("backend", b),
                        (
                            "reason",
                            &md_text(
                                &st.note
                                    .clone()
                                    .unwrap_or_else(|| c.tr("avail-no-reason", &[])),
                            ),
                        ),
                    ],
                ),
                Some(_) if ok => c.tr("avail-measured", &[("backend", b)]),
                Some(_) if emulated => c.tr("avail-emulated", &[("backend", b)]),
                Some(_) => c.tr("avail-failed", &[("backend", b)]),
            };
            let from = match self.sources.as_slice() {
                [_, vm] if b == "vm" => c.tr("avail-from-run", &[("run", &md_text(&vm.run_id))]),
                _ => String::new(),
            };
            let _ = writeln!(o, "- {line}{from}");
        }
        o
    }

    /// How the numbers were made: each run's own paragraph, then every workload's parameters
    /// in each run (a figure only stands beside another measured with the same ones).
    pub(crate) fn methodology(&self) -> String {
        let mut o = String::new();
        match self.sources.as_slice() {
            [single] => {
                let _ = writeln!(o, "{}", md_text(&single.methodology));
            }
            sources => {
                let _ = writeln!(
                    o,
                    "{}\n",
                    self.cat
                        .tr("method-runs", &[("n", &sources.len().to_string())])
                );
                for src in sources {
                    let _ = writeln!(
                        o,
                        "- {}\n",
                        self.cat.tr(
                            "method-run-item",
                            &[
                                ("run", &md_text(&src.run_id)),
                                ("role", &md_text(&src.role)),
                                ("methodology", &md_text(&src.methodology)),
                            ]
                        )
                    );
                }
            }
        }
        let Some(first) = self.sources.first() else {
            return o;
        };
        let _ = write!(o, "\n| {} |", self.cat.tr("summary-col-workload", &[]));
        for src in &self.sources {
            let _ = write!(
                o,
                " {} |",
                self.cat
                    .tr("method-params-column", &[("run", &md_cell(&src.run_id))])
            );
        }
        let _ = writeln!(o, "\n|---|{}", "---|".repeat(self.sources.len()));
        let mut names: Vec<&String> = first.params.iter().map(|(w, _)| w).collect();
        for src in &self.sources[1..] {
            for (w, _) in &src.params {
                if !names.contains(&w) {
                    names.push(w);
                }
            }
        }
        for w in names {
            let differs = self.vm_other_params.contains(w);
            let _ = write!(
                o,
                "| {}{} |",
                md_cell(w),
                if differs {
                    format!(" ({})", self.cat.tr("method-differs", &[]))
                } else {
                    String::new()
                }
            );
            for src in &self.sources {
                let _ = write!(
                    o,
                    " {} |",
                    md_cell(
                        &src.params_of(w)
                            .map_or_else(|| self.cat.tr("method-not-run", &[]), str::to_owned)
                    )
                );
            }
            o.push('\n');
        }
        o
    }

    /// The CPU and memory workloads' headline metrics on the three worlds and the emulator, side
    /// by side: native's median, and each other backend as a ratio to it (from one run, so with
    /// the same parameters; a VM from another run with other parameters gets no ratio).
    pub(crate) fn emulation_table(&self) -> String {
        const KINDS: [&str; 5] = ["cpu", "mem-bw", "mem-lat", "syscall", "page-fault"];
        let mut o = format!(
            "{}\n|---|---|---|---|---|---|\n",
            self.cat.tr("emulation-header", &[])
        );
        let mut rows = 0;
        for kind in KINDS {
            let Some(entry) = self
                .manifest
                .suite
                .workloads
                .iter()
                .find(|w| w.workload.kind() == kind)
            else {
                continue;
            };
            for metric in entry.primary_metrics() {
                let native = self
                    .median("native", kind, &metric)
                    .unwrap_or_else(|missing| missing);
                let ratio = |b: &str| self.ratio(b, kind, &metric).unwrap_or_else(|m| m);
                let _ = writeln!(
                    o,
                    "| {} | `{}` | {} | {} | {} | {} |",
                    md_cell(&entry.name),
                    metric,
                    native,
                    ratio("container"),
                    ratio("vm"),
                    ratio("qemu-tcg")
                );
                rows += 1;
            }
        }
        if rows == 0 {
            return self.missing_for_run("emulation-none");
        }
        o
    }

    /// The caveats, as a list (or a sentence saying there are none).
    pub(crate) fn caveats(&self) -> String {
        if self.caveats.is_empty() {
            return "No caveats: every planned trial ran and produced a result.\n".into();
        }
        self.caveats
            .iter()
            .map(|c| format!("- {}\n", md_text(c)))
            .collect()
    }

    /// The `inspect` workload's view from each backend, side by side.
    /// What `backend`'s `inspect` trial saw, with its column label. What the inside looks like
    /// does not depend on speed: emulated samples count.
    fn inspect_of(&self, b: &str) -> Option<(String, &workloads::result::InspectReport)> {
        self.samples.iter().find_map(|s| {
            (s.backend == b && s.kind == "inspect" && !s.warmup && s.failure.is_none())
                .then(|| {
                    s.agent
                        .as_ref()?
                        .inspect
                        .as_ref()
                        .map(|i| (backend_label(s), i))
                })
                .flatten()
        })
    }

    /// Whether an `inspect` report was served by the host's own kernel (same boot_id).
    fn same_kernel_as_host(&self, i: &workloads::result::InspectReport) -> bool {
        let host_boot = &self.manifest.host.boot_id;
        !host_boot.is_empty() && i.boot_id.trim() == host_boot.trim()
    }

    pub(crate) fn inspect_table(&self) -> String {
        let mut cols: Vec<(String, &workloads::result::InspectReport)> = Vec::new();
        let mut absent = Vec::new();
        let c = &self.cat;
        for b in ALL_BACKENDS {
            if b == "qemu-tcg" && !self.manifest.backends.contains_key(b) {
                continue;
            }
            let found = self.inspect_of(b);
            match found {
                Some(c) => cols.push(c),
                None => absent.push(format!("{b}: {}", self.missing(b, "inspect", None))),
            }
        }
        let mut o = String::new();
        if !cols.is_empty() {
            let _ = write!(o, "| {} |", c.tr("inspect-what", &[]));
            for (label, _) in &cols {
                let _ = write!(o, " {} |", md_cell(label));
            }
            o.push_str("\n|---|");
            o.push_str(&"---|".repeat(cols.len()));
            o.push('\n');
            type Cell = fn(&workloads::result::InspectReport) -> String;
            let rows: [(&str, Cell); 10] = [
                ("inspect-kernel", |i| i.kernel_release.clone()),
                ("inspect-boot-id", |i| i.boot_id.clone()),
                ("inspect-pid", |i| i.pid.to_string()),
                ("inspect-processes", |i| i.visible_processes.to_string()),
                ("inspect-hostname", |i| i.hostname.clone()),
                ("inspect-interfaces", |i| i.interfaces.join(", ")),
                ("inspect-mounts", |i| i.mounts.to_string()),
                ("inspect-cpus", |i| i.cpus.to_string()),
                ("inspect-memory", |i| {
                    format!("{} MiB", i.mem_total_kib / 1024)
                }),
                ("inspect-cgroup", |i| i.cgroup.clone()),
            ];
            for (what, f) in rows {
                let _ = write!(o, "| {} |", c.tr(what, &[]));
                for (_, i) in &cols {
                    let v = if what == "inspect-memory" {
                        c.unit(&c.nums_in(&f(i)))
                    } else {
                        f(i)
                    };
                    let _ = write!(
                        o,
                        " {} |",
                        if v.is_empty() {
                            "-".into()
                        } else {
                            md_cell(&v)
                        }
                    );
                }
                o.push('\n');
            }
            let _ = write!(o, "| {} |", c.tr("inspect-same-kernel", &[]));
            for (_, i) in &cols {
                let same = self.same_kernel_as_host(i);
                let _ = write!(o, " **{}** |", c.tr(if same { "yes" } else { "no" }, &[]));
            }
            o.push('\n');
        }
        if !absent.is_empty() {
            o.push('\n');
            for a in absent {
                let _ = writeln!(o, "- {a}");
            }
        }
        o
    }

    /// The answer key of one lab of the workbook, from this run: every answer is a value the run
    /// measured (or why it is missing), and every verdict is computed from those values.
    pub(crate) fn answer_key(&self, lab: &str) -> Result<String, String> {
        let c = &self.cat;
        let mut o = Vec::new();
        match lab {
            "container" | "vm" => {
                let b = if lab == "container" {
                    "container"
                } else {
                    "vm"
                };
                match self.inspect_of(b) {
                    Some((_, i)) => {
                        let same = self.same_kernel_as_host(i);
                        o.push(c.tr(
                            "answer-kernel",
                            &[
                                ("backend", b),
                                ("release", &md_text(&i.kernel_release)),
                                ("boot-id", &md_text(&i.boot_id)),
                                ("host-boot-id", &md_text(&self.manifest.host.boot_id)),
                                ("host-kernel", &md_text(&self.manifest.host.kernel)),
                                (
                                    "verdict",
                                    &c.tr(
                                        if same {
                                            "answer-kernel-shared"
                                        } else {
                                            "answer-kernel-own"
                                        },
                                        &[],
                                    ),
                                ),
                            ],
                        ));
                        o.push(c.tr(
                            "answer-pid",
                            &[
                                ("pid", &i.pid.to_string()),
                                ("processes", &i.visible_processes.to_string()),
                                ("interfaces", &md_text(&i.interfaces.join(", "))),
                            ],
                        ));
                        o.push(c.tr(
                            "answer-resources",
                            &[
                                ("cpus", &i.cpus.to_string()),
                                (
                                    "memory",
                                    &c.with_unit(&(i.mem_total_kib / 1024).to_string(), "MiB"),
                                ),
                                ("host-cores", &self.manifest.host.cores.to_string()),
                                (
                                    "host-memory",
                                    &c.with_unit(&self.manifest.host.memory_mib.to_string(), "MiB"),
                                ),
                            ],
                        ));
                    }
                    None => o.push(self.missing(b, "inspect", None)),
                }
            }
            "startup" => {
                let mut ranked = Vec::new();
                for b in BACKENDS {
                    let text = self.median(b, "noop", "host.start_to_ready");
                    o.push(c.tr(
                        "answer-start",
                        &[
                            ("backend", b),
                            ("value", &text.clone().unwrap_or_else(|m| m)),
                        ],
                    ));
                    if let (Ok(_), Some((ms, _))) =
                        (text, self.median_value(b, "noop", "host.start_to_ready"))
                    {
                        ranked.push((ms, b));
                    }
                }
                ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
                if ranked.len() > 1 {
                    let order: Vec<String> = ranked.iter().map(|(_, b)| (*b).to_owned()).collect();
                    o.push(c.tr("answer-start-order", &[("order", &order.join(" < "))]));
                    let (fast, slow) = (ranked[0], ranked[ranked.len() - 1]);
                    if fast.0 > 0.0 {
                        o.push(c.tr(
                            "answer-start-factor",
                            &[
                                ("slow", slow.1),
                                ("fast", fast.1),
                                ("factor", &c.num(&fmt_short(slow.0 / fast.0))),
                            ],
                        ));
                    }
                }
                for b in ["container", "vm"] {
                    let label = self.column_label(b);
                    if let Some((_, segments, _)) =
                        self.timelines.iter().find(|(l, _, _)| *l == label)
                    {
                        // The start's phases only: what comes after the agent is ready is the
                        // workload and the teardown.
                        let end = segments
                            .iter()
                            .position(|(p, _)| p == "agent_ready")
                            .map_or(segments.len(), |i| i + 1);
                        if let Some((phase, ms)) =
                            segments[..end].iter().max_by(|a, b| a.1.total_cmp(&b.1))
                        {
                            o.push(c.tr(
                                "answer-longest-phase",
                                &[
                                    ("backend", b),
                                    ("phase", phase),
                                    ("duration", &fmt_ms(c, *ms)),
                                    ("meaning", &phase_meaning(c, b, phase)),
                                ],
                            ));
                        }
                    }
                }
            }
            "memory" if self.density.has_run() => {
                for b in BACKENDS {
                    o.push(c.tr(
                        "answer-density",
                        &[
                            ("backend", b),
                            ("marginal", &self.density.value(b, "marginal")),
                            ("fit", &self.density.value(b, "fit")),
                        ],
                    ));
                }
            }
            "memory" => {
                o.push(c.tr("answer-memory-meters", &[]));
                for b in BACKENDS {
                    match self.instance_memory(b) {
                        Some((mib, how)) if mib > 0.0 => o.push(c.tr(
                            "answer-memory",
                            &[
                                ("backend", b),
                                ("mib", &c.with_unit(&fmt_short(mib), "MiB")),
                                ("how", &c.tr(&how, &[])),
                                ("per-gib", &format!("{:.0}", (1024.0 / mib).floor())),
                            ],
                        )),
                        _ => o.push(c.tr(
                            "answer-start",
                            &[
                                ("backend", b),
                                ("value", &self.missing(b, "noop", Some("host memory"))),
                            ],
                        )),
                    }
                }
            }
            "disk" => {
                for b in ["container", "vm"] {
                    o.push(self.answer_ratio(b, "io-rand", "rand_read_p50"));
                }
                o.push(
                    c.tr(
                        "answer-exits-per-read",
                        &[(
                            "value",
                            &self
                                .median("vm", "io-rand", "exits.per_4k_read")
                                .unwrap_or_else(|m| m),
                        )],
                    ),
                );
            }
            "network" => {
                for b in ["container", "vm"] {
                    o.push(self.answer_ratio(b, "net-rr", "rr_latency"));
                    o.push(self.answer_ratio(b, "net-stream", "tx_throughput"));
                }
            }
            "security" => {
                o.push(c.tr(
                    "answer-filter",
                    &[
                        ("seccomp", &self.fact("container", "seccomp")),
                        ("userns", &self.fact("container", "user_namespace")),
                        ("vm-seccomp", &self.fact("vm", "vm_seccomp")),
                    ],
                ));
                o.push(self.answer_ratio("container", "syscall", "null_syscall"));
                o.push(self.answer_ratio("vm", "syscall", "null_syscall"));
            }
            other => {
                return Err(format!(
                    "no lab named `{other}`; the labs are: {}",
                    LABS.join(", ")
                ))
            }
        }
        Ok(o.iter().map(|l| format!("- {l}\n")).collect())
    }

    /// One answer line: `backend`'s ratio to native for a metric, and whether the run could tell
    /// it from 1 (its interval excludes 1).
    fn answer_ratio(&self, backend: &str, workload: &str, metric: &str) -> String {
        let c = &self.cat;
        let text = self.ratio(backend, workload, metric);
        let verdict = self
            .workload_entry(workload)
            .and_then(|e| self.row(backend, &e, metric))
            .and_then(|r| r.vs_native)
            .filter(|_| text.is_ok())
            .map(|v| {
                c.tr(
                    if v.lo > 1.0 {
                        "answer-above"
                    } else if v.hi < 1.0 {
                        "answer-below"
                    } else {
                        "answer-no-difference"
                    },
                    &[],
                )
            });
        let mut line = c.tr(
            "answer-ratio",
            &[
                ("backend", backend),
                ("metric", metric),
                ("value", &text.unwrap_or_else(|m| m)),
            ],
        );
        if let Some(v) = verdict {
            line.push_str(&c.tr("answer-verdict", &[("verdict", &v)]));
        }
        line
    }

    /// The phases of one backend's noop trial: where each segment ends, how long it took, what
    /// happened in it.
    pub(crate) fn phases_table(&self, backend: &str) -> String {
        let label = self.column_label(backend);
        let Some((_, segments, used)) = self.timelines.iter().find(|(l, _, _)| *l == label) else {
            return format!("{}\n", self.missing(backend, "noop", None));
        };
        let mut o = format!(
            "{}\n|---|---|---|---|---|\n",
            self.cat.tr("phases-header", &[])
        );
        let mut at = 0.0;
        for (i, (phase, ms)) in segments.iter().enumerate() {
            at += ms;
            let _ = writeln!(
                o,
                "| {} | `{}` | {} | {} | {} |",
                i + 1,
                phase,
                fmt_ms(&self.cat, *ms),
                fmt_ms(&self.cat, at),
                phase_meaning(&self.cat, backend, phase)
            );
        }
        let _ = writeln!(
            o,
            "\n{}",
            self.cat
                .tr_n("phases-footer", *used, &[("backend", backend)])
        );
        o
    }

    /// Exits to the VMM by reason for one workload, with what each reason is.
    pub(crate) fn exits_table(&self, workload: &str) -> String {
        let Some(entry) = self.workload_entry(workload) else {
            return format!("{}\n", self.missing("vm", workload, None));
        };
        let mut by_label: BTreeMap<String, BTreeMap<String, (f64, String)>> = BTreeMap::new();
        for r in &self.summary.rows {
            if r.workload != entry || !r.backend.starts_with("vm") {
                continue;
            }
            // Exit reasons of the whole trial only: the workload window's counts and the
            // per-operation figures have their own places (chapter 6's figure and text).
            let reason = r.metric.strip_prefix("exits.").filter(|m| {
                !m.starts_with("workload.") && !m.starts_with("per_") && !m.contains("_per_")
            });
            if let Some(reason) = reason {
                by_label.entry(r.backend.clone()).or_default().insert(
                    reason.to_owned(),
                    (r.median.median, fmt_median(&self.cat, r, "")),
                );
            }
        }
        // Exits are counts: a VM that ran only emulated still counts them correctly.
        let Some((label, reasons)) = by_label
            .iter()
            .find(|(l, _)| l.as_str() == "vm")
            .or_else(|| by_label.iter().next())
        else {
            return format!("{}\n", self.missing("vm", workload, Some("exits.total")));
        };
        let mut rows: Vec<(&String, &(f64, String))> = reasons
            .iter()
            .filter(|(r, _)| *r != "total" && !r.starts_with("to_"))
            .collect();
        rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        let mut o = format!("{}\n|---|---|---|\n", self.cat.tr("exits-header", &[]));
        for (reason, (_, text)) in rows {
            let _ = writeln!(
                o,
                "| `{reason}` | {text} | {} |",
                exit_meaning(&self.cat, reason)
            );
        }
        if let Some((_, total)) = reasons.get("total") {
            let _ = writeln!(o, "| {} | {total} | |", self.cat.tr("exits-total", &[]));
        }
        if label != "vm" {
            let _ = writeln!(o, "\n{}", self.cat.tr("exits-emulated", &[]));
        }
        o
    }

    /// Guest RAM and what it cost the VM's boot, per backing (`--vm-memory`) the run used: KVM's
    /// exits and nested page faults to the agent's start, guest RAM touched and how much of it on
    /// huge pages (noop); then the backings it did not use, with how to measure them.
    pub(crate) fn memory_table(&self) -> String {
        let Some(vm) = self.manifest.backends.get("vm") else {
            return self.missing("vm", "noop", None);
        };
        let used = vm.facts.get("memory").cloned();
        let mut o = format!(
            "{}\n|---|---|---|---|---|\n",
            self.cat.tr("memory-header", &[])
        );
        let label = used.as_deref().map_or_else(
            || self.cat.tr("memory-not-recorded", &[]),
            |u| format!("`{u}`"),
        );
        let cells = [
            "kvm.to_agent_start.exits",
            "npf.to_agent_start",
            "host.guest_ram_touched",
            "host.guest_ram_huge",
        ]
        .map(|m| self.median("vm", "noop", m).unwrap_or_else(|why| why));
        let _ = writeln!(
            o,
            "| {label} | {} | {} | {} | {} |",
            md_cell(&cells[0]),
            md_cell(&cells[1]),
            md_cell(&cells[2]),
            md_cell(&cells[3])
        );
        let others: Vec<String> = ["thp", "hugetlbfs", "small"]
            .into_iter()
            .filter(|b| used.as_deref() != Some(*b))
            .map(|b| format!("`isolab run --backend vm --vm-memory {b}`"))
            .collect();
        let _ = write!(
            o,
            "\n{}\n",
            self.cat
                .tr("memory-others", &[("commands", &others.join(", "))])
        );
        o
    }

    /// Memory per instance, how many fit and start under load, per backend: from the density
    /// run (one meter for every backend), or said to be missing.
    pub(crate) fn capacity_table(&self) -> String {
        self.density.capacity_table()
    }

    /// Host memory of one idle (noop) instance in MiB, and what it is made of; emulated VM
    /// samples count (memory touched is a size, not a speed).
    fn instance_memory(&self, backend: &str) -> Option<(f64, String)> {
        const WAYS: [(&[&str], &str); 3] = [
            (
                &["host.guest_ram_touched", "host.vmm_overhead"],
                "capacity-how-vm",
            ),
            (&["host.cgroup_peak"], "capacity-how-cgroup"),
            (&["host.peak_rss"], "capacity-how-rss"),
        ];
        for (metrics, how) in WAYS {
            let parts: Vec<f64> = metrics
                .iter()
                .filter_map(|m| {
                    let (v, unit) = self.median_value(backend, "noop", m)?;
                    to_mib(v, &unit)
                })
                .collect();
            if parts.len() == metrics.len() {
                return Some((parts.iter().sum(), how.to_owned()));
            }
        }
        None
    }
}

/// `1.10× [1.05–1.16], n=10/10`: a ratio of two columns with its interval and sample counts.
fn ratio_n(cat: &Catalogue, r: &crate::stats::RatioCi, n_from: usize, n_to: usize) -> String {
    cat.tr(
        "ratio-n",
        &[
            ("ratio", &cat.times(&fmt_ratio(r.ratio))),
            ("lo", &cat.num(&fmt_ratio(r.lo))),
            ("hi", &cat.num(&fmt_ratio(r.hi))),
            ("from", &n_from.to_string()),
            ("to", &n_to.to_string()),
        ],
    )
}

/// The gist of a backend's "unavailable" note for use inside a sentence: the reason without the
/// fix, cut at its first clause when long (the full note is in the availability list and the
/// manifest table, once).
fn short_reason(note: &str) -> String {
    let reason = note.split(". Fix").next().unwrap_or(note).trim();
    let reason = if reason.chars().count() > 80 {
        reason.split(", ").next().unwrap_or(reason)
    } else {
        reason
    };
    reason.trim_end_matches('.').to_owned()
}

/// Whether a metric is a count or a size (meaningful from an emulated machine), not a time or a
/// rate.
fn is_count_or_size(metric: &str, unit: &str) -> bool {
    let timed = crate::summary::is_time_or_rate(unit);
    let counted = ["exits.", "disk.", "net.", "irq_injections.", "kvm.", "npf."]
        .iter()
        .any(|p| metric.starts_with(p));
    !timed && (counted || to_mib(1.0, unit).is_some())
}

/// The interval's confidence level as the language writes it (`95%`, `95 %`).
fn level(cat: &Catalogue) -> String {
    cat.percent(&format!("{:.0}", LEVEL * 100.0))
}

/// `3.02 ms [95% CI 2.95–3.06], n=10` in the catalogue's language.
fn fmt_median(cat: &Catalogue, r: &SummaryRow, suffix: &str) -> String {
    let m = &r.median;
    let unit = if r.unit.is_empty() {
        String::new()
    } else {
        let space = if cat.lang() == Lang::Fr {
            crate::i18n::NNBSP
        } else {
            ' '
        };
        format!("{space}{}", md_text(&cat.unit(&r.unit)))
    };
    let args = [
        ("median", cat.num(&fmt_short(m.median))),
        ("unit", unit),
        ("lo", cat.num(&fmt_short(m.lo))),
        ("hi", cat.num(&fmt_short(m.hi))),
        ("n", m.n.to_string()),
        ("level", level(cat)),
        (
            "coverage",
            cat.percent(&format!("{:.0}", m.coverage * 100.0)),
        ),
        ("suffix", suffix.to_owned()),
    ];
    let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if m.coverage + 1e-9 >= LEVEL {
        cat.tr("median-ci", &args)
    } else {
        cat.tr("median-range", &args)
    }
}

/// A duration given in ms, in µs when below a millisecond (no `6.6e-4 ms` in a table).
fn fmt_ms(cat: &Catalogue, ms: f64) -> String {
    if ms.abs() >= 1.0 || ms == 0.0 {
        cat.with_unit(&fmt_short(ms), "ms")
    } else {
        cat.with_unit(&fmt_short(ms * 1000.0), "µs")
    }
}

/// Four significant digits without trailing zeros (`3.02`, `103`, `0.0412`).
pub(crate) fn fmt_short(x: f64) -> String {
    let s = fmt_num(x);
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Text from the run (host names, reasons, commands) made inert for Markdown: no emphasis,
/// links or raw HTML can come out of it.
pub(crate) fn md_text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '!' => {
                o.push('\\');
                o.push(c);
            }
            '\n' | '\r' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// A table cell: Markdown-inert text on one line.
fn md_cell(s: &str) -> String {
    md_text(s.trim())
}

/// What a timeline phase means, for the phase tables of chapters 2 and 3 (empty for a phase
/// the catalogue does not describe).
fn phase_meaning(cat: &Catalogue, backend: &str, phase: &str) -> String {
    let ids = [
        format!("phase-{backend}-{phase}"),
        format!("phase-any-{phase}"),
    ];
    ids.iter()
        .find(|id| cat.has(id))
        .map(|id| cat.tr(id, &[]))
        .unwrap_or_default()
}

/// What an exit reason is, for the exit table of chapter 6.
fn exit_meaning(cat: &Catalogue, reason: &str) -> String {
    let id = match reason {
        "io_out.serial" => "exit-io_out-serial",
        "io_in.serial" => "exit-io_in-serial",
        "io_out.marker" | "io_in.marker" => "exit-marker",
        "io_out.rtc" | "io_in.rtc" => "exit-rtc",
        "io_out.i8042" | "io_in.i8042" => "exit-i8042",
        "io_out.other" | "io_in.other" => "exit-port-other",
        "mmio_read" | "mmio_write" => "exit-mmio",
        "hlt" => "exit-hlt",
        "shutdown" => "exit-shutdown",
        "system_event" => "exit-system_event",
        "intr" => "exit-intr",
        "fail_entry" | "internal_error" => "exit-error",
        _ => return String::new(),
    };
    cat.tr(id, &[])
}

/// A study's table beside the run, with its citation and sources, for the book.
fn published_table(
    view: &View<'_>,
    study: &'static crate::published::Study,
    cat: &Catalogue,
) -> String {
    use crate::report::published;
    let c = published::compare(view, study);
    let mut out = published::markdown_table(&c);
    let _ = write!(
        out,
        "\n{} {}\n",
        cat.tr("published-note", &[("source", study.data_source)]),
        study.citation
    );
    out
}
