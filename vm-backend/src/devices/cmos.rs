//! The CMOS RTC (ports 0x70/0x71): the host's UTC time in BCD, never "update in progress".
//!
//! BCD, not binary: Linux on x86 defines `RTC_ALWAYS_BCD` and decodes the clock registers as BCD
//! whatever status register B says.
//!
//! Without it a Linux guest reads all ones, believes an update is forever in progress, and polls
//! the port tens of thousands of times (each a VM exit) before giving up on the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Index port.
pub const CMOS_INDEX_PORT: u16 = 0x70;
/// Data port.
pub const CMOS_DATA_PORT: u16 = 0x71;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_STATUS_A: u8 = 0x0a;
const REG_STATUS_B: u8 = 0x0b;
const REG_STATUS_C: u8 = 0x0c;
const REG_STATUS_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;

/// Status A: 32.768 kHz time base, 1024 Hz rate, update-in-progress clear.
const STATUS_A: u8 = 0x26;
/// Status B: 24-hour clock, BCD values.
const STATUS_B: u8 = 0x02;
/// Status D: valid RAM and time.
const STATUS_D: u8 = 0x80;

/// Calendar fields of a UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Full year, e.g. 2026.
    pub year: u32,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
    /// 1 (Sunday) ..= 7.
    pub weekday: u8,
}

/// UTC calendar fields for seconds since the Unix epoch (Howard Hinnant's civil-from-days).
pub fn civil_from_unix(secs: u64) -> CivilTime {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
    CivilTime {
        year,
        month,
        day,
        hour: (rem / 3600) as u8,
        minute: ((rem / 60) % 60) as u8,
        second: (rem % 60) as u8,
        // 1970-01-01 was a Thursday (5 with Sunday = 1).
        weekday: ((days + 4).rem_euclid(7) + 1) as u8,
    }
}

/// The RTC and its 128 bytes of CMOS RAM.
#[derive(Debug)]
pub struct Cmos {
    index: u8,
    ram: [u8; 128],
    clock: fn() -> u64,
}

/// Binary-coded decimal of a value below 100.
pub fn bcd(v: u8) -> u8 {
    ((v / 10 % 10) << 4) | (v % 10)
}

fn host_unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Default for Cmos {
    fn default() -> Self {
        Self::with_clock(host_unix_time)
    }
}

impl Cmos {
    /// An RTC that reads the time from `clock` (seconds since the epoch).
    pub fn with_clock(clock: fn() -> u64) -> Self {
        Self {
            index: 0,
            ram: [0; 128],
            clock,
        }
    }

    /// A guest read of 0x70 or 0x71.
    pub fn read(&mut self, port: u16) -> u8 {
        if port != CMOS_DATA_PORT {
            return 0xff;
        }
        let t = civil_from_unix((self.clock)());
        match self.index {
            REG_SECONDS => bcd(t.second),
            REG_MINUTES => bcd(t.minute),
            REG_HOURS => bcd(t.hour),
            REG_WEEKDAY => bcd(t.weekday),
            REG_DAY => bcd(t.day),
            REG_MONTH => bcd(t.month),
            REG_YEAR => bcd((t.year % 100) as u8),
            REG_CENTURY => bcd((t.year / 100 % 100) as u8),
            REG_STATUS_A => STATUS_A,
            REG_STATUS_B => STATUS_B,
            REG_STATUS_C => 0,
            REG_STATUS_D => STATUS_D,
            i => self.ram[usize::from(i & 0x7f)],
        }
    }

    /// A guest write of 0x70 (select a register; bit 7 is the NMI mask) or 0x71.
    pub fn write(&mut self, port: u16, value: u8) {
        match port {
            CMOS_INDEX_PORT => self.index = value & 0x7f,
            CMOS_DATA_PORT => match self.index {
                // The clock and status registers are the host's: writes are ignored.
                0x00..=0x0d | REG_CENTURY => {}
                i => self.ram[usize::from(i & 0x7f)] = value,
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_are_right() {
        let t = civil_from_unix(0);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.weekday),
            (1970, 1, 1, 0, 5)
        );
        // 2026-11-26 07:00:00 UTC, a Thursday.
        let t = civil_from_unix(1_795_676_400);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2026, 11, 26, 7, 0, 0)
        );
        assert_eq!(t.weekday, 5);
        // Leap day.
        let t = civil_from_unix(951_782_400);
        assert_eq!((t.year, t.month, t.day), (2000, 2, 29));
    }

    #[test]
    fn guest_sees_time_and_no_update_in_progress() {
        let mut c = Cmos::with_clock(|| 1_795_676_400 + 3 * 3600 + 25 * 60 + 9);
        let mut reg = |r: u8| {
            c.write(CMOS_INDEX_PORT, r | 0x80);
            c.read(CMOS_DATA_PORT)
        };
        assert_eq!(reg(REG_STATUS_A) & 0x80, 0, "UIP clear");
        assert_eq!(reg(REG_STATUS_B) & 0x06, 0x02, "BCD, 24h");
        assert_eq!(
            (reg(REG_HOURS), reg(REG_MINUTES), reg(REG_SECONDS)),
            (0x10, 0x25, 0x09)
        );
        assert_eq!(
            (
                reg(REG_YEAR),
                reg(REG_CENTURY),
                reg(REG_MONTH),
                reg(REG_DAY)
            ),
            (0x26, 0x20, 0x11, 0x26)
        );
    }

    #[test]
    fn ram_is_writable_clock_is_not() {
        let mut c = Cmos::with_clock(|| 0);
        c.write(CMOS_INDEX_PORT, 0x40);
        c.write(CMOS_DATA_PORT, 0xab);
        assert_eq!(c.read(CMOS_DATA_PORT), 0xab);
        c.write(CMOS_INDEX_PORT, REG_SECONDS);
        c.write(CMOS_DATA_PORT, 42);
        assert_eq!(c.read(CMOS_DATA_PORT), 0);
        assert_eq!(c.read(CMOS_INDEX_PORT), 0xff);
        for i in 0..=255u8 {
            c.write(CMOS_INDEX_PORT, i);
            c.write(CMOS_DATA_PORT, i);
            let _ = c.read(CMOS_DATA_PORT);
        }
    }
}
