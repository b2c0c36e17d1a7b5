//! Supervising a child process that runs the agent: marker pipe, output capture, timeout,
//! Ctrl-C, and reaping with resource usage. Shared by backends whose sandbox is a host process.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::Duration;

use workloads::protocol::MarkerEvent;

use crate::timefmt::monotonic_ns;

/// Keeps this many bytes of a child's stderr for reports.
pub const LOG_TAIL_BYTES: usize = 8 * 1024;
/// Stops reading a child's stdout past this size: a runaway agent must not eat the host's memory.
pub const STDOUT_LIMIT: usize = 16 * 1024 * 1024;

/// A marker byte and when the host saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedMarker {
    /// The event.
    pub event: MarkerEvent,
    /// Host CLOCK_MONOTONIC, ns.
    pub at_ns: u64,
}

/// Reads marker bytes from the pipe until EOF, timestamping each as it arrives.
pub fn spawn_marker_reader(read_end: OwnedFd) -> JoinHandle<Vec<TimedMarker>> {
    std::thread::spawn(move || {
        let mut file = std::fs::File::from(read_end);
        let mut markers = Vec::new();
        let mut buf = [0u8; 16];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let at_ns = monotonic_ns();
                    // Unknown bytes come from a confused or hostile agent: ignore them.
                    markers.extend(
                        buf[..n]
                            .iter()
                            .filter_map(|&b| MarkerEvent::from_byte(b))
                            .map(|event| TimedMarker { event, at_ns }),
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        markers
    })
}

/// Reads a stream to its end, keeping the first `limit` bytes (or, with `tail`, the last).
pub fn spawn_capture<R: Read + Send + 'static>(
    mut stream: R,
    limit: usize,
    tail: bool,
) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tail {
                        kept.extend_from_slice(&buf[..n]);
                        if kept.len() > 2 * limit {
                            kept.drain(..kept.len() - limit);
                        }
                    } else if kept.len() < limit {
                        let room = limit - kept.len();
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if tail && kept.len() > limit {
            kept.drain(..kept.len() - limit);
        }
        kept
    })
}

/// How a supervised child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// Exited with a code.
    Exited(i32),
    /// Killed by a signal we did not send.
    Signaled(i32),
    /// We killed it at the timeout.
    TimedOut,
    /// We killed it because of Ctrl-C.
    Interrupted,
}

/// Resource usage of a reaped child.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildUsage {
    /// Peak resident set, KiB.
    pub max_rss_kib: u64,
    /// User CPU, µs.
    pub user_us: u64,
    /// System CPU, µs.
    pub sys_us: u64,
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    let fd = i32::try_from(fd).ok()?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

fn timeval_us(tv: libc::timeval) -> u64 {
    u64::try_from(tv.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(tv.tv_usec).unwrap_or(0)
}

/// Waits for `pid` until it exits, the deadline passes (then SIGKILL) or Ctrl-C (then SIGKILL),
/// and reaps it with its resource usage. Returns when the child is gone: no zombie is left.
pub fn wait_with_timeout(pid: i32, timeout: Duration) -> (ChildEnd, ChildUsage, u64) {
    let deadline =
        monotonic_ns().saturating_add(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
    let pidfd = pidfd_open(pid);
    let mut killed_for: Option<ChildEnd> = None;
    loop {
        let now = monotonic_ns();
        if killed_for.is_none() {
            if crate::interrupt::requested() {
                killed_for = Some(ChildEnd::Interrupted);
            } else if now >= deadline {
                killed_for = Some(ChildEnd::TimedOut);
            }
            if killed_for.is_some() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        // Wake at least every 50 ms to notice Ctrl-C; sooner if the deadline is nearer.
        let slice_ms = ((deadline.saturating_sub(now)) / 1_000_000).clamp(1, 50);
        let exited = match &pidfd {
            Some(fd) => {
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd on the stack, count 1; poll writes only `revents`.
                let r = unsafe { libc::poll(&mut pfd, 1, i32::try_from(slice_ms).unwrap_or(50)) };
                r > 0 || killed_for.is_some()
            }
            None => {
                std::thread::sleep(Duration::from_micros(200));
                true
            }
        };
        if !exited {
            continue;
        }
        let mut status: libc::c_int = 0;
        // SAFETY: zeroed rusage is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if pidfd.is_some() || killed_for.is_some() {
            0
        } else {
            libc::WNOHANG
        };
        // SAFETY: `status` and `usage` are valid, writable, and live for the call.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if r == 0 {
            continue; // WNOHANG and still running.
        }
        let reaped_at = monotonic_ns();
        let usage = ChildUsage {
            max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
            user_us: timeval_us(usage.ru_utime),
            sys_us: timeval_us(usage.ru_stime),
        };
        if r < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // ECHILD: someone else reaped it; treat as gone.
            return (
                killed_for.unwrap_or(ChildEnd::Signaled(0)),
                usage,
                reaped_at,
            );
        }
        let end = if let Some(k) = killed_for {
            k
        } else if libc::WIFEXITED(status) {
            ChildEnd::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            ChildEnd::Signaled(libc::WTERMSIG(status))
        } else {
            continue;
        };
        return (end, usage, reaped_at);
    }
}

/// A signal number's name (`SIGKILL`), or the number.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// Turns how the agent ended and what it printed into its result or the reason there is none.
/// Exit code 2 is the agent's "workload failed" (its result line says why).
pub fn agent_result(
    end: ChildEnd,
    stdout: &[u8],
    log_tail: &str,
    timeout: Duration,
) -> Result<workloads::WorkloadResult, crate::backend::TrialFailure> {
    use crate::backend::TrialFailure;
    use workloads::result::Outcome;
    let parsed = workloads::protocol::parse_framed_result(&String::from_utf8_lossy(stdout));
    let last_lines = || last_lines(log_tail, 5);
    match end {
        ChildEnd::TimedOut => Err(TrialFailure::Timeout {
            after_s: timeout.as_secs_f64(),
        }),
        ChildEnd::Interrupted => Err(TrialFailure::Crashed {
            reason: "interrupted by Ctrl-C".into(),
        }),
        ChildEnd::Exited(code) => match parsed {
            Ok(result) => match &result.outcome {
                Outcome::Ok if code == 0 => Ok(result),
                Outcome::Ok => Err(TrialFailure::Crashed {
                    reason: format!("agent reported success but exited with code {code}"),
                }),
                Outcome::Error { message } => Err(TrialFailure::WorkloadError {
                    message: message.clone(),
                }),
            },
            Err(e) => Err(TrialFailure::Crashed {
                reason: format!("exit code {code}, {e}; stderr: {}", last_lines()),
            }),
        },
        ChildEnd::Signaled(sig) => Err(TrialFailure::Crashed {
            reason: format!("killed by {}; stderr: {}", signal_name(sig), last_lines()),
        }),
    }
}

/// The last `n` non-empty lines of a log, joined with " | ".
pub fn last_lines(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    if lines.is_empty() {
        "(empty)".into()
    } else {
        lines[start..].join(" | ")
    }
}

/// Places the agent's own phases on the timeline from the agent's clock.
///
/// Natively and in a container the agent's CLOCK_MONOTONIC is the host's (isolab uses no time
/// namespace), so its own stamps say exactly when it started and when its workload ran. The
/// host-side stamps of the marker pipe only say when a host thread got around to reading it,
/// which under load can be after the agent has exited (seen on a busy 2-core host). Replaces
/// `agent_ready`, `workload_start` and `workload_end` with the agent's stamps, relative to
/// `start_ns`, and returns start-to-ready in ns. Leaves the timeline alone, returning `None`,
/// when the stamps are not plausible for the host clock (a VM's own clock, a broken agent).
pub fn apply_agent_clock(
    timeline: &mut crate::backend::Timeline,
    result: &workloads::WorkloadResult,
    start_ns: u64,
) -> Option<u64> {
    let c = result.clock;
    let an_hour = 3_600_000_000_000;
    let plausible = start_ns <= c.agent_start_ns
        && c.agent_start_ns <= c.workload_start_ns
        && c.workload_start_ns <= c.workload_end_ns
        && c.workload_end_ns - start_ns < an_hour;
    if !plausible {
        return None;
    }
    let stamps = [
        (MarkerEvent::AgentStart, c.agent_start_ns),
        (MarkerEvent::WorkloadStart, c.workload_start_ns),
        (MarkerEvent::WorkloadEnd, c.workload_end_ns),
    ];
    for (event, at) in stamps {
        let at_ns = at - start_ns;
        match timeline.iter_mut().find(|p| p.name == event.name()) {
            Some(p) => p.at_ns = at_ns,
            None => timeline.push(crate::backend::Phase {
                name: event.name().into(),
                at_ns,
            }),
        }
    }
    timeline.sort_by_key(|p| p.at_ns);
    Some(c.agent_start_ns - start_ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Phase;
    use workloads::result::{AgentClock, Outcome};

    fn result(clock: AgentClock) -> workloads::WorkloadResult {
        workloads::WorkloadResult {
            protocol: workloads::PROTOCOL_VERSION,
            workload: "noop".into(),
            outcome: Outcome::Ok,
            metrics: Vec::new(),
            inspect: None,
            clock,
            memory_inside: None,
            was_pid1: false,
            route: None,
        }
    }

    fn phase(name: &str, at_ns: u64) -> Phase {
        Phase {
            name: name.into(),
            at_ns,
        }
    }

    #[test]
    fn agent_clock_replaces_late_marker_stamps() {
        // Markers read late, all after `exited`: the agent's own clock puts them right.
        let mut t = vec![
            phase("start", 0),
            phase("spawned", 700),
            phase("exited", 2_000),
            phase("agent_ready", 4_000),
            phase("workload_start", 4_000),
            phase("workload_end", 4_000),
        ];
        let clock = AgentClock {
            agent_start_ns: 1_000_900,
            workload_start_ns: 1_001_000,
            workload_end_ns: 1_001_500,
        };
        let ready = apply_agent_clock(&mut t, &result(clock), 1_000_000);
        assert_eq!(ready, Some(900));
        let names: Vec<&str> = t.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "start",
                "spawned",
                "agent_ready",
                "workload_start",
                "workload_end",
                "exited"
            ]
        );
    }

    #[test]
    fn implausible_agent_clock_is_ignored() {
        let mut t = vec![phase("start", 0), phase("agent_ready", 50)];
        let before = t.clone();
        // A VM's own clock: earlier than the host's trial start.
        let clock = AgentClock {
            agent_start_ns: 10,
            workload_start_ns: 20,
            workload_end_ns: 30,
        };
        assert_eq!(apply_agent_clock(&mut t, &result(clock), 1_000_000), None);
        assert_eq!(t, before);
    }
}
