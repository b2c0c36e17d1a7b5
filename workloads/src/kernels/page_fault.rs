//! Page faults: map, touch every page, unmap (ns per page).

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::Instant;

use nix::sys::mman::{madvise, mmap_anonymous, munmap, MapFlags, MmapAdvise, ProtFlags};
use serde::{Deserialize, Serialize};

use crate::kernels::{check_range, WorkloadError};
use crate::result::Metric;

/// Parameters of `page-fault`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageFaultParams {
    /// MiB of anonymous memory mapped and touched.
    pub mib: u32,
}

impl Default for PageFaultParams {
    fn default() -> Self {
        Self { mib: 128 }
    }
}

const KIND: &str = "page-fault";
const MAX_MIB: u64 = 64 * 1024;
/// One write per 4 KiB: the base page on x86_64, whatever the sandbox's memory is backed by.
const PAGE: usize = 4096;

/// Runs `page-fault`: maps `mib` MiB, writes one byte per page, unmaps.
pub fn run(params: &PageFaultParams) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "mib", params.mib.into(), 1, MAX_MIB)?;
    let len = params.mib as usize * 1024 * 1024;
    let nz_len = NonZeroUsize::new(len).ok_or_else(|| WorkloadError::BadParameter {
        workload: KIND,
        name: "mib",
        why: "must be at least 1".into(),
    })?;

    let total = Instant::now();
    // SAFETY: a fresh anonymous private mapping at an address the kernel picks cannot alias any
    // memory Rust knows about.
    let ptr = unsafe {
        mmap_anonymous(
            None,
            nz_len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE,
        )
    }
    .map_err(|e| WorkloadError::sys(format!("mmap of {} MiB", params.mib), e.into()))?;
    // Transparent huge pages would turn 512 faults into one and measure THP policy instead of
    // the fault path; a failure only means THP is unavailable, which is what we want anyway.
    // SAFETY: advising on the mapping just created, whose length is `len`.
    let _ = unsafe { madvise(ptr, len, MmapAdvise::MADV_NOHUGEPAGE) };

    // SAFETY: the mapping is `len` bytes, readable and writable, zero-filled, and owned solely by
    // this function until the munmap below; no other reference to it exists.
    let mem = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr().cast::<u8>(), len) };
    let touch = Instant::now();
    let pages = touch_every_page(mem);
    let touch_secs = touch.elapsed().as_secs_f64();

    // SAFETY: `mem` is not used after this point; ptr/len are exactly the mapping made above.
    unsafe { munmap(ptr, len) }.map_err(|e| WorkloadError::sys("munmap", e.into()))?;
    let total_secs = total.elapsed().as_secs_f64();

    Ok(vec![
        Metric::lower(
            "page_fault_cost",
            "ns/page",
            touch_secs * 1e9 / pages as f64,
        ),
        Metric::lower("map_touch_unmap", "ms", total_secs * 1e3),
    ])
}

/// Writes one byte into every 4 KiB page of `mem` (each write faults a fresh page in); returns the
/// number of pages written.
fn touch_every_page(mem: &mut [u8]) -> usize {
    let mut pages = 0;
    for offset in (0..mem.len()).step_by(PAGE) {
        mem[offset] = 1;
        pages += 1;
    }
    // The stores must happen even though nothing reads them before munmap.
    black_box(&mut *mem);
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_one_byte_in_every_page() {
        let mut mem = vec![0u8; 10 * PAGE + 100];
        // 10 full pages and the start of an 11th.
        assert_eq!(touch_every_page(&mut mem), 11);
        for (i, b) in mem.iter().enumerate() {
            assert_eq!(*b, u8::from(i % PAGE == 0), "byte {i}");
        }
    }

    #[test]
    fn small_run_reports_per_page_cost() {
        let m = run(&PageFaultParams { mib: 4 }).unwrap();
        assert_eq!(m[0].name, "page_fault_cost");
        // A fault costs somewhere between tens of ns and tens of µs.
        assert!(m[0].value > 1.0 && m[0].value < 1e6, "{m:?}");
        assert!(m[1].value > 0.0);
    }

    #[test]
    fn zero_and_absurd_sizes_are_refused() {
        assert!(run(&PageFaultParams { mib: 0 }).is_err());
        assert!(run(&PageFaultParams { mib: u32::MAX }).is_err());
    }
}
