//! The I/O workloads. They share the target handling (a directory gets a scratch file, a block
//! device is used as is) and O_DIRECT-aligned buffers.

mod aio;
pub mod fsync;
pub mod rand;
pub mod seq;

pub use fsync::IoFsyncParams;
pub use rand::IoRandParams;
pub use seq::IoSeqParams;

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::kernels::WorkloadError;

/// O_DIRECT needs buffers, offsets and lengths aligned to the device's logical block; 4096 covers
/// 512-byte and 4Kn devices alike.
pub(crate) const ALIGN: usize = 4096;
/// Block size of the random and fsync workloads.
pub(crate) const BLOCK_4K: usize = 4096;
/// Block size of the sequential workload and of prefills.
pub(crate) const BLOCK_1M: usize = 1024 * 1024;

/// What to pass instead, for every target error.
const TARGET_ADVICE: &str = "pass an existing directory on a disk filesystem (a scratch file \
    is created inside and removed) or a block device (used as is, its contents are overwritten)";

/// An opened O_DIRECT target. For a directory target it owns a scratch file that is removed when
/// this is dropped, so the file goes away on success, on error and on panic alike.
#[derive(Debug)]
pub(crate) struct Target {
    /// Opened read-write with O_DIRECT.
    pub(crate) file: File,
    /// Whether this is a scratch file (which may need prefilling) rather than a device.
    pub(crate) is_scratch: bool,
    scratch: Option<PathBuf>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(path) = &self.scratch {
            // Nothing useful can be done about a failure while dropping; the name says whose it is.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Opens the target of an I/O workload `kind` at `path`, which must hold at least `needed` bytes
/// if it is a block device.
pub(crate) fn open_target(kind: &str, path: &str, needed: u64) -> Result<Target, WorkloadError> {
    let target_err = |why: String| WorkloadError::IoTarget {
        path: path.to_owned(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => target_err(format!("it does not exist; {TARGET_ADVICE}")),
        _ => target_err(format!("cannot stat it ({e}); {TARGET_ADVICE}")),
    })?;

    if meta.is_dir() {
        let file_path = Path::new(path).join(format!("isolab-{kind}-{}.dat", std::process::id()));
        // Create without O_DIRECT first, so the removal guard exists before O_DIRECT can be
        // refused. Truncating is right: the name is ours (a stale file of an earlier crashed run
        // with the same PID, typically PID 1 in a container).
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&file_path)
            .map_err(|e| {
                target_err(format!(
                    "cannot create a scratch file in it ({e}); make the directory writable or {TARGET_ADVICE}"
                ))
            })?;
        let guard = ScratchGuard(Some(file_path.clone()));
        let file = open_direct(&file_path, path)?;
        Ok(Target {
            file,
            is_scratch: true,
            scratch: guard.disarm(),
        })
    } else if meta.file_type().is_block_device() {
        let mut file = open_direct(Path::new(path), path)?;
        // A block device's size is where SEEK_END lands.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| target_err(format!("cannot find the device's size ({e})")))?;
        if size < needed {
            return Err(target_err(format!(
                "the device holds {size} bytes but this workload needs {needed}; \
                 pass a larger device or lower the workload's size"
            )));
        }
        Ok(Target {
            file,
            is_scratch: false,
            scratch: None,
        })
    } else {
        Err(target_err(format!(
            "it is neither a directory nor a block device; {TARGET_ADVICE}"
        )))
    }
}

/// Removes a scratch file if opening it with O_DIRECT fails.
struct ScratchGuard(Option<PathBuf>);

impl ScratchGuard {
    fn disarm(mut self) -> Option<PathBuf> {
        self.0.take()
    }
}

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn open_direct(file: &Path, configured: &str) -> Result<File, WorkloadError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(file)
        .map_err(|e| {
            let why = if e.raw_os_error() == Some(libc::EINVAL) {
                format!(
                    "its filesystem refuses O_DIRECT (tmpfs on older kernels, some overlay and \
                     network filesystems do); {TARGET_ADVICE}"
                )
            } else {
                format!(
                    "cannot open {} with O_DIRECT ({e}); {TARGET_ADVICE}",
                    file.display()
                )
            };
            WorkloadError::IoTarget {
                path: configured.to_owned(),
                why,
            }
        })
}

/// Turns an error of a read or write on an O_DIRECT file into a workload error; EINVAL there
/// means the filesystem or device cannot do aligned direct I/O of this size.
pub(crate) fn io_err(what: &str, path: &str, e: std::io::Error) -> WorkloadError {
    if e.raw_os_error() == Some(libc::EINVAL) {
        WorkloadError::IoTarget {
            path: path.to_owned(),
            why: format!(
                "{what} was refused with EINVAL: the target cannot do 4096-aligned O_DIRECT I/O; \
                 {TARGET_ADVICE}"
            ),
        }
    } else {
        WorkloadError::sys(format!("{what} on {path:?}"), e)
    }
}

/// A heap buffer aligned for O_DIRECT, filled with a non-zero pattern (some devices and
/// filesystems short-cut zero blocks).
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.layout.size())
            .finish()
    }
}

impl AlignedBuf {
    /// `len` bytes aligned to [`ALIGN`]; `len` must be non-zero.
    pub(crate) fn new(len: usize) -> Result<Self, WorkloadError> {
        let bad = || {
            WorkloadError::sys(
                format!("allocating a {len}-byte I/O buffer"),
                std::io::ErrorKind::OutOfMemory.into(),
            )
        };
        let layout = Layout::from_size_align(len, ALIGN).map_err(|_| bad())?;
        if len == 0 {
            return Err(bad());
        }
        // SAFETY: the layout has a non-zero size (checked above).
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(bad)?;
        let mut buf = Self { ptr, layout };
        for (i, b) in buf.as_mut_slice().iter_mut().enumerate() {
            *b = (i as u8) | 1;
        }
        Ok(buf)
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `layout.size()` initialised (zeroed, then written) bytes owned
        // by `self`, and the shared borrow of `self` prevents mutation meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and the exclusive borrow of `self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with exactly this layout and is freed only here.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Writes `len` bytes from offset 0 in 1 MiB blocks and fsyncs: the prefill that gives a scratch
/// file real blocks before random I/O, so reads are not answered from holes.
pub(crate) fn fill(target: &Target, path: &str, len: u64) -> Result<(), WorkloadError> {
    let buf = AlignedBuf::new(BLOCK_1M)?;
    let mut off = 0;
    while off < len {
        let chunk = (len - off).min(BLOCK_1M as u64) as usize;
        target
            .file
            .write_all_at(&buf.as_slice()[..chunk], off)
            .map_err(|e| io_err("prefill write", path, e))?;
        off += chunk as u64;
    }
    target
        .file
        .sync_all()
        .map_err(|e| io_err("prefill fsync", path, e))
}

/// Times `op` once, in microseconds.
pub(crate) fn time_us<E>(op: impl FnOnce() -> Result<(), E>) -> Result<f64, E> {
    let start = Instant::now();
    op()?;
    Ok(micros(start.elapsed()))
}

pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The `p`-th percentile (0 < p ≤ 100) of ascending `sorted` data by the nearest-rank method: the
/// smallest value such that at least `p`% of the data is less than or equal to it, i.e. the value
/// at 1-based rank ⌈p/100 · n⌉. It always returns an observed value (no interpolation), which is
/// what a latency percentile should be. `None` for empty data or `p` outside (0, 100].
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Sorts latency samples and returns (p50, p99).
pub(crate) fn p50_p99(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (
        percentile(samples, 50.0).unwrap_or(f64::NAN),
        percentile(samples, 99.0).unwrap_or(f64::NAN),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Where the I/O tests run: a disk filesystem on every machine we test on. If O_DIRECT is
    /// refused here the tests fail, as they should: the workload would fail the same way.
    pub(crate) const TEST_DIR: &str = "/var/tmp";

    /// Lists the scratch files of `kind` this process could have left in [`TEST_DIR`].
    pub(crate) fn leftover(kind: &str) -> bool {
        Path::new(TEST_DIR)
            .join(format!("isolab-{kind}-{}.dat", std::process::id()))
            .exists()
    }

    #[test]
    fn nearest_rank_percentiles_on_known_data() {
        // The textbook example (Wikipedia, "Percentile", nearest-rank): 15 20 35 40 50.
        let d = [15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(percentile(&d, 5.0), Some(15.0));
        assert_eq!(percentile(&d, 30.0), Some(20.0));
        assert_eq!(percentile(&d, 40.0), Some(20.0));
        assert_eq!(percentile(&d, 50.0), Some(35.0));
        assert_eq!(percentile(&d, 100.0), Some(50.0));
        // 1..=100: p50 is 50, p99 is 99.
        let d: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&d, 50.0), Some(50.0));
        assert_eq!(percentile(&d, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&d, 0.0), None);
        assert_eq!(percentile(&d, 101.0), None);
    }

    #[test]
    fn p50_p99_sorts_first() {
        let mut d: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(p50_p99(&mut d), (50.0, 99.0));
    }

    #[test]
    fn aligned_buffers_are_aligned_and_not_zero() {
        let b = AlignedBuf::new(8192).unwrap();
        assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.as_slice().len(), 8192);
        assert!(b.as_slice().iter().all(|&x| x != 0));
        assert!(AlignedBuf::new(0).is_err());
    }

    #[test]
    fn missing_and_wrong_targets_are_io_target_errors_with_advice() {
        for path in ["/nonexistent/isolab", "/etc/hostname", "/dev/null"] {
            let err = open_target("io-seq", path, 0).unwrap_err();
            assert!(
                matches!(err, WorkloadError::IoTarget { .. }),
                "{path}: {err}"
            );
            assert!(err.to_string().contains("block device"), "{err}");
        }
    }

    #[test]
    fn directory_target_makes_and_removes_a_scratch_file() {
        let t = open_target("io-test", TEST_DIR, 0).unwrap();
        assert!(t.is_scratch);
        assert!(leftover("io-test"));
        drop(t);
        assert!(!leftover("io-test"));
    }
}
