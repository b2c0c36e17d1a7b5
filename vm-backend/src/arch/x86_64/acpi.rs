//! ACPI tables: how a stock distro kernel finds its CPUs, its IOAPIC, the serial port and the
//! virtio-mmio devices.
//!
//! Debian's cloud kernel is built without `CONFIG_X86_MPPARSE` (the MP table means nothing to it)
//! and without `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` (a `virtio_mmio.device=` option is ignored):
//! it learns the machine only from ACPI. The tables are a "hardware-reduced" ACPI platform, as
//! Firecracker and Cloud Hypervisor describe theirs: no PM timer, no SCI, no legacy PIC or PIT
//! (Linux then skips both and uses the local APIC timer), no AML beyond device descriptions.
//!
//! | table | contents |
//! |---|---|
//! | RSDP (rev 2) | points at the XSDT |
//! | XSDT | the FADT and the MADT |
//! | FADT | `HW_REDUCED_ACPI`, no fixed power or sleep button, boot flags "no VGA, no MSI, no ASPM"; points at the DSDT |
//! | MADT | one enabled local APIC per vCPU (APIC id = index), IOAPIC id 0 at `0xfec0_0000` with GSI base 0 |
//! | DSDT | `COM1` (`PNP0501`, port 0x3f8, GSI 4), the CMOS RTC (`PNP0B00`, ports 0x70-0x71, GSI 8) and one `LNRO0005` device per virtio-mmio region |
//!
//! There are no interrupt source overrides: KVM's in-kernel irqchip routes GSI *n* to IOAPIC pin
//! *n* for every *n* < 24 (its default routing), which is exactly ACPI's identity mapping of ISA
//! IRQs, edge-triggered and active high. The COM1 entry matters: with the legacy PIC gone, the
//! 8250 driver's hard-wired ISA IRQ 4 has no mapping, and only the ACPI-described port (the 8250
//! PNP driver takes over ttyS0) gets its interrupt; without it the console cannot be opened. The
//! RTC entry is there for the same reason: the legacy `rtc_cmos` platform device asks for ISA
//! IRQ 8 and fails to probe (EINVAL) without it.
//!
//! Everything lives at [`ACPI_START`]..[`ACPI_END`] (`0xe0000..0x100000`), inside the legacy hole
//! the e820 map already marks reserved, where no kernel, initrd or boot data goes. The RSDP sits
//! at its start, where Linux also finds it by scanning if `boot_params.acpi_rsdp_addr` were
//! ignored; the kernel is told the address there anyway.

use acpi_tables::aml::{
    Device, EISAName, Interrupt, Memory32Fixed, Name, Path, ResourceTemplate, IO,
};
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::mptable::{APIC_DEFAULT_PHYS_BASE, IO_APIC_DEFAULT_PHYS_BASE};
use super::HIMEM_START;
use crate::devices::serial::SERIAL_IRQ;
use crate::error::{Result, VmError};

/// Start of the ACPI area; the RSDP is here.
pub const ACPI_START: u64 = 0xe_0000;
/// End of the ACPI area (exclusive): the start of high memory.
pub const ACPI_END: u64 = HIMEM_START;
/// Where the RSDP goes (and what `boot_params.acpi_rsdp_addr` says).
pub const RSDP_ADDR: u64 = ACPI_START;
/// Most vCPUs the MADT describes: APIC ids are one byte, and 0xff is the broadcast id.
pub const MAX_ACPI_CPUS: u8 = 254;

const OEM_ID: [u8; 6] = *b"ISOLAB";
const OEM_REVISION: u32 = 1;
/// IA-PC boot architecture flags: VGA not present (bit 2), MSI not supported (bit 3), PCIe ASPM
/// controls (bit 4, "do not touch"). The 8042 bit stays clear: Linux then skips probing the PS/2
/// controller (and its port exits); `reboot=k` still writes the reset to port 0x64.
const IAPC_BOOT_ARCH: u16 = (1 << 2) | (1 << 3) | (1 << 4);
/// The COM1 port (the 8250 the VMM emulates).
const COM1_PORT: u16 = 0x3f8;
/// The CMOS RTC's index port (the VMM emulates 0x70-0x71).
const RTC_PORT: u16 = crate::devices::cmos::CMOS_INDEX_PORT;
/// The RTC's ISA interrupt.
const RTC_IRQ: u32 = 8;

/// One virtio-mmio register block as the DSDT describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmioRegion {
    /// Guest physical base of the register block (below 4 GiB).
    pub base: u64,
    /// Its size (4 KiB for virtio-mmio).
    pub size: u64,
    /// Its interrupt line (GSI, an IOAPIC pin).
    pub gsi: u32,
}

/// The tables, each with the guest address it is built for.
#[derive(Debug, Clone)]
pub struct AcpiTables {
    /// (address, bytes) per table, the RSDP first; addresses ascend and never overlap.
    pub tables: Vec<(u64, Vec<u8>)>,
}

impl AcpiTables {
    /// The RSDP's address.
    pub fn rsdp_addr(&self) -> u64 {
        RSDP_ADDR
    }
}

fn aml_bytes(aml: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    aml.to_aml_bytes(&mut v);
    v
}

/// The DSDT's AML: COM1 and one `LNRO0005` device per virtio-mmio region.
fn dsdt_aml(virtio: &[VirtioMmioRegion]) -> Result<Vec<u8>> {
    let mut aml = Vec::new();
    let (com1_io, com1_irq) = (
        IO::new(COM1_PORT, COM1_PORT, 1, 8),
        Interrupt::new(true, true, false, false, SERIAL_IRQ),
    );
    let com1_crs = ResourceTemplate::new(vec![&com1_io, &com1_irq]);
    Device::new(
        Path::new("_SB_.COM1"),
        vec![
            &Name::new(Path::new("_HID"), &EISAName::new("PNP0501")),
            &Name::new(Path::new("_UID"), &0u8),
            &Name::new(Path::new("_CRS"), &com1_crs),
        ],
    )
    .to_aml_bytes(&mut aml);
    let (rtc_io, rtc_irq) = (
        IO::new(RTC_PORT, RTC_PORT, 1, 2),
        Interrupt::new(true, true, false, false, RTC_IRQ),
    );
    let rtc_crs = ResourceTemplate::new(vec![&rtc_io, &rtc_irq]);
    Device::new(
        Path::new("_SB_.RTC0"),
        vec![
            &Name::new(Path::new("_HID"), &EISAName::new("PNP0B00")),
            &Name::new(Path::new("_CRS"), &rtc_crs),
        ],
    )
    .to_aml_bytes(&mut aml);
    if virtio.len() > 100 {
        return Err(VmError::Config(format!(
            "{} virtio-mmio devices; the DSDT names at most 100 (VR00..VR99)",
            virtio.len()
        )));
    }
    for (i, region) in virtio.iter().enumerate() {
        let too_high = |what: &str| {
            VmError::Layout(format!(
                "virtio-mmio region at {:#x} (+{:#x}): its {what} does not fit the 32 bits ACPI's Memory32Fixed holds",
                region.base, region.size
            ))
        };
        let base = u32::try_from(region.base).map_err(|_| too_high("base"))?;
        let size = u32::try_from(region.size).map_err(|_| too_high("size"))?;
        if base.checked_add(size).is_none() {
            return Err(too_high("end"));
        }
        let uid = i as u8; // < 100, checked above
        let window = Memory32Fixed::new(true, base, size);
        // Edge-triggered, active high, exclusive: what an irqfd pulse on the GSI is.
        let irq = Interrupt::new(true, true, false, false, region.gsi);
        let crs = ResourceTemplate::new(vec![&window, &irq]);
        let name = format!("_SB_.VR{i:02}");
        // _HID as a string, not an EISA id: "LNRO0005" is an ACPI id (4 letters), which
        // EISAName cannot encode; Linux's virtio_mmio matches it as a string.
        Device::new(
            Path::new(&name),
            vec![
                &Name::new(Path::new("_HID"), &"LNRO0005"),
                &Name::new(Path::new("_UID"), &uid),
                &Name::new(Path::new("_CRS"), &crs),
            ],
        )
        .to_aml_bytes(&mut aml);
    }
    Ok(aml)
}

/// Builds the tables for `vcpus` vCPUs and the given virtio-mmio regions, laid out from
/// [`ACPI_START`]. Pure: no guest memory involved.
pub fn build_tables(vcpus: u8, virtio: &[VirtioMmioRegion]) -> Result<AcpiTables> {
    if vcpus == 0 || vcpus > MAX_ACPI_CPUS {
        return Err(VmError::Config(format!(
            "{vcpus} vCPUs; the MADT describes 1 to {MAX_ACPI_CPUS}"
        )));
    }
    // Addresses: the RSDP first, then each table 16-byte aligned.
    let mut next = RSDP_ADDR + Rsdp::len() as u64;
    let mut place = |len: usize| {
        let at = next.next_multiple_of(16);
        next = at + len as u64;
        at
    };

    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, *b"ISOLDSDT", OEM_REVISION);
    dsdt.append_slice(&dsdt_aml(virtio)?);
    let dsdt_addr = place(dsdt.len());

    let mut fadt = FADTBuilder::new(OEM_ID, *b"ISOLFACP", OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(Flags::HwReducedAcpi)
        // Set means "no fixed-feature button": there is none.
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    fadt.iapc_boot_arch = IAPC_BOOT_ARCH.into();
    fadt.hypervisor_vendor_identity = u64::from_le_bytes(*b"ISOLAB  ").into();
    let fadt = aml_bytes(&fadt.finalize());
    let fadt_addr = place(fadt.len());

    let mut madt = MADT::new(
        OEM_ID,
        *b"ISOLMADT",
        OEM_REVISION,
        LocalInterruptController::Address(APIC_DEFAULT_PHYS_BASE),
    );
    for id in 0..vcpus {
        madt.add_structure(ProcessorLocalApic::new(id, id, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(0, IO_APIC_DEFAULT_PHYS_BASE, 0));
    let madt = aml_bytes(&madt);
    let madt_addr = place(madt.len());

    let mut xsdt = XSDT::new(OEM_ID, *b"ISOLXSDT", OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let xsdt = aml_bytes(&xsdt);
    let xsdt_addr = place(xsdt.len());

    let rsdp = aml_bytes(&Rsdp::new(OEM_ID, xsdt_addr));
    if next > ACPI_END {
        return Err(VmError::Layout(format!(
            "the ACPI tables need {} bytes, more than the {} between {ACPI_START:#x} and {ACPI_END:#x}; use fewer vCPUs or devices",
            next - ACPI_START,
            ACPI_END - ACPI_START
        )));
    }
    Ok(AcpiTables {
        tables: vec![
            (RSDP_ADDR, rsdp),
            (dsdt_addr, dsdt.as_slice().to_vec()),
            (fadt_addr, fadt),
            (madt_addr, madt),
            (xsdt_addr, xsdt),
        ],
    })
}

/// Builds the tables and writes them into guest memory; returns the RSDP's address (for
/// `boot_params.acpi_rsdp_addr`).
pub fn write_acpi_tables(
    mem: &GuestMemoryMmap,
    vcpus: u8,
    virtio: &[VirtioMmioRegion],
) -> Result<u64> {
    let tables = build_tables(vcpus, virtio)?;
    for (addr, bytes) in &tables.tables {
        mem.write_slice(bytes, GuestAddress(*addr))
            .map_err(|e| VmError::Memory(format!("writing the ACPI tables: {e}")))?;
    }
    Ok(tables.rsdp_addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader of what Linux reads: RSDP -> XSDT -> FADT (-> DSDT), MADT.
    struct Guest {
        mem: GuestMemoryMmap,
    }

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    impl Guest {
        fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
            let mut v = vec![0u8; len];
            self.mem
                .read_slice(&mut v, GuestAddress(addr))
                .expect("inside guest memory");
            v
        }

        /// A table at `addr`: checks signature, length and checksum, returns its bytes.
        fn table(&self, addr: u64, sig: &[u8; 4]) -> Vec<u8> {
            let head = self.bytes(addr, 36);
            assert_eq!(&head[..4], sig, "signature at {addr:#x}");
            let len = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
            assert!(len >= 36, "{sig:?} length {len}");
            assert!(
                addr + len as u64 <= ACPI_END,
                "{sig:?} runs past the ACPI area"
            );
            let t = self.bytes(addr, len);
            assert_eq!(sum(&t), 0, "{} checksum", String::from_utf8_lossy(sig));
            assert_eq!(&t[10..16], b"ISOLAB");
            t
        }

        fn rsdp(&self, addr: u64) -> u64 {
            let r = self.bytes(addr, 36);
            assert_eq!(&r[..8], b"RSD PTR ");
            assert_eq!(sum(&r[..20]), 0, "RSDP checksum (first 20 bytes)");
            assert_eq!(sum(&r), 0, "RSDP extended checksum");
            assert_eq!(r[15], 2, "RSDP revision");
            assert_eq!(u32::from_le_bytes(r[20..24].try_into().unwrap()), 36);
            u64::from_le_bytes(r[24..32].try_into().unwrap())
        }
    }

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }

    fn written(vcpus: u8, virtio: &[VirtioMmioRegion]) -> (Guest, u64) {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 2 << 20)]).expect("mem");
        let rsdp = write_acpi_tables(&mem, vcpus, virtio).expect("tables");
        (Guest { mem }, rsdp)
    }

    const BLK: VirtioMmioRegion = VirtioMmioRegion {
        base: 0xd000_0000,
        size: 0x1000,
        gsi: 5,
    };

    #[test]
    fn tables_parse_back_with_valid_checksums() {
        for vcpus in [1u8, 2, 4, 32] {
            let (g, rsdp) = written(vcpus, &[BLK]);
            assert_eq!(rsdp, RSDP_ADDR);
            let xsdt_addr = g.rsdp(rsdp);
            let xsdt = g.table(xsdt_addr, b"XSDT");
            assert_eq!(xsdt.len(), 36 + 2 * 8);
            let fadt = g.table(u64_at(&xsdt, 36), b"FACP");
            let madt = g.table(u64_at(&xsdt, 44), b"APIC");

            // FADT: hardware-reduced, DSDT through the 64-bit pointer.
            assert_eq!(fadt.len(), 276);
            let flags = u32_at(&fadt, 112);
            assert_ne!(flags & (1 << 20), 0, "HW_REDUCED_ACPI");
            assert_eq!(u16::from_le_bytes([fadt[109], fadt[110]]), IAPC_BOOT_ARCH);
            assert_eq!(u32_at(&fadt, 40), 0, "no 32-bit DSDT pointer");
            let dsdt = g.table(u64_at(&fadt, 140), b"DSDT");

            // MADT: LAPIC base, one enabled LAPIC per vCPU with ids 0.., one IOAPIC.
            assert_eq!(u32_at(&madt, 36), APIC_DEFAULT_PHYS_BASE);
            let mut pos = 44;
            let (mut lapics, mut ioapics) = (0u8, 0);
            while pos < madt.len() {
                let (kind, len) = (madt[pos], madt[pos + 1] as usize);
                assert!(len >= 2 && pos + len <= madt.len(), "MADT entry at {pos}");
                match kind {
                    0 => {
                        assert_eq!(len, 8);
                        assert_eq!((madt[pos + 2], madt[pos + 3]), (lapics, lapics));
                        assert_eq!(u32_at(&madt, pos + 4), 1, "enabled");
                        lapics += 1;
                    }
                    1 => {
                        assert_eq!(len, 12);
                        assert_eq!(madt[pos + 2], 0, "IOAPIC id");
                        assert_eq!(u32_at(&madt, pos + 4), IO_APIC_DEFAULT_PHYS_BASE);
                        assert_eq!(u32_at(&madt, pos + 8), 0, "GSI base");
                        ioapics += 1;
                    }
                    other => panic!("unexpected MADT entry type {other}"),
                }
                pos += len;
            }
            assert_eq!(pos, madt.len());
            assert_eq!((lapics, ioapics), (vcpus, 1));

            // DSDT: the virtio-mmio device with its window and interrupt, and COM1.
            let aml = &dsdt[36..];
            let has = |needle: &[u8]| aml.windows(needle.len()).any(|w| w == needle);
            assert!(has(b"LNRO0005\0"), "LNRO0005 _HID string");
            assert!(has(b"VR00"));
            let mut mem32 = vec![0x86, 9, 0, 1];
            mem32.extend_from_slice(&0xd000_0000u32.to_le_bytes());
            mem32.extend_from_slice(&0x1000u32.to_le_bytes());
            assert!(has(&mem32), "Memory32Fixed(ReadWrite, 0xd0000000, 0x1000)");
            assert!(
                has(&[0x89, 6, 0, 0b0011, 1, 5, 0, 0, 0]),
                "Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) {{ 5 }}"
            );
            assert!(has(b"COM1"));
            assert!(has(&[0x47, 1, 0xf8, 3, 0xf8, 3, 1, 8]), "IO(0x3f8, 8)");
            assert!(has(&[0x89, 6, 0, 0b0011, 1, 4, 0, 0, 0]), "COM1 on GSI 4");
            assert!(has(b"RTC0"));
            assert!(has(&[0x47, 1, 0x70, 0, 0x70, 0, 1, 2]), "IO(0x70, 2)");
            assert!(has(&[0x89, 6, 0, 0b0011, 1, 8, 0, 0, 0]), "RTC on GSI 8");

            // Laid out inside the reserved area, in order, without overlap.
            let mut spans: Vec<(u64, u64)> = build_tables(vcpus, &[BLK])
                .expect("tables")
                .tables
                .iter()
                .map(|(a, b)| (*a, *a + b.len() as u64))
                .collect();
            spans.sort();
            assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0));
            assert!(spans[0].0 >= ACPI_START && spans.last().unwrap().1 <= ACPI_END);
        }
    }

    #[test]
    fn several_devices_get_their_own_entries_and_none_is_fine() {
        let two = [
            BLK,
            VirtioMmioRegion {
                base: 0xd000_1000,
                size: 0x1000,
                gsi: 6,
            },
        ];
        let (g, rsdp) = written(2, &two);
        let xsdt = g.table(g.rsdp(rsdp), b"XSDT");
        let fadt = g.table(u64_at(&xsdt, 36), b"FACP");
        let dsdt = g.table(u64_at(&fadt, 140), b"DSDT");
        let count = dsdt.windows(9).filter(|w| w == b"LNRO0005\0").count();
        assert_eq!(count, 2);
        assert!(dsdt.windows(4).any(|w| w == b"VR01"));

        let (g, rsdp) = written(1, &[]);
        let xsdt = g.table(g.rsdp(rsdp), b"XSDT");
        let fadt = g.table(u64_at(&xsdt, 36), b"FACP");
        let dsdt = g.table(u64_at(&fadt, 140), b"DSDT");
        assert!(!dsdt.windows(8).any(|w| w == b"LNRO0005"));
        assert!(dsdt.windows(4).any(|w| w == b"COM1"));
    }

    #[test]
    fn the_area_is_reserved_in_the_e820_map() {
        use crate::boot::params::{e820_map, E820_RESERVED};
        let map = e820_map(&[(0, 256 << 20)]).expect("map");
        let covering = map
            .iter()
            .find(|e| e.addr <= ACPI_START && ACPI_END <= e.addr + e.size)
            .expect("an entry covers the ACPI area");
        assert_eq!(covering.kind, E820_RESERVED);
    }

    #[test]
    fn impossible_configurations_are_errors() {
        assert!(build_tables(0, &[]).is_err());
        assert!(build_tables(255, &[]).is_err());
        let high = VirtioMmioRegion {
            base: 1 << 32,
            size: 0x1000,
            gsi: 5,
        };
        assert!(matches!(build_tables(1, &[high]), Err(VmError::Layout(_))));
        let many = vec![BLK; 101];
        assert!(build_tables(1, &many).is_err());
    }
}
