//! The KVM VM: `/dev/kvm`, the VM fd, the in-kernel interrupt controllers and PIT.

use kvm_bindings::{kvm_pit_config, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VmFd};

use crate::arch::x86_64::KVM_TSS_ADDRESS;
use crate::error::{Result, VmError};

/// The KVM system fd and one VM.
#[derive(Debug)]
pub struct Vm {
    /// `/dev/kvm`.
    pub kvm: Kvm,
    /// The VM.
    pub fd: VmFd,
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

impl Vm {
    /// Opens `/dev/kvm`, checks the capabilities this VMM needs and creates a VM with the in-kernel
    /// irqchip (PIC + IOAPIC + LAPICs) and PIT.
    pub fn new() -> Result<Self> {
        Self::with_kvm(Kvm::new().map_err(VmError::KvmOpen)?)
    }

    /// The same with `/dev/kvm` already open (a jailed VMM opens it before entering its jail).
    pub fn with_kvm(kvm: Kvm) -> Result<Self> {
        for (cap, name) in [
            (Cap::Irqchip, "an in-kernel irqchip (KVM_CAP_IRQCHIP)"),
            (Cap::UserMemory, "user memory regions (KVM_CAP_USER_MEMORY)"),
            (Cap::Irqfd, "irqfds (KVM_CAP_IRQFD)"),
            (Cap::Pit2, "the in-kernel PIT (KVM_CAP_PIT2)"),
            (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
            (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(VmError::KvmCapability(name));
            }
        }
        let fd = kvm.create_vm().map_err(kvm_err("create a VM"))?;
        fd.set_tss_address(KVM_TSS_ADDRESS)
            .map_err(kvm_err("set the TSS address"))?;
        fd.create_irq_chip()
            .map_err(kvm_err("create the in-kernel irqchip"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit)
            .map_err(kvm_err("create the in-kernel PIT"))?;
        Ok(Self { kvm, fd })
    }
}
