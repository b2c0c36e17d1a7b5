//! The container's floor as density instances: the agent cloned into the container's namespaces
//! and a cgroup of its own, nothing else ([`container_backend::floor`]). Also the process handle
//! the native launcher shares.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use container_backend::floor::{Floor, FloorChild};
use container_backend::{MarkerRead, RunCgroup};

use super::instance::{
    failure_of, marker_phases, Finished, Instance, Kind, Launcher, StartFailure,
};
use super::limits::Needs;

/// Starts floor processes.
#[derive(Debug)]
pub struct FloorLauncher {
    floor: Floor,
    cgroups: bool,
}

impl FloorLauncher {
    /// Floor processes of `agent` with `env`, each in a cgroup below `run`.
    pub fn new(
        agent: &Path,
        env: &[(String, String)],
        run: Option<Arc<RunCgroup>>,
    ) -> Result<Self, String> {
        let cgroups = run.is_some();
        let floor = Floor::new(agent, env, run).map_err(|e| e.to_string())?;
        Ok(Self { floor, cgroups })
    }
}

impl Launcher for FloorLauncher {
    fn kind(&self) -> Kind {
        Kind::Floor
    }

    fn needs(&self) -> Needs {
        Needs {
            // The marker pipe and the pidfd; v1 tasks fds are closed once the cgroup is made.
            fds: 2,
            processes: 1,
            cgroups: u64::from(self.cgroups),
            namespaces: true,
        }
    }

    fn start(&self, stderr: Option<OwnedFd>) -> Result<Box<dyn Instance>, StartFailure> {
        self.floor
            .start(None, stderr)
            .map(|c| Box::new(ProcessInstance(c)) as Box<dyn Instance>)
            .map_err(|e| failure_of(&e))
    }
}

/// A floor or native process as a density instance.
#[derive(Debug)]
pub(crate) struct ProcessInstance(pub(crate) FloorChild);

impl Instance for ProcessInstance {
    fn pid(&self) -> i32 {
        self.0.pid()
    }

    fn marker_fd(&self) -> Option<RawFd> {
        self.0.marker_fd().map(|f| f.as_raw_fd())
    }

    fn read_markers(&mut self) -> MarkerRead {
        self.0.read_markers()
    }

    fn processes(&self) -> Vec<i32> {
        self.0.processes()
    }

    fn phases_ms(&self) -> Vec<(String, f64)> {
        marker_phases(&self.0.markers)
    }

    fn kill(&self) {
        self.0.kill();
    }

    fn finish(self: Box<Self>) -> Result<Finished, String> {
        match self.0.finish() {
            Ok((_, None)) => Ok(Finished::default()),
            Ok((_, Some(cleanup))) => Err(cleanup),
            Err(e) => Err(e.to_string()),
        }
    }

    fn places(&self) -> Vec<PathBuf> {
        self.0.cgroup_dirs()
    }
}
