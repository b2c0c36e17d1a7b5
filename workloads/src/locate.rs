//! Finding the agent binary from the harness, benchmarks and tests.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Environment variable that overrides where the agent binary is.
pub const AGENT_ENV: &str = "ISOLAB_AGENT";
/// The agent's file name.
pub const AGENT_NAME: &str = "isolab-agent";

/// The agent binary was not found.
#[derive(Debug, Error)]
#[error(
    "the isolab agent binary was not found (looked at: {looked}). Build it with \
     `cargo build --release -p workloads --bin isolab-agent` (the README's commands do this), \
     or point {AGENT_ENV} or --agent at it"
)]
pub struct AgentNotFound {
    looked: String,
}

/// Finds the agent: `explicit` if given, else `$ISOLAB_AGENT`, else next to the running
/// executable, else one directory up (test and bench executables live in `target/.../deps/`).
pub fn locate_agent(explicit: Option<&Path>) -> Result<PathBuf, AgentNotFound> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else if let Some(p) = std::env::var_os(AGENT_ENV) {
        candidates.push(PathBuf::from(p));
    } else if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(AGENT_NAME));
            if let Some(up) = dir.parent() {
                candidates.push(up.join(AGENT_NAME));
            }
        }
    }
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    Err(AgentNotFound {
        looked: candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}
