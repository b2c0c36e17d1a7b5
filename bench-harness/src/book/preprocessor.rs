//! The mdBook preprocessor that puts a run's numbers, tables and figures into the chapters.
//!
//! A chapter writes `{{isolab:KIND ARGS}}` where a number belongs. The kinds:
//!
//! | placeholder | becomes |
//! |---|---|
//! | `{{isolab:median BACKEND WORKLOAD METRIC}}` | `3.02 ms [95% CI 2.95–3.06], n=10` |
//! | `{{isolab:ratio BACKEND WORKLOAD METRIC}}` | `1.03× native [95% CI 1.01–1.05]` (with `; A/A noise ±2.1%` in a run with an A/A check) |
//! | `{{isolab:figure NAME}}` | the figure (SVG) with its caption |
//! | `{{isolab:inspect-table}}` | what the `inspect` workload saw, backends side by side |
//! | `{{isolab:phases BACKEND}}` | the backend's start phases with durations |
//! | `{{isolab:exits-table WORKLOAD}}` | VM exits by reason |
//! | `{{isolab:capacity-table}}` | from a density run: memory per instance on one meter, how many fit, start under load |
//! | `{{isolab:density BACKEND WHAT}}` | one figure of a density run (`marginal`, `fixed`, `pss`, `fit`, `cgroup`, `start-p50`, `start-p99`, `start-max`, `beside`, `teardown`, `recovery`, `largest-n`, `vm-split`, `ksm`) |
//! | `{{isolab:density-method}}`, `{{isolab:density-floor}}`, `{{isolab:density-run-id}}` | the density run's method, the container against its floor, its id |
//! | `{{isolab:memory-table}}` | the VM's boot per guest RAM backing: exits, nested page faults, huge pages |
//! | `{{isolab:effects}}` | each varied setting's effect on the headline metrics, A/A beside it |
//! | `{{isolab:aa}}` | the A/A check: the host's noise floor and its table |
//! | `{{isolab:published STUDY}}` | a published study's ratios to native beside the run's (`felter2014`) |
//! | `{{isolab:manifest}}` | host, kernel, CPU, date and versions of the run |
//! | `{{isolab:fact BACKEND KEY}}` | a setting the run recorded for a backend (`seccomp`, ...) |
//! | `{{isolab:availability}}` | which backends ran, and why the others did not |
//! | `{{isolab:emulation-table}}` | native, container, vm and qemu-tcg side by side on the CPU and memory workloads |
//! | `{{isolab:runs}}` | the run the book rests on, or both runs of a book built with `--vm-results` |
//! | `{{isolab:answer-key LAB}}` | a workbook lab's answers, from this run (`container`, `vm`, `startup`, `memory`, `disk`, `network`, `security`) |
//! | `{{isolab:methodology}}`, `{{isolab:caveats}}`, `{{isolab:run-id}}` | as named |
//!
//! A value the run lacks becomes "not measured in this run (why)", never a number. A placeholder
//! that is malformed or unknown stops the build with the chapter file and line, so a typo cannot
//! ship as a silent gap.

use std::sync::Arc;

use mdbook::book::{Book, BookItem};
use mdbook::preprocess::{Preprocessor, PreprocessorContext};
use thiserror::Error;

use super::facts::{md_text, Facts, ALL_BACKENDS};
use super::figures::{self, Figure};

/// Opening of every placeholder.
pub const OPEN: &str = "{{isolab:";
const CLOSE: &str = "}}";

/// A placeholder the preprocessor cannot expand: where, what, and what to write instead.
#[derive(Debug, Error)]
#[error("{chapter}:{line}: {message}")]
pub struct PlaceholderError {
    /// The chapter's source file (relative to the book's `src/`).
    pub chapter: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong and what to write.
    pub message: String,
}

/// The in-process preprocessor `isolab book` registers with mdBook.
pub(crate) struct IsolabPreprocessor {
    facts: Arc<Facts>,
    figures: Arc<Vec<Figure>>,
    /// The translation of the chapters (`book/po/LANG.po`), applied before the placeholders are
    /// filled; `None` for the English edition.
    catalog: Option<Arc<polib::catalog::Catalog>>,
}

impl std::fmt::Debug for IsolabPreprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolabPreprocessor")
            .field("facts", &self.facts)
            .field("translated", &self.catalog.is_some())
            .finish_non_exhaustive()
    }
}

impl IsolabPreprocessor {
    pub(crate) fn new(
        facts: Arc<Facts>,
        figures: Arc<Vec<Figure>>,
        catalog: Option<Arc<polib::catalog::Catalog>>,
    ) -> Self {
        Self {
            facts,
            figures,
            catalog,
        }
    }

    /// Expands every placeholder of one chapter's Markdown.
    pub(crate) fn expand(&self, chapter: &str, text: &str) -> Result<String, PlaceholderError> {
        let mut out = String::with_capacity(text.len() + 1024);
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let err = |message: String| PlaceholderError {
                chapter: chapter.to_owned(),
                line: i + 1,
                message,
            };
            let mut rest = line;
            while let Some(start) = rest.find(OPEN) {
                out.push_str(&rest[..start]);
                let after = &rest[start + OPEN.len()..];
                let Some(end) = after.find(CLOSE) else {
                    return Err(err(format!(
                        "`{OPEN}` without a closing `}}}}` on the same line; a placeholder must fit on one line"
                    )));
                };
                let body = &after[..end];
                out.push_str(&self.render(body).map_err(err)?);
                rest = &after[end + CLOSE.len()..];
            }
            out.push_str(rest);
        }
        Ok(out)
    }

    /// The Markdown for one placeholder body (the text between `{{isolab:` and `}}`).
    fn render(&self, body: &str) -> Result<String, String> {
        let words: Vec<&str> = body.split_whitespace().collect();
        let Some((&kind, args)) = words.split_first() else {
            return Err(format!("empty placeholder; {}", usage()));
        };
        let f = &self.facts;
        let want = |n: usize, form: &str| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "`{kind}` takes {n} argument(s), found {}: write `{OPEN}{form}{CLOSE}`",
                    args.len()
                ))
            }
        };
        match kind {
            "median" | "ratio" => {
                want(3, &format!("{kind} BACKEND WORKLOAD METRIC"))?;
                let (backend, workload, metric) = (args[0], args[1], args[2]);
                check_backend(backend)?;
                check_workload(workload)?;
                if kind == "ratio" && backend == "native" {
                    return Err(
                        "`ratio native ...` is always 1: ratios compare container or vm with native"
                            .into(),
                    );
                }
                let v = if kind == "median" {
                    f.median(backend, workload, metric)
                } else {
                    f.ratio(backend, workload, metric)
                };
                Ok(v.unwrap_or_else(|missing| missing))
            }
            "figure" => {
                want(1, "figure NAME")?;
                let Some(fig) = self.figures.iter().find(|x| x.name == args[0]) else {
                    return Err(format!(
                        "no figure named `{}`; the figures are: {}",
                        args[0],
                        figures::names().join(", ")
                    ));
                };
                Ok(self.figure(fig))
            }
            "phases" => {
                want(1, "phases BACKEND")?;
                check_backend(args[0])?;
                Ok(block(&f.phases_table(args[0])))
            }
            "exits-table" => {
                want(1, "exits-table WORKLOAD")?;
                check_workload(args[0])?;
                Ok(block(&f.exits_table(args[0])))
            }
            "inspect-table" => {
                want(0, "inspect-table")?;
                Ok(block(&f.inspect_table()))
            }
            "capacity-table" => {
                want(0, "capacity-table")?;
                Ok(block(&f.capacity_table()))
            }
            "density" => {
                want(2, "density BACKEND WHAT")?;
                if !super::density::DENSITY_BACKENDS.contains(&args[0]) {
                    return Err(format!(
                        "unknown density backend `{}`; choose from {}",
                        args[0],
                        super::density::DENSITY_BACKENDS.join(", ")
                    ));
                }
                if !super::density::DENSITY_VALUES.contains(&args[1]) {
                    return Err(format!(
                        "unknown density value `{}`; choose from {}",
                        args[1],
                        super::density::DENSITY_VALUES.join(", ")
                    ));
                }
                Ok(f.density.value(args[0], args[1]))
            }
            "density-method" => {
                want(0, "density-method")?;
                Ok(f.density.method())
            }
            "density-floor" => {
                want(0, "density-floor")?;
                Ok(f.density.floor_sentence())
            }
            "density-run-id" => {
                want(0, "density-run-id")?;
                Ok(f.density.run_id())
            }
            "memory-table" => {
                want(0, "memory-table")?;
                Ok(block(&f.memory_table()))
            }
            "effects" => {
                want(0, "effects")?;
                Ok(block(&f.effects_table()))
            }
            "aa" => {
                want(0, "aa")?;
                Ok(block(&f.aa()))
            }
            "published" => {
                want(1, "published STUDY")?;
                f.published(args[0]).map(block).ok_or_else(|| {
                    format!(
                        "unknown study {:?}; isolab knows: {}",
                        args[0],
                        crate::published::STUDIES
                            .iter()
                            .map(|s| s.id)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            }
            "manifest" => {
                want(0, "manifest")?;
                Ok(block(&f.manifest_table()))
            }
            "availability" => {
                want(0, "availability")?;
                Ok(block(&f.availability()))
            }
            "methodology" => {
                want(0, "methodology")?;
                Ok(f.methodology())
            }
            "caveats" => {
                want(0, "caveats")?;
                Ok(block(&f.caveats()))
            }
            "run-id" => {
                want(0, "run-id")?;
                Ok(md_text(f.run_id()))
            }
            "runs" => {
                want(0, "runs")?;
                Ok(f.runs())
            }
            "emulation-table" => {
                want(0, "emulation-table")?;
                Ok(block(&f.emulation_table()))
            }
            "answer-key" => {
                want(1, "answer-key LAB")?;
                Ok(block(&f.answer_key(args[0])?))
            }
            "fact" => {
                want(2, "fact BACKEND KEY")?;
                check_backend(args[0])?;
                Ok(f.fact(args[0], args[1]))
            }
            other => Err(format!("unknown placeholder `{other}`; {}", usage())),
        }
    }

    fn figure(&self, fig: &Figure) -> String {
        match &fig.drawn {
            Ok((title, _)) => {
                let cat = self.facts.cat();
                // The text alternative: the figure's title in the book's language.
                let title_id = format!("figure-title-{}", fig.name);
                let title = if cat.has(&title_id) {
                    cat.tr(&title_id, &[])
                } else {
                    title.clone()
                };
                // The density figures are drawn from the density run, the others from a run of
                // trials.
                let run = if fig.name.starts_with("density-") {
                    self.facts.density.run_id()
                } else {
                    md_text(self.facts.run_of(fig.about))
                };
                block(&format!(
                    "![{}]({})\n\n{}\n",
                    md_text(&title),
                    fig.rel_path(),
                    cat.tr(
                        "figure-line",
                        &[
                            ("name", fig.name),
                            ("run", &run),
                            (
                                "caption",
                                &cat.tr(&format!("figure-caption-{}", fig.name), &[])
                            ),
                        ]
                    )
                ))
            }
            Err(why) => {
                let reason = match fig.about {
                    Some(backend) => self.facts.why_missing(backend, "noop", None),
                    None => why.clone(),
                };
                block(&format!(
                    "> **{}**: {}\n",
                    self.facts.cat().tr("figure-label", &[("name", fig.name)]),
                    self.facts
                        .cat()
                        .tr("missing-value", &[("why", &md_text(&reason))])
                ))
            }
        }
    }
}

/// A block of Markdown set apart by blank lines, so it never runs into the surrounding text.
fn block(md: &str) -> String {
    format!("\n\n{}\n\n", md.trim_end())
}

fn usage() -> String {
    "known placeholders: median/ratio BACKEND WORKLOAD METRIC, figure NAME, phases BACKEND, \
     exits-table WORKLOAD, inspect-table, capacity-table, memory-table, emulation-table, \
     density BACKEND WHAT, density-method, density-floor, density-run-id, effects, aa, \
     published STUDY, manifest, availability, methodology, caveats, run-id, runs, \
     fact BACKEND KEY, answer-key LAB"
        .into()
}

fn check_backend(b: &str) -> Result<(), String> {
    if ALL_BACKENDS.contains(&b) {
        Ok(())
    } else {
        Err(format!(
            "unknown backend `{b}`; choose from {}",
            ALL_BACKENDS.join(", ")
        ))
    }
}

fn check_workload(w: &str) -> Result<(), String> {
    if workloads::spec::WORKLOAD_KINDS.contains(&w) {
        Ok(())
    } else {
        Err(format!(
            "unknown workload `{w}`; choose from {}",
            workloads::spec::WORKLOAD_KINDS.join(", ")
        ))
    }
}

impl Preprocessor for IsolabPreprocessor {
    fn name(&self) -> &str {
        "isolab"
    }

    fn run(&self, _ctx: &PreprocessorContext, mut book: Book) -> mdbook::errors::Result<Book> {
        if let Some(catalog) = &self.catalog {
            super::gettext::translate(catalog, &mut book)?;
        }
        let mut first_error: Option<PlaceholderError> = None;
        book.for_each_mut(|item| {
            if first_error.is_some() {
                return;
            }
            if let BookItem::Chapter(ch) = item {
                let name = ch
                    .source_path
                    .as_ref()
                    .map_or_else(|| ch.name.clone(), |p| p.display().to_string());
                match self.expand(&name, &ch.content) {
                    Ok(text) => ch.content = text,
                    Err(e) => first_error = Some(e),
                }
            }
        });
        match first_error {
            // mdBook's errors are anyhow's; the typed error rides inside and is found again by
            // downcasting in `build_book`.
            Some(e) => Err(e.into()),
            None => Ok(book),
        }
    }

    fn supports_renderer(&self, _renderer: &str) -> bool {
        true
    }
}
