//! `isolab book`: the book in `book/`, built with mdBook (as a library) around one stored run.
//!
//! The chapters are Markdown with placeholders (see [`preprocessor`]) where numbers, tables and
//! figures belong. Building copies the sources to a staging folder, draws the figures from the
//! run with the report's chart code (SVG, same colours per backend as the reports) into
//! `src/figures/`, and lets mdBook render HTML with the in-process preprocessor filling in the
//! placeholders. So every number in the book is one the run measured, and a number the run lacks
//! is said to be missing, with the reason.

mod density;
mod facts;
mod figures;
pub mod gettext;
pub mod preprocessor;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mdbook::config::Config;
use mdbook::MDBook;
use thiserror::Error;

use crate::i18n::Lang;
use crate::report::ReportError;
use crate::store::{StoredRun, MANIFEST_FILE};

pub use facts::NOT_MEASURED;
pub use preprocessor::PlaceholderError;

/// Environment variable naming the book's source folder (the one with `book.toml`).
pub const BOOK_SRC_ENV: &str = "ISOLAB_BOOK_SRC";

/// File left in a built book's folder, so a later build knows it may replace the folder's
/// contents (mdBook empties its output folder first).
pub const BOOK_MARKER: &str = ".isolab-book";

/// Errors building the book. Messages say what to do.
#[derive(Debug, Error)]
pub enum BookError {
    /// The book's sources were not found.
    #[error(
        "cannot find the book's sources (a folder with book.toml and src/); looked in: {looked}. \
         Pass --book-src DIR or set {BOOK_SRC_ENV}=DIR, DIR being the repository's book/ folder"
    )]
    SourcesNotFound {
        /// Where it looked.
        looked: String,
    },
    /// No run to take the figures from.
    #[error(
        "no run found in {0}: make one with `isolab run` (e.g. `isolab run --reps 3`) or pass \
         --results RUN_DIR"
    )]
    NoRun(PathBuf),
    /// The run given for the VM has no VM sample.
    #[error(
        "{0} has no VM samples; pass a run made with --backend vm (on a host without hardware \
         KVM: --vm-in-emulator)"
    )]
    NoVmSamples(PathBuf),
    /// The output folder holds something else; mdBook would delete it.
    #[error(
        "{0} exists, is not empty and is not a book isolab built (mdBook empties its output \
         folder first, which would delete what is there); choose a new or empty folder with --out"
    )]
    OutNotABook(PathBuf),
    /// Reading or writing files failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A chapter has a placeholder the preprocessor cannot expand.
    #[error("book source {0}. Fix the placeholder in book/src/")]
    Placeholder(#[from] PlaceholderError),
    /// Drawing a figure failed.
    #[error(transparent)]
    Figure(#[from] ReportError),
    /// A translation catalogue could not be read.
    #[error(
        "cannot read the book's catalogue {0}: {1}. Fix the .po file (msgfmt --check-format -o \
         /dev/null FILE names the line)"
    )]
    Catalogue(PathBuf, String),
    /// mdBook refused the sources or could not render them.
    #[error("mdBook: {0}. Check book/book.toml and book/src/SUMMARY.md")]
    Mdbook(String),
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BookError + 'a {
    move |source| BookError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What [`build_book`] produced.
#[derive(Debug, Clone)]
pub struct BuiltBook {
    /// The book's front page.
    pub index: PathBuf,
    /// The figure files (SVG) inside the built book.
    pub figures: Vec<PathBuf>,
    /// Figures that could not be drawn from this run, and why (the book says so in place).
    pub notes: Vec<String>,
}

/// Finds the book's sources: `explicit` (from `--book-src`), else `$ISOLAB_BOOK_SRC`, else a
/// `book/` folder with `book.toml` above the running binary (it lives in the repository's
/// `target/`) or above the current directory.
pub fn locate_sources(explicit: Option<&Path>) -> Result<PathBuf, BookError> {
    let mut looked = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else if let Some(p) = std::env::var_os(BOOK_SRC_ENV) {
        candidates.push(PathBuf::from(p));
    } else {
        let mut starts = Vec::new();
        if let Ok(exe) = std::env::current_exe() {
            starts.push(exe);
        }
        if let Ok(cwd) = std::env::current_dir() {
            starts.push(cwd);
        }
        for s in starts {
            candidates.extend(s.ancestors().map(|a| a.join("book")));
        }
    }
    for c in candidates {
        if c.join("book.toml").is_file() && c.join("src").is_dir() {
            return Ok(c);
        }
        looked.push(c.display().to_string());
    }
    looked.dedup();
    Err(BookError::SourcesNotFound {
        looked: looked.join(", "),
    })
}

/// The newest run under `results` (by its manifest's start time), for `isolab book` without
/// `--results`.
pub fn newest_run(results: &Path) -> Result<PathBuf, BookError> {
    let entries = match std::fs::read_dir(results) {
        Ok(e) => e,
        Err(_) => return Err(BookError::NoRun(results.to_path_buf())),
    };
    let mut best: Option<(String, PathBuf)> = None;
    for e in entries.flatten() {
        let dir = e.path();
        // A density run (no samples) is not a run the book can be built around.
        if !dir.join(crate::store::SAMPLES_FILE).is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join(MANIFEST_FILE)) else {
            continue;
        };
        let started = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("started_at")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        // Ties (and unreadable times) fall back to the name: run ids are timestamps.
        let key = format!("{started}\u{0}{}", dir.display());
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, dir));
        }
    }
    best.map(|(_, d)| d)
        .ok_or_else(|| BookError::NoRun(results.to_path_buf()))
}

/// Takes the VM's samples from another run into `base`, replacing `base`'s own VM samples, and
/// the VM's availability with them; returns how many samples came in. For a host without hardware
/// KVM: the book then shows the VM as measured in the emulated machine (`isolab run
/// --vm-in-emulator`), counts and sizes only, next to native and container measured here.
pub fn merge_vm_run(base: &mut StoredRun, vm_run: &StoredRun) -> usize {
    let vm = crate::backend::BackendKind::Vm.name();
    base.samples.retain(|s| s.backend != vm);
    let offset = base.samples.iter().map(|s| s.trial + 1).max().unwrap_or(0);
    let mut n = 0;
    for s in vm_run.samples.iter().filter(|s| s.backend == vm) {
        let mut s = s.clone();
        s.trial += offset;
        base.samples.push(s);
        n += 1;
    }
    if let Some(state) = vm_run.manifest.backends.get(vm) {
        base.manifest.backends.insert(vm.to_owned(), state.clone());
    }
    // The VM's columns come along, so the book finds the VM's first column by its label.
    let is_vm =
        |c: &crate::manifest::ColumnState| c.column.backend == crate::backend::BackendKind::Vm;
    base.manifest.columns.retain(|c| !is_vm(c));
    base.manifest
        .columns
        .extend(vm_run.manifest.columns.iter().filter(|c| is_vm(c)).cloned());
    n
}

/// Builds the book from the sources in `book_src` with the figures and numbers of `run`, into
/// `out` (created if missing; an existing folder must be empty or an earlier book).
pub fn build_book(run: &StoredRun, book_src: &Path, out: &Path) -> Result<BuiltBook, BookError> {
    build_book_with(run, None, None, book_src, out)
}

/// Builds the book around `run`, with the VM taken from `vm_run` when given (see
/// [`merge_vm_run`]): the book then names both runs and describes each on its own (suite,
/// sizes, repetitions, commit, host), and never divides a VM figure by a native one measured
/// with other workload parameters. Refuses a `vm_run` without VM samples. The capacity
/// chapter's figures come from `density` (an `isolab density` run); without one they are said
/// to be missing.
pub fn build_book_with(
    run: &StoredRun,
    vm_run: Option<&StoredRun>,
    density: Option<&crate::density::record::DensityRun>,
    book_src: &Path,
    out: &Path,
) -> Result<BuiltBook, BookError> {
    build_book_in(run, vm_run, density, book_src, out, Lang::En)
}

/// [`build_book_with`] in `lang`: the chapters translated with the book's gettext catalogue
/// (`book/po/LANG.po`, see [`gettext`]) and every generated sentence, label and number from the
/// Rust-side catalogue ([`crate::i18n`]).
pub fn build_book_in(
    run: &StoredRun,
    vm_run: Option<&StoredRun>,
    density: Option<&crate::density::record::DensityRun>,
    book_src: &Path,
    out: &Path,
    lang: Lang,
) -> Result<BuiltBook, BookError> {
    let catalog = gettext::load(book_src, lang)?;
    let (run, mut facts) = match vm_run {
        Some(vm) => {
            let mut merged = run.clone();
            if merge_vm_run(&mut merged, vm) == 0 {
                return Err(BookError::NoVmSamples(vm.dir.clone()));
            }
            let facts = facts::Facts::merged(&merged, run, vm, lang);
            (merged, facts)
        }
        None => (run.clone(), facts::Facts::new(run, lang)),
    };
    let run = &run;
    facts.density = density::DensityFacts::new(density, lang);
    check_out_dir(out)?;
    std::fs::create_dir_all(out).map_err(io_err("cannot create", out))?;
    let out = out.canonicalize().map_err(io_err("cannot resolve", out))?;

    // Stage a copy: the figures are written next to the chapters, and the repository's book/
    // stays untouched.
    let staging = tempfile::Builder::new()
        .prefix("isolab-book-")
        .tempdir()
        .map_err(io_err(
            "cannot create a staging folder in",
            &std::env::temp_dir(),
        ))?;
    let root = staging.path();
    let toml = book_src.join("book.toml");
    std::fs::copy(&toml, root.join("book.toml")).map_err(io_err("cannot copy", &toml))?;
    for sub in ["src", "theme"] {
        let from = book_src.join(sub);
        if from.is_dir() {
            copy_tree(&from, &root.join(sub))?;
        }
    }

    let figures = figures::draw_all(
        run,
        density,
        &figures::FigureContext {
            vm_other_params: facts.vm_other_params().to_vec(),
            lang,
        },
    )?;
    let src_dir = root.join("src");
    let (written, png_notes) = figures::write_all(&figures, &src_dir)
        .map_err(io_err("cannot write figures in", &src_dir))?;
    let notes = figures
        .iter()
        .filter_map(|f| {
            f.drawn
                .as_ref()
                .err()
                .map(|why| format!("figure {} not drawn: {why}", f.name))
        })
        .chain(png_notes)
        .collect();

    let mut config =
        Config::from_disk(root.join("book.toml")).map_err(|e| BookError::Mdbook(chain(&e)))?;
    // A chapter missing from src/ is an error, not an empty page mdBook invents.
    config.build.create_missing = false;
    config.build.build_dir = out.clone();
    config.book.language = Some(lang.code().to_owned());
    let mut book =
        MDBook::load_with_config(root, config).map_err(|e| BookError::Mdbook(chain(&e)))?;
    let facts = Arc::new(facts);
    book.with_preprocessor(preprocessor::IsolabPreprocessor::new(
        facts,
        Arc::new(figures),
        catalog.map(Arc::new),
    ));
    if let Err(e) = book.build() {
        if let Some(p) = e.chain().find_map(|c| c.downcast_ref::<PlaceholderError>()) {
            return Err(BookError::Placeholder(PlaceholderError {
                chapter: p.chapter.clone(),
                line: p.line,
                message: p.message.clone(),
            }));
        }
        return Err(BookError::Mdbook(chain(&e)));
    }
    let marker = out.join(BOOK_MARKER);
    std::fs::write(
        &marker,
        match vm_run {
            Some(vm) => format!(
                "built by isolab book from {} with the VM from {}\n",
                run.dir.display(),
                vm.dir.display()
            ),
            None => format!("built by isolab book from {}\n", run.dir.display()),
        },
    )
    .map_err(io_err("cannot write", &marker))?;
    let figures = written
        .iter()
        .filter_map(|p| p.strip_prefix(&src_dir).ok().map(|rel| out.join(rel)))
        .collect();
    Ok(BuiltBook {
        index: out.join("index.html"),
        figures,
        notes,
    })
}

/// mdBook's error with its causes on one line.
fn chain(e: &mdbook::errors::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

fn check_out_dir(out: &Path) -> Result<(), BookError> {
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return Ok(()); // missing: created later
    };
    if entries.next().is_none() || out.join(BOOK_MARKER).is_file() {
        Ok(())
    } else {
        Err(BookError::OutNotABook(out.to_path_buf()))
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), BookError> {
    std::fs::create_dir_all(to).map_err(io_err("cannot create", to))?;
    for e in std::fs::read_dir(from).map_err(io_err("cannot read", from))? {
        let e = e.map_err(io_err("cannot read", from))?;
        let path = e.path();
        let target = to.join(e.file_name());
        let ty = e.file_type().map_err(io_err("cannot read", &path))?;
        if ty.is_dir() {
            copy_tree(&path, &target)?;
        } else if ty.is_file() {
            std::fs::copy(&path, &target).map_err(io_err("cannot copy", &path))?;
        }
    }
    Ok(())
}
