//! The guest kernel command line.

use crate::arch::x86_64::CMDLINE_MAX_SIZE;
use crate::error::{Result, VmError};

/// Options every isolab microVM gets: serial console, reboot through the i8042 (the VMM's stop
/// signal), reboot one second after a panic, no PCI, no PS/2 probing, one UART.
pub const MICROVM_BASE: &str =
    "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd 8250.nr_uarts=1";

/// A kernel command line under construction: space-separated words, each checked on the way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmdline {
    words: Vec<String>,
    capacity: usize,
}

impl Cmdline {
    /// An empty command line that may grow to `capacity` bytes (without the terminating NUL).
    pub fn new(capacity: usize) -> Self {
        Self {
            words: Vec::new(),
            capacity: capacity.min(CMDLINE_MAX_SIZE - 1),
        }
    }

    /// The microVM base options ([`MICROVM_BASE`]).
    pub fn microvm() -> Self {
        let mut c = Self::new(CMDLINE_MAX_SIZE - 1);
        for w in MICROVM_BASE.split_ascii_whitespace() {
            c.words.push(w.to_owned());
        }
        c
    }

    /// Appends words (space separated). Refuses NUL, control characters, non-ASCII and overflow.
    pub fn push(&mut self, text: &str) -> Result<&mut Self> {
        if let Some(c) = text
            .chars()
            .find(|c| !c.is_ascii() || (c.is_ascii_control() && *c != ' '))
        {
            return Err(VmError::Cmdline(format!(
                "{text:?} holds the character {c:?}; use printable ASCII only"
            )));
        }
        let new: Vec<String> = text.split_ascii_whitespace().map(str::to_owned).collect();
        let new_len: usize = new.iter().map(|w| w.len() + 1).sum();
        if self.len() + new_len > self.capacity {
            return Err(VmError::Cmdline(format!(
                "adding {} bytes would make it longer than the kernel's limit of {} bytes; shorten the spec or the extra options",
                new_len, self.capacity
            )));
        }
        self.words.extend(new);
        Ok(self)
    }

    /// Appends `key=value`.
    pub fn push_kv(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        if key.is_empty() || key.contains([' ', '=']) || value.contains(' ') {
            return Err(VmError::Cmdline(format!(
                "{key}={value} is not one word; keys and values may not hold spaces"
            )));
        }
        self.push(&format!("{key}={value}"))
    }

    /// Length in bytes, without the terminating NUL.
    pub fn len(&self) -> usize {
        self.as_string().len()
    }

    /// True when nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The command line as one string.
    pub fn as_string(&self) -> String {
        self.words.join(" ")
    }

    /// The bytes written to guest memory: the string and a terminating NUL.
    pub fn to_bytes_with_nul(&self) -> Vec<u8> {
        let mut b = self.as_string().into_bytes();
        b.push(0);
        b
    }
}

impl std::fmt::Display for Cmdline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_lets_the_guest_use_every_vcpu() {
        for w in MICROVM_BASE.split_ascii_whitespace() {
            assert!(
                w != "nosmp" && !w.starts_with("maxcpus=") && !w.starts_with("nr_cpus="),
                "{w} would hide vCPUs from the guest"
            );
        }
    }

    #[test]
    fn microvm_line_has_console_and_keyboard_reset() {
        let mut c = Cmdline::microvm();
        c.push_kv("isolab.marker", "port:0x490").expect("fits");
        let s = c.as_string();
        assert!(s.starts_with("console=ttyS0 reboot=k panic=1"));
        assert!(s.ends_with(" isolab.marker=port:0x490"));
        assert_eq!(c.to_bytes_with_nul().last(), Some(&0));
    }

    #[test]
    fn bad_text_and_overflow_are_refused() {
        let mut c = Cmdline::new(16);
        assert!(c.push("a\0b").is_err());
        assert!(c.push("caf\u{e9}").is_err());
        assert!(c.push_kv("a b", "c").is_err());
        c.push("0123456789").expect("fits");
        assert!(c.push("0123456789").is_err());
        assert_eq!(c.as_string(), "0123456789");
    }
}
