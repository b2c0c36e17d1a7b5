//! Identity page tables for the 64-bit boot: the first GiB mapped with 2 MiB pages.
//!
//! Linux replaces them early in `startup_64`; they only have to cover the kernel, the boot_params,
//! the command line and the stack until then.

/// PML4 (CR3 points here).
pub const PML4_START: u64 = 0x9000;
/// The one page-directory-pointer table.
pub const PDPT_START: u64 = 0xa000;
/// The one page directory (512 entries of 2 MiB: 1 GiB).
pub const PD_START: u64 = 0xb000;

/// Present | writable.
const PRESENT_RW: u64 = 0x3;
/// Present | writable | page size (2 MiB leaf).
const PRESENT_RW_HUGE: u64 = 0x83;

/// Bytes of guest memory the identity map covers.
pub const IDENTITY_MAPPED_BYTES: u64 = 512 * (2 << 20);

/// The three 4 KiB tables, as 64-bit entries, to write at [`PML4_START`], [`PDPT_START`] and
/// [`PD_START`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageTables {
    /// Page-map level 4.
    pub pml4: [u64; 512],
    /// Page-directory-pointer table.
    pub pdpt: [u64; 512],
    /// Page directory.
    pub pd: [u64; 512],
}

impl PageTables {
    /// Identity mapping of the first GiB.
    pub fn identity_1g() -> Self {
        let mut t = PageTables {
            pml4: [0; 512],
            pdpt: [0; 512],
            pd: [0; 512],
        };
        t.pml4[0] = PDPT_START | PRESENT_RW;
        t.pdpt[0] = PD_START | PRESENT_RW;
        for (i, e) in t.pd.iter_mut().enumerate() {
            *e = ((i as u64) << 21) | PRESENT_RW_HUGE;
        }
        t
    }

    /// The table pages as (guest address, bytes) pairs.
    pub fn pages(&self) -> [(u64, Vec<u8>); 3] {
        let bytes = |t: &[u64; 512]| t.iter().flat_map(|e| e.to_le_bytes()).collect::<Vec<u8>>();
        [
            (PML4_START, bytes(&self.pml4)),
            (PDPT_START, bytes(&self.pdpt)),
            (PD_START, bytes(&self.pd)),
        ]
    }

    /// Walks the tables like the MMU for a virtual address (used by tests): the physical address,
    /// or `None` when unmapped.
    pub fn translate(&self, va: u64) -> Option<u64> {
        let pml4e = self.pml4[((va >> 39) & 0x1ff) as usize];
        if pml4e & 1 == 0 || pml4e & !0xfff != PDPT_START {
            return None;
        }
        let pdpte = self.pdpt[((va >> 30) & 0x1ff) as usize];
        if pdpte & 1 == 0 || pdpte & !0xfff != PD_START {
            return None;
        }
        let pde = self.pd[((va >> 21) & 0x1ff) as usize];
        if pde & 1 == 0 || pde & 0x80 == 0 {
            return None;
        }
        Some((pde & !0x1f_ffff) | (va & 0x1f_ffff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_gib_is_identity_mapped_with_2m_pages() {
        let t = PageTables::identity_1g();
        for va in [
            0u64,
            0x7000,
            0x10_0000,
            0x100_0000,
            0x1234_5678,
            IDENTITY_MAPPED_BYTES - 1,
        ] {
            assert_eq!(t.translate(va), Some(va), "{va:#x}");
        }
        assert_eq!(t.translate(IDENTITY_MAPPED_BYTES), None);
        assert_eq!(t.pd[1], 0x20_0083);
        assert_eq!(t.pml4[0], 0xa003);
        assert_eq!(t.pdpt[0], 0xb003);
    }

    #[test]
    fn tables_do_not_overlap_other_boot_structures() {
        let pages = PageTables::identity_1g().pages();
        for (addr, bytes) in &pages {
            assert_eq!(bytes.len(), 4096);
            let end = addr + 4096;
            // boot_params at 0x7000, stack below 0x8ff0, command line at 0x20000.
            assert!(*addr >= 0x9000 && end <= super::super::CMDLINE_START);
        }
    }
}
