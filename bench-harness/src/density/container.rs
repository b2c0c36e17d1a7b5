//! The container instances of a density run: the agent as PID 1 of isolab's container, exactly as
//! `isolab run` makes it (namespaces, rootfs, pivot_root, confinement, seccomp, a cgroup with the
//! sandbox's limits below the run's), but started with [`container_backend::Runtime::start`] so it
//! stays up.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use container_backend::{
    CgroupLimits, CgroupMemory, CgroupVersion, ContainerConfig, MarkerRead, RunRequest,
    RunningContainer, Runtime, SeccompProfile,
};

use super::instance::{failure_of, Finished, Instance, Kind, Launcher, StartFailure};
use super::limits::Needs;
use crate::backend::{PrepareContext, SandboxLimits};

/// Starts container instances.
#[derive(Debug)]
pub struct ContainerLauncher {
    runtime: Runtime,
    request: RunRequest,
    limits: SandboxLimits,
}

impl ContainerLauncher {
    /// A runtime like `isolab run`'s (the run's state folder and cgroup, the sandbox's limits,
    /// `seccomp`), starting the agent with `env`.
    pub fn new(
        ctx: &PrepareContext,
        env: Vec<(String, String)>,
        seccomp: SeccompProfile,
    ) -> Result<Self, String> {
        let mut c = ContainerConfig::new(ctx.agent.clone());
        if !ctx.state_dir.as_os_str().is_empty() {
            c.state_dir = ctx.state_dir.clone();
        }
        if let Some(run) = &ctx.run_cgroup {
            c.cgroups = run.settings();
        }
        c.seccomp = seccomp;
        c.limits = CgroupLimits {
            memory_bytes: Some(ctx.limits.memory_mib.saturating_mul(1 << 20)),
            cpus: Some(f64::from(ctx.limits.vcpus.max(1))),
            pids_max: Some(ctx.limits.pids_max),
        };
        let runtime = Runtime::new(c).map_err(|e| e.to_string())?;
        Ok(Self {
            runtime,
            request: RunRequest {
                args: Vec::new(),
                env,
                // Density instances wait idle; they get a network namespace of their own.
                netns: None,
            },
            limits: ctx.limits,
        })
    }
}

impl Launcher for ContainerLauncher {
    fn kind(&self) -> Kind {
        Kind::Container
    }

    fn needs(&self) -> Needs {
        Needs {
            // Marker pipe and pidfd; on v2 also the cgroup directory it was born in.
            fds: match self.runtime.cgroup_version() {
                CgroupVersion::V1 => 2,
                CgroupVersion::V2 => 3,
            },
            processes: 1,
            cgroups: 1,
            namespaces: true,
        }
    }

    fn start(&self, stderr: Option<OwnedFd>) -> Result<Box<dyn Instance>, StartFailure> {
        self.runtime
            .start(&self.request, None, stderr)
            .map(|c| Box::new(ContainerInstance(c)) as Box<dyn Instance>)
            .map_err(|e| failure_of(&e))
    }

    fn facts(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        f.insert(
            "cgroup_version".into(),
            self.runtime.cgroup_version().to_string(),
        );
        f.insert(
            "seccomp".into(),
            self.runtime.config().seccomp.name().to_owned(),
        );
        f.insert(
            "limits".into(),
            format!(
                "memory {} MiB, {} CPU, {} pids",
                self.limits.memory_mib, self.limits.vcpus, self.limits.pids_max
            ),
        );
        f
    }
}

/// One container.
#[derive(Debug)]
struct ContainerInstance(RunningContainer);

impl Instance for ContainerInstance {
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

    fn cgroup_memory(&self) -> Option<CgroupMemory> {
        self.0.cgroup_memory()
    }

    fn phases_ms(&self) -> Vec<(String, f64)> {
        let t = self.0.timeline();
        let mut out: Vec<(String, f64)> = t
            .phases
            .iter()
            .map(|&(p, at)| (p.name().to_owned(), at as f64 / 1e6))
            .collect();
        let waiting = workloads::protocol::MarkerEvent::Waiting.byte();
        if let Some(m) = t.markers.iter().find(|m| m.byte == waiting) {
            out.push(("waiting".to_owned(), m.at_ns as f64 / 1e6));
        }
        out
    }

    fn kill(&self) {
        self.0.kill();
    }

    fn finish(self: Box<Self>) -> Result<Finished, String> {
        let f = self.0.finish().map_err(|e| e.to_string())?;
        match (f.cleanup_error, f.setup_failure) {
            (Some(e), _) => Err(e),
            (None, Some(setup)) => Err(setup),
            (None, None) => Ok(Finished::default()),
        }
    }

    fn places(&self) -> Vec<PathBuf> {
        self.0.cgroup_dirs()
    }
}
