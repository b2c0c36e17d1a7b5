//! `isolab kernel`: guest kernels for the VM backend.
//!
//! `isolab kernel build` builds the `micro` kernel from Debian's `linux-source-6.1` with the
//! fragment `vm-backend/kernel/micro.config` (`--variant micro-acpi`: its ACPI-only variant),
//! installing build dependencies from apt when missing and caching the result by source version
//! and config hash (outside the repository).
//! `isolab kernel fetch debian` makes the stock `debian` guest kernel: Debian's cloud kernel
//! package fetched with apt (not installed), its bzImage and the virtio modules the VM needs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use vm_backend::boot::loader::KernelImage;
use vm_backend::kernel::build::{
    config_hash, ensure, find_cached, BuildOptions, Variant, SOURCE_PACKAGE,
};
use vm_backend::kernel::debian::{ensure_debian_guest, find_cached_debian_guest};
use vm_backend::kernel::{cache_root, fetch};

/// Guest kernel commands.
#[derive(clap::Subcommand, Debug)]
pub enum KernelCommand {
    /// Build the `micro` guest kernel (or report the cached one).
    #[command(
        long_about = "Builds the default guest kernel from Debian's linux-source-6.1 package: \
`make tinyconfig` plus the fragment vm-backend/kernel/micro.config (8250 console, uncompressed \
initramfs, devtmpfs, unix and inet sockets, SMP, ACPI, KVM guest support, virtio-mmio from ACPI and \
the command line, virtio-blk, virtio console, ext4, no modules). Installs flex, bison, bc, \
libelf-dev and libssl-dev from apt if missing, runs `nice -n 15 make -j2`, and caches bzImage, \
vmlinux and .config under ~/.cache/isolab/kernels/micro-<source version>-<config hash>/ \
(ISOLAB_CACHE_DIR moves the cache). About 5 minutes on 2 cores; instant when cached. \
`--variant micro-acpi` builds the micro kernel configured as Firecracker's published x86_64 guest \
configs are (vm-backend/kernel/micro-acpi.config: ACPI only, no virtio-mmio command-line devices, \
no virtio console) from a copy of the micro kernel's build tree: a few files and a link."
    )]
    Build {
        /// Which kernel: `micro` or `micro-acpi`.
        #[arg(long, value_enum, default_value_t = BuiltKernel::Micro)]
        variant: BuiltKernel,
        /// Rebuild even if a kernel with this source version and config is cached.
        #[arg(long)]
        force: bool,
        /// Parallel compile jobs (`make -j`).
        #[arg(long, default_value_t = 2)]
        jobs: u32,
        /// Niceness of the compiler (`nice -n`).
        #[arg(long, default_value_t = 15)]
        nice: i32,
    },
    /// Print where a cached kernel is (exit status 1 when there is none).
    Path {
        /// `micro` (built by `isolab kernel build`) or `debian` (made by `isolab kernel fetch debian`).
        #[arg(default_value = "micro")]
        kernel: GuestKernel,
        /// Print the micro kernel's ELF vmlinux instead of its bzImage.
        #[arg(long)]
        vmlinux: bool,
    },
    /// Check that a file is a kernel the VMM can boot (format, 64-bit entry, not truncated); no KVM needed.
    Check {
        /// A bzImage or ELF vmlinux.
        path: PathBuf,
    },
    /// Fetch Debian's cloud kernel package with apt (no install) and make the `debian` guest kernel.
    #[command(
        long_about = "Fetches Debian's current cloud kernel package (linux-image-cloud-amd64 names it) \
with `apt-get download` and unpacks it without installing it, then makes the `debian` guest kernel \
under ~/.cache/isolab/kernels/debian-<package>_<version>/: its vmlinuz, and the modules a VM needs \
(virtio_mmio, virtio_blk and what they depend on, read from each module's modinfo) in load order. \
Boot it with `isolab run --kernel debian`: the initramfs then carries the modules, the agent loads \
them, and the VMM describes its devices in ACPI tables (this kernel finds virtio-mmio devices no \
other way)."
    )]
    Fetch {
        /// Which kernel (only `debian` is fetched; `micro` is built with `isolab kernel build`).
        #[arg(default_value = "debian")]
        kernel: GuestKernel,
    },
}

/// The named guest kernels.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestKernel {
    /// isolab's minimal kernel, built from Debian's kernel source.
    Micro,
    /// The micro kernel configured as Firecracker's guest configs (ACPI only).
    MicroAcpi,
    /// Debian's stock cloud kernel with its virtio modules.
    Debian,
}

/// The kernels isolab builds.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltKernel {
    /// isolab's minimal kernel.
    Micro,
    /// The micro kernel configured as Firecracker's guest configs (ACPI only).
    MicroAcpi,
}

impl BuiltKernel {
    fn variant(self) -> Variant {
        match self {
            BuiltKernel::Micro => Variant::Micro,
            BuiltKernel::MicroAcpi => Variant::MicroAcpi,
        }
    }
}

/// Runs a kernel command.
pub fn execute(cmd: KernelCommand) -> Result<()> {
    match cmd {
        KernelCommand::Build {
            variant,
            force,
            jobs,
            nice,
        } => {
            let start = Instant::now();
            let variant = variant.variant();
            let name = variant.name();
            if !force {
                if let Some(k) = find_cached(variant) {
                    println!("{name} kernel (cached): {}", k.dir.display());
                    println!("  bzImage  {}", k.bz_image.display());
                    println!("  vmlinux  {}", k.vmlinux.display());
                    return Ok(());
                }
            }
            eprintln!(
                "building the {name} kernel from {SOURCE_PACKAGE} (config hash {}, cache {})",
                config_hash(&variant.fragment()),
                cache_root().display()
            );
            let mut progress = |msg: &str| {
                eprintln!("[{:>4}s] {msg}", start.elapsed().as_secs());
            };
            let k = ensure(
                variant,
                BuildOptions {
                    force,
                    jobs,
                    niceness: nice,
                },
                &mut progress,
            )
            .with_context(|| format!("building the {name} kernel"))?;
            println!(
                "{name} kernel built in {:.0} s: {}",
                start.elapsed().as_secs_f64(),
                k.dir.display()
            );
            println!("  bzImage  {}", k.bz_image.display());
            println!("  vmlinux  {}", k.vmlinux.display());
            Ok(())
        }
        KernelCommand::Path {
            kernel: kernel @ (GuestKernel::Micro | GuestKernel::MicroAcpi),
            vmlinux,
        } => {
            let built = if kernel == GuestKernel::Micro {
                BuiltKernel::Micro
            } else {
                BuiltKernel::MicroAcpi
            };
            let k = find_cached(built.variant()).with_context(|| {
                format!(
                    "no {0} kernel is cached for this configuration; run `isolab kernel build --variant {0}`",
                    built.variant().name()
                )
            })?;
            println!("{}", if vmlinux { k.vmlinux } else { k.bz_image }.display());
            Ok(())
        }
        KernelCommand::Path {
            kernel: GuestKernel::Debian,
            vmlinux,
        } => {
            if vmlinux {
                bail!("the debian kernel comes as a bzImage only; leave out --vmlinux");
            }
            let k = find_cached_debian_guest()
                .context("no debian guest kernel is cached; run `isolab kernel fetch debian`")?;
            print_debian(&k);
            Ok(())
        }
        KernelCommand::Check { path } => {
            let k = KernelImage::from_file(&path)?;
            println!(
                "{}: {} ({} bytes), needs at least {} MiB of guest RAM, command line up to {} bytes",
                path.display(),
                k.info.format.name(),
                k.len,
                k.info.min_ram.div_ceil(1 << 20),
                k.info.cmdline_max
            );
            Ok(())
        }
        KernelCommand::Fetch {
            kernel: GuestKernel::Micro | GuestKernel::MicroAcpi,
        } => bail!("the micro kernels are built, not fetched: run `isolab kernel build [--variant micro-acpi]`"),
        KernelCommand::Fetch {
            kernel: GuestKernel::Debian,
        } => {
            let pkg = fetch::debian_cloud_kernel(&mut |m| eprintln!("{m}"))
                .context("fetching Debian's cloud kernel")?;
            let k = ensure_debian_guest(&mut |m| eprintln!("{m}"))
                .context("making the debian guest kernel")?;
            println!("{} {}: {}", pkg.package, pkg.version, k.dir.display());
            print_debian(&k);
            Ok(())
        }
    }
}

fn print_debian(k: &vm_backend::kernel::debian::DebianGuest) {
    println!("  vmlinuz  {} ({})", k.vmlinuz.display(), k.release);
    for m in &k.modules {
        println!("  module   {}", m.display());
    }
}
