//! The VM's state as KVM holds it: the VM itself, its guest memory and its vCPUs.

pub mod kvm_stats;
pub mod memory;
pub mod vcpu;
pub mod vm;
