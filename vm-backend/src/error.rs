//! Typed errors of the VMM, the guest image and the kernel builder. Every message says what to do.

use std::path::PathBuf;

use thiserror::Error;

/// Why a VM could not be set up or run. A guest that panics, hangs or resets is not an error: it is
/// a [`crate::vmm::StopReason`] of a finished run.
#[derive(Debug, Error)]
pub enum VmError {
    /// The kernel file could not be read.
    #[error("cannot read the guest kernel {path}: {source}. Pass an existing bzImage or ELF vmlinux, or build one with `isolab kernel build`")]
    KernelRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The kernel file is neither a bzImage nor an x86_64 ELF vmlinux.
    #[error("{path} is not a Linux kernel this VMM can boot: {reason}. Pass an x86_64 bzImage (arch/x86/boot/bzImage) or an ELF vmlinux, e.g. from `isolab kernel build`")]
    KernelFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The kernel file is shorter than its own headers say.
    #[error("the guest kernel {path} is truncated: its headers need {needed} bytes but the file has {actual}. Copy or rebuild it (`isolab kernel build --force`)")]
    KernelTruncated {
        /// The file.
        path: PathBuf,
        /// Bytes the headers describe.
        needed: u64,
        /// Bytes in the file.
        actual: u64,
    },
    /// The initramfs could not be read.
    #[error("cannot read the initramfs {path}: {source}")]
    InitrdRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The requested guest layout does not fit (RAM too small or too large, initrd too big).
    #[error("the guest does not fit: {0}")]
    Layout(String),
    /// The kernel command line is invalid or too long.
    #[error("invalid kernel command line: {0}")]
    Cmdline(String),
    /// A configuration value is outside what this VMM supports.
    #[error("unsupported VM configuration: {0}")]
    Config(String),
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm: {0}. Fix: load kvm_intel or kvm_amd (`modprobe kvm_intel`), and give this user access (`setfacl -m u:$USER:rw /dev/kvm` or add it to group kvm)")]
    KvmOpen(#[source] kvm_ioctls::Error),
    /// The host's KVM lacks something this VMM needs.
    #[error("the host's KVM lacks {0}. Use a host with hardware virtualization (kvm_intel or kvm_amd, not PVM), or the HVM test machine")]
    KvmCapability(&'static str),
    /// A KVM ioctl failed.
    #[error("KVM failed to {what}: {source}. If this persists, check `dmesg` and that the host offers hardware KVM (kvm_intel or kvm_amd)")]
    Kvm {
        /// What we asked KVM to do.
        what: &'static str,
        /// The error KVM returned.
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be allocated or written.
    #[error("guest memory: {0}. Lower the VM's memory size or free host memory")]
    Memory(String),
    /// The kernel could not be placed in guest memory.
    #[error("loading the kernel into guest memory failed: {0}. Check that the VM has enough RAM for this kernel")]
    Load(String),
    /// An eventfd or signal setup failed.
    #[error("host resource setup failed: {0}")]
    Host(String),
    /// The disk image could not be used.
    #[error("virtio-blk disk: {0}")]
    Disk(#[from] crate::devices::virtio::block::BlockError),
    /// The network device's tap could not be opened.
    #[error("virtio-net: {0}")]
    Net(#[from] crate::devices::virtio::net::NetError),
    /// The virtio device thread could not be started.
    #[error("virtio device: {0}")]
    DeviceThread(#[from] crate::devices::virtio::DeviceThreadError),
    /// The vCPU thread could not be started or did not stop.
    #[error("the vCPU thread failed: {0}")]
    VcpuThread(String),
    /// Guest RAM backed by hugetlbfs needs 2 MiB pages the host has not reserved.
    #[error("guest RAM on hugetlbfs needs {needed} free 2 MiB huge pages, but the host has {free} free of {total} reserved. Reserve them first (as root: `sysctl vm.nr_hugepages={suggest}`, or `echo {suggest} > /proc/sys/vm/nr_hugepages`), or use `--vm-memory thp`")]
    HugePages {
        /// 2 MiB pages this VM needs.
        needed: u64,
        /// Free 2 MiB pages on the host.
        free: u64,
        /// Reserved 2 MiB pages on the host (vm.nr_hugepages).
        total: u64,
        /// A vm.nr_hugepages value that would do.
        suggest: u64,
    },
}

/// Result alias for the VMM.
pub type Result<T> = std::result::Result<T, VmError>;
