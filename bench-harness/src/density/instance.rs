//! What `isolab density` needs from a backend: start one instance that sets up its working set,
//! says when it is ready and then waits; list the host processes that are the instance (for
//! PSS); kill it; reap it and remove what it made; and say what it made, so the run can check
//! that nothing is left.
//!
//! Implementations: [`super::native`] (the agent as a plain process), [`super::container`]
//! (isolab's container runtime), [`super::floor`] (a plain clone into the container's namespaces
//! and a cgroup: the container's floor), [`super::vm`] (a microVM in a VMM process of its own,
//! held until the run stops it; its PSS is the VMM process's, split into guest RAM and the
//! VMM's own by [`Instance::vm_memory`]).

use std::collections::BTreeMap;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

use container_backend::{CgroupMemory, MarkerRead};
use serde::{Deserialize, Serialize};

use super::limits::{Limit, Needs};
use super::record::VmMemory;

/// The kinds of instance a density run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The agent as a plain process.
    Native,
    /// The agent as PID 1 of isolab's container.
    Container,
    /// The container's floor: the agent in the container's namespaces and a cgroup, nothing else.
    Floor,
    /// The agent as a microVM's init (needs each VM in its own VMM process).
    Vm,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 4] = [Kind::Native, Kind::Container, Kind::Floor, Kind::Vm];

    /// The name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::Container => "container",
            Kind::Floor => "floor",
            Kind::Vm => "vm",
        }
    }

    /// The name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::Container => "container",
            Kind::Floor => "container floor",
            Kind::Vm => "vm",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Why an instance could not be started.
#[derive(Debug, Clone)]
pub struct StartFailure {
    /// What failed, with the runtime's own message.
    pub message: String,
    /// The host limit it hit, if it was one.
    pub limit: Option<Limit>,
}

/// One running instance.
pub trait Instance: Send {
    /// Its main process on the host (the agent, the container's init, the VMM).
    fn pid(&self) -> i32;

    /// The read end of its marker pipe (non-blocking), to poll; `None` once closed.
    fn marker_fd(&self) -> Option<RawFd>;

    /// The marker bytes that arrived since the last call (stamped now), or `Closed`.
    fn read_markers(&mut self) -> MarkerRead;

    /// Every host process of the instance now.
    fn processes(&self) -> Vec<i32>;

    /// The instance's cgroup's view of its memory, if it has a cgroup of its own (container).
    fn cgroup_memory(&self) -> Option<CgroupMemory> {
        None
    }

    /// A VM's memory now, its VMM process's PSS split into guest RAM and the VMM's own; `None`
    /// for the other kinds.
    fn vm_memory(&self) -> Option<VmMemory> {
        None
    }

    /// Its start phases, ms after its start began (the container's runtime phases; for the
    /// others the agent's first marker and `waiting`).
    fn phases_ms(&self) -> Vec<(String, f64)>;

    /// SIGKILL (through a pidfd). Does not wait.
    fn kill(&self);

    /// Waits for it to end, reaps it and removes what it made. `Err` says what could not be
    /// removed or why it ended early.
    fn finish(self: Box<Self>) -> Result<Finished, String>;

    /// What it made on the host that must be gone after [`Instance::finish`] (cgroup directories).
    fn places(&self) -> Vec<PathBuf>;
}

/// What an instance said by the time it was reaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished {
    /// A guest's memory from inside (the agent's `/proc/meminfo` when it got ready), which a VM
    /// reports when it stops.
    pub inside: Option<workloads::result::MemoryInside>,
}

/// Starts instances of one kind. Shared by the starter threads.
pub trait Launcher: Send + Sync {
    /// Which kind.
    fn kind(&self) -> Kind;

    /// What one instance takes of the host's limited resources.
    fn needs(&self) -> Needs;

    /// Starts one instance; returns once it is started (readiness comes on its marker pipe). The
    /// agent's stderr goes to `stderr`.
    fn start(&self, stderr: Option<OwnedFd>) -> Result<Box<dyn Instance>, StartFailure>;

    /// Facts for the manifest (cgroup version, seccomp, limits, ...).
    fn facts(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// A start failure from a container runtime error: the limit it hit, when it was one.
pub(crate) fn failure_of(e: &container_backend::ContainerError) -> StartFailure {
    StartFailure {
        message: e.to_string(),
        limit: e
            .errno()
            .and_then(|(errno, what)| super::limits::classify(errno, &what)),
    }
}

/// `(name, ms)` of marker bytes of interest (`agent_ready` = the first, `waiting`), ms after `t0`.
pub(crate) fn marker_phases(markers: &[(u8, u64)]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(&(_, at)) = markers.first() {
        out.push(("agent_ready".to_owned(), at as f64 / 1e6));
    }
    let waiting = workloads::protocol::MarkerEvent::Waiting.byte();
    if let Some(&(_, at)) = markers.iter().find(|(b, _)| *b == waiting) {
        out.push(("waiting".to_owned(), at as f64 / 1e6));
    }
    out
}
