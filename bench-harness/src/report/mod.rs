//! Reports of a stored run in several formats, charts, and comparisons of two runs.
//!
//! Everything here is computed from a [`StoredRun`] alone (samples.jsonl + manifest.json), so a
//! report can be remade at any time, on any machine, and an interrupted run reports what it has.
//!
//! - [`render_report`]: terminal, Markdown, self-contained HTML (inline SVG charts), CSV of every
//!   sample, LaTeX (booktabs) and JSON.
//! - [`write_charts`]: the charts as SVG files, plus PNG files when a system font is available.
//! - [`compare`]: two runs side by side, with the change and whether the intervals separate.
//!
//! Samples are reported by column: the backend with its factor values (`container userns=on`),
//! so factor columns work everywhere backends do, comparisons included. Emulated VM samples (the
//! VM ran inside an emulated machine) are labelled `vm (emulated)` everywhere and kept out of
//! ratios and timing charts: they are correctness data only.

pub(crate) mod charts;
mod compare;
mod csv;
mod html;
mod latex;
mod markdown;
pub(crate) mod methodology;
pub(crate) mod png;
pub(crate) mod published;
mod term;

use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::i18n::{Catalogue, Lang};
use crate::manifest::{Manifest, RunStatus};
use crate::sample::Sample;
use crate::store::StoredRun;
use crate::summary::{self, Summary};

pub use charts::Chart;
pub use compare::compare;
pub(crate) use html::{esc, STYLE as HTML_STYLE};
pub(crate) use markdown::cell as markdown_cell;

/// Output formats of `isolab report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// An aligned table for the terminal, with the methodology and caveats.
    Term,
    /// Markdown: tables to paste into a README or a paper draft.
    Md,
    /// One self-contained XHTML-compatible file: charts (inline SVG), tables, manifest.
    Html,
    /// Every sample, one row per sample and metric.
    Csv,
    /// A LaTeX table (booktabs) for papers.
    Latex,
    /// The summary, methodology, caveats and manifest as JSON.
    Json,
}

/// Output formats of `isolab compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    /// An aligned table for the terminal.
    Term,
    /// A Markdown table.
    Md,
    /// JSON.
    Json,
}

/// Errors making a report. Messages say what to do.
#[derive(Debug, Error)]
pub enum ReportError {
    /// A chart could not be drawn.
    #[error("drawing the {chart} chart failed: {message}. Report this as a bug with the run directory attached")]
    Chart {
        /// Which chart.
        chart: String,
        /// What plotters said.
        message: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}. Choose a writable directory")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The font given for the PNG files cannot be used.
    #[error("{message}")]
    Font {
        /// The font file.
        path: PathBuf,
        /// What is wrong, and what to pass instead.
        message: String,
    },
    /// Serialising JSON failed (not expected with the types used).
    #[error("serialising the report as JSON failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// What [`write_charts`] produced.
#[derive(Debug, Clone, Default)]
pub struct ChartFiles {
    /// Every file written (SVG, and PNG when a font was found).
    pub files: Vec<PathBuf>,
    /// Why some charts or the PNG files are missing (no data for a chart, no font for PNG).
    pub notes: Vec<String>,
}

/// Renders a report of `run` in `format`. Works on partial runs and runs without some backend.
pub fn render_report(run: &StoredRun, format: ReportFormat) -> Result<String, ReportError> {
    render_report_in(run, format, Lang::En)
}

/// [`render_report`] in `lang`: the terminal and HTML reports are written from the message
/// catalogue ([`crate::i18n`]) with the language's numbers; the other formats are data for tools
/// and papers and stay English.
pub fn render_report_in(
    run: &StoredRun,
    format: ReportFormat,
    lang: Lang,
) -> Result<String, ReportError> {
    let view = View::in_lang(run, lang);
    let cat = Catalogue::new(lang);
    match format {
        ReportFormat::Term => Ok(term::render(&view, &cat)),
        ReportFormat::Md => Ok(markdown::render(&view)),
        ReportFormat::Html => html::render(&view, &cat),
        ReportFormat::Csv => Ok(csv::render(&view)),
        ReportFormat::Latex => Ok(latex::render(&view)),
        ReportFormat::Json => json(&view),
    }
}

/// The published figures the run's suite replicates (`[replicates.STUDY]`), beside the run's,
/// as terminal tables; empty when it replicates none.
pub fn published_term(run: &StoredRun) -> String {
    published::term(&published::comparisons(&View::new(run)))
}

/// The charts of `run`, as SVG text, in a fixed order. Charts without data are left out; the
/// second value says which and why.
pub fn build_charts(run: &StoredRun) -> Result<(Vec<Chart>, Vec<String>), ReportError> {
    charts::build(&View::new(run))
}

/// Writes every chart of `run` into `dir` (created if missing) as `NAME.svg` and `NAME.png`.
/// Without a usable system font, PNG files are skipped with a note, not an error (install
/// `fonts-dejavu-core` to get them).
pub fn write_charts(run: &StoredRun, dir: &Path) -> Result<ChartFiles, ReportError> {
    let (charts, notes) = build_charts(run)?;
    write_chart_files(&charts, notes, dir, None)
}

/// [`write_charts`], drawing the PNG files with the font file `font` and no other, so that they
/// are identical wherever they are drawn (an unreadable font is an error, not a note).
pub fn write_charts_with_font(
    run: &StoredRun,
    dir: &Path,
    font: &Path,
) -> Result<ChartFiles, ReportError> {
    let (charts, notes) = build_charts(run)?;
    write_chart_files(&charts, notes, dir, Some(font))
}

/// Writes `charts` into `dir` (created if missing) as SVG and PNG; `notes` are passed through
/// with the PNG notes added. The PNG files are drawn with the font file `font` alone when it is
/// given (an unreadable font is an error), else with a system font (none: a note, no PNG).
pub fn write_chart_files(
    charts: &[Chart],
    mut notes: Vec<String>,
    dir: &Path,
    font: Option<&Path>,
) -> Result<ChartFiles, ReportError> {
    let rasteriser = match font {
        Some(font) => {
            Ok(
                png::Rasteriser::with_font_file(font).map_err(|message| ReportError::Font {
                    path: font.to_path_buf(),
                    message,
                })?,
            )
        }
        None => png::Rasteriser::new(),
    };
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for c in charts {
        let path = dir.join(format!("{}.svg", c.name));
        std::fs::write(&path, &c.svg).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        files.push(path);
    }
    match rasteriser {
        Ok(r) => {
            for c in charts {
                let path = dir.join(format!("{}.png", c.name));
                match r.render(&c.svg) {
                    Ok(bytes) => {
                        std::fs::write(&path, bytes).map_err(|source| ReportError::Write {
                            path: path.clone(),
                            source,
                        })?;
                        files.push(path);
                    }
                    Err(why) => notes.push(format!("{}.png not written: {why}", c.name)),
                }
            }
        }
        Err(why) => notes.push(format!("PNG files not written: {why}")),
    }
    Ok(ChartFiles { files, notes })
}

/// A run prepared for reporting: the summary computed once, plus the facts every format uses.
#[derive(Debug)]
pub(crate) struct View<'a> {
    pub run: &'a StoredRun,
    pub summary: Summary,
    /// Workload names in suite order, then any others found in the samples.
    pub workloads: Vec<String>,
    /// The run's column labels in plan order (empty for runs made before factors existed).
    pub columns: Vec<String>,
    /// The language of the report's and the charts' words.
    pub cat: Catalogue,
}

impl<'a> View<'a> {
    pub(crate) fn new(run: &'a StoredRun) -> Self {
        Self::in_lang(run, Lang::En)
    }

    /// The view of `run` whose words (charts, tables) are in `lang`.
    pub(crate) fn in_lang(run: &'a StoredRun, lang: Lang) -> Self {
        let summary = summary::summarise_run(run);
        Self {
            run,
            summary,
            workloads: summary::workload_order(run),
            columns: run
                .manifest
                .columns
                .iter()
                .map(|c| c.column.label.clone())
                .collect(),
            cat: Catalogue::new(lang),
        }
    }

    /// Sort key of a column label: backend, then the column's place in the run.
    pub(crate) fn label_key(&self, label: &str) -> (usize, usize, bool, String) {
        summary::label_key(label, &self.columns)
    }

    pub(crate) fn manifest(&self) -> &Manifest {
        &self.run.manifest
    }

    /// Measured samples (not warm-up) that failed.
    pub(crate) fn failed(&self) -> impl Iterator<Item = &Sample> {
        self.run
            .samples
            .iter()
            .filter(|s| !s.warmup && s.failure.is_some())
    }

    /// Whether the run did not finish normally.
    pub(crate) fn is_partial(&self) -> bool {
        self.manifest().status != RunStatus::Complete
            || self.run.torn_tail
            || self.run.samples.len() < self.manifest().planned_trials
    }
}

/// The label a sample is reported under: its column (backend and factor values), with
/// ` (emulated)` for emulated ones.
pub(crate) fn backend_label(s: &Sample) -> String {
    s.label()
}

/// Sort rank of a column label where the run's column order is not at hand: native, container,
/// vm by the label's first word, real before emulated (then sort by the label itself).
pub(crate) fn backend_rank(label: &str) -> usize {
    let (backend, _, emulated, _) = summary::label_key(label, &[]);
    backend * 2 + usize::from(emulated)
}

/// A run's status for people.
pub(crate) fn status_word(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "running or killed",
        RunStatus::Complete => "complete",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Failed => "stopped by an error",
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    run_id: &'a str,
    status: RunStatus,
    partial: bool,
    torn_tail: bool,
    samples_stored: usize,
    planned_trials: usize,
    methodology: String,
    caveats: Vec<String>,
    summary: &'a Summary,
    failed_trials: Vec<methodology::FailedTrial>,
    /// Published figures beside this run's, for the studies the suite replicates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    published: Vec<published::Comparison>,
    manifest: &'a Manifest,
}

fn json(view: &View<'_>) -> Result<String, ReportError> {
    let m = view.manifest();
    let report = JsonReport {
        run_id: &m.run_id,
        status: m.status,
        partial: view.is_partial(),
        torn_tail: view.run.torn_tail,
        samples_stored: view.run.samples.len(),
        planned_trials: m.planned_trials,
        methodology: methodology::paragraph(view, &Catalogue::new(Lang::En)),
        caveats: methodology::caveats(view, &Catalogue::new(Lang::En)),
        summary: &view.summary,
        failed_trials: methodology::failed_trials(view),
        published: published::comparisons(view),
        manifest: m,
    };
    Ok(serde_json::to_string_pretty(&report)? + "\n")
}
