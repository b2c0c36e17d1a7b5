//! The book's figures, drawn from the run with the report's chart code (the same colours per
//! backend as the reports), each with a caption that tells a reader how to read it.

use std::path::{Path, PathBuf};

use crate::report::charts::{self, Chart};
use crate::report::png;
use crate::report::{ReportError, View};
use crate::store::StoredRun;

/// One figure the chapters may show.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    /// Name in `{{isolab:figure NAME}}` and file stem.
    pub name: &'static str,
    /// The backend a figure is about, when it is about one: its absence is explained with that
    /// backend's reason (e.g. "vm unavailable: ...").
    pub about: Option<&'static str>,
    /// The drawn chart (title, SVG) or why it could not be drawn.
    pub drawn: Result<(String, String), String>,
}

impl Figure {
    /// The file the figure is written to, relative to the book's `src/`.
    pub(crate) fn rel_path(&self) -> String {
        format!("figures/{}.svg", self.name)
    }
}

/// What the figures need to know beyond the run: workloads whose VM figures come from a run
/// with other parameters (never divided by native's).
#[derive(Debug, Clone, Default)]
pub(crate) struct FigureContext {
    pub vm_other_params: Vec<String>,
    /// The language of the figures' words.
    pub lang: crate::i18n::Lang,
}

impl FigureContext {
    /// Whether a ratio row may be drawn: not a VM row of a workload measured with other
    /// parameters than native's.
    fn comparable(&self, r: &crate::summary::SummaryRow) -> bool {
        !(r.backend.split(' ').next() == Some("vm") && self.vm_other_params.contains(&r.workload))
    }
}

type Draw =
    fn(&View<'_>, &FigureContext, &'static str) -> Result<Result<Chart, String>, ReportError>;

/// A figure's title in the view's language (`figure-title-NAME` of the catalogue).
fn figure_title(v: &View<'_>, name: &str) -> String {
    v.cat.tr(&format!("figure-title-{name}"), &[])
}

/// Kinds whose metrics measure the CPU and memory: what chapter 5 shows first.
const CPU_MEMORY_KINDS: [&str; 7] = [
    "cpu",
    "mem-bw",
    "mem-lat",
    "page-fault",
    "syscall",
    "spawn",
    "timer",
];

fn start_timeline(
    v: &View<'_>,
    _: &FigureContext,
    n: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    charts::timeline_of(
        v,
        n,
        &figure_title(v, n),
        // The three worlds: the emulator's seconds-long boot has its own chapter.
        &|l| l.split(' ').next() != Some("qemu-tcg"),
    )
}

fn vm_boot(
    v: &View<'_>,
    _: &FigureContext,
    n: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    charts::timeline_of(v, n, &figure_title(v, n), &|l| {
        l.split(' ').next() == Some("vm")
    })
}

fn container_start(
    v: &View<'_>,
    _: &FigureContext,
    n: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    charts::timeline_of(v, n, &figure_title(v, n), &|l| {
        l.split(' ').next() == Some("container")
    })
}

fn cpu_memory(
    v: &View<'_>,
    c: &FigureContext,
    n: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    charts::ratios_of(
        v,
        n,
        &figure_title(v, n),
        // The workload's own metrics only: its start time is chapter 5's start figure. The
        // emulator, two orders of magnitude away, has its own figure.
        &|kind, r| {
            CPU_MEMORY_KINDS.contains(&kind)
                && !r.metric.starts_with("host.")
                && !r.backend.starts_with("qemu-tcg")
                && c.comparable(r)
        },
    )
}

/// The kinds whose headline metrics the emulation figure compares.
const EMULATION_KINDS: [&str; 5] = ["cpu", "mem-bw", "mem-lat", "syscall", "page-fault"];

fn emulation(
    v: &View<'_>,
    c: &FigureContext,
    n: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    if !v.run.samples.iter().any(|s| s.backend == "qemu-tcg") {
        return Ok(Err(v.cat.tr("figure-no-emulator", &[])));
    }
    charts::ratios_of(v, n, &figure_title(v, n), &|kind, r| {
        EMULATION_KINDS.contains(&kind) && !r.metric.starts_with("host.") && c.comparable(r)
    })
}

fn io_ratio(
    v: &View<'_>,
    c: &FigureContext,
    n: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    charts::ratios_of(v, n, &figure_title(v, n), &|kind, r| {
        (kind.starts_with("io-") || kind == "net-loopback")
            && !r.metric.starts_with("host.")
            && c.comparable(r)
    })
}

/// A chart of the report that needs nothing beyond the run.
macro_rules! plain {
    ($f:path) => {{
        fn draw(
            v: &View<'_>,
            _: &FigureContext,
            n: &'static str,
        ) -> Result<Result<Chart, String>, ReportError> {
            $f(v, n)
        }
        draw
    }};
}

/// Every figure: name, drawing function, the backend it is about. Its caption and title are
/// the catalogue's `figure-caption-NAME` and `figure-title-NAME` (bench-harness/i18n/en.ftl).
const FIGURES: [(&str, Draw, Option<&str>); 11] = [
    ("start-timeline", start_timeline, None),
    ("vm-boot-timeline", vm_boot, Some("vm")),
    (
        "container-start-timeline",
        container_start,
        Some("container"),
    ),
    ("cpu-memory-ratio", cpu_memory, None),
    ("emulation-ratio", emulation, Some("qemu-tcg")),
    ("io-ratio", io_ratio, None),
    ("io-latency", plain!(charts::io_latency), None),
    ("vm-exits", plain!(charts::exits), Some("vm")),
    ("vm-exits-per-op", plain!(charts::exits_per_op), Some("vm")),
    ("factor-effects", plain!(charts::factor_effects), None),
    ("aa-check", plain!(charts::aa_check), None),
];

/// The figures from a density run: name, drawing function. Their captions and titles are the
/// catalogue's, as for [`FIGURES`].
type DrawDensity = fn(
    &crate::density::analysis::Summary,
    &crate::i18n::Catalogue,
) -> Result<Result<Chart, String>, ReportError>;

const DENSITY_FIGURES: [(&str, DrawDensity); 3] = [
    ("density-memory", crate::density::charts_memory),
    ("density-components", crate::density::charts_components),
    ("density-start", crate::density::charts_start),
];

/// Draws every figure; a figure without data is kept with the reason. The density figures come
/// from `density` (an `isolab density` run), when there is one.
pub(crate) fn draw_all(
    run: &StoredRun,
    density: Option<&crate::density::record::DensityRun>,
    ctx: &FigureContext,
) -> Result<Vec<Figure>, ReportError> {
    let view = View::in_lang(run, ctx.lang);
    let mut out = Vec::new();
    for (name, draw, about) in FIGURES {
        let drawn = draw(&view, ctx, name)?.map(|c| (c.title, c.svg));
        out.push(Figure { name, about, drawn });
    }
    let summary = density.map(crate::density::analysis::summarise);
    for (name, draw) in DENSITY_FIGURES {
        let drawn = match &summary {
            Some(s) => draw(s, &view.cat)?.map(|c| (c.title, c.svg)),
            None => Err(view.cat.tr("density-no-run", &[])),
        };
        out.push(Figure {
            name,
            about: None,
            drawn,
        });
    }
    Ok(out)
}

/// Writes the drawn figures as SVG files into `src_dir/figures/`, and as PNG next to them when a
/// system font is found (for slides and papers that cannot take SVG; the book shows the SVG).
/// Returns the SVG files, and notes on PNG files not written.
pub(crate) fn write_all(
    figures: &[Figure],
    src_dir: &Path,
) -> std::io::Result<(Vec<PathBuf>, Vec<String>)> {
    let dir = src_dir.join("figures");
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let raster =
        png::Rasteriser::new().map_err(|why| notes.push(format!("PNG figures not written: {why}")));
    for f in figures {
        if let Ok((_, svg)) = &f.drawn {
            let path = src_dir.join(f.rel_path());
            std::fs::write(&path, svg)?;
            files.push(path.clone());
            if let Ok(r) = &raster {
                match r.render(svg) {
                    Ok(bytes) => std::fs::write(path.with_extension("png"), bytes)?,
                    Err(why) => notes.push(format!("{}.png not written: {why}", f.name)),
                }
            }
        }
    }
    Ok((files, notes))
}

/// The names of every figure, for error messages.
pub(crate) fn names() -> Vec<&'static str> {
    FIGURES
        .iter()
        .map(|f| f.0)
        .chain(DENSITY_FIGURES.iter().map(|f| f.0))
        .collect()
}
