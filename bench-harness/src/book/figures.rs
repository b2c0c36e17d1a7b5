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
    /// What it shows and how to read it.
    pub caption: &'static str,
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

type Draw = fn(&View<'_>, &'static str) -> Result<Result<Chart, String>, ReportError>;

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

fn start_timeline(v: &View<'_>, n: &'static str) -> Result<Result<Chart, String>, ReportError> {
    charts::timeline_of(
        v,
        n,
        "Start-up of one noop trial, by phase (medians across trials)",
        &|_| true,
    )
}

fn vm_boot(v: &View<'_>, n: &'static str) -> Result<Result<Chart, String>, ReportError> {
    charts::timeline_of(
        v,
        n,
        "Booting the microVM: phases of one noop trial (medians across trials)",
        &|l| l.split(' ').next() == Some("vm"),
    )
}

fn container_start(v: &View<'_>, n: &'static str) -> Result<Result<Chart, String>, ReportError> {
    charts::timeline_of(
        v,
        n,
        "Starting a container: phases of one noop trial (medians across trials)",
        &|l| l.split(' ').next() == Some("container"),
    )
}

fn cpu_memory(v: &View<'_>, n: &'static str) -> Result<Result<Chart, String>, ReportError> {
    charts::ratios_of(
        v,
        n,
        "CPU, memory and kernel entry: each metric as ratio to native (95% intervals)",
        // The workload's own metrics only: its start time is chapter 5's start figure.
        &|kind, metric| CPU_MEMORY_KINDS.contains(&kind) && !metric.starts_with("host."),
    )
}

fn io_ratio(v: &View<'_>, n: &'static str) -> Result<Result<Chart, String>, ReportError> {
    charts::ratios_of(
        v,
        n,
        "Storage and network: each metric as ratio to native (95% intervals)",
        &|kind, metric| {
            (kind.starts_with("io-") || kind == "net-loopback") && !metric.starts_with("host.")
        },
    )
}

/// Every figure: name, drawing function, the backend it is about, caption.
const FIGURES: [(&str, Draw, Option<&str>, &str); 10] = [
    (
        "start-timeline",
        start_timeline,
        None,
        "Each bar is one start of a sandbox that runs the `noop` program, on the host's clock, from \
         the moment the harness begins to the moment everything is cleaned up. Segments are the \
         phases the backend records, each the median across trials; the label at the end is \
         the sum of the medians and the number of trials.",
    ),
    (
        "vm-boot-timeline",
        vm_boot,
        Some("vm"),
        "The microVM's start, phase by phase: creating the VM, its memory, loading the kernel, \
         configuring the vCPU, then the guest kernel's own boot until the agent's first marker, \
         the workload, power-off and teardown. Segment lengths are medians across trials.",
    ),
    (
        "container-start-timeline",
        container_start,
        Some("container"),
        "The container's start, phase by phase: cgroup, clone with new namespaces, joining the \
         cgroup, setting up the namespaces, pivot_root, exec of the agent, then the workload, \
         exit and cleanup. Segment lengths are medians across trials.",
    ),
    (
        "cpu-memory-ratio",
        cpu_memory,
        None,
        "Each dot is a backend's median divided by native's median for the same metric; the \
         whisker is its 95% bootstrap interval. On the black line (1) the backend is exactly as \
         fast as native. The arrow after each label says whether higher (↑) or lower (↓) is \
         better, so a dot right of the line is worse for ↓ metrics and better for ↑ ones.",
    ),
    (
        "io-ratio",
        io_ratio,
        None,
        "Storage and loopback network metrics as ratio to native, read like the CPU figure: \
         1 is native, whiskers are 95% intervals, the arrow says which direction is better.",
    ),
    (
        "io-latency",
        charts::io_latency,
        None,
        "Latency of single I/O operations: p50 is the typical operation, p99 the slowest one in a \
         hundred. Bars are medians across trials, whiskers their 95% intervals; shorter is better.",
    ),
    (
        "vm-exits",
        charts::exits,
        Some("vm"),
        "How many times per trial the guest stopped and handed the CPU to the VMM, by reason. \
         Every `io_out.serial` is one byte of console output written to an emulated serial port.",
    ),
    (
        "vm-exits-per-op",
        charts::exits_per_op,
        Some("vm"),
        "VM exits per operation of each workload, while the workload ran: per 4 KiB random read \
         and write, per MiB written and read (a run from before the I/O workloads announced \
         their phases has reads and writes together: per 4 KiB I/O, per MiB moved), per system \
         call, per page fault. The light part KVM handled inside the \
         host kernel (interrupts, timers, the virtio queue notification through its ioeventfd); \
         the dark part went on to isolab's VMM.",
    ),
    (
        "factor-effects",
        charts::factor_effects,
        None,
        "Each dot is what changing one setting did to a headline metric, the other settings held \
         fixed: the median at the new value divided by the median at the first, both measured \
         side by side in one run, interleaved. The whisker is its 95% bootstrap interval; at 1 \
         the setting made no difference the run could see.",
    ),
    (
        "aa-check",
        charts::aa_check,
        None,
        "The same configuration run twice as if it were two, interleaved (an A/A check). Nothing \
         differs between the two, so how far a whisker reaches from 1 is the smallest difference \
         this host could resolve during the run: read every other ratio against it.",
    ),
];

/// The figures from a density run: name, drawing function, caption.
type DrawDensity =
    fn(&crate::density::analysis::Summary) -> Result<Result<Chart, String>, ReportError>;

const DENSITY_FIGURES: [(&str, DrawDensity, &str); 3] = [
    (
        "density-memory",
        crate::density::charts_memory,
        "Host memory per instance against the number of instances running, the same meter for \
         every backend. Filled points: the host's MemAvailable drop divided by N (median over \
         the rounds, whiskers its 95% interval, cut at the edge where a busy host's noise dwarfs \
         a few instances); hollow points on dashed lines: PSS per instance; thin line: the \
         marginal memory (the slope over every N).",
    ),
    (
        "density-components",
        crate::density::charts_components,
        "What grew in /proc/meminfo per instance at each backend's largest N: anonymous memory \
         is the processes' own; page tables, kernel stacks, slab and per-CPU memory are what the \
         kernel keeps for them (namespaces, cgroups).",
    ),
    (
        "density-start",
        crate::density::charts_start,
        "Start latency against the number of instances: from the start call to the agent's \
         ready marker, p50 (solid) and p99 (dashed) over every instance of every round.",
    ),
];

/// Draws every figure; a figure without data is kept with the reason. The density figures come
/// from `density` (an `isolab density` run), when there is one.
pub(crate) fn draw_all(
    run: &StoredRun,
    density: Option<&crate::density::record::DensityRun>,
) -> Result<Vec<Figure>, ReportError> {
    let view = View::new(run);
    let mut out = Vec::new();
    for (name, draw, about, caption) in FIGURES {
        let drawn = draw(&view, name)?.map(|c| (c.title, c.svg));
        out.push(Figure {
            name,
            caption,
            about,
            drawn,
        });
    }
    let summary = density.map(crate::density::analysis::summarise);
    for (name, draw, caption) in DENSITY_FIGURES {
        let drawn = match &summary {
            Some(s) => draw(s)?.map(|c| (c.title, c.svg)),
            None => Err(
                "no density run: measure one with `isolab density`, then build the book \
                         with `isolab book --density RUN_DIR`"
                    .to_owned(),
            ),
        };
        out.push(Figure {
            name,
            caption,
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
