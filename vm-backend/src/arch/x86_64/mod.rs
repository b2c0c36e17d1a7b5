//! x86_64 guest layout and the per-vCPU state a 64-bit Linux boot needs.
//!
//! Low guest memory, as the boot code lays it out:
//!
//! | GPA | what |
//! |---|---|
//! | `0x500` | GDT ([`gdt`]) |
//! | `0x520` | IDT (empty) |
//! | `0x7000` | boot_params, the "zero page" ([`crate::boot::params`]) |
//! | `0x8ff0` | initial stack pointer |
//! | `0x9000..0xc000` | identity page tables ([`paging`]) |
//! | `0x20000` | kernel command line |
//! | `0x9fc00..0x100000` | reserved (EBDA, VGA, BIOS); MP table at `0x9fc00` |
//! | `0xe0000..0x100000` | ACPI tables when the VM has them, RSDP at `0xe0000` ([`acpi`]) |
//! | `0x100000` | bzImage protected-mode kernel (`code32_start`) |
//! | `0x1000000` | ELF vmlinux (its physical load address) |
//! | top of low RAM | initramfs, page aligned |

pub mod acpi;
pub mod cpuid;
pub mod gdt;
pub mod mptable;
pub mod msr;
pub mod paging;
pub mod regs;

/// Guest physical address of the boot_params structure.
pub const BOOT_PARAMS_START: u64 = 0x7000;
/// Initial stack pointer (and frame pointer) of the boot vCPU.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Guest physical address of the kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Largest command line this VMM writes (x86 `COMMAND_LINE_SIZE`).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the EBDA / legacy reserved area: RAM below it is usable.
pub const EBDA_START: u64 = 0x9fc00;
/// First byte above the legacy hole: "high memory" where kernels load.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the hole below 4 GiB kept free for MMIO devices (virtio-mmio, IOAPIC, LAPIC).
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of that hole.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// Address KVM uses for its TSS (three pages) on Intel; inside the MMIO gap.
pub const KVM_TSS_ADDRESS: usize = 0xfffb_d000;
/// Offset of the 64-bit entry point from the start of a bzImage's protected-mode code.
pub const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
