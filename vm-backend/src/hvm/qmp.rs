//! A minimal client of QEMU's machine protocol (QMP) on a Unix socket: enough to read the
//! emulated machine's state and to send it an NMI when it stops making progress.
//!
//! QMP rather than the human monitor: its replies are JSON lines, with no terminal echo to strip.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// How long one QMP exchange may take before the machine is taken as unresponsive.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A QMP connection, past the capabilities handshake.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to QEMU's QMP socket at `path` and leaves the handshake mode.
    pub fn connect(path: &Path) -> std::io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
        };
        // The greeting, then the handshake's (empty) reply.
        qmp.read_message()?;
        qmp.execute(&serde_json::json!({ "execute": "qmp_capabilities" }))?;
        Ok(qmp)
    }

    /// Runs a human-monitor command (`info lapic`, `info registers`) and returns its text.
    pub fn human(&mut self, command_line: &str) -> std::io::Result<String> {
        let reply = self.execute(&serde_json::json!({
            "execute": "human-monitor-command",
            "arguments": { "command-line": command_line },
        }))?;
        Ok(reply.as_str().unwrap_or_default().replace('\r', ""))
    }

    /// Sends a non-maskable interrupt to the machine's CPUs.
    pub fn inject_nmi(&mut self) -> std::io::Result<()> {
        self.execute(&serde_json::json!({ "execute": "inject-nmi" }))
            .map(drop)
    }

    /// Sends one command and returns its `return` value, skipping the asynchronous events QEMU
    /// may send in between.
    fn execute(&mut self, command: &Value) -> std::io::Result<Value> {
        let mut line = command.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let message = self.read_message()?;
            if let Some(ret) = message.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = message.get("error") {
                return Err(std::io::Error::other(format!("QMP error: {err}")));
            }
        }
    }

    fn read_message(&mut self) -> std::io::Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "QEMU closed its QMP socket",
            ));
        }
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }
}
