//! Guest RAM: one host mapping per region, below and (for large guests) above the MMIO hole
//! under 4 GiB, backed as [`MemoryBacking`] says, and the accounting of how much of it the guest
//! has touched and how much of that sits on huge pages.
//!
//! Why the backing matters: with nested paging (AMD NPT, Intel EPT) every guest-physical page
//! KVM maps is one nested page fault the first time the guest touches it, and every TLB miss
//! walks both the guest's and the nested page tables. KVM maps a 2 MiB guest range with one
//! 2 MiB nested entry only when the host backs it with a 2 MiB page *and* the guest-physical and
//! host-virtual addresses agree modulo 2 MiB. A plain `mmap` lands 4 KiB-aligned, so even where
//! the host has transparent huge pages, KVM must map the guest 4 KiB at a time. Hence, as
//! Firecracker does: over-allocate by 2 MiB, trim to a 2 MiB-aligned start, and ask for huge pages
//! (`MADV_HUGEPAGE`, which hosts whose THP mode is `madvise` need).
//!
//! System calls each backing makes (for the VMM's seccomp filters):
//!
//! | backing | calls |
//! |---|---|
//! | `thp` | `mmap(NULL, len + 2 MiB, PROT_READ\|PROT_WRITE, MAP_PRIVATE\|MAP_ANONYMOUS\|MAP_NORESERVE)`, `munmap` of the unaligned head and tail, `madvise(MADV_HUGEPAGE)`, `madvise(MADV_DONTFORK)` |
//! | `hugetlbfs` | `mmap(NULL, len, PROT_READ\|PROT_WRITE, MAP_PRIVATE\|MAP_ANONYMOUS\|MAP_HUGETLB\|MAP_HUGE_2MB)` (the pages are reserved at mmap: a host without enough fails here), `madvise(MADV_DONTFORK)`; on failure `openat`+`read` of `/sys/kernel/mm/hugepages/hugepages-2048kB/{free,nr}_hugepages` for the message |
//! | `small` | `mmap(NULL, len, PROT_READ\|PROT_WRITE, MAP_PRIVATE\|MAP_ANONYMOUS\|MAP_NORESERVE)`, `madvise(MADV_NOHUGEPAGE)`, `madvise(MADV_DONTFORK)` |
//!
//! and for every backing `munmap` at teardown, `openat`+`read` of `/proc/self/smaps` for the
//! memory figures. No file, memfd or hugetlbfs mount is opened: `MAP_HUGETLB` uses the kernel's
//! internal hugetlbfs.

use std::sync::Arc;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::mmap::MmapRegion;
use vm_memory::{
    Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
};

use crate::arch::x86_64::{MMIO_GAP_END, MMIO_GAP_START};
use crate::error::{Result, VmError};

/// Smallest guest this VMM builds.
pub const MIN_RAM_BYTES: u64 = 16 << 20;
/// Largest guest this VMM builds (a sanity bound, not a KVM limit).
pub const MAX_RAM_BYTES: u64 = 1 << 40;
/// The huge page size guest RAM is aligned to and backed with.
pub const HUGE_PAGE: u64 = 2 << 20;

/// How guest RAM is backed on the host (`isolab run --vm-memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryBacking {
    /// Anonymous memory, 2 MiB-aligned and advised for transparent huge pages (the default).
    #[default]
    Thp,
    /// 2 MiB pages from the host's reserved pool (`vm.nr_hugepages`): huge pages for sure, and
    /// taken from the pool when the VM starts, not as the guest touches them.
    Hugetlbfs,
    /// 4 KiB pages only (`MADV_NOHUGEPAGE`): what guest RAM costs without huge pages.
    Small,
}

impl MemoryBacking {
    /// Every backing, in the order reports show them.
    pub const ALL: [MemoryBacking; 3] = [Self::Thp, Self::Hugetlbfs, Self::Small];

    /// `thp`, `hugetlbfs` or `small`; None for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == text)
    }

    /// Its name on the command line and in samples.
    pub fn name(self) -> &'static str {
        match self {
            Self::Thp => "thp",
            Self::Hugetlbfs => "hugetlbfs",
            Self::Small => "small",
        }
    }
}

impl std::fmt::Display for MemoryBacking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

/// Checks that `size` bytes of guest RAM can have `backing` (hugetlbfs pages are whole 2 MiB).
pub fn check_backing(size: u64, backing: MemoryBacking) -> Result<()> {
    if backing == MemoryBacking::Hugetlbfs && !size.is_multiple_of(HUGE_PAGE) {
        return Err(VmError::Layout(format!(
            "{} MiB of guest RAM cannot be made of 2 MiB huge pages; give the VM an even number of MiB with --vm-memory hugetlbfs",
            size >> 20
        )));
    }
    Ok(())
}

/// Checks that the host's reserved 2 MiB pages could back `size` bytes of guest RAM now (for a
/// clear error before any VM starts; the mapping itself reserves them).
pub fn check_huge_pages(size: u64) -> Result<()> {
    let needed = size.div_ceil(HUGE_PAGE);
    let (free, total) = huge_page_pool();
    if free >= needed {
        return Ok(());
    }
    Err(VmError::HugePages {
        needed,
        free,
        total,
        suggest: total + needed.saturating_sub(free),
    })
}

/// One host mapping of guest RAM, unmapped on drop.
#[derive(Debug)]
struct HostMapping {
    /// The vm-memory view of it (not owning the mapping: this struct does).
    region: Arc<MmapRegion>,
    addr: usize,
    len: usize,
}

// SAFETY of the pointers below: every libc call gets an address and length that describe exactly
// one live mapping this module created, or a part of one it is trimming.
fn mmap_anonymous(len: usize, extra_flags: libc::c_int) -> std::io::Result<usize> {
    // SAFETY: a new anonymous mapping at an address the kernel picks (no MAP_FIXED), touching no
    // existing memory.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(addr as usize)
    }
}

fn munmap(addr: usize, len: usize) {
    if len > 0 {
        // SAFETY: [addr, addr + len) is (part of) a mapping this module created and nothing
        // refers to: the trimmed head or tail of a fresh mapping, or a whole mapping whose last
        // user is gone (see `GuestRam::drop`).
        unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    }
}

fn madvise(addr: usize, len: usize, advice: libc::c_int) -> std::io::Result<()> {
    // SAFETY: advice on exactly one live mapping this module owns; none of the advice used here
    // changes its contents or its address.
    if unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The host's 2 MiB huge page pool: (free, reserved).
fn huge_page_pool() -> (u64, u64) {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/kernel/mm/hugepages/hugepages-2048kB/{f}"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    (read("free_hugepages"), read("nr_hugepages"))
}

impl HostMapping {
    fn new(len: u64, backing: MemoryBacking) -> Result<Self> {
        let len = usize::try_from(len)
            .map_err(|_| VmError::Layout(format!("{len} bytes do not fit this host")))?;
        let mem_err = |what: &str, e: std::io::Error| {
            VmError::Memory(format!("{what} of {} MiB of guest RAM: {e}", len >> 20))
        };
        let huge = HUGE_PAGE as usize;
        let (addr, flags) = match backing {
            MemoryBacking::Thp => {
                // Over-allocate, then keep the 2 MiB-aligned part: KVM can then map every whole
                // 2 MiB of the guest with one nested entry.
                let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
                let raw = mmap_anonymous(len + huge, libc::MAP_NORESERVE)
                    .map_err(|e| mem_err("mmap", e))?;
                let aligned = raw.next_multiple_of(huge);
                munmap(raw, aligned - raw);
                munmap(aligned + len, raw + len + huge - (aligned + len));
                // A host kernel without transparent huge pages refuses the advice (EINVAL): the
                // VM still runs, on small pages, and its figures say so (no huge-page backing).
                let _ = madvise(aligned, len, libc::MADV_HUGEPAGE);
                (aligned, flags)
            }
            MemoryBacking::Hugetlbfs => {
                let flags = libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_HUGETLB
                    | libc::MAP_HUGE_2MB;
                match mmap_anonymous(len, libc::MAP_HUGETLB | libc::MAP_HUGE_2MB) {
                    Ok(a) => (a, flags),
                    Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
                        check_huge_pages(len as u64)?;
                        // The pool had the pages a moment ago: say so rather than nothing.
                        return Err(mem_err(
                            "mmap(MAP_HUGETLB) (another process took the pages?)",
                            e,
                        ));
                    }
                    Err(e) => return Err(mem_err("mmap(MAP_HUGETLB)", e)),
                }
            }
            MemoryBacking::Small => {
                let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
                let a = mmap_anonymous(len, libc::MAP_NORESERVE).map_err(|e| mem_err("mmap", e))?;
                // Explicitly no huge pages, also on hosts whose THP mode is `always`.
                let _ = madvise(a, len, libc::MADV_NOHUGEPAGE);
                (a, flags)
            }
        };
        // Guest RAM must not be copied into children the VMM's process forks (the harness
        // spawns processes), and keeping it out of fork also keeps its mapping from merging with
        // neighbouring anonymous mappings, so /proc/self/smaps shows it on its own.
        if let Err(e) = madvise(addr, len, libc::MADV_DONTFORK) {
            munmap(addr, len);
            return Err(mem_err("madvise(MADV_DONTFORK)", e));
        }
        // SAFETY: [addr, addr + len) is the live mapping made above with these prot and flags;
        // it stays mapped until this HostMapping is dropped, which `GuestRam::drop` does only
        // once no clone of the guest memory refers to it any more.
        let region = unsafe {
            MmapRegion::build_raw(
                addr as *mut u8,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
            )
        };
        let region = match region {
            Ok(r) => r,
            Err(e) => {
                munmap(addr, len);
                return Err(VmError::Memory(format!("describing guest RAM: {e}")));
            }
        };
        Ok(Self {
            region: Arc::new(region),
            addr,
            len,
        })
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
    /// How it is backed.
    pub backing: MemoryBacking,
    mappings: Vec<HostMapping>,
}

impl GuestRam {
    /// Maps `size` bytes of guest RAM as `backing` says (nothing is touched yet; hugetlbfs pages
    /// are reserved now).
    pub fn new(size: u64, backing: MemoryBacking) -> Result<Self> {
        let regions = ram_regions(size)?;
        check_backing(size, backing)?;
        let mut mappings = Vec::with_capacity(regions.len());
        let mut guest_regions = Vec::with_capacity(regions.len());
        for &(gpa, len) in &regions {
            let m = HostMapping::new(len, backing)?;
            let region = GuestRegionMmap::with_arc(Arc::clone(&m.region), GuestAddress(gpa))
                .ok_or_else(|| VmError::Layout(format!("region at {gpa:#x} overflows")))?;
            guest_regions.push(region);
            mappings.push(m);
        }
        let mem = GuestMemoryMmap::from_regions(guest_regions)
            .map_err(|e| VmError::Memory(format!("mapping {} MiB: {e}", size >> 20)))?;
        let host_ranges = mappings
            .iter()
            .map(|m| (m.addr as u64, m.len as u64))
            .collect();
        Ok(Self {
            mem,
            regions,
            host_ranges,
            backing,
            mappings,
        })
    }

    /// Marks every region mergeable (`MADV_MERGEABLE`): KSM may then map pages with equal
    /// content, in this guest or across guests, to one copy-on-write page. Pages of a hugetlbfs
    /// pool cannot be merged, so that backing is refused; transparent huge pages are split by
    /// KSM where it merges.
    pub fn make_mergeable(&self) -> Result<()> {
        if self.backing == MemoryBacking::Hugetlbfs {
            return Err(VmError::Config(
                "guest RAM on hugetlbfs cannot be merged by KSM; use --vm-memory thp or small"
                    .into(),
            ));
        }
        for m in &self.mappings {
            madvise(m.addr, m.len, libc::MADV_MERGEABLE).map_err(|e| {
                VmError::Memory(format!(
                    "madvise(MADV_MERGEABLE) of {} MiB of guest RAM: {e} (a host kernel without \
                     CONFIG_KSM refuses it)",
                    m.len >> 20
                ))
            })?;
        }
        Ok(())
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
            // SAFETY: the host range is a live mapping owned by `self`, and it stays mapped
            // while any fd that reaches the VM lives: the VMM drops its VM fd before its
            // `GuestRam` on every path (declaration order in `vmm::run`), and every thread that
            // holds a vCPU or stats fd also holds a clone of `mem`, which keeps the mapping from
            // being unmapped (`GuestRam`'s drop leaves a mapping that anything still holds
            // mapped), so a thread left running past the stop deadline keeps it alive. Slots do
            // not overlap since the regions do not.
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

impl Drop for GuestRam {
    fn drop(&mut self) {
        // Our clone of the regions goes first; a mapping is unmapped only when nothing else
        // (a device, a vCPU thread that outlived the VM) still holds guest memory. Otherwise it
        // is left mapped: a leak, never an access to unmapped memory.
        self.mem = GuestMemoryMmap::new();
        for m in self.mappings.drain(..) {
            if Arc::strong_count(&m.region) == 1 {
                munmap(m.addr, m.len);
            }
        }
    }
}

/// The VMM process's resident memory, split into guest RAM and everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MemoryUsage {
    /// Resident bytes of the guest RAM mappings (pages the guest, or the loader, touched),
    /// hugetlbfs pages included (smaps counts those apart from `Rss`).
    pub guest_ram_resident: u64,
    /// Of those, the bytes on huge pages: transparent ones (`AnonHugePages`) and hugetlbfs ones
    /// (`Private_Hugetlb` + `Shared_Hugetlb`).
    pub guest_ram_huge: u64,
    /// Resident bytes of every other mapping: the VMM's own overhead (and, when the VMM runs
    /// inside a bigger process, that process's memory too).
    pub other_resident: u64,
    /// Proportional set size of the guest RAM mappings (equal to their resident bytes: nothing
    /// else maps them).
    pub guest_ram_pss: u64,
    /// Proportional set size of every other mapping: the VMM process's own memory, each page
    /// shared with other processes counted by its share (the meter of a VM's cost besides its
    /// guest RAM, summed over VMs it adds up to what they cost together).
    pub other_pss: u64,
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
        let mut bytes = || {
            words
                .next()
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0)
                .saturating_mul(1024)
        };
        match (first, in_guest) {
            ("Rss:", true) => usage.guest_ram_resident += bytes(),
            ("Rss:", false) => usage.other_resident += bytes(),
            ("Pss:", true) => usage.guest_ram_pss += bytes(),
            ("Pss:", false) => usage.other_pss += bytes(),
            ("AnonHugePages:", true) => usage.guest_ram_huge += bytes(),
            // hugetlbfs pages are in neither Rss nor Pss: they are resident, huge and, in a
            // private mapping only this process has, wholly its own.
            ("Private_Hugetlb:" | "Shared_Hugetlb:", true) => {
                let b = bytes();
                usage.guest_ram_resident += b;
                usage.guest_ram_pss += b;
                usage.guest_ram_huge += b;
            }
            _ => {}
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

/// Reads `/proc/PID/smaps` of another process (a VMM process, from the host) and splits it by
/// the guest RAM ranges that process reported; None when it cannot be read (it ended).
pub fn measure_pid(pid: i32, guest_ranges: &[(u64, u64)]) -> Option<MemoryUsage> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    Some(split_smaps(&text, guest_ranges))
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
    fn backings_parse_by_name_and_hugetlbfs_needs_whole_huge_pages() {
        for b in MemoryBacking::ALL {
            assert_eq!(MemoryBacking::parse(b.name()), Some(b));
        }
        assert_eq!(MemoryBacking::parse("huge"), None);
        assert_eq!(MemoryBacking::default(), MemoryBacking::Thp);
        assert!(check_backing(129 << 20, MemoryBacking::Hugetlbfs).is_err());
        assert!(check_backing(128 << 20, MemoryBacking::Hugetlbfs).is_ok());
        assert!(check_backing(129 << 20, MemoryBacking::Thp).is_ok());
    }

    #[test]
    fn smaps_split_guest_and_rest_with_huge_pages() {
        let smaps = "\
7f0000000000-7f0020000000 rw-p 00000000 00:00 0
Size:             524288 kB
Rss:               10240 kB
Pss:               10240 kB
AnonHugePages:      8192 kB
Private_Hugetlb:       0 kB
55aa00000000-55aa00100000 r-xp 00000000 08:01 123  /usr/bin/isolab
Size:               1024 kB
Rss:                 800 kB
Pss:                 400 kB
Pss_Dirty:            10 kB
AnonHugePages:      2048 kB
7fff00000000-7fff00021000 rw-p 00000000 00:00 0  [stack]
Rss:                  16 kB
Pss:                  16 kB
7e0000000000-7e0008000000 rw-p 00000000 00:0f 4  /anon_hugepage (deleted)
Rss:                   0 kB
Pss:                   0 kB
AnonHugePages:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:    4096 kB
";
        let u = split_smaps(
            smaps,
            &[(0x7f00_0000_0000, 512 << 20), (0x7e00_0000_0000, 128 << 20)],
        );
        assert_eq!(u.guest_ram_resident, (10240 + 4096) * 1024);
        assert_eq!(u.guest_ram_huge, (8192 + 4096) * 1024);
        assert_eq!(u.other_resident, 816 * 1024);
        assert_eq!(u.guest_ram_pss, (10240 + 4096) * 1024);
        assert_eq!(u.other_pss, 416 * 1024, "a page shared by two counts half");
    }

    #[test]
    fn guest_ram_maps_and_is_measurable() {
        for backing in [MemoryBacking::Thp, MemoryBacking::Small] {
            let ram = GuestRam::new(16 << 20, backing).expect("map");
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

    fn thp_usable() -> bool {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|m| m.contains("[always]") || m.contains("[madvise]"))
    }

    #[test]
    fn thp_guest_ram_is_2mib_aligned_and_backed_by_huge_pages_small_is_not() {
        assert!(
            thp_usable(),
            "this host's transparent huge pages are off (/sys/kernel/mm/transparent_hugepage/enabled); the test needs `madvise` or `always`"
        );
        let ram = GuestRam::new(32 << 20, MemoryBacking::Thp).expect("map");
        let (addr, len) = ram.host_ranges[0];
        assert_eq!(addr % HUGE_PAGE, 0, "{addr:#x} is not 2 MiB-aligned");
        assert_eq!(len, 32 << 20);
        vm_memory::Bytes::write_slice(&ram.mem, &vec![1u8; 16 << 20], GuestAddress(0))
            .expect("write");
        let m = measure(&ram.host_ranges).expect("smaps");
        // Huge pages can be short on a fragmented host; most of 16 MiB must still be huge.
        assert!(
            m.guest_ram_huge >= 8 << 20,
            "{} KiB of {} KiB touched are on huge pages",
            m.guest_ram_huge >> 10,
            m.guest_ram_resident >> 10
        );
        let small = GuestRam::new(32 << 20, MemoryBacking::Small).expect("map");
        vm_memory::Bytes::write_slice(&small.mem, &vec![1u8; 16 << 20], GuestAddress(0))
            .expect("write");
        let m = measure(&small.host_ranges).expect("smaps");
        assert!(m.guest_ram_resident >= 16 << 20);
        assert_eq!(m.guest_ram_huge, 0, "small pages only");
    }

    /// `VmFlags` of the mapping at `addr` in /proc/self/smaps.
    fn vm_flags(addr: u64) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let start = format!("{addr:x}-");
        smaps
            .split_inclusive('\n')
            .skip_while(|l| !l.starts_with(&start))
            .find_map(|l| l.strip_prefix("VmFlags:"))
            .expect("the mapping's VmFlags")
            .to_owned()
    }

    #[test]
    fn mergeable_guest_ram_is_marked_for_ksm_and_hugetlbfs_is_refused() {
        for backing in [MemoryBacking::Small, MemoryBacking::Thp] {
            let ram = GuestRam::new(16 << 20, backing).expect("map");
            let addr = ram.host_ranges[0].0;
            assert!(
                !vm_flags(addr).contains(" mg"),
                "{backing:?} merged by default"
            );
            ram.make_mergeable().expect("madvise");
            assert!(
                vm_flags(addr).contains(" mg"),
                "{backing:?}: {}",
                vm_flags(addr)
            );
        }
        let ram = GuestRam {
            mem: GuestMemoryMmap::new(),
            regions: Vec::new(),
            host_ranges: Vec::new(),
            backing: MemoryBacking::Hugetlbfs,
            mappings: Vec::new(),
        };
        let e = ram.make_mergeable().expect_err("hugetlbfs cannot merge");
        assert!(e.to_string().contains("--vm-memory thp"), "{e}");
    }

    #[test]
    fn hugetlbfs_without_reserved_pages_says_how_to_reserve_them() {
        let (free, _) = huge_page_pool();
        let check = check_huge_pages((free + 1) * HUGE_PAGE).expect_err("one page short");
        assert!(
            check.to_string().contains("sysctl vm.nr_hugepages="),
            "{check}"
        );
        // 1 GiB more than the pool has free: refused at mmap, with the fix.
        let size = (free + 512) * HUGE_PAGE;
        match GuestRam::new(size, MemoryBacking::Hugetlbfs) {
            Err(e @ VmError::HugePages { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("vm.nr_hugepages="), "{msg}");
                assert!(msg.contains("--vm-memory thp"), "{msg}");
            }
            other => panic!("expected a huge page error, got {other:?}"),
        }
    }

    #[test]
    fn memory_still_shared_is_not_unmapped() {
        let ram = GuestRam::new(16 << 20, MemoryBacking::Thp).expect("map");
        let kept = ram.mem.clone();
        drop(ram);
        // The clone still works: the mapping was left in place.
        vm_memory::Bytes::write_slice(&kept, &[7u8; 64], GuestAddress(4096)).expect("write");
        let mut b = [0u8; 64];
        vm_memory::Bytes::read_slice(&kept, &mut b, GuestAddress(4096)).expect("read");
        assert_eq!(b, [7u8; 64]);
    }
}
