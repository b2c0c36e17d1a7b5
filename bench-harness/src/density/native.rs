//! The native instances of a density run: the agent as a plain process (no namespaces), all in
//! one cgroup below the run's (a sibling of the containers', with the same CPU weight and no
//! limits), started by the same clone-and-exec code as the container's floor so the two compare.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use container_backend::floor::Floor;
use container_backend::{RunCgroup, SiblingCgroup};

use super::floor::ProcessInstance;
use super::instance::{failure_of, Instance, Kind, Launcher, StartFailure};
use super::limits::Needs;

/// Starts native instances.
#[derive(Debug)]
pub struct NativeLauncher {
    floor: Floor,
    cgroup: Option<Arc<SiblingCgroup>>,
}

impl NativeLauncher {
    /// Native processes of `agent` with `env`, in a cgroup below `run` (or isolab's own without).
    pub fn new(
        agent: &Path,
        env: &[(String, String)],
        run: Option<&RunCgroup>,
    ) -> Result<Self, String> {
        let cgroup = match run {
            Some(r) => Some(Arc::new(
                r.create_sibling(&format!("native-density-{}", std::process::id()))
                    .map_err(|e| format!("cannot create the native instances' cgroup: {e}"))?,
            )),
            None => None,
        };
        let floor = match Floor::plain(agent, env, cgroup.clone()) {
            Ok(f) => f,
            Err(e) => {
                if let Some(c) = &cgroup {
                    let _ = c.remove();
                }
                return Err(e.to_string());
            }
        };
        Ok(Self { floor, cgroup })
    }
}

impl Drop for NativeLauncher {
    fn drop(&mut self) {
        if let Some(c) = &self.cgroup {
            if let Err(e) = c.remove() {
                eprintln!("warning: the native instances' cgroup: {e}");
            }
        }
    }
}

impl Launcher for NativeLauncher {
    fn kind(&self) -> Kind {
        Kind::Native
    }

    fn needs(&self) -> Needs {
        Needs {
            fds: 2,
            processes: 1,
            cgroups: 0,
            namespaces: false,
        }
    }

    fn start(&self, stderr: Option<OwnedFd>) -> Result<Box<dyn Instance>, StartFailure> {
        self.floor
            .start(None, stderr)
            .map(|c| Box::new(ProcessInstance(c)) as Box<dyn Instance>)
            .map_err(|e| failure_of(&e))
    }
}
