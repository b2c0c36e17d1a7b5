//! The backends: native here; container and VM adapt their crates to the [`crate::backend::Backend`]
//! trait.

pub mod child;
pub mod container;
mod guest_kernel;
pub mod native;
pub mod qemu_tcg;
pub mod vm;
pub mod vm_disk;
pub mod vm_emulated;

use std::path::{Path, PathBuf};

use crate::backend::{Backend, BackendError, BackendKind};

/// Settings that pick a backend's variant.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// Boot this kernel in the VM instead of the micro kernel.
    pub vm_kernel: Option<PathBuf>,
    /// Give containers a user namespace (root inside is an unprivileged id outside; also what
    /// makes containers possible without root).
    pub user_namespace: bool,
    /// The container's system-call filter (default: Docker's profile).
    pub seccomp: container_backend::SeccompProfile,
    /// Run the VM inside the emulated AMD-V machine (its samples are labelled emulated).
    pub vm_in_emulator: bool,
    /// How the VM's I/O trials use their disk (default: ext4 on it).
    pub vm_disk: Option<workloads::protocol::DiskMode>,
    /// The VMM process's seccomp filters, one per thread kind (default: on).
    pub vm_seccomp: vm_backend::seccomp::SeccompMode,
    /// Run each VMM process in a jail: new mount, PID and network namespaces, a root holding only
    /// its kernel, initramfs and disk, an unprivileged user.
    pub vm_jail: bool,
    /// How the VM's guest RAM is backed on the host (default: transparent huge pages).
    pub vm_memory: Option<vm_backend::vstate::memory::MemoryBacking>,
    /// How the VM describes its devices to the guest (default: ACPI and the command line).
    pub vm_acpi: Option<vm_backend::vmm::AcpiMode>,
    /// How a container's network workloads reach the peer (default: a veth pair).
    pub container_net: crate::lab_net::ContainerNet,
    /// Whether the VM's virtio-net card offers checksum and segmentation offloads (default: on).
    pub vm_net_offload: Option<bool>,
}

/// Removes a file a backend made for its trials at cleanup; one already gone is fine.
pub(crate) fn remove_made_file(backend: BackendKind, path: &Path) -> Result<(), BackendError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackendError::Cleanup {
            backend,
            message: format!("{}: {e}", path.display()),
        }),
    }
}

/// The last `n` lines of `text`, for failure reports.
pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Makes the backend of a kind with default settings.
pub fn make(kind: BackendKind) -> Box<dyn Backend> {
    make_with(kind, &BackendOptions::default())
}

/// Makes the backend of a kind with `options`.
pub fn make_with(kind: BackendKind, options: &BackendOptions) -> Box<dyn Backend> {
    let disk = options
        .vm_disk
        .unwrap_or(workloads::protocol::DiskMode::Ext4);
    match kind {
        BackendKind::Native => Box::new(native::NativeBackend::default()),
        BackendKind::Container => Box::new(
            container::ContainerBackend::new()
                .with_user_namespace(options.user_namespace)
                .with_seccomp(options.seccomp)
                .with_network(options.container_net),
        ),
        BackendKind::Vm if options.vm_in_emulator => {
            let b = match &options.vm_kernel {
                Some(k) => vm_emulated::EmulatedVmBackend::with_kernel(k.clone()),
                None => vm_emulated::EmulatedVmBackend::new(),
            };
            Box::new(
                b.with_disk_mode(disk)
                    .with_confinement(options.vm_seccomp, options.vm_jail)
                    .with_memory(options.vm_memory.unwrap_or_default())
                    .with_acpi(options.vm_acpi.unwrap_or_default())
                    .with_net_offload(options.vm_net_offload.unwrap_or(true)),
            )
        }
        BackendKind::Vm => {
            let b = match &options.vm_kernel {
                Some(k) => vm::VmBackend::with_kernel(k.clone()),
                None => vm::VmBackend::new(),
            };
            Box::new(
                b.with_disk_mode(disk)
                    .with_confinement(options.vm_seccomp, options.vm_jail)
                    .with_memory(options.vm_memory.unwrap_or_default())
                    .with_acpi(options.vm_acpi.unwrap_or_default())
                    .with_net_offload(options.vm_net_offload.unwrap_or(true)),
            )
        }
        BackendKind::QemuTcg => Box::new(qemu_tcg::QemuTcgBackend::new()),
    }
}
