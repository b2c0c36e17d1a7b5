//! Writing the result: one framed line on stdout, in one write(2), then drained to the device.

use std::io::Write;

use nix::unistd::{isatty, write};

use super::AgentError;
use crate::protocol::frame_result;
use crate::result::WorkloadResult;

/// Writes the framed result line to stdout. One write(2) keeps the line whole on a console that
/// kernel messages also write to; on a terminal (a VM's serial console) the output is drained
/// before returning, because init powers the machine off right after.
pub fn write_result(result: &WorkloadResult) -> Result<(), AgentError> {
    let line = frame_result(result).map_err(|e| AgentError::Report(e.to_string()))?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    // Anything std buffered (e.g. --help text) goes first, not into the middle of our line.
    lock.flush()
        .map_err(|e| AgentError::Report(e.to_string()))?;
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        // Only a pipe whose reader is slower than PIPE_BUF bytes makes this loop twice.
        match write(&lock, rest) {
            Ok(0) => return Err(AgentError::Report("stdout accepted no bytes".into())),
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(AgentError::Report(e.to_string())),
        }
    }
    if isatty(&lock).unwrap_or(false) {
        // Best effort: a console that cannot drain has already taken the bytes.
        let _ = nix::sys::termios::tcdrain(&lock);
    }
    Ok(())
}
