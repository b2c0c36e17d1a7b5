//! What the manifest records about a VM's guest kernel: the image's SHA-256 and its
//! configuration's, so that two runs that booted different kernels (or the same kernel built
//! from another configuration) cannot be mistaken for each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vm_backend::kernel::build::{config_hash, find_cached, Variant};
use vm_backend::kernel::debian::find_cached_debian_guest;
use vm_backend::kernel::{cache_root, KernelChoice};

use crate::manifest::file_sha256;

/// Facts about the guest kernel `kernel`, chosen as `choice`: `kernel_sha256`, and
/// `kernel_config_sha256` with the `.config` it was read from, or `kernel_config` saying why the
/// configuration is not known. The micro kernels add the hash of their fragment (the cache key).
pub(crate) fn facts(choice: &KernelChoice, kernel: &Path) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("kernel_sha256".into(), file_sha256(kernel));
    if let Some(variant) = micro_variant(choice) {
        f.insert("micro_config_hash".into(), config_hash(&variant.fragment()));
    }
    match config_of(choice, kernel) {
        Ok(config) => {
            f.insert("kernel_config_sha256".into(), file_sha256(&config));
            f.insert("kernel_config".into(), config.display().to_string());
        }
        Err(why) => {
            f.insert("kernel_config".into(), format!("not known: {why}"));
        }
    }
    f
}

/// The variant of isolab's own kernel that `choice` builds, if it is one.
fn micro_variant(choice: &KernelChoice) -> Option<Variant> {
    match choice {
        KernelChoice::Micro => Some(Variant::Micro),
        KernelChoice::MicroAcpi => Some(Variant::MicroAcpi),
        KernelChoice::Debian | KernelChoice::File(_) => None,
    }
}

/// The `.config` of isolab's own kernel `variant`, when `kernel` is that cached build.
fn micro_config(variant: Variant, kernel: &Path) -> Result<PathBuf, String> {
    find_cached(variant)
        .filter(|a| a.bz_image == kernel || a.vmlinux == kernel)
        .map(|a| a.config)
        .filter(|c| c.is_file())
        .ok_or_else(|| {
            format!(
                "the {} kernel's build folder has no config file",
                variant.name()
            )
        })
}

/// The full `.config` the kernel was built with, or why it cannot be found.
fn config_of(choice: &KernelChoice, kernel: &Path) -> Result<PathBuf, String> {
    match choice {
        KernelChoice::Micro => micro_config(Variant::Micro, kernel),
        KernelChoice::MicroAcpi => micro_config(Variant::MicroAcpi, kernel),
        KernelChoice::Debian => {
            let guest = find_cached_debian_guest()
                .ok_or_else(|| "the Debian guest kernel is not in the cache".to_owned())?;
            // Debian ships the configuration beside the image: boot/config-<release> of the
            // unpacked package.
            let name = format!("config-{}", guest.release);
            std::fs::read_dir(cache_root().join("debian-kernels"))
                .map_err(|e| format!("the unpacked Debian kernel packages: {e}"))?
                .flatten()
                .map(|e| e.path().join("boot").join(&name))
                .find(|p| p.is_file())
                .ok_or_else(|| format!("no {name} among the unpacked Debian kernel packages"))
        }
        KernelChoice::File(_) => {
            let dir = kernel.parent().unwrap_or(Path::new("."));
            ["config", ".config"]
                .iter()
                .map(|n| dir.join(n))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    format!(
                        "a kernel file given with --kernel; put its .config beside it as {} to \
                         have it recorded",
                        dir.join("config").display()
                    )
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_file_is_hashed_with_the_config_beside_it() {
        let d = tempfile::tempdir().unwrap();
        let kernel = d.path().join("bzImage");
        std::fs::write(&kernel, b"kernel").unwrap();
        let choice = KernelChoice::File(kernel.clone());
        let f = facts(&choice, &kernel);
        assert_eq!(f["kernel_sha256"], file_sha256(&kernel));
        assert!(f["kernel_config"].starts_with("not known: "), "{f:?}");
        assert!(!f.contains_key("kernel_config_sha256"));

        std::fs::write(d.path().join("config"), "CONFIG_VIRTIO=y\n").unwrap();
        let f = facts(&choice, &kernel);
        assert_eq!(
            f["kernel_config_sha256"],
            file_sha256(&d.path().join("config"))
        );
        assert_ne!(f["kernel_config_sha256"], f["kernel_sha256"]);
    }
}
