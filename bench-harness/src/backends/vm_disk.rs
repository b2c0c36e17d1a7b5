//! The VM's disk for I/O trials: a raw image file the VMM serves as virtio-blk, made fresh for
//! every trial in the run's I/O scratch directory (the same host filesystem the container's
//! scratch directory is on, so both I/O paths end on the same disk).
//!
//! Two ways to use it ([`DiskMode`]): `ext4` (the default) formats it on the host with
//! `mkfs.ext4` from e2fsprogs and the agent mounts it, so the workload writes files through a
//! filesystem as it does natively and in a container; `raw` gives the agent the bare block device
//! (O_DIRECT on `/dev/vda`), the virtio path without a filesystem.
//!
//! Formatting is done once per image size (a template) and copied per trial, so no trial sees
//! another's data. Every image is a new file (`O_EXCL | O_NOFOLLOW`): an existing file or a
//! symbolic link in its place is refused, never written through. `mkfs.ext4` initialises inode tables and journal up front
//! (`lazy_itable_init=0,lazy_journal_init=0`): otherwise the guest kernel would finish that work
//! in the background while the workload is measured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use workloads::protocol::DiskMode;

/// Disk images for a run's VM trials.
#[derive(Debug)]
pub struct DiskImages {
    dir: PathBuf,
    mode: DiskMode,
    /// Formatted ext4 images by size in MiB, copied per trial.
    templates: BTreeMap<u64, PathBuf>,
    /// Templates this value made (and removes); given ones are the giver's.
    made: Vec<PathBuf>,
}

/// The image size for an I/O workload with `data_mib` of data: room for the data, ext4's
/// metadata and journal, and slack, in 16 MiB steps.
pub fn image_mib(data_mib: u64) -> u64 {
    (data_mib.saturating_mul(5) / 4)
        .saturating_add(64)
        .next_multiple_of(16)
}

/// Creates `path` as a new file, refusing an existing file or a symbolic link.
fn create_new(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("creating the disk image {}: {e}", path.display()))
}

/// On PATH, or in the sbin folders a PATH may lack.
fn which(cmd: &str) -> bool {
    vm_backend::hvm::which(cmd).is_some()
        || ["/sbin", "/usr/sbin"]
            .iter()
            .any(|d| Path::new(d).join(cmd).is_file())
}

impl DiskImages {
    /// Images in `dir`, used as `mode`.
    pub fn new(dir: &Path, mode: DiskMode) -> Self {
        Self {
            dir: dir.to_owned(),
            mode,
            templates: BTreeMap::new(),
            made: Vec::new(),
        }
    }

    /// Uses already formatted ext4 images (by size in MiB) instead of running `mkfs.ext4`
    /// (inside the emulated machine, which has no e2fsprogs).
    pub fn with_templates(mut self, templates: BTreeMap<u64, PathBuf>) -> Self {
        self.templates.extend(templates);
        self
    }

    /// How the agent uses the disk.
    pub fn mode(&self) -> DiskMode {
        self.mode
    }

    /// The formatted ext4 image of `size_mib`, made on first use.
    pub fn template(&mut self, size_mib: u64) -> Result<PathBuf, String> {
        if let Some(t) = self.templates.get(&size_mib) {
            return Ok(t.clone());
        }
        if !which("mkfs.ext4") {
            vm_backend::kernel::fetch::apt_install(&["e2fsprogs"], &mut |m| eprintln!("vm: {m}"))
                .map_err(|e| {
                format!("mkfs.ext4 is missing and could not be installed ({e}); install e2fsprogs")
            })?;
        }
        let path = self.dir.join(format!("vm-ext4-{size_mib}MiB.template.img"));
        let file = create_new(&path)?;
        file.set_len(size_mib << 20)
            .map_err(|e| format!("sizing the disk image {}: {e}", path.display()))?;
        drop(file);
        self.made.push(path.clone());
        let out = Command::new("mkfs.ext4")
            .args([
                "-F",
                "-q",
                "-m",
                "0",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
            ])
            .arg(&path)
            .output()
            .map_err(|e| format!("running mkfs.ext4: {e}; install e2fsprogs"))?;
        if !out.status.success() {
            return Err(format!(
                "mkfs.ext4 {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        self.templates.insert(size_mib, path.clone());
        Ok(path)
    }

    /// A fresh image for trial `index` of a workload with `data_mib` of data. The caller removes
    /// it after the trial ([`DiskImages::discard`]).
    pub fn for_trial(&mut self, index: usize, data_mib: u64) -> Result<PathBuf, String> {
        let size = image_mib(data_mib);
        let path = self.dir.join(format!("vm-disk-{index}.img"));
        match self.mode {
            DiskMode::Raw => {
                let file = create_new(&path)?;
                file.set_len(size << 20)
                    .map_err(|e| format!("sizing the disk image {}: {e}", path.display()))?;
            }
            DiskMode::Ext4 => {
                let template = self.template(size)?;
                let mut to = create_new(&path)?;
                std::fs::File::open(&template)
                    .and_then(|mut from| std::io::copy(&mut from, &mut to))
                    .map_err(|e| format!("copying the disk image to {}: {e}", path.display()))?;
            }
        }
        Ok(path)
    }

    /// Removes a trial's image.
    pub fn discard(&self, image: &Path) {
        let _ = std::fs::remove_file(image);
    }

    /// Removes the templates this value made.
    pub fn cleanup(&mut self) {
        for t in self.made.drain(..) {
            let _ = std::fs::remove_file(&t);
        }
        self.templates.clear();
    }
}

impl Drop for DiskImages {
    fn drop(&mut self) {
        self.cleanup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_have_room_for_data_and_metadata() {
        assert_eq!(image_mib(1), 80);
        assert_eq!(image_mib(64), 144);
        assert!(image_mib(1024) >= 1024 + 256);
        assert_eq!(image_mib(u64::MAX) % 16, 0);
    }

    #[test]
    fn raw_images_are_fresh_sparse_files_of_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut disks = DiskImages::new(dir.path(), DiskMode::Raw);
        let p = disks.for_trial(3, 10).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), image_mib(10) << 20);
        disks.discard(&p);
        assert!(!p.exists());
        // A link planted where an image goes is refused, and its target is untouched.
        let target = dir.path().join("precious");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("vm-disk-4.img")).unwrap();
        assert!(disks.for_trial(4, 10).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn ext4_images_are_formatted_copies() {
        // Installs e2fsprogs from apt when mkfs.ext4 is missing, as a run would.
        let dir = tempfile::tempdir().unwrap();
        let mut disks = DiskImages::new(dir.path(), DiskMode::Ext4);
        let a = disks.for_trial(1, 1).unwrap();
        let b = disks.for_trial(2, 1).unwrap();
        assert_ne!(a, b);
        let bytes = std::fs::read(&a).unwrap();
        // The ext4 superblock's magic 0xEF53 at byte 1024 + 0x38.
        assert_eq!(&bytes[1024 + 0x38..1024 + 0x3a], &[0x53, 0xef]);
        let template = disks.template(image_mib(1)).unwrap();
        disks.cleanup();
        assert!(!template.exists(), "templates are removed");
    }
}
