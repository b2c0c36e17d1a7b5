//! `isolab density`: the command line of [`bench_harness::density`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use bench_harness::backend::SandboxLimits;
use bench_harness::density::{self, instance::Kind, ksm::KsmMode, DensityOptions};
use bench_harness::manifest::RunStatus;
use bench_harness::report::ReportFormat;

/// KSM for the run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ksm {
    /// Leave it as the host has it (recorded).
    Host,
    /// Turn it on for the run (the host's value is put back after, also on Ctrl-C, and by
    /// `isolab doctor --clean` after a kill).
    On,
    /// Turn it off for the run (put back after).
    Off,
}

/// `isolab density`'s options.
#[derive(clap::Args, Debug)]
pub struct DensityArgs {
    /// Backends, comma-separated: native, container (adds the container's floor unless
    /// --no-floor), floor, vm (each VM in a VMM process of its own; needs hardware KVM, or
    /// --vm-in-emulator).
    #[arg(long, value_delimiter = ',', default_value = "native,container")]
    backend: Vec<String>,
    /// Numbers of instances, comma-separated (each N runs its rounds; ascending).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    count: Vec<usize>,
    /// Rounds per backend and N (the memory figures are medians over them, with intervals).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Instances started at once: 1 = one after another, a number, or `all` (the boot storm).
    #[arg(long, default_value = "1", value_name = "P|all")]
    parallel: String,
    /// What each instance holds while it waits: `idle`, or a size it writes (64MiB, 512KiB).
    #[arg(long, default_value = "idle", value_name = "SIZE")]
    working_set: String,
    /// Instances started one at a time beside N running, per round (start under load).
    #[arg(long, default_value_t = 3)]
    beside: u32,
    /// Memory kept free in "instances that fit", and in the refusal before an N: percent of RAM.
    #[arg(long, default_value = "10%")]
    headroom: String,
    /// Stop adding instances when MemAvailable falls below this share of RAM.
    #[arg(long, default_value = "10%", value_name = "PERCENT")]
    stop_below: String,
    /// KSM (kernel samepage merging) for the run: host-wide, so recorded and put back.
    #[arg(long, value_enum, default_value_t = Ksm::Host)]
    ksm: Ksm,
    /// Wait this long after the last instance is ready before reading the host.
    #[arg(long, default_value = "2s")]
    settle: String,
    /// With --ksm on: wait at most this long for KSM to settle.
    #[arg(long, default_value = "120s")]
    ksm_settle: String,
    /// Wait at most this long for MemAvailable to come back after each teardown.
    #[arg(long, default_value = "10s")]
    recovery: String,
    /// An instance not ready after this long has failed.
    #[arg(long, default_value = "60s")]
    ready_timeout: String,
    /// /proc/meminfo samples per reading of the host (their median, field by field).
    #[arg(long, default_value_t = 5)]
    samples: u32,
    /// Time between two /proc/meminfo samples of a reading.
    #[arg(long, default_value = "200ms")]
    sample_every: String,
    /// Leave out the container's floor (a plain clone into the same namespaces and a cgroup).
    #[arg(long)]
    no_floor: bool,
    /// Each container's memory limit, MiB.
    #[arg(long, default_value_t = SandboxLimits::default().memory_mib)]
    memory_mib: u64,
    /// The container's seccomp filter.
    #[arg(long, value_enum, default_value_t = crate::Seccomp::Docker)]
    seccomp: crate::Seccomp,
    /// Starter threads (default: the number started at once, at most 16).
    #[arg(long)]
    starters: Option<usize>,
    /// Where run folders are created.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Where the run's private folder (the containers' scratch) is made.
    #[arg(long, default_value = "/var/tmp")]
    io_dir: PathBuf,
    /// The agent binary. Default: next to this program, or $ISOLAB_AGENT.
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Run the VMs inside the emulated AMD-V machine (QEMU TCG, kvm-amd inside; one boot for
    /// all their rounds), for hosts whose /dev/kvm cannot boot Linux: their memory figures are
    /// valid (measured against the emulated machine's memory), their times are not performance
    /// figures.
    #[arg(long)]
    vm_in_emulator: bool,
    /// The VMs' guest kernel (a bzImage or ELF vmlinux; default: the micro kernel).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Print each round and, at the end, the manifest as framed lines on stdout (what the run
    /// inside the emulated machine does for the host that started it).
    #[arg(long, hide = true)]
    emit_rounds: bool,
}

fn duration(text: &str, what: &str) -> Result<Duration> {
    humantime::parse_duration(text.trim())
        .map_err(|e| anyhow::anyhow!("{what} {text:?} is not a duration ({e}); write e.g. 2s"))
}

/// Runs `isolab density`.
pub fn execute(args: DensityArgs) -> Result<ExitCode> {
    let mut backends = Vec::new();
    for b in &args.backend {
        let Some(k) = Kind::from_name(b.trim()) else {
            bail!("unknown backend {b:?}; choose from native, container, floor, vm");
        };
        if !backends.contains(&k) {
            backends.push(k);
        }
    }
    if args.vm_in_emulator && !backends.contains(&Kind::Vm) {
        bail!("--vm-in-emulator runs VMs: add vm to --backend (e.g. --backend vm)");
    }
    if args.vm_in_emulator && args.kernel.is_some() {
        bail!("--vm-in-emulator boots the micro kernel; leave --kernel out");
    }
    let mut counts = args.count.clone();
    counts.sort_unstable();
    counts.dedup();
    if counts.first() == Some(&0) {
        bail!("--count: every N must be at least 1");
    }
    if counts.is_empty() {
        bail!("--count: give at least one N, e.g. --count 1,10,100");
    }
    if args.rounds == 0 || args.samples == 0 {
        bail!("--rounds and --samples must be at least 1");
    }
    let needs_root = backends.iter().any(|k| *k != Kind::Native);
    if needs_root && !nix::unistd::geteuid().is_root() {
        bail!(
            "containers and their floor need root (namespaces, cgroups): run as root (sudo), or \
             use --backend native"
        );
    }
    let opts = DensityOptions {
        backends,
        with_floor: !args.no_floor,
        counts,
        rounds: args.rounds,
        parallel: density::parse_parallel(&args.parallel).map_err(anyhow::Error::msg)?,
        working_set_kib: density::parse_working_set(&args.working_set)
            .map_err(|e| anyhow::anyhow!("--working-set {e}"))?,
        beside: args.beside,
        headroom_pct: density::parse_share(&args.headroom, "--headroom")
            .map_err(anyhow::Error::msg)?,
        floor_pct: density::parse_share(&args.stop_below, "--stop-below")
            .map_err(anyhow::Error::msg)?,
        ksm: match args.ksm {
            Ksm::Host => KsmMode::Host,
            Ksm::On => KsmMode::On,
            Ksm::Off => KsmMode::Off,
        },
        settle: duration(&args.settle, "--settle")?,
        ksm_settle: duration(&args.ksm_settle, "--ksm-settle")?,
        recovery_limit: duration(&args.recovery, "--recovery")?,
        ready_timeout: duration(&args.ready_timeout, "--ready-timeout")?,
        samples: args.samples,
        sample_every: duration(&args.sample_every, "--sample-every")?,
        limits: SandboxLimits {
            memory_mib: args.memory_mib,
            ..SandboxLimits::default()
        },
        seccomp: match args.seccomp {
            crate::Seccomp::Docker => container_backend::SeccompProfile::Docker,
            crate::Seccomp::Off => container_backend::SeccompProfile::Off,
        },
        out: args.out,
        agent: workloads::locate::locate_agent(args.agent.as_deref())?,
        io_parent: args.io_dir,
        registry: bench_harness::run_places::Registry::default(),
        state_parent: bench_harness::run_places::default_base(),
        command: std::env::args().collect(),
        progress: !args.emit_rounds,
        starters: args.starters,
        kernel: args.kernel,
        vm_in_emulator: args.vm_in_emulator,
        emit_rounds: args.emit_rounds,
    };
    bench_harness::interrupt::install()?;
    let outcome = density::execute(&opts)?;
    let run = density::record::load(&outcome.dir)?;
    print!("{}", density::render::render(&run, ReportFormat::Term)?);
    let status = match outcome.status {
        RunStatus::Interrupted => "interrupted (the rounds measured so far are valid)",
        _ => "complete",
    };
    println!(
        "\nDensity run {status} in {:.1} s: {}\nRender it again, or as HTML with charts: isolab report {} --format html",
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
