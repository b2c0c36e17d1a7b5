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

/// What the figures need to know beyond the run: workloads whose VM figures come from a run
/// with other parameters (never divided by native's).
#[derive(Debug, Clone, Default)]
pub(crate) struct FigureContext {
    pub vm_other_params: Vec<String>,
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
        "Start-up of one noop trial, by phase (medians across trials)",
        // The three worlds: the emulator's seconds-long boot has its own chapter.
        &|l| l.split(' ').next() != Some("qemu-tcg"),
    )
}

fn vm_boot(
    v: &View<'_>,
    _: &FigureContext,
    n: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    charts::timeline_of(
        v,
        n,
        "Booting the microVM: phases of one noop trial (medians across trials)",
        &|l| l.split(' ').next() == Some("vm"),
    )
}

fn container_start(
    v: &View<'_>,
    _: &FigureContext,
    n: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    charts::timeline_of(
        v,
        n,
        "Starting a container: phases of one noop trial (medians across trials)",
        &|l| l.split(' ').next() == Some("container"),
    )
}

fn cpu_memory(
    v: &View<'_>,
    c: &FigureContext,
    n: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    charts::ratios_of(
        v,
        n,
        "CPU, memory and kernel entry: each metric as ratio to native (95% intervals)",
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
        return Ok(Err(
            "the run has no qemu-tcg trial (`isolab run --backend native,container,vm,qemu-tcg`)"
                .into(),
        ));
    }
    charts::ratios_of(
        v,
        n,
        "Container, VM and the emulator (QEMU TCG) against native: CPU and memory (95% intervals)",
        &|kind, r| {
            EMULATION_KINDS.contains(&kind) && !r.metric.starts_with("host.") && c.comparable(r)
        },
    )
}

fn io_ratio(
    v: &View<'_>,
    c: &FigureContext,
    n: &'static str,
) -> Result<Result<Chart, String>, ReportError> {
    charts::ratios_of(
        v,
        n,
        "Storage and network: each metric as ratio to native (95% intervals)",
        &|kind, r| {
            (kind.starts_with("io-") || kind == "net-loopback")
                && !r.metric.starts_with("host.")
                && c.comparable(r)
        },
    )
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

/// Every figure: name, drawing function, the backend it is about, caption.
const FIGURES: [(&str, Draw, Option<&str>, &str); 11] = [
    (
        "start-timeline",
        start_timeline,
        None,
        "Each bar is one start of a sandbox that runs the `noop` program, on the host's clock, from \
         the moment the harness begins to the moment everything is cleaned up. Segments are the \
         phases the backend records, each the median across trials. The black tick and whisker \
         are the median time from start to ready and its 95% interval, the figure the text \
         quotes, with the same n; the label repeats them.",
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
         cgroup, setting up the namespaces, the root filesystem, exec of the agent, then the workload, \
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
        "emulation-ratio",
        emulation,
        Some("qemu-tcg"),
        "The same CPU and memory workloads, the same sizes, in one run: each dot is a backend's \
         median divided by native's, with its 95% bootstrap interval, on a log scale. The \
         container and the VM sit near 1; the emulator (QEMU without acceleration, `qemu-tcg`) \
         sits one to two orders of magnitude away, because every guest instruction is first \
         translated by software.",
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
        plain!(charts::io_latency),
        None,
        "Latency of single I/O operations: p50 is the typical operation, p99 the slowest one in a \
         hundred. Bars are medians across trials, whiskers their 95% intervals; shorter is better.",
    ),
    (
        "vm-exits",
        plain!(charts::exits),
        Some("vm"),
        "How many times per trial the guest stopped and handed the CPU to the VMM, by reason. \
         Every `io_out.serial` is one byte of console output written to an emulated serial port.",
    ),
    (
        "vm-exits-per-op",
        plain!(charts::exits_per_op),
        Some("vm"),
        "VM exits per operation of each workload, while the workload ran: per 4 KiB random read \
         and write, per MiB written and read, per system call, per page fault. Each bar is split \
         by why the guest left: the **device** part (port and MMIO accesses that reached the VMM, \
         and virtio queue notifications KVM completed through an ioeventfd) follows from the \
         driver's protocol and is the same on any host; the **time-driven** part (timer and other \
         interrupts, halts, interrupt windows) grows with how long the workload took, so a slow \
         or emulated run counts far more of it than hardware would; the rest is mostly \
         nested-page faults that KVM handled itself. A run from before isolab split exits by \
         cause shows where they were handled instead (inside KVM, or in the VMM).",
    ),
    (
        "factor-effects",
        plain!(charts::factor_effects),
        None,
        "Each dot is what changing one setting did to a headline metric, the other settings held \
         fixed: the median at the new value divided by the median at the first, both measured \
         side by side in one run, interleaved. The whisker is its 95% bootstrap interval; at 1 \
         the setting made no difference the run could see.",
    ),
    (
        "aa-check",
        plain!(charts::aa_check),
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
    ctx: &FigureContext,
) -> Result<Vec<Figure>, ReportError> {
    let view = View::new(run);
    let mut out = Vec::new();
    for (name, draw, about, caption) in FIGURES {
        let drawn = draw(&view, ctx, name)?.map(|c| (c.title, c.svg));
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
