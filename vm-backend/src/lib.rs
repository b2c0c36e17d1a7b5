//! isolab's KVM microVM: a small VMM on the rust-vmm crates, the guest kernel it boots and the
//! guest image (an initramfs with the agent as `/init`).
//!
//! The layout mirrors the machine: [`vstate`] holds the VM, its memory and its vCPUs; [`arch`]
//! the x86_64 boot state (GDT, page tables, CPUID, MSRs, registers, MP table, ACPI tables);
//! [`boot`] the kernel loader, the command line and boot_params; [`devices`] one module per
//! device (8250 serial, i8042, CMOS RTC, the marker port, the virtio-mmio transport and
//! virtio-blk); [`image`] the initramfs writer; [`kernel`] building, fetching and caching guest
//! kernels (the `micro` one and Debian's stock one); [`vmm`] runs one VM from a
//! [`vmm::VmConfig`] to a [`vmm::VmReport`]; [`hvm`] is the HVM test machine (QEMU TCG with
//! AMD-V) that runs this VMM on hosts whose own KVM cannot boot Linux.
//!
//! The guest is hostile: every value it chooses (ports, sizes, bytes, register writes) is checked,
//! and nothing it does makes the VMM panic; a guest that panics, hangs or resets ends in a report.

pub mod arch;
pub mod boot;
pub mod devices;
pub mod error;
pub mod hooks;
pub mod hvm;
pub mod image;
pub mod kernel;
pub mod process;
pub mod seccomp;
pub mod vmm;
pub mod vstate;

pub use error::VmError;
