//! The boot vCPU's registers: general purpose, FPU, segment/control registers and the local APIC's
//! LINT pins, set for Linux's 64-bit entry point.

use kvm_bindings::{kvm_fpu, kvm_lapic_state, kvm_regs, kvm_sregs};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::gdt::{segment_from_gdt, BOOT_GDT, GDT_START, IDT_START};
use super::paging::{PageTables, PML4_START};
use super::{BOOT_PARAMS_START, BOOT_STACK_POINTER};
use crate::error::{Result, VmError};

/// CR0: protected mode.
const X86_CR0_PE: u64 = 0x1;
/// CR0: paging.
const X86_CR0_PG: u64 = 0x8000_0000;
/// CR4: physical address extension.
const X86_CR4_PAE: u64 = 0x20;
/// EFER: long mode enable.
const EFER_LME: u64 = 0x100;
/// EFER: long mode active.
const EFER_LMA: u64 = 0x400;

/// Offset of LVT LINT0 in the local APIC register page.
pub const APIC_LVT0: usize = 0x350;
/// Offset of LVT LINT1.
pub const APIC_LVT1: usize = 0x360;
/// Delivery mode ExtINT (the 8259 PIC's interrupts).
pub const APIC_MODE_EXTINT: u32 = 0x7;
/// Delivery mode NMI.
pub const APIC_MODE_NMI: u32 = 0x4;

/// General-purpose registers at the kernel's 64-bit entry: `rip` = entry, `rsi` = boot_params.
pub fn boot_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rflags: 0x2,
        rip: entry,
        rsp: BOOT_STACK_POINTER,
        rbp: BOOT_STACK_POINTER,
        rsi: BOOT_PARAMS_START,
        ..Default::default()
    }
}

/// FPU state: default control word and MXCSR.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

/// Puts `sregs` in 64-bit mode with the boot GDT, an empty IDT and the identity page tables.
pub fn set_long_mode_sregs(sregs: &mut kvm_sregs) {
    let code = segment_from_gdt(BOOT_GDT[1], 1);
    let data = segment_from_gdt(BOOT_GDT[2], 2);
    let tss = segment_from_gdt(BOOT_GDT[3], 3);

    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (std::mem::size_of_val(&BOOT_GDT) - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = (std::mem::size_of::<u64>() - 1) as u16;

    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;

    sregs.cr3 = PML4_START;
    sregs.cr4 |= X86_CR4_PAE;
    sregs.cr0 |= X86_CR0_PE | X86_CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
}

/// Writes the GDT, the empty IDT and the identity page tables into guest memory.
pub fn write_boot_tables(mem: &GuestMemoryMmap) -> Result<()> {
    let err = |what: &str, e: vm_memory::GuestMemoryError| {
        VmError::Memory(format!("writing the boot {what}: {e}"))
    };
    for (i, entry) in BOOT_GDT.iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_START + (i as u64) * 8))
            .map_err(|e| err("GDT", e))?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_START))
        .map_err(|e| err("IDT", e))?;
    for (addr, bytes) in PageTables::identity_1g().pages() {
        mem.write_slice(&bytes, GuestAddress(addr))
            .map_err(|e| err("page tables", e))?;
    }
    Ok(())
}

fn lapic_reg(lapic: &kvm_lapic_state, offset: usize) -> u32 {
    let b = &lapic.regs[offset..offset + 4];
    u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

fn set_lapic_reg(lapic: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (i, byte) in value.to_le_bytes().iter().enumerate() {
        lapic.regs[offset + i] = *byte as _;
    }
}

fn with_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// Routes LINT0 to ExtINT (the PIC) and LINT1 to NMI, as a PC's BIOS leaves them.
pub fn set_lint_pins(lapic: &mut kvm_lapic_state) {
    let lvt0 = lapic_reg(lapic, APIC_LVT0);
    set_lapic_reg(lapic, APIC_LVT0, with_delivery_mode(lvt0, APIC_MODE_EXTINT));
    let lvt1 = lapic_reg(lapic, APIC_LVT1);
    set_lapic_reg(lapic, APIC_LVT1, with_delivery_mode(lvt1, APIC_MODE_NMI));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regs_point_at_entry_and_boot_params() {
        let r = boot_regs(0x100_0200);
        assert_eq!(
            (r.rip, r.rsi, r.rsp, r.rflags),
            (0x100_0200, 0x7000, 0x8ff0, 2)
        );
        let f = boot_fpu();
        assert_eq!((f.fcw, f.mxcsr), (0x37f, 0x1f80));
    }

    #[test]
    fn sregs_enter_long_mode() {
        let mut s = kvm_sregs::default();
        set_long_mode_sregs(&mut s);
        assert_eq!(s.cr3, 0x9000);
        assert_ne!(s.cr0 & X86_CR0_PG, 0);
        assert_ne!(s.cr0 & X86_CR0_PE, 0);
        assert_ne!(s.cr4 & X86_CR4_PAE, 0);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!((s.cs.selector, s.ds.selector, s.tr.selector), (8, 16, 24));
        assert_eq!(s.cs.l, 1);
        assert_eq!((s.gdt.base, s.gdt.limit), (0x500, 31));
    }

    #[test]
    fn lint_pins_are_extint_and_nmi() {
        let mut l = kvm_lapic_state::default();
        set_lapic_reg(&mut l, APIC_LVT0, 0x0001_0700); // masked, some other mode
        set_lint_pins(&mut l);
        assert_eq!(lapic_reg(&l, APIC_LVT0), 0x0001_0700);
        assert_eq!((lapic_reg(&l, APIC_LVT0) >> 8) & 7, APIC_MODE_EXTINT);
        assert_eq!((lapic_reg(&l, APIC_LVT1) >> 8) & 7, APIC_MODE_NMI);
    }

    #[test]
    fn boot_tables_land_in_guest_memory() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("mem");
        write_boot_tables(&mem).expect("write");
        let code: u64 = mem.read_obj(GuestAddress(GDT_START + 8)).expect("read");
        assert_eq!(code, BOOT_GDT[1]);
        let pde1: u64 = mem.read_obj(GuestAddress(0xb008)).expect("read");
        assert_eq!(pde1, 0x20_0083);
    }
}
