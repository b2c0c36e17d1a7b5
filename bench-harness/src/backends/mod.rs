//! The backends: native here; container and VM adapt their crates to the [`crate::backend::Backend`]
//! trait.

pub mod child;
pub mod container;
pub mod native;
pub mod vm;

use crate::backend::{Backend, BackendKind};

/// Makes the backend of a kind.
pub fn make(kind: BackendKind) -> Box<dyn Backend> {
    match kind {
        BackendKind::Native => Box::new(native::NativeBackend::default()),
        BackendKind::Container => Box::new(container::ContainerBackend::new()),
        BackendKind::Vm => Box::new(vm::VmBackend::new()),
    }
}
