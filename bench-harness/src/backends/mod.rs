//! The backends: native here; container and VM adapt their crates to the [`crate::backend::Backend`]
//! trait.

pub mod child;
pub mod container;
pub mod native;
pub mod vm;

use std::path::Path;

use crate::backend::{Backend, BackendKind};

/// Makes the backend of a kind with default settings.
pub fn make(kind: BackendKind) -> Box<dyn Backend> {
    make_with(kind, None)
}

/// Makes the backend of a kind; `vm_kernel` replaces the VM's default micro kernel.
pub fn make_with(kind: BackendKind, vm_kernel: Option<&Path>) -> Box<dyn Backend> {
    match kind {
        BackendKind::Native => Box::new(native::NativeBackend::default()),
        BackendKind::Container => Box::new(container::ContainerBackend::new()),
        BackendKind::Vm => match vm_kernel {
            Some(k) => Box::new(vm::VmBackend::with_kernel(k.to_path_buf())),
            None => Box::new(vm::VmBackend::new()),
        },
    }
}
