//! `isolab`: containers or VMs? Run the same program natively, in a container and in a microVM,
//! and see what each kind of isolation costs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use bench_harness::backend::BackendKind;
use bench_harness::i18n::Lang;
use bench_harness::manifest::RunStatus;
use bench_harness::report::{self, CompareFormat, ReportFormat};
use bench_harness::run::{self, RunOptions};
use bench_harness::suite::{self, Suite, DEFAULT_SUITE};
use bench_harness::{backends, book, doctor, factors, interrupt, store, summary};

mod commands {
    pub mod density;
    pub mod kernel;
    pub mod pack;
}

#[derive(Parser, Debug)]
#[command(
    name = "isolab",
    version,
    about = "Measure what isolation costs: the same program natively, in a container, in a microVM",
    long_about = "isolab runs one static workload program (the agent) in three places on this host: \
as a plain process (native), as PID 1 of a Linux container made by isolab's own runtime (namespaces, \
pivot_root, cgroups), and as /init of a KVM microVM run by isolab's own VMM. It measures start-up, CPU, \
memory, I/O and, for the VM, exits to the hypervisor; keeps every raw sample with a manifest of the \
environment; and reports medians with 95% confidence intervals and ratios to native.\n\n\
A container shares the host's kernel: its isolation is the kernel's bookkeeping (namespaces decide \
what a process can see, cgroups what it may use). A VM has its own kernel on virtual hardware that a \
hypervisor (KVM plus a VMM) provides. `isolab run` then `isolab report` show what each costs here.",
    after_help = "Start with `isolab doctor`, then `isolab run`. Results go to results/<run-id>/."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a suite of workloads on the backends and summarise (the default suite if none given).
    #[command(
        long_about = "Plans trials (warm-up rounds first; in every repetition the backends run \
in a freshly shuffled order so drift hits all alike), runs them with a progress bar, appends every \
sample to results/<run-id>/samples.jsonl the moment it exists, writes manifest.json (host, kernel, CPU, \
KVM flavour, cgroup version, versions, agent hash, suite), and prints the summary. Ctrl-C stops after \
cleaning up the current trial; what was measured stays valid and `isolab report` works on it.",
        after_long_help = run_after_help()
    )]
    Run(Box<RunArgs>),
    /// How many instances fit on this host and how fast they start together: N instances at once,
    /// one memory meter for every backend (the host's MemAvailable drop over N, and PSS).
    #[command(
        long_about = "For each backend and each N (--count), starts N instances of the agent in \
its waiting mode (each writes its working set, reports ready and waits), reads the host's \
/proc/meminfo before and after they settle and every instance's PSS, starts a few more one at a \
time beside them, tears them all down and waits until the host's memory is back; several rounds \
per N. The summary gives, per backend, the marginal memory per instance (the slope of the \
MemAvailable drop against N, with its 95% interval), the fixed cost, how many instances fit with \
--headroom kept free, and start latency (p50, p90, p99, max, last) for the storm (--parallel) and \
beside N running, teardown, and the time until MemAvailable is back. With the container comes its \
floor: the same agent cloned into the same namespaces and a cgroup, nothing else. Refuses an N \
whose estimate would eat the headroom, stops adding instances below --stop-below, names the host \
limit that stops an N. Results go to results/density-<id>/ (manifest.json, rounds.jsonl); \
`isolab report` renders them, with charts in HTML. Ctrl-C tears everything down and keeps what \
was measured.",
        after_help = "Examples:\n  isolab density --backend native,container --count 1,10,100,1000\n  \
isolab density --backend container --count 1000 --parallel all --rounds 1   (the boot storm)\n  \
isolab density --working-set 64MiB --count 1,10,50 --ksm on"
    )]
    Density(Box<commands::density::DensityArgs>),
    /// Recompute the summary of a stored run, as a table, paper-ready tables, CSV, JSON or HTML.
    #[command(
        long_about = "Reads results/<run-id>/ and renders it without running anything: `term` \
(the same table `isolab run` printed), `md` and `latex` (booktabs) tables for papers, `csv` (every \
sample and metric, one row each), `json`, or `html` (one self-contained file with charts, tables, the \
environment manifest and a methodology paragraph written from the run). Works on interrupted runs \
and on runs where a backend was unavailable. Emulated VM samples are labelled and never compared \
with native for performance."
    )]
    Report {
        /// A run directory made by `isolab run` (e.g. results/20261206-071907).
        run_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Term)]
        format: ReportFormat,
        /// Write the report to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Also write the charts (SVG, and PNG when a font is found) into this directory.
        #[arg(long)]
        charts: Option<PathBuf>,
        /// Draw the PNG charts with this font file (.ttf) and no other, so they come out
        /// identical on any machine (without it: the system's fonts).
        #[arg(long, value_name = "FILE", requires = "charts")]
        font: Option<PathBuf>,
        /// The language of the terminal and HTML reports: `en`, `fr` (French: decimal comma,
        /// narrow no-break spaces), or `pseudo` (every generated text accented, for translators:
        /// plain English left in it escaped the catalogue). Markdown, CSV, LaTeX and JSON stay
        /// English: they are data for other tools and papers; so is the report of a density run
        /// (its figures and sentences are translated in the book: `isolab book --density`).
        #[arg(long, value_enum, default_value_t = Lang::En)]
        lang: Lang,
    },
    /// Pack a run into one archive that rebuilds every figure: samples, manifest, reports, the
    /// isolab source, a font, a rebuild script and a README after the ACM artifact badges.
    #[command(
        long_about = "Packs RUN_DIR into one .tar.gz for readers, reviewers and artifact \
evaluators: samples.jsonl and manifest.json as the run wrote them; every report (summary.txt, \
report.md, report.html, samples.csv, tables.tex, report.json, charts as SVG and PNG); the isolab \
source as `git archive` of the commit that made the run and rendered the reports; the font the PNG \
charts are drawn with and its licence; rebuild.sh, which builds that isolab and renders every \
table and chart again, checking that each file is identical byte for byte; a README laid out \
after the ACM badges (available, functional, results reproduced); and SHA256SUMS. A run or an \
isolab built from uncommitted changes has no exact source: pack refuses it unless --allow-dirty, \
and the README then says so.",
        after_help = "Example: isolab pack results/20261206-071907\n  then, anywhere: isolab unpack \
isolab-artifact-20261206-071907.tar.gz DIR && DIR/rebuild.sh"
    )]
    Pack(commands::pack::PackArgs),
    /// Unpack a bundle made by `isolab pack` into a new folder, checking every file against its
    /// checksums; then DIR/rebuild.sh rebuilds every figure.
    Unpack(commands::pack::UnpackArgs),
    /// Compare two runs: each metric side by side, the change B/A, and whether the 95% intervals
    /// separate (two hosts, two kernels, two settings).
    Compare {
        /// The baseline run directory.
        run_a: PathBuf,
        /// The run compared with it.
        run_b: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CompareFormat::Term)]
        format: CompareFormat,
    },
    /// Build the book (HTML) that explains containers, hypervisors and VMs with a run's figures.
    #[command(
        long_about = "Builds the book in the repository's book/ folder with mdBook: copies its \
sources to a staging folder, draws the figures from a run (SVG, the same colours per backend as the \
reports) and fills every number and table in the chapters from that run's samples and manifest. A value \
the run lacks (say, no VM on this host) is written as \"not measured in this run (why)\", never guessed.",
        after_help = "Example: isolab book --results results/20261206-071907 --out /tmp/isolab-book\n\
On a host without hardware KVM: isolab book --results NATIVE_AND_CONTAINER_RUN --vm-results \
EMULATED_VM_RUN (a run made with --vm-in-emulator)"
    )]
    Book {
        /// The run to take figures and numbers from. Default: the newest run under results/.
        #[arg(long, value_name = "RUN_DIR")]
        results: Option<PathBuf>,
        /// A second run whose VM samples stand in for the first run's VM, e.g. one made with
        /// `isolab run --vm-in-emulator` on a host without hardware KVM (its counts and sizes are
        /// shown, labelled emulated; its times never are).
        #[arg(long, value_name = "RUN_DIR")]
        vm_results: Option<PathBuf>,
        /// A density run (`isolab density`) for the capacity figures: memory per instance on one
        /// meter, how many fit, start under load. Without it they are said to be missing.
        #[arg(long, value_name = "RUN_DIR")]
        density: Option<PathBuf>,
        /// Where the HTML goes (emptied first, so it must be new, empty or an earlier book).
        /// Default: RUN_DIR/book.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The book's sources (the folder with book.toml and src/). Default: $ISOLAB_BOOK_SRC, else
        /// the book/ folder of the repository this binary was built in, else one above the current
        /// directory.
        #[arg(long, value_name = "DIR")]
        book_src: Option<PathBuf>,
        /// The edition: `en`, `fr` (the chapters translated from book/po/fr.po, every generated
        /// sentence and number in French), or `pseudo` (English chapters, every generated text
        /// accented: for translators, plain English left in it escaped the catalogue).
        #[arg(long, value_enum, default_value_t = Lang::En)]
        lang: Lang,
        /// For translators: write the gettext template of the English chapters (every paragraph,
        /// heading, list item and table cell, as mdbook-xgettext extracts them) to FILE, and
        /// build nothing. Then `msgmerge --update book/po/fr.po FILE` and translate what it marks.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["results", "vm_results", "out"])]
        pot: Option<PathBuf>,
    },
    /// Build, fetch or check guest kernels for the VM backend.
    #[command(subcommand)]
    Kernel(commands::kernel::KernelCommand),
    /// Check what this host can do and explain how to fix what is missing.
    #[command(
        long_about = "Checks root, the agent binary, namespaces, cgroups (v1, v2 or hybrid) and \
their controllers, /dev/kvm and its flavour (hardware KVM via kvm_intel/kvm_amd, PVM via kvm_pvm, or \
none) and disk space. Each problem comes with its fix. The exit code is 0 when every backend is usable, \
else the sum of 1 (native), 2 (container), 4 (vm) and 8 (qemu-tcg) for the unusable ones."
    )]
    Doctor {
        /// Also remove what a killed isolab left behind: the folders and cgroups its runs recorded
        /// in /run/isolab/runs (nothing isolab did not make, nothing of a run still alive).
        #[arg(long)]
        clean: bool,
    },
    /// Inside the emulated machine only: run a batch of VM trials and print their outcomes.
    #[command(hide = true)]
    EmulatedTrials {
        /// The batch (JSON) the host wrote.
        batch: PathBuf,
        /// The guest kernel.
        #[arg(long)]
        kernel: PathBuf,
        /// The agent.
        #[arg(long)]
        agent: PathBuf,
    },
}

/// The system-call filter of the container's program.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Seccomp {
    /// Docker's default seccomp profile (about 300 calls allowed, the rest refused).
    Docker,
    /// No filter, to measure what the filter costs.
    Off,
}

/// How a container reaches the network workloads' peer.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ContainerNetArg {
    /// Its own network namespace with a veth pair into the lab namespace.
    Veth,
    /// The lab namespace itself, no namespace of its own.
    Host,
}

/// The VMM process's system-call filters.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum VmSeccomp {
    /// A filter per VMM thread kind (main, vCPU, device, control), as Firecracker's; a refused
    /// call kills the VMM process, and the trial says which thread made which call.
    On,
    /// No filter, to measure what the filters cost.
    Off,
    /// The filters, but refused calls are allowed and logged by the kernel (dmesg): for finding
    /// what a new guest kernel or host libc needs.
    Log,
}

/// How the VM's I/O workloads use their disk.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum VmDisk {
    /// ext4 on the disk (made on the host with mkfs.ext4).
    Ext4,
    /// The bare block device.
    Raw,
}

/// How the VM's guest RAM is backed on the host.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum VmMemory {
    /// Anonymous memory aligned to 2 MiB and advised for transparent huge pages (MADV_HUGEPAGE).
    Thp,
    /// 2 MiB pages from the host's reserved pool (vm.nr_hugepages must hold the VM's RAM).
    Hugetlbfs,
    /// 4 KiB pages only (MADV_NOHUGEPAGE): to see what huge pages buy.
    Small,
}

/// Offloads of the VM's network card.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OnOff {
    /// Offered (checksums and TCP segmentation left to the host kernel, 64 KiB frames).
    On,
    /// None (every frame checksummed and segmented to the MTU by the guest).
    Off,
}

/// How the VM describes its devices to the guest kernel.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum VmAcpi {
    /// ACPI tables and the command line; the device window the kernel probes first claims the
    /// device, so any kernel finds it exactly once.
    Auto,
    /// ACPI tables only.
    On,
    /// The command line and the MP table only, no ACPI tables.
    Off,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Backends to run, comma-separated: native, container, vm, qemu-tcg. Default: the suite's
    /// (native, container, vm). `qemu-tcg` runs the VM's guest kernel and the agent under QEMU's
    /// full-system emulator without acceleration, timed for real: the cost of emulation itself
    /// (10-100x slower; no disk, so no io-* workloads).
    #[arg(long, value_delimiter = ',')]
    backend: Vec<String>,
    /// Workloads to run (names or kinds from the suite), comma-separated. Default: all.
    #[arg(long, value_delimiter = ',')]
    workload: Vec<String>,
    /// A suite file (TOML). Default: the built-in suite (see --print-suite).
    #[arg(long)]
    suite: Option<PathBuf>,
    /// Measured repetitions per backend and workload (overrides the suite).
    #[arg(long)]
    reps: Option<u32>,
    /// Warm-up rounds, run first and not summarised (overrides the suite).
    #[arg(long)]
    warmup: Option<u32>,
    /// Where run folders are created.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// The agent binary. Default: next to this program, or $ISOLAB_AGENT.
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Existing directory on a disk-backed filesystem for I/O targets and work files (tmpfs will
    /// not do: the I/O workloads use O_DIRECT).
    #[arg(long, default_value = "/var/tmp")]
    io_dir: PathBuf,
    /// vCPUs of each VM, and the CPU limit (in cores) of each container, so both get the same
    /// (overrides the suite's `limits.vcpus`).
    #[arg(long)]
    vcpus: Option<u32>,
    /// RAM of each VM, and the memory limit of each container, in MiB (overrides the suite's
    /// `limits.memory_mib`).
    #[arg(long)]
    memory_mib: Option<u64>,
    /// Queue depth of the io-rand workload: requests in flight at once (1 = one at a time,
    /// pread/pwrite; more = Linux AIO, like fio's libaio engine). Overrides the suite's
    /// `depth`; a workload parameter, the same for every backend.
    #[arg(long, value_name = "N")]
    io_depth: Option<u32>,
    /// Seed of the backend shuffle (recorded in the manifest). Default: from the clock.
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds after which a trial is killed and reported as failed.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Show the sandbox's console live.
    #[arg(long)]
    console: bool,
    /// The VM's guest kernel: `micro` (the default, built by `isolab kernel build`), `micro-acpi`
    /// (the micro kernel configured as Firecracker's guest configs: ACPI only, no virtio console),
    /// `debian` (Debian's stock cloud kernel with its virtio modules, made by `isolab kernel fetch
    /// debian` on first use), or a bzImage / ELF vmlinux file.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Run containers in a user namespace: root inside maps to an unprivileged id outside. Without
    /// root it makes rootless containers possible (then without cgroup limits or accounting).
    #[arg(long)]
    userns: bool,
    /// The container's system-call filter: `docker` (Docker's default profile, installed last
    /// before the agent starts) or `off`. Recorded in the manifest; `--factor seccomp=docker,off`
    /// runs both side by side to show what the filter costs per system call and at start.
    #[arg(long, value_enum, default_value_t = Seccomp::Docker)]
    seccomp: Seccomp,
    /// How a container's network workloads (net-stream, net-rr, net-crr, net-udp-rr) reach the
    /// peer in the run's lab network namespace: `veth` (its own network namespace and a veth
    /// pair into the lab, Docker's bridge path) or `host` (it shares the lab namespace, as
    /// native does). `--factor container-net=host,veth` runs both side by side.
    #[arg(long, value_enum, default_value_t = ContainerNetArg::Veth)]
    container_net: ContainerNetArg,
    /// Run the VM's trials inside an emulated AMD-V machine (QEMU TCG, installed from apt if
    /// missing) when this host's /dev/kvm cannot boot Linux (PVM) or there is none. Slow, and its
    /// samples are labelled emulated: they show that the VM works, never how fast it is.
    #[arg(long)]
    vm_in_emulator: bool,
    /// How the VM's I/O workloads use their virtio-blk disk (a fresh image per trial in --io-dir):
    /// `ext4` formats it on the host and the agent writes files on it, like native and container;
    /// `raw` gives the agent the bare device (O_DIRECT on /dev/vda).
    #[arg(long, value_enum, default_value_t = VmDisk::Ext4)]
    vm_disk: VmDisk,
    /// The VMM process's seccomp filters: `on` (one per thread kind, as Firecracker's), `off`
    /// (to measure their cost: `--factor vm-seccomp=on,off`), or `log` (allowed, but the kernel
    /// logs every call a filter would refuse). Each VM runs in a VMM process of its own.
    #[arg(long, value_enum, default_value_t = VmSeccomp::On)]
    vm_seccomp: VmSeccomp,
    /// Jail each VMM process as Firecracker's jailer does: new mount, PID and network
    /// namespaces, a root holding only its kernel, initramfs and disk (in the run's state
    /// folder, removed after the trial), its own cgroup, an unprivileged user once its files
    /// are open. Needs root. `--factor vm-jail=off,on` shows what it costs.
    #[arg(long)]
    vm_jail: bool,
    /// How the VM's guest RAM is backed on the host: `thp` (2 MiB-aligned, transparent huge pages
    /// asked for), `hugetlbfs` (pre-reserved 2 MiB pages: `sysctl vm.nr_hugepages=N` first), or
    /// `small` (4 KiB pages only, to see what huge pages buy). With fewer nested page faults the
    /// guest boots with fewer exits.
    #[arg(long, value_enum, default_value_t = VmMemory::Thp)]
    vm_memory: VmMemory,
    /// How the VM describes its devices to the guest kernel: `auto` (ACPI tables and the command
    /// line, each device found exactly once whichever way the kernel looks), `on` (ACPI tables
    /// only) or `off` (command line and MP table only, no ACPI).
    #[arg(long, value_enum, default_value_t = VmAcpi::Auto)]
    vm_acpi: VmAcpi,
    /// Checksum and TCP segmentation offloads on the VM's virtio-net card (and its tap): `on`
    /// (the guest hands the host 64 KiB segments with partial checksums) or `off` (every frame
    /// whole, at most the MTU), to see what offloads buy for the network workloads.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    vm_net_offload: OnOff,
    /// Vary a setting side by side in this run: NAME=VALUE,VALUE,... (repeatable). Every
    /// combination of the factors' values is a column (a backend with its factor values), and the
    /// columns' trials are interleaved and shuffled like backends; a factor is crossed only with
    /// the backends it applies to. Overrides the suite's `[factors]` entry of the same name and
    /// the single-value option (--userns, --vcpus, ...). The summary shows each factor's effect
    /// as a ratio with its interval.
    #[arg(long = "factor", value_name = "NAME=V1,V2")]
    factors: Vec<String>,
    /// Repeat until every headline metric's 95% interval (each workload's `primary` metrics, see
    /// --print-suite) lies within P% of its median: rounds of one more repetition of every
    /// column, interleaved, for the workloads not there yet, up to --max-reps and --max-wall.
    #[arg(long, value_name = "P%")]
    until_ci: Option<String>,
    /// The repetition cap of --until-ci (measured repetitions per column and workload). Default:
    /// 10 times the suite's repetitions.
    #[arg(long, value_name = "N")]
    max_reps: Option<u32>,
    /// The wall-clock cap of --until-ci: no new round starts that would end after this much time
    /// of the run (e.g. 90s, 30m, 2h). Default: 1h.
    #[arg(long, value_name = "DURATION")]
    max_wall: Option<String>,
    /// A/A check: run this column twice, as two identical columns A and A', interleaved, and
    /// report A'/A with its interval: the smallest difference this host resolves now. BACKEND, or
    /// BACKEND:FACTOR=VALUE,... to pick one of its factor columns (e.g. --aa native, --aa
    /// container:userns=on).
    #[arg(long, value_name = "COLUMN")]
    aa: Option<String>,
    /// Print the built-in default suite (a starting point for your own) and exit.
    #[arg(long)]
    print_suite: bool,
}

/// The settings `--factor` can vary, for `isolab run --help`.
fn run_after_help() -> String {
    format!(
        "Settings a run can vary side by side (--factor NAME=V1,V2 or the suite's [factors]):\n{}\
         Fixed for a whole run (--factor says why): {}.\n\
         Examples:\n  isolab run --backend container --factor userns=off,on --factor vcpus=1,2\n  \
         isolab run --aa native --until-ci 5% --max-wall 30m",
        factors::describe_registry(),
        factors::REGISTRY
            .iter()
            .filter(|f| f.fixed.is_some())
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => cmd_run(*args),
        Command::Density(args) => commands::density::execute(*args),
        Command::Report {
            run_dir,
            format,
            output,
            charts,
            font,
            lang,
        } => cmd_report(
            &run_dir,
            format,
            output.as_deref(),
            charts.as_deref(),
            font.as_deref(),
            lang,
        ),
        Command::Pack(args) => commands::pack::pack(args).map(|()| ExitCode::SUCCESS),
        Command::Unpack(args) => commands::pack::unpack(args).map(|()| ExitCode::SUCCESS),
        Command::Compare {
            run_a,
            run_b,
            format,
        } => {
            let a = store::load_run(&run_a)?;
            let b = store::load_run(&run_b)?;
            print!("{}", report::compare(&a, &b, format)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { clean } => cmd_doctor(clean),
        Command::Book {
            results,
            vm_results,
            density,
            out,
            book_src,
            lang,
            pot,
        } => match pot {
            Some(pot) => {
                let src = book::locate_sources(book_src.as_deref())?;
                let n = book::gettext::write_template(&src, &pot)?;
                eprintln!(
                    "wrote {n} messages of {} to {}",
                    src.display(),
                    pot.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            None => cmd_book(results, vm_results, density, out, book_src, lang),
        },
        Command::Kernel(k) => commands::kernel::execute(k).map(|()| ExitCode::SUCCESS),
        Command::EmulatedTrials {
            batch,
            kernel,
            agent,
        } => {
            backends::vm_emulated::run_batch(&batch, &kernel, &agent)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn cmd_run(args: RunArgs) -> Result<ExitCode> {
    if args.print_suite {
        print!("{DEFAULT_SUITE}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut suite = match &args.suite {
        Some(p) => Suite::from_file(p)?,
        None => Suite::default_suite()?,
    };
    if !args.backend.is_empty() {
        let mut kinds = Vec::new();
        for b in &args.backend {
            let Some(k) = BackendKind::from_name(b.trim()) else {
                bail!("unknown backend {b:?}; choose from native, container, vm, qemu-tcg");
            };
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        suite.backends = kinds;
    }
    if !args.workload.is_empty() {
        suite.retain_workloads(&args.workload)?;
    }
    if let Some(r) = args.reps {
        suite.reps = r;
    }
    if let Some(w) = args.warmup {
        suite.warmup = w;
    }
    if let Some(n) = args.vcpus {
        suite.limits.vcpus = n;
    }
    if let Some(m) = args.memory_mib {
        suite.limits.memory_mib = m;
    }
    if let Some(d) = args.io_depth {
        suite.set_io_depth(d)?;
    }
    for f in &args.factors {
        suite.set_factor(factors::parse_arg(f)?);
    }
    if let Some(aa) = &args.aa {
        suite.aa = Some(aa.clone());
    }
    if let Some(p) = &args.until_ci {
        let pct = suite::parse_percent(p).map_err(|e| anyhow::anyhow!("--until-ci {e}"))?;
        let mut rule = suite::UntilCi::with_defaults(pct, suite.reps);
        if let Some(old) = suite.until_ci {
            // The suite's caps stay unless the command line sets them.
            rule.max_reps = old.max_reps.max(suite.reps);
            rule.max_wall_s = old.max_wall_s;
        }
        suite.until_ci = Some(rule);
    }
    if suite.until_ci.is_none() && (args.max_reps.is_some() || args.max_wall.is_some()) {
        bail!("--max-reps and --max-wall are the caps of --until-ci; add --until-ci P% (e.g. 5%)");
    }
    if let Some(rule) = suite.until_ci.as_mut() {
        if args.reps.is_some() && args.max_reps.is_none() {
            // --reps changes what the default cap multiplies.
            rule.max_reps = rule
                .max_reps
                .max(suite.reps.saturating_mul(suite::DEFAULT_MAX_REPS_FACTOR));
        }
        if let Some(n) = args.max_reps {
            rule.max_reps = n;
        }
        if let Some(w) = &args.max_wall {
            rule.max_wall_s =
                suite::parse_duration(w).map_err(|e| anyhow::anyhow!("--max-wall {e}"))?;
        }
    }
    suite.validate()?;
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let agent = workloads::locate::locate_agent(args.agent.as_deref())?;
    let named_kernel = args.kernel.as_deref().is_some_and(|k| {
        ["debian", "micro", "micro-acpi"]
            .iter()
            .any(|n| k == Path::new(n))
    });
    if let Some(k) = args.kernel.as_ref().filter(|_| !named_kernel) {
        if !k.is_file() {
            bail!(
                "--kernel {}: no such file; pass a bzImage or an ELF vmlinux, `debian` for Debian's \
                 stock kernel, `micro-acpi` for the micro kernel's ACPI-only variant, or leave --kernel out to \
                 use the micro kernel (`isolab kernel build`)",
                k.display()
            );
        }
    }
    interrupt::install().context("cannot install the Ctrl-C handler")?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let opts = RunOptions {
        suite,
        out: args.out,
        agent,
        scratch_parent: args.io_dir,
        seed,
        trial_timeout: Duration::from_secs_f64(args.timeout),
        live_console: args.console,
        progress: true,
        command: std::env::args().collect(),
        registry: bench_harness::run_places::Registry::default(),
        state_parent: bench_harness::run_places::default_base(),
        options: backends::BackendOptions {
            // `micro` is the default kernel: no override.
            vm_kernel: args.kernel.clone().filter(|k| k != Path::new("micro")),
            user_namespace: args.userns,
            seccomp: match args.seccomp {
                Seccomp::Docker => container_backend::SeccompProfile::Docker,
                Seccomp::Off => container_backend::SeccompProfile::Off,
            },
            container_net: match args.container_net {
                ContainerNetArg::Veth => bench_harness::lab_net::ContainerNet::Veth,
                ContainerNetArg::Host => bench_harness::lab_net::ContainerNet::Host,
            },
            vm_in_emulator: args.vm_in_emulator,
            vm_disk: Some(match args.vm_disk {
                VmDisk::Ext4 => workloads::protocol::DiskMode::Ext4,
                VmDisk::Raw => workloads::protocol::DiskMode::Raw,
            }),
            vm_seccomp: match args.vm_seccomp {
                VmSeccomp::On => vm_backend::seccomp::SeccompMode::On,
                VmSeccomp::Off => vm_backend::seccomp::SeccompMode::Off,
                VmSeccomp::Log => vm_backend::seccomp::SeccompMode::Log,
            },
            vm_jail: args.vm_jail,
            vm_memory: Some(match args.vm_memory {
                VmMemory::Thp => vm_backend::vstate::memory::MemoryBacking::Thp,
                VmMemory::Hugetlbfs => vm_backend::vstate::memory::MemoryBacking::Hugetlbfs,
                VmMemory::Small => vm_backend::vstate::memory::MemoryBacking::Small,
            }),
            vm_acpi: Some(match args.vm_acpi {
                VmAcpi::Auto => vm_backend::vmm::AcpiMode::Auto,
                VmAcpi::On => vm_backend::vmm::AcpiMode::On,
                VmAcpi::Off => vm_backend::vmm::AcpiMode::Off,
            }),
            vm_net_offload: Some(args.vm_net_offload == OnOff::On),
        },
        make_backend: Box::new(backends::make_with),
    };
    let outcome = run::execute(&opts)?;
    println!("{}", summary::render_table(&outcome.summary));
    if !opts.suite.replicates.is_empty() {
        // Published figures the suite replicates, beside this run's.
        if let Ok(run) = store::load_run(&outcome.dir) {
            print!("{}", report::published_term(&run));
        }
    }
    let status = match outcome.status {
        RunStatus::Interrupted => "interrupted (the samples taken so far are valid)",
        _ => "complete",
    };
    println!(
        "Run {status} in {:.1} s. Samples and manifest: {}\nRecompute this summary with: isolab report {}",
        outcome.wall.as_secs_f64(),
        outcome.dir.display(),
        outcome.dir.display()
    );
    Ok(if outcome.status == RunStatus::Interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_report(
    dir: &std::path::Path,
    format: ReportFormat,
    output: Option<&std::path::Path>,
    charts: Option<&std::path::Path>,
    font: Option<&std::path::Path>,
    lang: Lang,
) -> Result<ExitCode> {
    // A density run (`isolab density`) or a run of trials (`isolab run`).
    let (text, drawn) = if bench_harness::density::record::is_density_run(dir) {
        use bench_harness::density::{record, render};
        let run = record::load(dir)?;
        if lang != Lang::En {
            eprintln!(
                "note: the report of a density run is in English; its figures are in the book's \
                 language with `isolab book --density {} --lang {}`",
                dir.display(),
                lang.code()
            );
        }
        let drawn = charts.map(|_| render::charts(&run)).transpose()?;
        (render::render(&run, format)?, drawn)
    } else {
        let run = store::load_run(dir)?;
        let drawn = charts.map(|_| report::build_charts(&run)).transpose()?;
        (report::render_report_in(&run, format, lang)?, drawn)
    };
    match output {
        Some(p) => std::fs::write(p, text)
            .with_context(|| format!("cannot write the report to {}", p.display()))?,
        None => print!("{text}"),
    }
    if let (Some(d), Some((made, notes))) = (charts, drawn) {
        let written = report::write_chart_files(&made, notes, d, font)?;
        for f in &written.files {
            eprintln!("wrote {}", f.display());
        }
        for n in &written.notes {
            eprintln!("note: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_book(
    results: Option<PathBuf>,
    vm_results: Option<PathBuf>,
    density: Option<PathBuf>,
    out: Option<PathBuf>,
    book_src: Option<PathBuf>,
    lang: Lang,
) -> Result<ExitCode> {
    let src = book::locate_sources(book_src.as_deref())?;
    let run_dir = match results {
        Some(r) => r,
        None => {
            let newest = book::newest_run(std::path::Path::new("results"))?;
            eprintln!("using the newest run: {}", newest.display());
            newest
        }
    };
    let run = store::load_run(&run_dir)?;
    let vm_run = match &vm_results {
        Some(vm_dir) => Some(store::load_run(vm_dir)?),
        None => None,
    };
    let density = match &density {
        Some(d) => {
            if !bench_harness::density::record::is_density_run(d) {
                bail!(
                    "--density {}: not a density run (make one with `isolab density`)",
                    d.display()
                );
            }
            Some(bench_harness::density::record::load(d)?)
        }
        None => None,
    };
    let out = out.unwrap_or_else(|| run_dir.join("book"));
    let built = book::build_book_in(&run, vm_run.as_ref(), density.as_ref(), &src, &out, lang)?;
    if let Some(vm) = &vm_run {
        eprintln!(
            "the VM's samples come from run {} ({}); the book describes both runs",
            vm.manifest.run_id,
            vm.dir.display()
        );
    }
    for n in &built.notes {
        eprintln!("note: {n}");
    }
    eprintln!(
        "built the book from run {} with {} figures; open:",
        run.manifest.run_id,
        built.figures.len()
    );
    println!("{}", built.index.display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_doctor(clean: bool) -> Result<ExitCode> {
    if clean {
        // Only what a run recorded as its own is removed; runs still alive are left alone.
        let report = bench_harness::run_places::Registry::default().clean_dead();
        for run in &report.cleaned {
            for p in &run.removed {
                println!(
                    "removed {} (run {}, isolab pid {} gone)",
                    p.display(),
                    run.run_id,
                    run.pid
                );
            }
            for k in &run.kept {
                println!("left alone {k} (run {})", run.run_id);
            }
        }
        for id in &report.live {
            println!("kept the places of run {id} (its isolab is still running)");
        }
        if report.cleaned.is_empty() {
            println!("nothing to clean: no run of a killed isolab is recorded");
        }
    }
    let agent = workloads::locate::locate_agent(None).map_err(|e| e.to_string());
    let checks = doctor::checks(agent, std::path::Path::new("results"));
    print!("{}", doctor::render(&checks));
    let code = doctor::exit_code(&checks);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
