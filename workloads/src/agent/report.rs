//! Writing the result: one framed line, in one write(2), then drained to the device; to stdout,
//! or in a VM that offers one, to the virtio console (see [`ResultSink`]).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;

use nix::unistd::{isatty, write};

use super::AgentError;
use crate::protocol::{
    cmdline_value, frame_result, RESULT_CMDLINE_KEY, RESULT_VIRTIO_CONSOLE, VM_RESULT_DEVICE,
};
use crate::result::{ResultRoute, WorkloadResult};

/// Where the result line goes.
#[derive(Debug)]
pub enum ResultSink {
    /// stdout: a native process's pipe, a container's, a VM's serial console. `fallback` says
    /// why a channel the VM offered could not be used.
    Stdout {
        /// Why not the offered channel, if one was offered.
        fallback: Option<String>,
    },
    /// The VM's virtio console (`/dev/hvc0`), in raw mode.
    VirtioConsole(File),
}

/// How long the agent waits for the console device to appear: built into the kernel it is
/// there before init runs; as a module it is probed while the module loads. The wait only covers
/// a slow probe.
const CONSOLE_WAIT_MS: u32 = 200;

impl ResultSink {
    /// stdout, no channel offered.
    pub fn stdout() -> Self {
        Self::Stdout { fallback: None }
    }

    /// The channel `cmdline` (a VM's `/proc/cmdline`) offers, opened now (which also stops the
    /// guest kernel's hvc thread polling the idle console), or stdout with the reason it could
    /// not be used. Without an offer, stdout.
    pub fn offered(cmdline: &str) -> Self {
        match cmdline_value(cmdline, RESULT_CMDLINE_KEY) {
            None => Self::stdout(),
            Some(RESULT_VIRTIO_CONSOLE) => match open_console(VM_RESULT_DEVICE) {
                Ok(f) => Self::VirtioConsole(f),
                Err(why) => Self::Stdout {
                    fallback: Some(why),
                },
            },
            Some(other) => Self::Stdout {
                fallback: Some(format!(
                    "{RESULT_CMDLINE_KEY}={other} is no channel this agent knows (only {RESULT_VIRTIO_CONSOLE})"
                )),
            },
        }
    }

    /// The route a result written here takes.
    pub fn route(&self) -> ResultRoute {
        match self {
            Self::Stdout { fallback } => ResultRoute {
                channel: "stdout".into(),
                fallback: fallback.clone(),
            },
            Self::VirtioConsole(_) => ResultRoute {
                channel: RESULT_VIRTIO_CONSOLE.into(),
                fallback: None,
            },
        }
    }
}

/// Opens the console at `path` for writing, in raw mode.
fn open_console(path: &str) -> Result<File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut waited = 0;
    let file = loop {
        // O_NOCTTY: init must not make the console its controlling terminal.
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path)
        {
            Ok(f) => break f,
            // No node yet, or a node without a device behind it (hvc makes its nodes before any
            // console registers): the driver may still be probing.
            Err(_) if waited < CONSOLE_WAIT_MS => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                waited += 10;
            }
            Err(e) => {
                return Err(format!(
                    "{path} cannot be opened ({e}): the guest kernel has no virtio console driver (CONFIG_VIRTIO_CONSOLE, or the virtio_console module)"
                ))
            }
        }
    };
    // Raw: the line discipline must not turn "\n" into "\r\n" or hold bytes back.
    let mut t = nix::sys::termios::tcgetattr(file.as_fd())
        .map_err(|e| format!("{path} is not a terminal ({e})"))?;
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(file.as_fd(), nix::sys::termios::SetArg::TCSANOW, &t)
        .map_err(|e| format!("setting {path} to raw mode failed ({e})"))?;
    Ok(file)
}

/// Writes the framed result line to `sink`. One write(2) keeps the line whole on a console that
/// kernel messages also write to; on a terminal (a VM's serial or virtio console) the output is
/// drained before returning, because init powers the machine off right after.
pub fn write_result(result: &WorkloadResult, sink: &ResultSink) -> Result<(), AgentError> {
    let line = frame_result(result).map_err(|e| AgentError::Report(e.to_string()))?;
    match sink {
        ResultSink::Stdout { .. } => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            // Anything std buffered (e.g. --help text) goes first, not into the middle of our
            // line.
            lock.flush()
                .map_err(|e| AgentError::Report(e.to_string()))?;
            write_all(&lock, line.as_bytes())
        }
        ResultSink::VirtioConsole(f) => write_all(f, line.as_bytes()),
    }
}

fn write_all<F: AsFd>(fd: F, mut rest: &[u8]) -> Result<(), AgentError> {
    while !rest.is_empty() {
        // Only a pipe whose reader is slower than PIPE_BUF bytes (or a console taking a page at
        // a time) makes this loop more than once.
        match write(&fd, rest) {
            Ok(0) => return Err(AgentError::Report("the output accepted no bytes".into())),
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(AgentError::Report(e.to_string())),
        }
    }
    if isatty(&fd).unwrap_or(false) {
        // Best effort: a console that cannot drain has already taken the bytes.
        let _ = nix::sys::termios::tcdrain(&fd);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_offer_means_stdout_and_an_unknown_offer_says_why() {
        assert_eq!(
            ResultSink::offered("console=ttyS0 isolab.spec=x").route(),
            ResultRoute {
                channel: "stdout".into(),
                fallback: None
            }
        );
        let r = ResultSink::offered("isolab.result=carrier-pigeon").route();
        assert_eq!(r.channel, "stdout");
        assert!(r.fallback.is_some_and(|f| f.contains("carrier-pigeon")));
    }

    #[test]
    fn a_console_that_is_not_there_or_no_terminal_is_refused_with_the_reason() {
        let why = open_console("/nonexistent/hvc0").expect_err("no such device");
        assert!(why.contains("CONFIG_VIRTIO_CONSOLE"), "{why}");
        let file = std::env::temp_dir().join(format!("isolab-not-a-tty-{}", std::process::id()));
        std::fs::write(&file, b"").expect("temp file");
        let why = open_console(&file.display().to_string()).expect_err("not a terminal");
        assert!(why.contains("not a terminal"), "{why}");
        let _ = std::fs::remove_file(&file);
    }
}
