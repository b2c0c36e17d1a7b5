//! The backends: native here; container and VM adapt their crates to the [`crate::backend::Backend`]
//! trait.

pub mod child;
pub mod container;
pub mod native;

use crate::backend::{Backend, BackendKind};

/// Makes the backend of a kind.
pub fn make(kind: BackendKind) -> Box<dyn Backend> {
    match kind {
        BackendKind::Native => Box::new(native::NativeBackend::default()),
        BackendKind::Container => Box::new(container::ContainerBackend::new()),
        BackendKind::Vm => Box::new(NotBuilt(kind)),
    }
}

/// A backend whose implementation is not part of this build yet: every run reports it
/// unavailable with the reason, and the rest of the run goes on.
#[derive(Debug)]
struct NotBuilt(BackendKind);

impl Backend for NotBuilt {
    fn kind(&self) -> BackendKind {
        self.0
    }

    fn prepare(
        &mut self,
        _ctx: &crate::backend::PrepareContext,
    ) -> Result<(), crate::backend::BackendError> {
        Err(crate::backend::BackendError::Unavailable {
            backend: self.0,
            reason: "this isolab build does not include it yet".into(),
            fix: "update isolab".into(),
        })
    }

    fn run_trial(&mut self, _trial: &crate::backend::Trial) -> crate::backend::TrialOutcome {
        unreachable_outcome()
    }

    fn cleanup(&mut self) -> Result<(), crate::backend::BackendError> {
        Ok(())
    }
}

fn unreachable_outcome() -> crate::backend::TrialOutcome {
    crate::backend::TrialOutcome {
        result: Err(crate::backend::TrialFailure::Unavailable {
            reason: "backend not prepared".into(),
            fix: "update isolab".into(),
        }),
        timeline: Vec::new(),
        host_metrics: Vec::new(),
        log_tail: String::new(),
        emulated: false,
    }
}
