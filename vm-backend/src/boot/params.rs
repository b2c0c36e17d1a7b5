//! boot_params (the "zero page"): the e820 memory map, the command line and the initrd, as the
//! Linux x86 boot protocol wants them.

use linux_loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::arch::x86_64::{BOOT_PARAMS_START, CMDLINE_START, EBDA_START, HIMEM_START};
use crate::error::{Result, VmError};

/// e820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// `type_of_loader` for a loader without an assigned id.
const KERNEL_LOADER_OTHER: u8 = 0xff;
/// boot_flag magic.
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// "HdrS".
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
/// Kernel alignment the ELF path advertises (16 MiB, what x86_64 kernels are built with).
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x100_0000;

/// One e820 entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// [`E820_RAM`] or [`E820_RESERVED`].
    pub kind: u32,
}

/// The e820 map for guest RAM given as (start, size) regions, the first of which starts at 0:
/// low RAM below the EBDA, the legacy hole reserved, then RAM from 1 MiB.
pub fn e820_map(regions: &[(u64, u64)]) -> Result<Vec<E820Entry>> {
    let Some(&(first_start, first_size)) = regions.first() else {
        return Err(VmError::Layout("no guest RAM".into()));
    };
    if first_start != 0 || first_size <= HIMEM_START {
        return Err(VmError::Layout(format!(
            "guest RAM must start at 0 and exceed 1 MiB (got {first_size:#x} bytes at {first_start:#x})"
        )));
    }
    let mut map = vec![
        E820Entry {
            addr: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        E820Entry {
            addr: EBDA_START,
            size: HIMEM_START - EBDA_START,
            kind: E820_RESERVED,
        },
        E820Entry {
            addr: HIMEM_START,
            size: first_size - HIMEM_START,
            kind: E820_RAM,
        },
    ];
    for &(addr, size) in &regions[1..] {
        map.push(E820Entry {
            addr,
            size,
            kind: E820_RAM,
        });
    }
    Ok(map)
}

/// Where the initrd goes: page aligned, as high as possible in the first region, below the
/// kernel's `initrd_addr_max` and above the kernel.
pub fn initrd_address(
    low_ram_end: u64,
    size: u64,
    kernel_end: u64,
    initrd_addr_max: u64,
) -> Result<u64> {
    let limit = low_ram_end.min(initrd_addr_max.saturating_add(1));
    let addr = limit
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|a| *a >= kernel_end)
        .ok_or_else(|| {
            VmError::Layout(format!(
                "the initramfs ({} KiB) does not fit between the kernel (ending at {kernel_end:#x}) and {limit:#x}; give the VM more memory",
                size / 1024
            ))
        })?;
    Ok(addr)
}

/// What goes into boot_params.
#[derive(Debug, Clone)]
pub struct BootParamsConfig {
    /// The bzImage's setup header (None for an ELF vmlinux).
    pub setup_header: Option<setup_header>,
    /// Command line length without NUL.
    pub cmdline_len: usize,
    /// Initrd address and size.
    pub initrd: Option<(u64, u64)>,
    /// The e820 map.
    pub e820: Vec<E820Entry>,
    /// Where the ACPI RSDP is, when the VM has ACPI tables (boot protocol 2.14's
    /// `acpi_rsdp_addr`; older kernels find it by scanning 0xe0000..0x100000, where it also is).
    pub acpi_rsdp: Option<u64>,
}

/// Builds boot_params.
pub fn build_boot_params(cfg: &BootParamsConfig) -> Result<boot_params> {
    let mut params = boot_params::default();
    if let Some(hdr) = cfg.setup_header {
        params.hdr = hdr;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cfg.cmdline_len as u32 + 1;
    if cfg.setup_header.is_none() {
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
    }
    if let Some((addr, size)) = cfg.initrd {
        params.hdr.ramdisk_image =
            u32::try_from(addr).map_err(|_| VmError::Layout("initrd above 4 GiB".into()))?;
        params.hdr.ramdisk_size =
            u32::try_from(size).map_err(|_| VmError::Layout("initrd larger than 4 GiB".into()))?;
    }
    if cfg.e820.len() > params.e820_table.len() {
        return Err(VmError::Layout("too many e820 entries".into()));
    }
    for (slot, e) in params.e820_table.iter_mut().zip(&cfg.e820) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind,
        };
    }
    params.e820_entries = cfg.e820.len() as u8;
    if let Some(rsdp) = cfg.acpi_rsdp {
        params.acpi_rsdp_addr = rsdp;
    }
    Ok(params)
}

/// Writes boot_params at [`BOOT_PARAMS_START`].
pub fn write_boot_params(mem: &GuestMemoryMmap, params: &boot_params) -> Result<()> {
    let bp = BootParams::new::<boot_params>(params, GuestAddress(BOOT_PARAMS_START));
    LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap>(&bp, mem)
        .map_err(|e| VmError::Memory(format!("writing boot_params: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn e820_has_low_ram_hole_and_high_ram() {
        let map = e820_map(&[(0, 512 << 20)]).expect("map");
        assert_eq!(map.len(), 3);
        assert_eq!(
            map[0],
            E820Entry {
                addr: 0,
                size: 0x9fc00,
                kind: E820_RAM
            }
        );
        assert_eq!(map[1].kind, E820_RESERVED);
        assert_eq!(map[1].addr + map[1].size, 0x10_0000);
        assert_eq!(map[2].addr, 0x10_0000);
        assert_eq!(map[2].addr + map[2].size, 512 << 20);
        let split = e820_map(&[(0, 0xc000_0000), (1 << 32, 1 << 30)]).expect("map");
        assert_eq!(
            split.last().copied(),
            Some(E820Entry {
                addr: 1 << 32,
                size: 1 << 30,
                kind: E820_RAM
            })
        );
        assert!(e820_map(&[]).is_err());
        assert!(e820_map(&[(0, 4096)]).is_err());
    }

    #[test]
    fn initrd_goes_high_page_aligned_and_above_the_kernel() {
        let a = initrd_address(512 << 20, 10_000, 0x200_0000, 0x37ff_ffff).expect("fits");
        assert_eq!(a % 4096, 0);
        assert!(a + 10_000 <= 512 << 20);
        assert!(a > (512 << 20) - 16384);
        // Capped by initrd_addr_max.
        let a = initrd_address(2 << 30, 4096, 0x200_0000, 0x37ff_ffff).expect("fits");
        assert!(a + 4096 <= 0x3800_0000);
        // Too big.
        assert!(initrd_address(64 << 20, 60 << 20, 0x200_0000, 0x37ff_ffff).is_err());
    }

    #[test]
    fn boot_params_carry_cmdline_initrd_and_e820() {
        let e820 = e820_map(&[(0, 256 << 20)]).expect("map");
        let p = build_boot_params(&BootParamsConfig {
            setup_header: None,
            cmdline_len: 42,
            initrd: Some((0x0f00_0000, 12345)),
            e820: e820.clone(),
            acpi_rsdp: Some(0xe_0000),
        })
        .expect("params");
        assert_eq!({ p.hdr.boot_flag }, 0xaa55);
        assert_eq!({ p.hdr.header }, 0x5372_6448);
        assert_eq!({ p.hdr.type_of_loader }, 0xff);
        assert_eq!({ p.hdr.cmd_line_ptr }, 0x20000);
        assert_eq!({ p.hdr.cmdline_size }, 43);
        assert_eq!(
            ({ p.hdr.ramdisk_image }, { p.hdr.ramdisk_size }),
            (0x0f00_0000, 12345)
        );
        assert_eq!({ p.hdr.kernel_alignment }, 0x100_0000);
        assert_eq!(p.e820_entries, 3);
        assert_eq!({ p.e820_table[2].addr }, 0x10_0000);
        assert_eq!({ p.acpi_rsdp_addr }, 0xe_0000);

        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("mem");
        write_boot_params(&mem, &p).expect("write");
        let back: boot_params = mem.read_obj(GuestAddress(BOOT_PARAMS_START)).expect("read");
        assert_eq!({ back.hdr.cmd_line_ptr }, 0x20000);
        assert_eq!(back.e820_entries, 3);
    }

    #[test]
    fn bzimage_header_is_kept() {
        let hdr = setup_header {
            version: 0x020f,
            kernel_alignment: 0x20_0000,
            ..Default::default()
        };
        let p = build_boot_params(&BootParamsConfig {
            setup_header: Some(hdr),
            cmdline_len: 1,
            initrd: None,
            e820: e820_map(&[(0, 64 << 20)]).expect("map"),
            acpi_rsdp: None,
        })
        .expect("params");
        assert_eq!({ p.hdr.version }, 0x020f);
        assert_eq!({ p.hdr.kernel_alignment }, 0x20_0000);
        assert_eq!({ p.hdr.ramdisk_image }, 0);
        assert_eq!({ p.acpi_rsdp_addr }, 0);
    }
}
