//! The backends: native here; container and VM adapt their crates to the [`crate::backend::Backend`]
//! trait.

pub mod child;
pub mod container;
pub mod native;
pub mod vm;
pub mod vm_emulated;

use std::path::PathBuf;

use crate::backend::{Backend, BackendKind};

/// Settings that pick a backend's variant.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// Boot this kernel in the VM instead of the micro kernel.
    pub vm_kernel: Option<PathBuf>,
    /// Give containers a user namespace (root inside is an unprivileged id outside; also what
    /// makes containers possible without root).
    pub user_namespace: bool,
    /// Run the VM inside the emulated AMD-V machine (its samples are labelled emulated).
    pub vm_in_emulator: bool,
}

/// Makes the backend of a kind with default settings.
pub fn make(kind: BackendKind) -> Box<dyn Backend> {
    make_with(kind, &BackendOptions::default())
}

/// Makes the backend of a kind with `options`.
pub fn make_with(kind: BackendKind, options: &BackendOptions) -> Box<dyn Backend> {
    match kind {
        BackendKind::Native => Box::new(native::NativeBackend::default()),
        BackendKind::Container => {
            Box::new(container::ContainerBackend::new().with_user_namespace(options.user_namespace))
        }
        BackendKind::Vm if options.vm_in_emulator => match &options.vm_kernel {
            Some(k) => Box::new(vm_emulated::EmulatedVmBackend::with_kernel(k.clone())),
            None => Box::new(vm_emulated::EmulatedVmBackend::new()),
        },
        BackendKind::Vm => match &options.vm_kernel {
            Some(k) => Box::new(vm::VmBackend::with_kernel(k.clone())),
            None => Box::new(vm::VmBackend::new()),
        },
    }
}
