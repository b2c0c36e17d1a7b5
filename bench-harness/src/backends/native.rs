//! The native backend: the agent as a plain child process. The baseline every other backend is a
//! ratio of, so it does as little as possible around the agent: spawn, wait, reap.

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use workloads::protocol::{encode_spec, MarkerEvent, MARKER_ENV, SPEC_ENV};
use workloads::Metric;

use crate::backend::{
    Backend, BackendError, BackendKind, Phase, PrepareContext, Trial, TrialFailure, TrialOutcome,
};
use crate::backends::child::{self, ChildEnd, LOG_TAIL_BYTES, STDOUT_LIMIT};
use crate::timefmt::monotonic_ns;

/// The fd number the agent finds its marker pipe on.
const MARKER_FD: i32 = 3;

/// Runs the agent as a plain child process.
#[derive(Debug, Default)]
pub struct NativeBackend {
    agent: Option<PathBuf>,
    timeout: Duration,
}

fn err(message: String) -> BackendError {
    BackendError::Prepare {
        backend: BackendKind::Native,
        message,
    }
}

impl Backend for NativeBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Native
    }

    fn prepare(&mut self, ctx: &PrepareContext) -> Result<(), BackendError> {
        let meta = std::fs::metadata(&ctx.agent).map_err(|e| {
            err(format!(
                "agent {} is not readable ({e}); build it with \
                 `cargo build --release -p workloads --bin isolab-agent`",
                ctx.agent.display()
            ))
        })?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(err(format!(
                "agent {} is not an executable file",
                ctx.agent.display()
            )));
        }
        self.agent = Some(ctx.agent.clone());
        self.timeout = ctx.trial_timeout;
        Ok(())
    }

    fn run_trial(&mut self, trial: &Trial) -> TrialOutcome {
        let crashed = |reason: String| TrialOutcome {
            result: Err(TrialFailure::Crashed { reason }),
            timeline: Vec::new(),
            host_metrics: Vec::new(),
            log_tail: String::new(),
            emulated: false,
        };
        let Some(agent) = self.agent.clone() else {
            return crashed("native backend used before prepare()".into());
        };
        let spec = match encode_spec(&trial.spec) {
            Ok(s) => s,
            Err(e) => return crashed(e.to_string()),
        };
        let (marker_read, marker_write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => return crashed(format!("cannot create the marker pipe: {e}")),
        };
        let write_fd = marker_write.as_raw_fd();
        let mut cmd = Command::new(&agent);
        cmd.env(SPEC_ENV, spec)
            .env(MARKER_ENV, format!("fd:{MARKER_FD}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and calls only dup2 and fcntl,
        // which are async-signal-safe; it touches no memory of the parent beyond a copied integer.
        unsafe {
            cmd.pre_exec(move || {
                if write_fd == MARKER_FD {
                    // dup2 onto itself would keep O_CLOEXEC; clear it instead.
                    if libc::fcntl(write_fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(write_fd, MARKER_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let start = monotonic_ns();
        let spawned = cmd.spawn();
        // The parent's copy of the write end must close, or the marker reader never sees EOF.
        drop(marker_write);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return crashed(format!("cannot start {}: {e}", agent.display())),
        };
        let spawned_at = monotonic_ns();
        let markers = child::spawn_marker_reader(marker_read);
        let stdout = child
            .stdout
            .take()
            .map(|s| child::spawn_capture(s, STDOUT_LIMIT, false));
        let stderr = child
            .stderr
            .take()
            .map(|s| child::spawn_capture(s, LOG_TAIL_BYTES, true));
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let (end, usage, reaped_at) = child::wait_with_timeout(pid, self.timeout);
        let markers = markers.join().unwrap_or_default();
        let stdout = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
        let log_tail =
            String::from_utf8_lossy(&stderr.and_then(|h| h.join().ok()).unwrap_or_default())
                .into_owned();
        let cleaned_at = monotonic_ns();

        let rel = |t: u64| t.saturating_sub(start);
        let mut timeline = vec![
            Phase {
                name: "start".into(),
                at_ns: 0,
            },
            Phase {
                name: "spawned".into(),
                at_ns: rel(spawned_at),
            },
        ];
        // Workload phases stay off the timeline: its charts stack the start-up phases.
        timeline.extend(
            markers
                .iter()
                .filter(|m| !matches!(m.event, MarkerEvent::Phase(_)))
                .map(|m| Phase {
                    name: m.event.name().into(),
                    at_ns: rel(m.at_ns),
                }),
        );
        timeline.push(Phase {
            name: "exited".into(),
            at_ns: rel(reaped_at),
        });
        timeline.push(Phase {
            name: "cleaned_up".into(),
            at_ns: rel(cleaned_at),
        });

        let result = child::agent_result(end, &stdout, &log_tail, self.timeout);
        let agent_ready = match &result {
            Ok(r) => child::apply_agent_clock(&mut timeline, r, start),
            Err(_) => None,
        };
        let ms = |ns: u64| ns as f64 / 1e6;
        let mut host_metrics = vec![
            Metric::lower("host.wall", "ms", ms(reaped_at - start)),
            Metric::lower("host.peak_rss", "MiB", usage.max_rss_kib as f64 / 1024.0),
            Metric::lower("host.cpu_user", "ms", usage.user_us as f64 / 1e3),
            Metric::lower("host.cpu_sys", "ms", usage.sys_us as f64 / 1e3),
            // As for the container: from the agent's exit to everything released.
            Metric::lower(
                "host.teardown",
                "ms",
                ms(cleaned_at.saturating_sub(reaped_at)),
            ),
        ];
        let marker_ready = markers
            .iter()
            .find(|m| m.event == MarkerEvent::AgentStart)
            .map(|m| m.at_ns - start);
        if let Some(ready) = agent_ready.or(marker_ready) {
            host_metrics.push(Metric::lower("host.start_to_ready", "ms", ms(ready)));
        }
        let keep_log = result.is_err() || matches!(end, ChildEnd::Signaled(_));
        TrialOutcome {
            result,
            timeline,
            host_metrics,
            log_tail: if keep_log { log_tail } else { String::new() },
            emulated: false,
        }
    }

    fn cleanup(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}
