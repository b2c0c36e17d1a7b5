//! Guest RAM: one anonymous host mapping per region, below and (for large guests) above the MMIO
//! hole under 4 GiB, and the accounting of how much of it the guest has touched.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::arch::x86_64::{MMIO_GAP_END, MMIO_GAP_START};
use crate::error::{Result, VmError};

/// Smallest guest this VMM builds.
pub const MIN_RAM_BYTES: u64 = 16 << 20;
/// Largest guest this VMM builds (a sanity bound, not a KVM limit).
pub const MAX_RAM_BYTES: u64 = 1 << 40;

/// The (guest address, size) regions of `size` bytes of guest RAM, leaving the MMIO hole free.
pub fn ram_regions(size: u64) -> Result<Vec<(u64, u64)>> {
    if !(MIN_RAM_BYTES..=MAX_RAM_BYTES).contains(&size) || !size.is_multiple_of(4096) {
        return Err(VmError::Layout(format!(
            "guest RAM of {size} bytes; use a multiple of 4 KiB between {} MiB and {} GiB",
            MIN_RAM_BYTES >> 20,
            MAX_RAM_BYTES >> 30
        )));
    }
    if size <= MMIO_GAP_START {
        Ok(vec![(0, size)])
    } else {
        Ok(vec![
            (0, MMIO_GAP_START),
            (MMIO_GAP_END, size - MMIO_GAP_START),
        ])
    }
}

/// Guest RAM and where it lives in the VMM's address space.
#[derive(Debug)]
pub struct GuestRam {
    /// The memory, as the rust-vmm crates use it.
    pub mem: GuestMemoryMmap,
    /// (guest address, size) of each region.
    pub regions: Vec<(u64, u64)>,
    /// (host address, size) of each region's mapping.
    pub host_ranges: Vec<(u64, u64)>,
}

impl GuestRam {
    /// Maps `size` bytes of anonymous guest RAM (nothing is touched yet).
    pub fn new(size: u64) -> Result<Self> {
        let regions = ram_regions(size)?;
        let ranges: Vec<(GuestAddress, usize)> = regions
            .iter()
            .map(|&(a, s)| (GuestAddress(a), s as usize))
            .collect();
        let mem = GuestMemoryMmap::from_ranges(&ranges)
            .map_err(|e| VmError::Memory(format!("mapping {} MiB: {e}", size >> 20)))?;
        let host_ranges: Vec<(u64, u64)> =
            mem.iter().map(|r| (r.as_ptr() as u64, r.len())).collect();
        for &(addr, len) in &host_ranges {
            // Guest RAM must not be copied into children the VMM's process forks (the harness
            // spawns processes), and keeping it out of fork also keeps its mapping from merging
            // with neighbouring anonymous mappings, so /proc/self/smaps shows it on its own.
            // SAFETY: madvise on a range that is exactly one live mapping owned by `mem`; the
            // advice changes no contents and no Rust object refers to the pages' layout.
            let rc = unsafe {
                libc::madvise(addr as *mut libc::c_void, len as usize, libc::MADV_DONTFORK)
            };
            if rc != 0 {
                return Err(VmError::Memory(format!(
                    "madvise(MADV_DONTFORK) on guest RAM: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        Ok(Self {
            mem,
            regions,
            host_ranges,
        })
    }

    /// Hands the regions to KVM as memory slots 0, 1, ...
    pub fn register(&self, vm: &VmFd) -> Result<()> {
        for (slot, region) in self.mem.iter().enumerate() {
            let mr = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().raw_value(),
                memory_size: region.len(),
                userspace_addr: region.as_ptr() as u64,
            };
            // SAFETY: the host range is a live anonymous mapping owned by `self.mem`, and it
            // stays mapped while any fd that reaches the VM lives: the VMM drops its VM fd
            // before its `GuestRam` on every path (declaration order in `vmm::run`), and every
            // thread that holds a vCPU or stats fd also holds a clone of `mem` (vm-memory's
            // regions are reference-counted) that it drops after those fds, so a thread left
            // running past the stop deadline keeps the mapping alive. Slots do not overlap
            // since the regions do not.
            unsafe { vm.set_user_memory_region(mr) }.map_err(|source| VmError::Kvm {
                what: "register guest memory",
                source,
            })?;
        }
        Ok(())
    }

    /// Size of the first region (RAM below the MMIO hole).
    pub fn low_ram_end(&self) -> u64 {
        self.regions.first().map(|r| r.0 + r.1).unwrap_or(0)
    }
}

/// The VMM process's resident memory, split into guest RAM and everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryUsage {
    /// Resident bytes of the guest RAM mappings (pages the guest, or the loader, touched).
    pub guest_ram_resident: u64,
    /// Resident bytes of every other mapping: the VMM's own overhead (and, when the VMM runs
    /// inside a bigger process, that process's memory too).
    pub other_resident: u64,
}

/// [`MemoryUsage`] and the largest non-guest mappings.
pub fn measure_detailed(
    guest_ranges: &[(u64, u64)],
    n: usize,
) -> Option<(MemoryUsage, Vec<(String, u64)>)> {
    let text = std::fs::read_to_string("/proc/self/smaps").ok()?;
    Some((
        split_smaps(&text, guest_ranges),
        largest_other_mappings(&text, guest_ranges, n),
    ))
}

/// Splits `/proc/self/smaps` text into guest and non-guest resident bytes. A mapping belongs to
/// the guest when it lies inside one of `guest_ranges` (host address, size).
pub fn split_smaps(smaps: &str, guest_ranges: &[(u64, u64)]) -> MemoryUsage {
    let mut usage = MemoryUsage::default();
    let mut in_guest = false;
    for line in smaps.lines() {
        let mut words = line.split_ascii_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            {
                in_guest = guest_ranges
                    .iter()
                    .any(|&(gs, gl)| start >= gs && end <= gs.saturating_add(gl));
                continue;
            }
        }
        if first == "Rss:" {
            let kib: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            let bytes = kib * 1024;
            if in_guest {
                usage.guest_ram_resident += bytes;
            } else {
                usage.other_resident += bytes;
            }
        }
    }
    usage
}

/// The `n` largest non-guest mappings by resident size: (description, resident bytes). For
/// explaining the VMM's overhead.
pub fn largest_other_mappings(
    smaps: &str,
    guest_ranges: &[(u64, u64)],
    n: usize,
) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut current: Option<String> = None;
    for line in smaps.lines() {
        let mut words = line.split_ascii_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            {
                let guest = guest_ranges
                    .iter()
                    .any(|&(gs, gl)| start >= gs && end <= gs.saturating_add(gl));
                let perms = words.next().unwrap_or("");
                let name = line.split_ascii_whitespace().nth(5).unwrap_or("[anon]");
                current = (!guest).then(|| format!("{name} {perms} {}K", (end - start) / 1024));
                continue;
            }
        }
        if first == "Rss:" {
            if let Some(desc) = current.take() {
                let kib: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                if kib > 0 {
                    out.push((desc, kib * 1024));
                }
            }
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out.truncate(n);
    out
}

/// Reads `/proc/self/smaps` and splits it; None when it cannot be read.
pub fn measure(guest_ranges: &[(u64, u64)]) -> Option<MemoryUsage> {
    let text = std::fs::read_to_string("/proc/self/smaps").ok()?;
    Some(split_smaps(&text, guest_ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_guests_get_one_region_large_ones_skip_the_hole() {
        assert_eq!(ram_regions(512 << 20).expect("ok"), vec![(0, 512 << 20)]);
        assert_eq!(
            ram_regions(4 << 30).expect("ok"),
            vec![(0, 0xc000_0000), (1 << 32, 1 << 30)]
        );
        assert!(ram_regions(1 << 20).is_err());
        assert!(ram_regions((64 << 20) + 1).is_err());
    }

    #[test]
    fn smaps_split_guest_and_rest() {
        let smaps = "\
7f0000000000-7f0020000000 rw-p 00000000 00:00 0
Size:             524288 kB
Rss:               10240 kB
55aa00000000-55aa00100000 r-xp 00000000 08:01 123  /usr/bin/isolab
Size:               1024 kB
Rss:                 800 kB
7fff00000000-7fff00021000 rw-p 00000000 00:00 0  [stack]
Rss:                  16 kB
";
        let u = split_smaps(smaps, &[(0x7f00_0000_0000, 512 << 20)]);
        assert_eq!(u.guest_ram_resident, 10240 * 1024);
        assert_eq!(u.other_resident, 816 * 1024);
    }

    #[test]
    fn guest_ram_maps_and_is_measurable() {
        let ram = GuestRam::new(16 << 20).expect("map");
        assert_eq!(ram.low_ram_end(), 16 << 20);
        assert_eq!(ram.host_ranges.len(), 1);
        let before = measure(&ram.host_ranges).expect("smaps");
        vm_memory::Bytes::write_slice(&ram.mem, &vec![1u8; 4 << 20], GuestAddress(0))
            .expect("write");
        let after = measure(&ram.host_ranges).expect("smaps");
        assert!(after.guest_ram_resident >= before.guest_ram_resident + (4 << 20));
        assert!(after.other_resident > 0);
    }
}
