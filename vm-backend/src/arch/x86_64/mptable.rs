//! The Intel MultiProcessor table: how a kernel without ACPI finds its CPUs, its IOAPIC and how
//! ISA interrupts are wired. Written at the start of the EBDA (0x9fc00), where Linux scans for the
//! floating pointer; the configuration table follows it and, for more than about 30 vCPUs, runs
//! past the EBDA's first KiB into the legacy area the e820 map reserves (0xa0000..), which is
//! guest RAM the guest never uses. Linux maps the configuration table by its length, wherever it is.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::EBDA_START;
use crate::error::{Result, VmError};

/// Where the floating pointer goes (Linux scans 639 KiB..640 KiB).
pub const MPTABLE_START: u64 = EBDA_START;
/// The local APIC's default address.
pub const APIC_DEFAULT_PHYS_BASE: u32 = 0xfee0_0000;
/// The IOAPIC's default address.
pub const IO_APIC_DEFAULT_PHYS_BASE: u32 = 0xfec0_0000;
/// Interrupt lines on the IOAPIC (KVM's in-kernel IOAPIC has 24).
pub const IOAPIC_PINS: u8 = 24;
/// Most vCPUs the table describes (the micro kernel's NR_CPUS).
pub const MAX_MP_CPUS: u8 = 64;
/// The table must end below this address: the start of the area kept for ACPI tables (RSDP
/// search range 0xe0000..0x100000).
const MPTABLE_LIMIT: u64 = 0xe_0000;

const MPC_SPEC: u8 = 4;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTPROCESSOR: u8 = 2;
const CPU_STEPPING: u32 = 0x600;
const CPU_FEATURE_APIC: u32 = 0x200;
const CPU_FEATURE_FPU: u32 = 0x001;
const MP_PROCESSOR: u8 = 0;
const MP_BUS: u8 = 1;
const MP_IOAPIC: u8 = 2;
const MP_INTSRC: u8 = 3;
const MP_LINTSRC: u8 = 4;
const MP_INT: u8 = 0;
const MP_NMI: u8 = 1;
const MP_EXTINT: u8 = 3;
const MPC_APIC_USABLE: u8 = 1;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// The table for `cpus` vCPUs (APIC ids 0..cpus), as bytes to write at [`MPTABLE_START`].
pub fn mptable_bytes(cpus: u8) -> Result<Vec<u8>> {
    if cpus == 0 || cpus > MAX_MP_CPUS {
        return Err(VmError::Config(format!(
            "{cpus} vCPUs; the MP table describes 1 to {MAX_MP_CPUS}"
        )));
    }
    let ioapic_id = cpus;
    let config_addr = (MPTABLE_START + 16) as u32;

    // Entries after the 44-byte configuration table header.
    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    for id in 0..cpus {
        let flags = CPU_ENABLED | if id == 0 { CPU_BOOTPROCESSOR } else { 0 };
        entries.extend_from_slice(&[MP_PROCESSOR, id, APIC_VERSION, flags]);
        entries.extend_from_slice(&CPU_STEPPING.to_le_bytes());
        entries.extend_from_slice(&(CPU_FEATURE_APIC | CPU_FEATURE_FPU).to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
        count += 1;
    }
    entries.extend_from_slice(&[MP_BUS, 0]);
    entries.extend_from_slice(b"ISA   ");
    count += 1;
    entries.extend_from_slice(&[MP_IOAPIC, ioapic_id, IOAPIC_VERSION, MPC_APIC_USABLE]);
    entries.extend_from_slice(&IO_APIC_DEFAULT_PHYS_BASE.to_le_bytes());
    count += 1;
    for irq in 0..IOAPIC_PINS {
        // type, irqtype, irqflag (u16: conforming), srcbus, srcbusirq, dstapic, dstirq
        entries.extend_from_slice(&[MP_INTSRC, MP_INT, 0, 0, 0, irq, ioapic_id, irq]);
        count += 1;
    }
    entries.extend_from_slice(&[MP_LINTSRC, MP_EXTINT, 0, 0, 0, 0, 0, 0]);
    entries.extend_from_slice(&[MP_LINTSRC, MP_NMI, 0, 0, 0, 0, 0xff, 1]);
    count += 2;

    let mut config = Vec::with_capacity(44 + entries.len());
    config.extend_from_slice(b"PCMP");
    config.extend_from_slice(&((44 + entries.len()) as u16).to_le_bytes());
    config.push(MPC_SPEC);
    config.push(0); // checksum, below
    config.extend_from_slice(b"ISOLAB  ");
    config.extend_from_slice(b"MICROVM     ");
    config.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer
    config.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    config.extend_from_slice(&count.to_le_bytes());
    config.extend_from_slice(&APIC_DEFAULT_PHYS_BASE.to_le_bytes());
    config.extend_from_slice(&0u16.to_le_bytes()); // extended table length
    config.push(0); // extended table checksum
    config.push(0); // reserved
    config.extend_from_slice(&entries);
    config[7] = checksum(&config);

    let mut floating = Vec::with_capacity(16);
    floating.extend_from_slice(b"_MP_");
    floating.extend_from_slice(&config_addr.to_le_bytes());
    floating.push(1); // length in 16-byte units
    floating.push(MPC_SPEC);
    floating.push(0); // checksum, below
    floating.extend_from_slice(&[0; 5]); // features: 0 = a configuration table is present
    floating[10] = checksum(&floating);

    let mut out = floating;
    out.extend_from_slice(&config);
    if MPTABLE_START + out.len() as u64 > MPTABLE_LIMIT {
        return Err(VmError::Layout(
            "the MP table does not fit below the ACPI area".into(),
        ));
    }
    Ok(out)
}

/// Writes the MP table for `cpus` vCPUs.
pub fn write_mptable(mem: &GuestMemoryMmap, cpus: u8) -> Result<()> {
    let bytes = mptable_bytes(cpus)?;
    mem.write_slice(&bytes, GuestAddress(MPTABLE_START))
        .map_err(|e| VmError::Memory(format!("writing the MP table: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn checksums_and_layout_are_valid() {
        for cpus in [1u8, 2, 3, 4, 32, 33, MAX_MP_CPUS] {
            let b = mptable_bytes(cpus).expect("fits");
            assert_eq!(&b[..4], b"_MP_");
            assert_eq!(sum(&b[..16]), 0, "floating pointer checksum");
            let ptr = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as u64;
            assert_eq!(ptr, MPTABLE_START + 16);
            let cfg = &b[16..];
            assert_eq!(&cfg[..4], b"PCMP");
            let len = u16::from_le_bytes([cfg[4], cfg[5]]) as usize;
            assert_eq!(len, cfg.len());
            assert_eq!(sum(cfg), 0, "configuration table checksum");
            let count = u16::from_le_bytes([cfg[34], cfg[35]]);
            assert_eq!(count, u16::from(cpus) + 2 + u16::from(IOAPIC_PINS) + 2);
            // Walk the entries by type and size: every one is where the count says.
            let mut pos = 44;
            let mut seen_cpus = 0;
            for _ in 0..count {
                let size = if cfg[pos] == MP_PROCESSOR { 20 } else { 8 };
                if cfg[pos] == MP_PROCESSOR {
                    assert_eq!(cfg[pos + 1], seen_cpus);
                    assert_eq!(cfg[pos + 3] & CPU_BOOTPROCESSOR != 0, seen_cpus == 0);
                    seen_cpus += 1;
                }
                pos += size;
            }
            assert_eq!(pos, len);
            assert_eq!(seen_cpus, cpus);
            assert!(MPTABLE_START + b.len() as u64 <= MPTABLE_LIMIT);
            // The IOAPIC's id follows the CPUs' and every interrupt source points at it.
            let ioapic = 44 + usize::from(cpus) * 20 + 8;
            assert_eq!(cfg[ioapic], MP_IOAPIC);
            assert_eq!(cfg[ioapic + 1], cpus);
        }
    }

    #[test]
    fn bad_counts_are_refused() {
        assert!(mptable_bytes(0).is_err());
        assert!(mptable_bytes(MAX_MP_CPUS + 1).is_err());
    }
}
