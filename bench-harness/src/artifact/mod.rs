//! Paper-grade artifacts: `isolab pack` puts a run into one archive that rebuilds every figure,
//! and `isolab unpack` takes it apart again, checked.
//!
//! A bundle (`.tar.gz`, one top folder) holds:
//!
//! - `run/<run-id>/samples.jsonl` and `manifest.json`, byte for byte as the run wrote them;
//! - `reports/`: the reports in every format and the charts (SVG, and PNG drawn with the bundled
//!   font only);
//! - `source/isolab-<commit>.tar`: `git archive` of the commit that rendered the reports (and of
//!   the one that measured the run, if another), or, with `--allow-dirty`, what could be had and a
//!   note of why it is not exact;
//! - `font/`: that font and its licence;
//! - `rebuild.sh`: builds that isolab (or takes `$ISOLAB`), renders `reports/` again into
//!   `rebuilt/` and compares byte for byte;
//! - `README.md` laid out after the ACM artifact badges, and `SHA256SUMS`.
//!
//! The same run packed twice by the same isolab gives the same bytes: entries are sorted, times
//! and owners fixed, and nothing in a report depends on when, where or by whom it is rendered.

mod archive;
mod source;
mod texts;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::report::{self, ReportFormat};
use crate::store::{self, MANIFEST_FILE, SAMPLES_FILE};

/// Where the bundle keeps the reports.
pub const REPORTS_DIR: &str = "reports";
/// The bundled font, relative to the bundle's top folder.
pub const FONT_FILE: &str = "font/DejaVuSans.ttf";
/// Its licence.
pub const FONT_LICENSE_FILE: &str = "font/LICENSE";
/// The rebuild script.
pub const REBUILD_SCRIPT: &str = "rebuild.sh";
/// Each report file and the `isolab report --format` that makes it.
pub const REPORT_FILES: [(&str, ReportFormat); 6] = [
    ("summary.txt", ReportFormat::Term),
    ("report.md", ReportFormat::Md),
    ("report.html", ReportFormat::Html),
    ("samples.csv", ReportFormat::Csv),
    ("tables.tex", ReportFormat::Latex),
    ("report.json", ReportFormat::Json),
];
/// Debian's `fonts-dejavu-core`: the default font and its licence.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// The licence of [`DEFAULT_FONT`] (Debian's copyright file of the package).
pub const DEFAULT_FONT_LICENSE: &str = "/usr/share/doc/fonts-dejavu-core/copyright";

/// Why a bundle could not be made or opened. Messages say what to do.
#[derive(Debug, Error)]
pub enum ArtifactError {
    /// The run folder cannot be read.
    #[error(transparent)]
    Run(#[from] store::StoreError),
    /// A report could not be rendered.
    #[error(transparent)]
    Report(#[from] report::ReportError),
    /// The exact source cannot be bundled.
    #[error(
        "the bundle cannot hold the exact isolab source of this run: {0}. Commit the changes, \
         rebuild isolab and make the run again; or pass --allow-dirty to pack anyway (the \
         bundle's README then names the commit and says why its source is missing or not exact)"
    )]
    InexactSource(String),
    /// The font for the PNG charts or its licence is missing.
    #[error(
        "{what} {path} cannot be read ({source}). Install Debian's fonts-dejavu-core \
         (`apt-get install fonts-dejavu-core`), or pass --font FILE and --font-license FILE"
    )]
    Font {
        /// Font or licence.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The output exists.
    #[error("{0} already exists; remove it or choose another --output")]
    Exists(PathBuf),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The destination of `unpack` has something in it.
    #[error("{0} is not empty; unpack into a new or empty folder")]
    NotEmpty(PathBuf),
    /// The file is not a bundle, or not one that can be trusted to unpack.
    #[error("{path} is not an isolab bundle: {why}")]
    NotABundle {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A file of the bundle does not match its checksum.
    #[error("the bundle unpacked into {path} is damaged: {why}; nothing was kept")]
    Corrupt {
        /// The destination.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// What `isolab pack` is asked to do.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The run folder.
    pub run_dir: PathBuf,
    /// The bundle to write (must not exist).
    pub output: PathBuf,
    /// The git repository to take sources from (default: the one this isolab was built in, else
    /// the current directory's).
    pub repo: Option<PathBuf>,
    /// The font the PNG charts are drawn with, and its licence.
    pub font: PathBuf,
    /// Its licence text.
    pub font_license: PathBuf,
    /// Pack even when the exact source cannot be included.
    pub allow_dirty: bool,
    /// The commit this isolab was built from ([`crate::manifest::GIT_COMMIT`]).
    pub renderer_commit: String,
}

impl PackOptions {
    /// Packs `run_dir` into `output` with the defaults: Debian's DejaVu Sans, this isolab's
    /// commit, the repository it was built in.
    pub fn new(run_dir: PathBuf, output: PathBuf) -> Self {
        Self {
            run_dir,
            output,
            repo: None,
            font: DEFAULT_FONT.into(),
            font_license: DEFAULT_FONT_LICENSE.into(),
            allow_dirty: false,
            renderer_commit: crate::manifest::GIT_COMMIT.into(),
        }
    }
}

/// What `isolab pack` made.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The bundle.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Files in it.
    pub files: usize,
    /// What the reader of the bundle must know (a source that is missing or not exact).
    pub warnings: Vec<String>,
}

/// The default bundle name for run `run_id`.
pub fn default_output(run_id: &str) -> PathBuf {
    PathBuf::from(format!("isolab-artifact-{run_id}.tar.gz"))
}

/// Packs a run (see the module's documentation).
pub fn pack(opts: &PackOptions) -> Result<Packed, ArtifactError> {
    let run = store::load_run(&opts.run_dir)?;
    let m = &run.manifest;
    let read_font = |what, path: &Path| {
        std::fs::read(path).map_err(|source| ArtifactError::Font {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let font = read_font("the font", &opts.font)?;
    let font_license = read_font("the font's licence", &opts.font_license)?;

    // The sources: the isolab that measured the run and the one that renders its reports now.
    let repo = source::locate_repo(opts.repo.as_deref());
    let measured = m.git_commit.as_str();
    let renderer = opts.renderer_commit.as_str();
    let mut sources = Vec::new();
    if measured == renderer {
        sources.push(source::source_of(
            repo.as_deref(),
            renderer,
            vec!["measured the run", "rendered the reports"],
        ));
    } else {
        sources.push(source::source_of(
            repo.as_deref(),
            measured,
            vec!["measured the run"],
        ));
        sources.push(source::source_of(
            repo.as_deref(),
            renderer,
            vec!["rendered the reports"],
        ));
    }
    let warnings: Vec<String> = sources
        .iter()
        .filter(|s| !s.exact)
        .map(|s| {
            format!(
                "the isolab that {}: {}",
                s.roles.join(" and "),
                s.why.as_deref().unwrap_or("source not exact")
            )
        })
        .collect();
    if !warnings.is_empty() && !opts.allow_dirty {
        return Err(ArtifactError::InexactSource(warnings.join("; ")));
    }

    let mut files: BTreeMap<String, (Vec<u8>, u32)> = BTreeMap::new();
    let mut add = |path: String, bytes: Vec<u8>, mode: u32| {
        files.insert(path, (bytes, mode));
    };
    let run_path = format!("run/{}", m.run_id);
    for f in [SAMPLES_FILE, MANIFEST_FILE] {
        let p = opts.run_dir.join(f);
        let bytes = std::fs::read(&p).map_err(|e| {
            ArtifactError::Run(store::StoreError::NotARun {
                path: opts.run_dir.clone(),
                what: format!("{f}: {e}"),
            })
        })?;
        add(format!("{run_path}/{f}"), bytes, 0o644);
    }
    for (file, format) in REPORT_FILES {
        let text = report::render_report(&run, format)?;
        add(format!("{REPORTS_DIR}/{file}"), text.into_bytes(), 0o644);
    }
    // The charts, drawn the way `isolab report --charts DIR --font FILE` draws them.
    let staging = tempfile::tempdir().map_err(|source| ArtifactError::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    let font_path = staging.path().join("font.ttf");
    std::fs::write(&font_path, &font).map_err(|source| ArtifactError::Write {
        path: font_path.clone(),
        source,
    })?;
    let charts_dir = staging.path().join("charts");
    let written = report::write_charts_with_font(&run, &charts_dir, &font_path)?;
    let mut charts = Vec::new();
    for path in &written.files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(path).map_err(|source| ArtifactError::Write {
            path: path.clone(),
            source,
        })?;
        add(format!("{REPORTS_DIR}/charts/{name}"), bytes, 0o644);
        charts.push(name);
    }
    charts.sort();
    add(FONT_FILE.into(), font, 0o644);
    add(FONT_LICENSE_FILE.into(), font_license, 0o644);
    for s in &sources {
        if let Some((name, bytes)) = &s.archive {
            add(name.clone(), bytes.clone(), 0o644);
        }
    }
    let renderer_source = sources
        .iter()
        .find(|s| s.roles.contains(&"rendered the reports"))
        .cloned()
        .unwrap_or_else(|| source::source_of(None, renderer, vec!["rendered the reports"]));
    let view = report::View::new(&run);
    let ctx = texts::Context {
        manifest: m,
        run_path: run_path.clone(),
        samples: run.samples.len(),
        sources: &sources,
        renderer: &renderer_source,
        packed_by: format!("{} ({renderer})", env!("CARGO_PKG_VERSION")),
        charts: &charts,
        environment: report::methodology::environment(
            &view,
            &crate::i18n::Catalogue::new(crate::i18n::Lang::En),
        ),
        font_name: font_family_name(&opts.font),
    };
    add(
        REBUILD_SCRIPT.into(),
        texts::rebuild_script(&ctx).into_bytes(),
        0o755,
    );
    add("README.md".into(), texts::readme(&ctx).into_bytes(), 0o644);
    let sums = archive::sums(&files);
    files.insert(archive::SUMS_FILE.into(), (sums.into_bytes(), 0o644));
    let count = files.len();
    let bytes = archive::write(
        &opts.output,
        &format!("isolab-artifact-{}", m.run_id),
        &files,
    )?;
    Ok(Packed {
        path: opts.output.clone(),
        bytes,
        files: count,
        warnings,
    })
}

/// A font's name for people: its file name without the extension.
fn font_family_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "the bundled font".into())
}

/// What `isolab unpack` made.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The folder.
    pub dir: PathBuf,
    /// Every file, relative to it, checked against `SHA256SUMS`.
    pub files: Vec<String>,
}

/// Unpacks `bundle` into `dest` (new or empty) and checks every file against the bundle's
/// checksums; a damaged or unsafe bundle leaves nothing behind.
pub fn unpack(bundle: &Path, dest: &Path) -> Result<Unpacked, ArtifactError> {
    let files = archive::unpack(bundle, dest, &[REBUILD_SCRIPT, "README.md"])?;
    Ok(Unpacked {
        dir: dest.to_path_buf(),
        files,
    })
}
