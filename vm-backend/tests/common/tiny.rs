//! Tiny hand-made guests: a few x86-64 instructions in an ELF "vmlinux" that this host's
//! /dev/kvm runs under PVM as well as on hardware KVM (no Linux guest needed).

use super::elf_kernel;

/// Where the tiny guests' code is loaded and entered (an ELF PT_LOAD at 16 MiB).
pub const ENTRY: u64 = 0x100_0000;
/// Guest-physical address of the queue the disk guest builds (inside its PT_LOAD).
pub const QUEUE: u64 = ENTRY + 0x1000;
/// The agent protocol's marker port.
pub const MARKER_PORT: u16 = 0x490;
/// The virtio-blk register block.
pub const BLOCK_MMIO: u64 = 0xd000_0000;

/// An ELF vmlinux holding `image` (code at offset 0, data after it) at [`ENTRY`].
pub fn tiny_elf(image: &[u8]) -> Vec<u8> {
    elf_kernel(ENTRY, image, image.len() as u64)
}

/// A few x86-64 instructions, encoded by hand.
#[derive(Default)]
pub struct Code(pub Vec<u8>);

impl Code {
    /// `mov al, v; mov dx, port; out dx, al`
    pub fn out8(mut self, port: u16, v: u8) -> Self {
        self.0.extend_from_slice(&[0xb0, v, 0x66, 0xba]);
        self.0.extend_from_slice(&port.to_le_bytes());
        self.0.push(0xee);
        self
    }
    /// `mov rax, base` (used by the MMIO writes).
    pub fn base(mut self, base: u64) -> Self {
        self.0.extend_from_slice(&[0x48, 0xb8]);
        self.0.extend_from_slice(&base.to_le_bytes());
        self
    }
    /// `mov dword [rax + off], v`
    pub fn mmio_write(mut self, off: u32, v: u32) -> Self {
        self.0.extend_from_slice(&[0xc7, 0x80]);
        self.0.extend_from_slice(&off.to_le_bytes());
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Maps the GiB from 3 GiB (the MMIO hole) through the page directory at `pd` (guest
    /// physical, inside the image): the boot page tables map only the first GiB.
    /// `mov rbx, PDPT[3]; mov rax, pd | 3; mov [rbx], rax; mov rax, cr3; mov cr3, rax`
    pub fn map_mmio_hole(mut self, pd: u64) -> Self {
        self.0.extend_from_slice(&[0x48, 0xbb]);
        self.0.extend_from_slice(&(0xa000u64 + 3 * 8).to_le_bytes());
        self.0.extend_from_slice(&[0x48, 0xb8]);
        self.0.extend_from_slice(&(pd | 3).to_le_bytes());
        self.0.extend_from_slice(&[0x48, 0x89, 0x03]);
        self.0
            .extend_from_slice(&[0x0f, 0x20, 0xd8, 0x0f, 0x22, 0xd8]);
        self
    }
    /// Spins for `cycles` TSC cycles: `rdtsc; shl rdx, 32; or rax, rdx; mov rsi, rax;
    /// mov rcx, cycles; add rsi, rcx; 1: rdtsc; shl rdx, 32; or rax, rdx; cmp rax, rsi; jb 1b`
    pub fn delay(mut self, cycles: u64) -> Self {
        let now = [0x0f, 0x31, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0];
        self.0.extend_from_slice(&now);
        self.0.extend_from_slice(&[0x48, 0x89, 0xc6, 0x48, 0xb9]);
        self.0.extend_from_slice(&cycles.to_le_bytes());
        self.0.extend_from_slice(&[0x48, 0x01, 0xce]);
        self.0.extend_from_slice(&now);
        self.0.extend_from_slice(&[0x48, 0x39, 0xf0, 0x72, 0xf2]);
        self
    }
    /// `jmp $`: spin until stopped.
    pub fn spin(mut self) -> Self {
        self.0.extend_from_slice(&[0xeb, 0xfe]);
        self
    }
}
