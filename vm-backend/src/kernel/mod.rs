//! Guest kernels: building isolab's `micro` kernel from Debian's kernel source package
//! ([`build`]), fetching Debian's packages ([`fetch`]), and where both are cached.
//!
//! Everything lands under the cache root ([`cache_root`]), outside the repository, keyed by
//! package version and (for built kernels) a hash of the configuration fragment, so a fresh
//! machine rebuilds exactly what a warm one reuses.

pub mod build;
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
