//! Process creation: fork + exec + wait of a tiny child (µs per process).

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions};
use nix::sys::wait::{waitpid, WaitStatus};
use serde::{Deserialize, Serialize};

use crate::kernels::{check_range, WorkloadError};
use crate::result::Metric;

/// Parameters of `spawn`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpawnParams {
    /// Processes created.
    pub count: u32,
}

impl Default for SpawnParams {
    fn default() -> Self {
        Self { count: 50 }
    }
}

const KIND: &str = "spawn";
const MAX_COUNT: u64 = 1_000_000;
/// The argument that makes the agent exit 0 at once: the tiny child.
pub const EXIT_IMMEDIATELY: &str = "--exit-immediately";

/// Runs `spawn`: starts the agent itself with [`EXIT_IMMEDIATELY`] `count` times, waiting for
/// each. Re-executing ourselves needs no other binary in a minimal container or VM image.
pub fn run(params: &SpawnParams) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "count", params.count.into(), 1, MAX_COUNT)?;
    let exe = own_executable()?;
    let per_process_us = spawn_many(&exe, params.count)?;
    Ok(vec![Metric::lower(
        "spawn_cost",
        "µs/process",
        per_process_us,
    )])
}

/// The running executable: `/proc/self/exe`, else `argv[0]` (a VM's `/init` before or without
/// /proc, or a container whose /proc is restricted).
fn own_executable() -> Result<PathBuf, WorkloadError> {
    if let Ok(exe) = std::fs::read_link("/proc/self/exe") {
        if exe.is_file() {
            return Ok(exe);
        }
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if argv0.is_empty() {
        return Err(WorkloadError::sys(
            "finding the agent's own executable (mount /proc or start the agent with a path as argv[0])",
            std::io::ErrorKind::NotFound.into(),
        ));
    }
    Ok(PathBuf::from(argv0))
}

/// posix_spawn + waitpid of `exe --exit-immediately`, `count` times; returns µs per process.
/// glibc's posix_spawn is clone(CLONE_VM|CLONE_VFORK) + execve: the cheapest fork+exec there is,
/// so the number is the kernel's and the sandbox's cost, not our copying of page tables.
pub(crate) fn spawn_many(exe: &Path, count: u32) -> Result<f64, WorkloadError> {
    let cpath = CString::new(exe.as_os_str().as_bytes()).map_err(|_| {
        WorkloadError::sys(
            format!("using {} as a program path", exe.display()),
            std::io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let args = [cpath.clone(), CString::from(c"--exit-immediately")];
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv: OsString = k;
            kv.push("=");
            kv.push(v);
            CString::new(kv.as_bytes()).ok()
        })
        .collect();
    let actions = PosixSpawnFileActions::init()
        .map_err(|e| WorkloadError::sys("posix_spawn_file_actions_init", e.into()))?;
    let attr =
        PosixSpawnAttr::init().map_err(|e| WorkloadError::sys("posix_spawnattr_init", e.into()))?;

    let start = Instant::now();
    for _ in 0..count {
        let pid = posix_spawn(cpath.as_c_str(), &actions, &attr, &args, &env).map_err(|e| {
            WorkloadError::sys(format!("posix_spawn of {}", exe.display()), e.into())
        })?;
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, 0)) => {}
            Ok(other) => {
                return Err(WorkloadError::sys(
                    format!("spawning `{} {EXIT_IMMEDIATELY}`", exe.display()),
                    std::io::Error::other(format!(
                        "the child ended with {other:?}, not exit 0; is it the isolab agent?"
                    )),
                ))
            }
            Err(e) => {
                return Err(WorkloadError::sys(
                    "waitpid for the spawned child",
                    e.into(),
                ))
            }
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawning_the_agent_twice_works() {
        // The agent is built next to the test executable by `cargo build -p workloads --bin
        // isolab-agent`; without it this test fails with the locator's advice.
        let agent = crate::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"));
        let us = spawn_many(&agent, 2).unwrap();
        // A process costs more than 1 µs and (even in a slow VM) less than a second.
        assert!(us > 1.0 && us < 1e6, "{us}");
    }

    #[test]
    fn a_child_that_does_not_exit_zero_is_an_error() {
        // `false` exits 1 whatever its arguments.
        let err = spawn_many(Path::new("/bin/false"), 1).unwrap_err();
        assert!(err.to_string().contains("not exit 0"), "{err}");
        assert!(spawn_many(Path::new("/nonexistent/agent"), 1).is_err());
        assert!(run(&SpawnParams { count: 0 }).is_err());
    }
}
