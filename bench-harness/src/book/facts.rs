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

use crate::manifest::Manifest;
use crate::report::charts::{timeline_rows, to_mib, TimelineRow};
use crate::report::{backend_label, methodology, View};
use crate::sample::Sample;
use crate::store::StoredRun;
use crate::summary::{fmt_num, fmt_ratio, Summary, SummaryRow, LEVEL};

/// The opening words of every value the run lacks; tests and readers can search for it.
pub const NOT_MEASURED: &str = "not measured in this run";

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
    fn of(run: &StoredRun, role: String) -> Self {
        let view = View::new(run);
        Self {
            role,
            run_id: run.manifest.run_id.clone(),
            methodology: methodology::paragraph(&view),
            environment: methodology::environment(&view),
            params: run
                .manifest
                .suite
                .workloads
                .iter()
                .map(|w| (w.name.clone(), workload_params(&w.workload)))
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
pub(crate) fn workload_params(w: &workloads::Workload) -> String {
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
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The backends with a measured sample in `run`, in the book's order, as one phrase.
fn roles(run: &StoredRun) -> String {
    let v: Vec<&str> = ALL_BACKENDS
        .into_iter()
        .filter(|b| run.samples.iter().any(|s| s.backend == *b && !s.warmup))
        .collect();
    if v.is_empty() {
        "no backend".into()
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
    /// The capacity figures, from a density run when the book has one.
    pub density: super::density::DensityFacts,
}

/// A median, or why there is none.
pub(crate) type Value = Result<String, String>;

impl Facts {
    pub(crate) fn new(run: &StoredRun) -> Self {
        let view = View::new(run);
        Self {
            manifest: run.manifest.clone(),
            samples: run.samples.clone(),
            caveats: methodology::caveats(&view),
            timelines: timeline_rows(&view),
            published: crate::published::STUDIES
                .iter()
                .map(|s| (s.id, published_table(&view, s)))
                .collect(),
            workloads: view.workloads.clone(),
            summary: view.summary,
            density: super::density::DensityFacts::default(),
            sources: vec![RunSource::of(run, roles(run))],
            vm_other_params: Vec::new(),
        }
    }

    /// Study `id`'s published ratios to native beside the run's; `None` for an unknown study.
    pub(crate) fn published(&self, id: &str) -> Option<&str> {
        self.published.get(id).map(String::as_str)
    }

    /// The facts of `merged` (`base` with the VM's samples of `vm_run`, see
    /// [`super::merge_vm_run`]), each of the two runs described on its own.
    pub(crate) fn merged(merged: &StoredRun, base: &StoredRun, vm_run: &StoredRun) -> Self {
        let mut f = Self::new(merged);
        let mut base_only = base.clone();
        base_only.samples.retain(|s| s.backend != "vm");
        let base_src = RunSource::of(base, roles(&base_only));
        let vm_src = RunSource::of(vm_run, "vm".into());
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
                format!(
                    "The VM's run {} did not complete ({}): its figures use the samples that exist.",
                    vm_run.manifest.run_id,
                    crate::report::status_word(vm_run.manifest.status)
                ),
            );
        }
        f.sources = vec![base_src, vm_src];
        f
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
            [base, vm] => format!(
                "two runs of `isolab run`: run **{}** ({}) and run **{}** ({}), each with its own \
                 suite, sizes and repetitions ([chapter 9](09-reproducing.md) describes both)",
                md_text(&base.run_id),
                md_text(&base.role),
                md_text(&vm.run_id),
                md_text(&vm.role)
            ),
            _ => format!(
                "one run of `isolab run`, run **{}**",
                md_text(self.run_id())
            ),
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
            .map(|p| format!("; A/A noise {p}"))
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
            return format!(
                "*{NOT_MEASURED} (run {} varied no setting side by side; `isolab run --factor \
                 NAME=V1,V2` does)*\n",
                md_text(self.run_id())
            );
        }
        let with_aa = self.summary.aa.is_some();
        let mut o = String::from(
            "| setting | backend | held fixed | change | workload | metric | ratio [95% CI] |",
        );
        o.push_str(if with_aa { " A/A noise |\n" } else { "\n" });
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
                ratio_n(&e.ratio, e.n_from, e.n_to)
            );
            if with_aa {
                let cell = self
                    .aa_resolution(&e.workload, &e.metric)
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
            return format!(
                "*{NOT_MEASURED} (run {} had no A/A check; `isolab run --aa native` runs one)*\n",
                md_text(self.run_id())
            );
        };
        let mut o = format!("{}\n\n", md_text(&crate::summary::aa_sentence(aa)));
        o.push_str("| workload | metric | A'/A [95% CI] | resolves |\n|---|---|---|---|\n");
        for r in aa.rows.iter().filter(|r| r.headline) {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                r.workload,
                md_cell(&format!("{} ({})", r.metric, r.unit)),
                ratio_n(&r.ratio, r.n_a, r.n_b),
                crate::summary::pct_text(r.resolution_pct)
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
            return format!("the {workload} workload was not part of this run");
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
                Some(note) => format!("{backend} unavailable: {}", short_reason(note)),
                None => format!("{backend} unavailable on this host"),
            };
        }
        let mine: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| !s.warmup && s.backend == backend && s.workload == entry)
            .collect();
        if mine.is_empty() {
            return if planned || state.is_some() {
                format!("no measured trial of {entry} on {backend} was stored; the run may have been interrupted")
            } else {
                format!("the {backend} backend was not part of this run")
            };
        }
        let ok: Vec<&&Sample> = mine.iter().filter(|s| s.failure.is_none()).collect();
        if ok.is_empty() {
            let reason = mine
                .iter()
                .find_map(|s| s.failure.as_ref().map(ToString::to_string))
                .unwrap_or_default();
            return format!(
                "all {} trials of {entry} on {backend} failed: {}",
                mine.len(),
                reason.trim_end_matches('.')
            );
        }
        // Emulation explains a missing time, not a count no sample has (a run older than it).
        let reported =
            metric.is_none_or(|m| ok.iter().any(|s| s.metrics.iter().any(|x| x.name == m)));
        if reported && ok.iter().all(|s| s.emulated) {
            return format!(
                "{backend} ran only inside an emulated machine, whose times are not performance figures"
            );
        }
        match metric {
            Some(m) => format!("{backend} does not report {m} for {entry}"),
            None => format!("{backend} has no usable {entry} trial"),
        }
    }

    /// The sentence for a missing value.
    pub(crate) fn missing(&self, backend: &str, workload: &str, metric: Option<&str>) -> String {
        format!(
            "*{NOT_MEASURED} ({})*",
            md_text(&self.why_missing(backend, workload, metric))
        )
    }

    /// `3.02 ms [95% CI 2.95–3.06], n=10`, or why not.
    pub(crate) fn median(&self, backend: &str, workload: &str, metric: &str) -> Value {
        let entry = self
            .workload_entry(workload)
            .ok_or_else(|| self.missing(backend, workload, Some(metric)))?;
        let other_run = if self.vm_params_differ(backend, workload) {
            format!(
                " (run {}, with other parameters than native's)",
                self.run_of(Some("vm"))
            )
        } else {
            String::new()
        };
        if let Some(r) = self.row(backend, &entry, metric) {
            return Ok(fmt_median(r, &md_text(&other_run)));
        }
        // Emulated VM samples may stand for counts and sizes, never for times or rates.
        let emulated_label = format!("{backend} (emulated)");
        if let Some(r) = self.row(&emulated_label, &entry, metric) {
            if is_count_or_size(metric, &r.unit) {
                return Ok(fmt_median(
                    r,
                    &format!(
                        " (counted in an emulated machine: a count, not a speed){}",
                        md_text(&other_run)
                    ),
                ));
            }
        }
        Err(self.missing(backend, workload, Some(metric)))
    }

    /// `1.03× native [95% CI 1.01–1.05]`, or why not.
    pub(crate) fn ratio(&self, backend: &str, workload: &str, metric: &str) -> Value {
        let entry = self
            .workload_entry(workload)
            .ok_or_else(|| self.missing(backend, workload, Some(metric)))?;
        if self.vm_params_differ(backend, workload) {
            return Err(format!(
                "*no ratio: the VM's {} comes from run {}, measured with other parameters than \
                 native's (chapter 9 lists both)*",
                md_text(&entry),
                md_text(self.run_of(Some("vm")))
            ));
        }
        let Some(r) = self.row(backend, &entry, metric) else {
            return Err(self.missing(backend, workload, Some(metric)));
        };
        match r.vs_native {
            Some(v) => Ok(format!(
                "{}× native [{:.0}% CI {}–{}{}]",
                fmt_ratio(v.ratio),
                LEVEL * 100.0,
                fmt_ratio(v.lo),
                fmt_ratio(v.hi),
                self.aa_note(&entry, metric)
            )),
            None => Err(format!(
                "*{NOT_MEASURED} (no ratio: {})*",
                md_text(&self.why_missing("native", workload, Some(metric)))
            )),
        }
    }

    /// A setting the run recorded for `backend` (its manifest's backend facts), as inert text,
    /// or why there is none.
    pub(crate) fn fact(&self, backend: &str, key: &str) -> String {
        match self.manifest.backends.get(backend) {
            Some(st) => match st.facts.get(key) {
                Some(v) => format!("`{}`", v.replace('`', "'")),
                None => format!(
                    "*{NOT_MEASURED} ({})*",
                    md_text(&format!(
                        "the run's manifest records no {key} for {backend}; runs made before \
                         isolab recorded it lack it"
                    ))
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
                " run {} ({}) |",
                md_cell(&src.run_id),
                md_cell(&src.role)
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
            let line = match st {
                None => format!("**{b}**: not part of this run"),
                Some(st) if !st.available => format!(
                    "**{b}**: unavailable: {}",
                    md_text(st.note.as_deref().unwrap_or("no reason recorded"))
                ),
                Some(_) if ok => format!("**{b}**: measured"),
                Some(_) if emulated => format!(
                    "**{b}**: ran only inside an emulated machine: its counts and its view of \
                     the inside are shown, its times are not"
                ),
                Some(_) => format!("**{b}**: no successful measured trial"),
            };
            let from = match self.sources.as_slice() {
                [_, vm] if b == "vm" => format!(" (from run {})", md_text(&vm.run_id)),
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
                    "This book rests on {} runs, each described on its own; no figure divides a \
                     number of one run by a number of the other unless both measured the workload \
                     with the same parameters.\n",
                    sources.len()
                );
                for src in sources {
                    let _ = writeln!(
                        o,
                        "- **Run {}** (the book's {} figures): {}\n",
                        md_text(&src.run_id),
                        md_text(&src.role),
                        md_text(&src.methodology)
                    );
                }
            }
        }
        let Some(first) = self.sources.first() else {
            return o;
        };
        let _ = write!(o, "\n| workload |");
        for src in &self.sources {
            let _ = write!(o, " parameters in run {} |", md_cell(&src.run_id));
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
                if differs { " (differs)" } else { "" }
            );
            for src in &self.sources {
                let _ = write!(o, " {} |", md_cell(src.params_of(w).unwrap_or("not run")));
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
        let mut o = String::from(
            "| workload | metric | native | container | vm | qemu-tcg (emulator) |\n\
             |---|---|---|---|---|---|\n",
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
            return format!(
                "*{NOT_MEASURED} (run {} has none of the CPU and memory workloads)*\n",
                md_text(self.run_id())
            );
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
    pub(crate) fn inspect_table(&self) -> String {
        let mut cols: Vec<(String, &workloads::result::InspectReport)> = Vec::new();
        let mut absent = Vec::new();
        for b in ALL_BACKENDS {
            if b == "qemu-tcg" && !self.manifest.backends.contains_key(b) {
                continue;
            }
            // What the inside looks like does not depend on speed: emulated samples count.
            let found = self.samples.iter().find_map(|s| {
                (s.backend == b && s.kind == "inspect" && !s.warmup && s.failure.is_none())
                    .then(|| {
                        s.agent
                            .as_ref()?
                            .inspect
                            .as_ref()
                            .map(|i| (backend_label(s), i))
                    })
                    .flatten()
            });
            match found {
                Some(c) => cols.push(c),
                None => absent.push(format!("{b}: {}", self.missing(b, "inspect", None))),
            }
        }
        let mut o = String::new();
        if !cols.is_empty() {
            let host_boot = &self.manifest.host.boot_id;
            o.push_str("| what the program sees |");
            for (label, _) in &cols {
                let _ = write!(o, " {} |", md_cell(label));
            }
            o.push_str("\n|---|");
            o.push_str(&"---|".repeat(cols.len()));
            o.push('\n');
            type Cell = fn(&workloads::result::InspectReport) -> String;
            let rows: [(&str, Cell); 10] = [
                ("kernel release (`uname -r`)", |i| i.kernel_release.clone()),
                ("boot_id", |i| i.boot_id.clone()),
                ("its own PID", |i| i.pid.to_string()),
                ("processes it can see (`/proc`)", |i| {
                    i.visible_processes.to_string()
                }),
                ("hostname", |i| i.hostname.clone()),
                ("network interfaces", |i| i.interfaces.join(", ")),
                ("mounts", |i| i.mounts.to_string()),
                ("CPUs it may run on", |i| i.cpus.to_string()),
                ("memory it is told about (MemTotal)", |i| {
                    format!("{} MiB", i.mem_total_kib / 1024)
                }),
                ("its cgroup (`/proc/self/cgroup`)", |i| i.cgroup.clone()),
            ];
            for (what, f) in rows {
                let _ = write!(o, "| {what} |");
                for (_, i) in &cols {
                    let v = f(i);
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
            o.push_str("| same kernel as the host? (boot_id equal) |");
            for (_, i) in &cols {
                let same = !host_boot.is_empty() && i.boot_id.trim() == host_boot.trim();
                let _ = write!(o, " {} |", if same { "**yes**" } else { "**no**" });
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

    /// The phases of one backend's noop trial: where each segment ends, how long it took, what
    /// happened in it.
    pub(crate) fn phases_table(&self, backend: &str) -> String {
        let label = self.column_label(backend);
        let Some((_, segments, used)) = self.timelines.iter().find(|(l, _, _)| *l == label) else {
            return format!("{}\n", self.missing(backend, "noop", None));
        };
        let mut o = String::from(
            "| # | phase ends at | median duration | cumulative | what happened |\n|---|---|---|---|---|\n",
        );
        let mut at = 0.0;
        for (i, (phase, ms)) in segments.iter().enumerate() {
            at += ms;
            let _ = writeln!(
                o,
                "| {} | `{}` | {} | {} | {} |",
                i + 1,
                phase,
                fmt_ms(*ms),
                fmt_ms(at),
                phase_meaning(backend, phase)
            );
        }
        let _ = writeln!(
            o,
            "\nMedians of {used} `noop` trials of {backend} on the host clock (the segments' medians \
             add up to the median *path*, not to the median total)."
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
                by_label
                    .entry(r.backend.clone())
                    .or_default()
                    .insert(reason.to_owned(), (r.median.median, fmt_median(r, "")));
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
        let mut o =
            String::from("| exit reason | median per trial | what it is |\n|---|---|---|\n");
        for (reason, (_, text)) in rows {
            let _ = writeln!(o, "| `{reason}` | {text} | {} |", exit_meaning(reason));
        }
        if let Some((_, total)) = reasons.get("total") {
            let _ = writeln!(o, "| **all exits** | {total} | |");
        }
        if label != "vm" {
            let _ = writeln!(
                o,
                "\nCounted by a VM that ran inside an emulated machine: the counts are what the \
                 guest did; the times are not measured."
            );
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
        let mut o = String::from(
            "| guest RAM backed by | KVM exits to the agent's start | nested page faults to the agent's start | guest RAM touched | of it on huge pages |\n|---|---|---|---|---|\n",
        );
        let label = used.as_deref().map_or_else(
            || "not recorded (a run from before `--vm-memory`: small pages)".to_owned(),
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
            "\nThis run backed guest RAM one way; the others are a run away: {}.\n",
            others.join(", ")
        );
        o
    }

    /// Memory per instance, how many fit and start under load, per backend: from the density
    /// run (one meter for every backend), or said to be missing.
    pub(crate) fn capacity_table(&self) -> String {
        self.density.capacity_table()
    }
}

/// `1.10× [1.05–1.16], n=10/10`: a ratio of two columns with its interval and sample counts.
fn ratio_n(r: &crate::stats::RatioCi, n_from: usize, n_to: usize) -> String {
    format!(
        "{}× [{}–{}], n={n_from}/{n_to}",
        fmt_ratio(r.ratio),
        fmt_ratio(r.lo),
        fmt_ratio(r.hi)
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
    let counted = ["exits.", "disk.", "irq_injections.", "kvm.", "npf."]
        .iter()
        .any(|p| metric.starts_with(p));
    !timed && (counted || to_mib(1.0, unit).is_some())
}

fn fmt_median(r: &SummaryRow, suffix: &str) -> String {
    let m = &r.median;
    let unit = if r.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", r.unit)
    };
    let interval = if m.coverage + 1e-9 >= LEVEL {
        format!(
            "{:.0}% CI {}–{}",
            LEVEL * 100.0,
            fmt_short(m.lo),
            fmt_short(m.hi)
        )
    } else {
        format!(
            "range {}–{}, {:.0}% coverage: too few trials for 95%",
            fmt_short(m.lo),
            fmt_short(m.hi),
            m.coverage * 100.0
        )
    };
    format!(
        "{}{} [{interval}], n={}{suffix}",
        fmt_short(m.median),
        md_text(&unit),
        m.n
    )
}

/// A duration given in ms, in µs when below a millisecond (no `6.6e-4 ms` in a table).
fn fmt_ms(ms: f64) -> String {
    if ms.abs() >= 1.0 || ms == 0.0 {
        format!("{} ms", fmt_short(ms))
    } else {
        format!("{} µs", fmt_short(ms * 1000.0))
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

/// What a timeline phase means, for the phase tables of chapters 2 and 3.
fn phase_meaning(backend: &str, phase: &str) -> &'static str {
    match (backend, phase) {
        ("vm", "vm_created") => "`KVM_CREATE_VM`: an empty virtual machine, no memory, no CPU yet",
        ("vm", "memory_ready") => {
            "guest RAM mapped in the VMM and handed to KVM (`KVM_SET_USER_MEMORY_REGION`)"
        }
        ("vm", "kernel_loaded") => {
            "kernel, initramfs, command line, boot parameters, page tables and MP table written into guest RAM"
        }
        ("vm", "vcpu_configured") => {
            "vCPU created; registers, CPUID, MSRs set; serial port wired to an irqfd"
        }
        ("vm", "first_kvm_run") => "the vCPU thread enters the guest for the first time (`KVM_RUN`)",
        ("vm", "agent_ready") => {
            "the guest kernel booted and ran `/init`: the agent's first marker (a port write, one exit)"
        }
        ("vm", "exited") => "the guest asked to stop (power-off or reset)",
        ("vm", "cleaned_up") => "vCPU, devices, VM and guest memory released",
        ("container", "cgroup_created") => "the trial's cgroup exists, with its memory, CPU and pids limits",
        ("container", "clone_returned") => "`clone3` with new namespaces returned in the parent",
        ("container", "child_started") => "the child's first instruction, already inside its new namespaces",
        ("container", "cgroup_joined") => "the child is accounted to its cgroup",
        ("container", "namespaces_ready") => "hostname set, loopback up, cgroup namespace entered",
        ("container", "root_pivoted") => "its copy of the template mount namespace entered (the read-only rootfs as `/`, the host's `/` detached) and its filesystems mounted",
        ("container", "exec") => "capabilities dropped; `execve` of the agent as PID 1",
        ("container", "agent_ready") => "the agent runs: its first marker arrived",
        ("container", "exited") => "PID 1 ended, and with it every process in the PID namespace",
        ("container", "reaped") => "the exit status was collected",
        ("container", "cleaned_up") => "the cgroup removed; nothing of the container is left",
        (_, "spawned") => "`fork`/`exec` of the agent returned in the harness",
        (_, "agent_ready") => "the agent runs: its first marker arrived",
        (_, "workload_start") => "the workload begins",
        (_, "workload_end") => "the workload ends",
        (_, "result_written") => "the result is written",
        (_, "exited") => "the agent ended",
        (_, "reaped") => "the exit status was collected",
        (_, "cleaned_up") => "everything of the trial is released",
        _ => "",
    }
}

/// What an exit reason is, for the exit table of chapter 6.
fn exit_meaning(reason: &str) -> &'static str {
    match reason {
        "io_out.serial" => {
            "a write to the emulated serial port: one exit per byte of console output"
        }
        "io_in.serial" => "a read of a serial-port register (the driver polls its status)",
        "io_out.marker" | "io_in.marker" => "the agent's timing marker: one port write per event",
        "io_out.rtc" | "io_in.rtc" => "the CMOS real-time clock, read at boot",
        "io_out.i8042" | "io_in.i8042" => {
            "the keyboard controller, probed at boot and used to reset"
        }
        "io_out.other" | "io_in.other" => {
            "a port with no device behind it: the kernel probing for hardware"
        }
        "mmio_read" | "mmio_write" => "an access to an address with no RAM (memory-mapped I/O)",
        "hlt" => "the vCPU halted",
        "shutdown" => "triple fault: the guest could not continue",
        "system_event" => "the guest asked to power off or reset",
        "intr" => "KVM returned to the VMM for a signal or an interrupt window",
        "fail_entry" | "internal_error" => "KVM could not enter or emulate: an error",
        _ => "",
    }
}

/// A study's table beside the run, with its citation and sources, for the book.
fn published_table(view: &View<'_>, study: &'static crate::published::Study) -> String {
    use crate::report::published;
    let c = published::compare(view, study);
    let mut out = published::markdown_table(&c);
    let _ = write!(
        out,
        "\nRatios are sandbox / native; theirs are quoted from {}, not measured here. {}\n",
        study.data_source, study.citation
    );
    out
}
