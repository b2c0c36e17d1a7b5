//! COM1: an 8250 UART (vm-superio) whose output is the guest console, kept in a bounded log and
//! optionally mirrored live to the VMM's stderr. Its interrupt is an eventfd registered as an
//! irqfd on GSI 4.

use std::io::Write;

use vm_superio::serial::NoEvents;
use vm_superio::Trigger;
use vmm_sys_util::eventfd::EventFd;

/// The IRQ line of COM1.
pub const SERIAL_IRQ: u32 = 4;

/// The serial interrupt: an irqfd, or nothing (unit tests).
#[derive(Debug)]
pub struct IrqLine(Option<EventFd>);

impl IrqLine {
    /// A line that raises an interrupt by writing to `fd`.
    pub fn new(fd: Option<EventFd>) -> Self {
        Self(fd)
    }
}

impl Trigger for IrqLine {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        match &self.0 {
            Some(fd) => fd.write(1),
            None => Ok(()),
        }
    }
}

/// The console output: the last `capacity` bytes the guest wrote (older bytes are counted).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "ConsoleWire", from = "ConsoleWire")]
pub struct ConsoleLog {
    bytes: Vec<u8>,
    capacity: usize,
    dropped: u64,
}

/// A console log as it crosses the VMM process's pipe: its text (invalid UTF-8 replaced, as
/// [`ConsoleLog::text`] does anyway) rather than a number per byte.
#[derive(serde::Serialize, serde::Deserialize)]
struct ConsoleWire {
    text: String,
    capacity: usize,
    dropped: u64,
}

impl From<ConsoleLog> for ConsoleWire {
    fn from(log: ConsoleLog) -> Self {
        Self {
            text: String::from_utf8_lossy(&log.bytes).into_owned(),
            capacity: log.capacity,
            dropped: log.dropped,
        }
    }
}

impl From<ConsoleWire> for ConsoleLog {
    fn from(wire: ConsoleWire) -> Self {
        Self {
            bytes: wire.text.into_bytes(),
            capacity: wire.capacity,
            dropped: wire.dropped,
        }
    }
}

impl ConsoleLog {
    /// An empty log that keeps at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            bytes: Vec::new(),
            capacity: capacity.max(1024),
            dropped: 0,
        }
    }

    /// Appends guest output.
    pub fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        if self.bytes.len() > self.capacity {
            // Drop the oldest quarter at once, so a chatty guest costs amortised O(1) per byte.
            let cut = self.bytes.len() - self.capacity + self.capacity / 4;
            self.bytes.drain(..cut);
            self.dropped += cut as u64;
        }
    }

    /// Bytes dropped from the front.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The raw bytes kept.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The text kept, invalid UTF-8 replaced and carriage returns removed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).replace('\r', "")
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> String {
        tail_lines(&self.text(), n)
    }
}

/// The last `n` lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Where the UART's bytes go: the log, and stderr when live.
#[derive(Debug)]
pub struct ConsoleSink {
    log: ConsoleLog,
    live: bool,
}

impl Write for ConsoleSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.log.push(buf);
        if self.live {
            // The live view is best effort: a closed stderr must not stop the guest.
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.live {
            let _ = std::io::stderr().flush();
        }
        Ok(())
    }
}

/// COM1.
pub struct Serial {
    uart: vm_superio::Serial<IrqLine, NoEvents, ConsoleSink>,
    trigger_errors: u64,
}

impl std::fmt::Debug for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serial")
            .field("console_bytes", &self.uart.writer().log.bytes.len())
            .field("trigger_errors", &self.trigger_errors)
            .finish()
    }
}

impl Serial {
    /// A UART raising `irq` (None: no interrupt) writing to `log`, mirrored to stderr if `live`.
    pub fn new(irq: Option<EventFd>, log: ConsoleLog, live: bool) -> std::io::Result<Self> {
        Ok(Self {
            uart: vm_superio::Serial::new(IrqLine::new(irq), ConsoleSink { log, live }),
            trigger_errors: 0,
        })
    }

    /// A guest read of register `offset` (0..8).
    pub fn read(&mut self, offset: u8) -> u8 {
        self.uart.read(offset)
    }

    /// A guest write of register `offset` (0..8).
    pub fn write(&mut self, offset: u8, value: u8) {
        if self.uart.write(offset, value).is_err() {
            self.trigger_errors += 1;
        }
    }

    /// The console log.
    pub fn console(&self) -> &ConsoleLog {
        &self.uart.writer().log
    }

    /// Takes the console log out.
    pub fn take_console(&mut self) -> ConsoleLog {
        std::mem::take(&mut self.uart.writer_mut().log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmitted_bytes_reach_the_log() {
        let mut s = Serial::new(None, ConsoleLog::new(4096), false).expect("serial");
        for b in b"hello\r\nworld\n" {
            s.write(0, *b);
        }
        assert_eq!(s.console().text(), "hello\nworld\n");
        assert_eq!(s.console().tail(1), "world");
        // Line status: transmitter holding register empty, so the guest never waits.
        assert_eq!(s.read(5) & 0x60, 0x60);
    }

    #[test]
    fn divisor_latch_writes_are_not_output() {
        let mut s = Serial::new(None, ConsoleLog::new(4096), false).expect("serial");
        s.write(3, 0x80); // DLAB on
        s.write(0, 0x01); // divisor low
        s.write(1, 0x00); // divisor high
        s.write(3, 0x03); // 8N1, DLAB off
        s.write(0, b'x');
        assert_eq!(s.console().text(), "x");
    }

    #[test]
    fn interrupt_is_raised_through_the_eventfd() {
        let fd = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let probe = fd.try_clone().expect("clone");
        let mut s = Serial::new(Some(fd), ConsoleLog::new(4096), false).expect("serial");
        s.write(1, 0x02); // IER: THR empty interrupt on -> raised at once
        s.write(0, b'a');
        assert!(probe.read().expect("an interrupt was raised") >= 1);
    }

    #[test]
    fn log_is_bounded_and_keeps_the_end() {
        let mut log = ConsoleLog::new(1024);
        for i in 0..10_000u32 {
            log.push(format!("line {i}\n").as_bytes());
        }
        assert!(log.bytes().len() <= 1024);
        assert!(log.dropped() > 0);
        assert_eq!(log.tail(1), "line 9999");
        // Every register offset, any value: no panic.
        let mut s = Serial::new(None, ConsoleLog::new(1024), false).expect("serial");
        for off in 0..=255u8 {
            s.write(off, 0xff);
            let _ = s.read(off);
        }
    }
}
