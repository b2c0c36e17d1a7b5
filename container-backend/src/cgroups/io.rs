//! I/O accounting: bytes read and written to block devices (v1 blkio, v2 io). No limit is set:
//! I/O is measured, not throttled.
//!
//! On v1 with Linux 6.x the blkio byte counters only move on a device where some cgroup has a
//! throttling rule (the counting sits behind the throttling fast path), and setting a rule freezes
//! the device's queue, too slow for every start. So the runtime also reads the init's
//! `/proc/<pid>/io` before reaping it (storage bytes of the init and of every child it reaped)
//! and reports the larger of the two.

/// v1: bytes per device and direction, through the throttling layer (works with every I/O
/// scheduler, unlike `blkio.io_service_bytes` which needs CFQ/BFQ).
pub(crate) const V1_SERVICE_BYTES: &str = "blkio.throttle.io_service_bytes_recursive";
/// v2: one line per device with `rbytes=` and `wbytes=`.
pub(crate) const V2_STAT: &str = "io.stat";

/// Block I/O, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoBytes {
    /// Read from block devices.
    pub read: u64,
    /// Written to block devices.
    pub write: u64,
}

/// v1: lines `MAJ:MIN Read N`, `MAJ:MIN Write N`, ..., and a final `Total N` that we skip.
pub(crate) fn parse_v1(text: &str) -> IoBytes {
    let mut io = IoBytes::default();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(dev), Some(op), Some(n)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !dev.contains(':') {
            continue;
        }
        let n: u64 = n.parse().unwrap_or(0);
        match op {
            "Read" => io.read = io.read.saturating_add(n),
            "Write" => io.write = io.write.saturating_add(n),
            _ => {}
        }
    }
    io
}

/// v2: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`.
pub(crate) fn parse_v2(text: &str) -> IoBytes {
    let mut io = IoBytes::default();
    for field in text.split_ascii_whitespace() {
        if let Some(n) = field.strip_prefix("rbytes=") {
            io.read = io.read.saturating_add(n.parse().unwrap_or(0));
        } else if let Some(n) = field.strip_prefix("wbytes=") {
            io.write = io.write.saturating_add(n.parse().unwrap_or(0));
        }
    }
    io
}

/// `/proc/<pid>/io`: `read_bytes` and `write_bytes` are what reached the storage layer.
pub(crate) fn parse_proc_io(text: &str) -> IoBytes {
    let plain = text.replace(':', "");
    let kv = super::parse_flat_keyed(&plain);
    let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map_or(0, |&(_, v)| v);
    IoBytes {
        read: get("read_bytes"),
        write: get("write_bytes"),
    }
}

impl IoBytes {
    /// Field-wise maximum of two sources of the same quantity.
    pub fn max(self, other: Self) -> Self {
        Self {
            read: self.read.max(other.read),
            write: self.write.max(other.write),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_sums_devices_and_skips_total() {
        let t =
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:16 Read 1\n8:16 Write 0\nTotal 12289\n";
        assert_eq!(
            parse_v1(t),
            IoBytes {
                read: 4097,
                write: 8192
            }
        );
        assert_eq!(parse_v1("Total 0\n"), IoBytes::default());
    }

    #[test]
    fn proc_io_is_parsed() {
        let t = "rchar: 1\nwchar: 2\nsyscr: 0\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 4198400\ncancelled_write_bytes: 0\n";
        assert_eq!(
            parse_proc_io(t),
            IoBytes {
                read: 4096,
                write: 4198400
            }
        );
    }

    #[test]
    fn v2_sums_devices() {
        let t = "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n\
                 254:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(
            parse_v2(t),
            IoBytes {
                read: 101,
                write: 202
            }
        );
    }
}
