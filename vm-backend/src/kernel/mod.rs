//! Guest kernels: building isolab's `micro` kernel from Debian's kernel source package
//! ([`build`]), fetching Debian's packages ([`fetch`]), the stock `debian` kernel with its
//! modules ([`debian`]), and where all are cached. [`boot_kernel`] turns a kernel choice into what
//! the VMM needs to boot it.
//!
//! Everything lands under the cache root ([`cache_root`]), outside the repository, keyed by
//! package version and (for built kernels) a hash of the configuration fragment, so a fresh
//! machine rebuilds exactly what a warm one reuses.

pub mod build;
pub mod debian;
pub mod fetch;

use std::path::PathBuf;

use thiserror::Error;

/// Environment variable that moves the cache root.
pub const CACHE_ENV: &str = "ISOLAB_CACHE_DIR";

/// The cache root: `$ISOLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/isolab`, else `~/.cache/isolab`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("isolab");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache").join("isolab")
}

/// Which guest kernel a VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelChoice {
    /// isolab's own minimal kernel ([`build`]): everything built in, devices from ACPI and the
    /// command line.
    Micro,
    /// The micro kernel configured as Firecracker's published x86_64 guest configs are
    /// ([`build::Variant::MicroAcpi`]): devices from ACPI only, no virtio console.
    MicroAcpi,
    /// Debian's stock cloud kernel ([`debian`]): virtio modules in the initramfs, devices in ACPI.
    Debian,
    /// A bzImage or ELF vmlinux file: its devices are described both ways (see
    /// [`crate::vmm::AcpiMode::Auto`]), so a kernel that finds them either way boots.
    File(PathBuf),
}

impl KernelChoice {
    /// `micro`, `micro-acpi`, `debian`, or a path.
    pub fn parse(text: &str) -> Self {
        match text {
            "micro" => KernelChoice::Micro,
            "micro-acpi" => KernelChoice::MicroAcpi,
            "debian" => KernelChoice::Debian,
            path => KernelChoice::File(PathBuf::from(path)),
        }
    }
}

/// A guest kernel ready to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootKernel {
    /// The bzImage or vmlinux.
    pub kernel: PathBuf,
    /// Modules the initramfs must carry for the agent to load, in load order (see
    /// [`crate::image::initramfs::Initramfs::modules_from`]).
    pub modules: Vec<PathBuf>,
    /// The kernel finds its devices only through ACPI tables: `--vm-acpi off` would leave it
    /// without them ([`crate::vmm::AcpiMode`]).
    pub acpi: bool,
}

/// What the VMM needs to boot `choice`: builds the micro kernel or fetches the Debian one on
/// first use (cached afterwards).
pub fn boot_kernel(choice: &KernelChoice, progress: &mut dyn FnMut(&str)) -> Result<BootKernel> {
    Ok(match choice {
        KernelChoice::Micro => BootKernel {
            kernel: build::ensure_micro(build::BuildOptions::default(), progress)?.bz_image,
            modules: Vec::new(),
            acpi: false,
        },
        KernelChoice::MicroAcpi => BootKernel {
            kernel: build::ensure(
                build::Variant::MicroAcpi,
                build::BuildOptions::default(),
                progress,
            )?
            .bz_image,
            modules: Vec::new(),
            acpi: true,
        },
        KernelChoice::Debian => {
            let guest = debian::ensure_debian_guest(progress)?;
            BootKernel {
                kernel: guest.vmlinuz,
                modules: guest.modules,
                acpi: true,
            }
        }
        KernelChoice::File(path) => BootKernel {
            kernel: path.clone(),
            modules: Vec::new(),
            acpi: false,
        },
    })
}

/// Errors fetching or building kernels. Messages say what to do.
#[derive(Debug, Error)]
pub enum KernelError {
    /// A command could not be started.
    #[error("cannot run `{command}`: {source}. Install it (Debian: apt-get install {package})")]
    Spawn {
        /// The command.
        command: String,
        /// The Debian package that has it.
        package: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed ({status}){tail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The last lines of its output, if any.
        tail: String,
    },
    /// apt does not know a package.
    #[error("apt knows no package {0}. Run `apt-get update`, and check that the Debian archive (bookworm) is in the apt sources")]
    NoPackage(String),
    /// A file in the cache could not be written or read.
    #[error(
        "cache {path}: {source}. Check the permissions of the cache directory or set {CACHE_ENV}"
    )]
    Cache {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Something expected in a package or build output is not there.
    #[error("{0}")]
    Missing(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, KernelError>;

pub(crate) fn cache_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> KernelError {
    let path = path.into();
    move |source| KernelError::Cache { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_choices_parse_and_files_boot_like_micro() {
        assert_eq!(KernelChoice::parse("micro"), KernelChoice::Micro);
        assert_eq!(KernelChoice::parse("debian"), KernelChoice::Debian);
        assert_eq!(KernelChoice::parse("micro-acpi"), KernelChoice::MicroAcpi);
        let file = KernelChoice::parse("/boot/vmlinuz");
        assert_eq!(file, KernelChoice::File(PathBuf::from("/boot/vmlinuz")));
        let boot = boot_kernel(&file, &mut |_| {}).expect("a file needs nothing fetched");
        assert_eq!(boot.kernel, PathBuf::from("/boot/vmlinuz"));
        assert!(boot.modules.is_empty() && !boot.acpi);
    }
}
