//! A minimal i8042 keyboard controller: enough for Linux's `reboot=k` (command 0xFE pulses the
//! reset line, which for the VMM means "the guest asked to stop") and for probes to see a sane,
//! idle controller instead of spinning on its status port.

use std::collections::VecDeque;

use super::{BusAction, I8042_COMMAND_PORT, I8042_DATA_PORT};

/// Status: output buffer full (a byte waits in the data port).
pub const SR_OBF: u8 = 0x01;
/// Status: system flag (self-test passed).
pub const SR_SYS: u8 = 0x04;
/// Status: last write was a command.
pub const SR_CMD: u8 = 0x08;
/// Status: keyboard not inhibited.
pub const SR_KEYLOCK: u8 = 0x10;

/// Command: read the controller configuration byte.
const CMD_READ_CTR: u8 = 0x20;
/// Command: write the controller configuration byte.
const CMD_WRITE_CTR: u8 = 0x60;
/// Command: controller self-test.
const CMD_SELF_TEST: u8 = 0xaa;
/// Command: keyboard interface test.
const CMD_KBD_TEST: u8 = 0xab;
/// Command: write the output port (bit 0 low = reset).
const CMD_WRITE_OUTP: u8 = 0xd1;
/// Command: pulse the reset line.
const CMD_RESET_CPU: u8 = 0xfe;

/// Most bytes kept for the guest to read.
const MAX_QUEUE: usize = 16;

/// The controller.
#[derive(Debug)]
pub struct I8042 {
    status: u8,
    control: u8,
    pending: Option<u8>,
    out: VecDeque<u8>,
    resets: u32,
}

impl Default for I8042 {
    fn default() -> Self {
        Self {
            status: SR_SYS | SR_KEYLOCK,
            control: 0x01 | 0x04, // keyboard interrupt on, system flag
            pending: None,
            out: VecDeque::new(),
            resets: 0,
        }
    }
}

impl I8042 {
    /// How many times the guest asked for a reset.
    pub fn resets(&self) -> u32 {
        self.resets
    }

    fn push(&mut self, b: u8) {
        if self.out.len() < MAX_QUEUE {
            self.out.push_back(b);
        }
    }

    /// A read of port 0x60 or 0x64 (others read as all ones).
    pub fn read(&mut self, port: u16) -> u8 {
        match port {
            I8042_COMMAND_PORT => {
                let obf = if self.out.is_empty() { 0 } else { SR_OBF };
                self.status | obf
            }
            I8042_DATA_PORT => self.out.pop_front().unwrap_or(0),
            _ => 0xff,
        }
    }

    /// A write of port 0x60 or 0x64.
    pub fn write(&mut self, port: u16, value: u8) -> BusAction {
        match port {
            I8042_COMMAND_PORT => {
                self.status |= SR_CMD;
                self.pending = None;
                match value {
                    CMD_RESET_CPU => {
                        self.resets = self.resets.saturating_add(1);
                        return BusAction::Reset;
                    }
                    CMD_READ_CTR => self.push(self.control),
                    CMD_WRITE_CTR | CMD_WRITE_OUTP => self.pending = Some(value),
                    CMD_SELF_TEST => self.push(0x55),
                    CMD_KBD_TEST => self.push(0x00),
                    _ => {}
                }
                BusAction::Continue
            }
            I8042_DATA_PORT => {
                self.status &= !SR_CMD;
                match self.pending.take() {
                    Some(CMD_WRITE_CTR) => self.control = value,
                    Some(CMD_WRITE_OUTP) if value & 1 == 0 => {
                        self.resets = self.resets.saturating_add(1);
                        return BusAction::Reset;
                    }
                    Some(_) => {}
                    // A byte for the keyboard itself: acknowledge it.
                    None => self.push(0xfa),
                }
                BusAction::Continue
            }
            _ => BusAction::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyboard_reset_asks_the_vmm_to_stop() {
        let mut k = I8042::default();
        // Linux's kb_wait() polls for an empty input buffer first: bit 1 must be clear.
        assert_eq!(k.read(0x64) & 0x02, 0);
        assert_eq!(k.write(0x64, 0xfe), BusAction::Reset);
        assert_eq!(k.resets(), 1);
    }

    #[test]
    fn controller_commands_answer_sensibly() {
        let mut k = I8042::default();
        assert_eq!(k.read(0x64) & SR_OBF, 0);
        k.write(0x64, CMD_SELF_TEST);
        assert_ne!(k.read(0x64) & SR_OBF, 0);
        assert_eq!(k.read(0x60), 0x55);
        assert_eq!(k.read(0x64) & SR_OBF, 0);
        k.write(0x64, CMD_WRITE_CTR);
        k.write(0x60, 0x47);
        k.write(0x64, CMD_READ_CTR);
        assert_eq!(k.read(0x60), 0x47);
        // Output port with the reset bit low resets too.
        k.write(0x64, CMD_WRITE_OUTP);
        assert_eq!(k.write(0x60, 0xfe), BusAction::Reset);
        // An empty data port reads 0.
        assert_eq!(k.read(0x60), 0);
    }

    #[test]
    fn a_flood_of_commands_stays_bounded() {
        let mut k = I8042::default();
        for _ in 0..1000 {
            k.write(0x64, CMD_SELF_TEST);
            k.write(0x60, 0x12);
        }
        assert!(k.out.len() <= MAX_QUEUE);
        assert_eq!(k.read(0x99), 0xff);
    }
}
