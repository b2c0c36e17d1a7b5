//! KVM's own per-vCPU statistics, read through `KVM_GET_STATS_FD` (Linux 5.14+): every exit KVM
//! handles in the kernel (`exits`, `io_exits`, `mmio_exits`, `halt_exits`, `irq_exits`,
//! `irq_injections`, ...) which the VMM's run loop never sees.
//!
//! The stats fd holds a binary file: a header ([`kvm_bindings::kvm_stats_header`]: flags, name_size, num_desc,
//! id_offset, desc_offset, data_offset), an id string, `num_desc` descriptors (16 bytes of
//! [`kvm_bindings::kvm_stats_desc`] then a NUL-padded name of `name_size` bytes) and the data block of u64
//! values, each descriptor's at `data_offset + desc.offset`. The layout is read once per fd; a
//! snapshot reads only the data block.
//!
//! The file comes from the kernel, but it is parsed as if it were hostile: every offset and size is
//! checked against the bytes actually read, so a garbled or truncated file gives an error, never a
//! panic or a read out of bounds.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

use kvm_bindings::{
    KVM_STATS_TYPE_CUMULATIVE, KVM_STATS_TYPE_INSTANT, KVM_STATS_TYPE_MASK, KVM_STATS_TYPE_PEAK,
};
use thiserror::Error;
use vmm_sys_util::ioctl::ioctl;
use vmm_sys_util::ioctl_io_nr;

/// `KVMIO`, the KVM ioctl type.
const KVMIO: u32 = 0xae;
ioctl_io_nr!(KVM_GET_STATS_FD, KVMIO, 0xce);

/// Size of the header (six u32).
const HEADER_SIZE: usize = 24;
/// Size of a descriptor without its name.
const DESC_FIXED_SIZE: usize = 16;
/// Most bytes read from a stats fd: x86 vCPUs have ~50 stats (a few KiB); anything far larger is
/// garbage.
const MAX_FILE_BYTES: usize = 1 << 20;
/// Most descriptors accepted.
const MAX_DESCRIPTORS: u32 = 4096;
/// Longest name field accepted (the kernel uses 48).
const MAX_NAME_SIZE: u32 = 256;

/// Why KVM's statistics could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KvmStatsError {
    /// The ioctl failed (kernels before 5.14 have no binary stats).
    #[error("KVM_GET_STATS_FD failed ({0}); the host kernel is older than 5.14 or its KVM offers no binary statistics: the report has only the VMM's own exit counts")]
    Unsupported(String),
    /// Reading the stats fd failed.
    #[error("reading KVM's statistics failed: {0}")]
    Read(String),
    /// The file does not have the layout the header promises.
    #[error(
        "KVM's statistics file is malformed: {0}; please report it with the host kernel version"
    )]
    Malformed(String),
}

/// How a statistic behaves over time (the descriptor's type bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatKind {
    /// A counter that only grows (exits, injections, nanoseconds spent): windows take differences.
    Cumulative,
    /// A current value (e.g. `guest_mode`): windows take the value at the end.
    Instant,
    /// A high-water mark: windows take the value at the end; vCPUs combine by maximum.
    Peak,
}

/// One statistic's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stat {
    /// The value (in the descriptor's unit; counts for the interesting ones).
    pub value: u64,
    /// How it behaves.
    pub kind: StatKind,
}

/// Statistics by name (histograms are left out: one value per name).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KvmStats(pub BTreeMap<String, Stat>);

impl KvmStats {
    /// A statistic's value, 0 when KVM does not offer it.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).map_or(0, |s| s.value)
    }

    /// The combination over vCPUs: counters and current values add up, peaks take the maximum.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a KvmStats>) -> KvmStats {
        let mut out = KvmStats::default();
        for stats in all {
            for (name, s) in &stats.0 {
                let e = out.0.entry(name.clone()).or_insert(Stat {
                    value: 0,
                    kind: s.kind,
                });
                e.value = match s.kind {
                    StatKind::Peak => e.value.max(s.value),
                    _ => e.value.saturating_add(s.value),
                };
            }
        }
        out
    }

    /// What happened between `start` and `end`: differences of counters, end values of the rest.
    /// A name missing at the start counts from zero.
    pub fn delta(start: &KvmStats, end: &KvmStats) -> KvmStats {
        KvmStats(
            end.0
                .iter()
                .map(|(name, s)| {
                    let value = match s.kind {
                        StatKind::Cumulative => s.value.saturating_sub(start.get(name)),
                        _ => s.value,
                    };
                    (name.clone(), Stat { value, ..*s })
                })
                .collect(),
        )
    }

    /// As JSON: `{name: value}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, s)| (k.clone(), serde_json::Value::from(s.value)))
                .collect(),
        )
    }
}

/// One scalar statistic's place in the data block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    kind: StatKind,
    /// Byte offset inside the data block.
    offset: usize,
}

/// The parsed layout of a stats file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsLayout {
    /// The id string (e.g. `kvm-1234/vcpu-0`).
    pub id: String,
    /// Offset of the data block in the file.
    data_offset: usize,
    /// Length of the data block the descriptors cover.
    data_len: usize,
    fields: Vec<Field>,
    /// Descriptors left out (histograms, unknown types).
    pub skipped: usize,
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    let b = buf.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl StatsLayout {
    /// Parses the header and descriptors of a whole stats file (`file` is everything read from
    /// offset 0 to the end).
    pub fn parse(file: &[u8]) -> Result<Self, KvmStatsError> {
        let bad = |m: String| KvmStatsError::Malformed(m);
        if file.len() < HEADER_SIZE {
            return Err(bad(format!(
                "{} bytes, shorter than the {HEADER_SIZE}-byte header",
                file.len()
            )));
        }
        let word = |i: usize| u32_at(file, i * 4).unwrap_or(0);
        let (name_size, num_desc, id_offset, desc_offset, data_offset) =
            (word(1), word(2), word(3), word(4), word(5));
        if name_size == 0 || name_size > MAX_NAME_SIZE {
            return Err(bad(format!(
                "name size {name_size} (expected 1..={MAX_NAME_SIZE})"
            )));
        }
        if num_desc > MAX_DESCRIPTORS {
            return Err(bad(format!(
                "{num_desc} descriptors (at most {MAX_DESCRIPTORS} expected)"
            )));
        }
        let name_size = name_size as usize;
        let id_offset = id_offset as usize;
        let id = file
            .get(id_offset..id_offset.saturating_add(name_size))
            .map(c_string)
            .ok_or_else(|| bad(format!("the id at {id_offset} lies past the end")))?;
        let desc_size = DESC_FIXED_SIZE + name_size;
        let desc_offset = desc_offset as usize;
        let descs_len = desc_size * num_desc as usize;
        let descs = file
            .get(desc_offset..desc_offset.saturating_add(descs_len))
            .ok_or_else(|| {
                bad(format!(
                    "{num_desc} descriptors of {desc_size} bytes at {desc_offset} do not fit in {} bytes",
                    file.len()
                ))
            })?;
        let data_offset = data_offset as usize;
        let data_len = file.len().checked_sub(data_offset).ok_or_else(|| {
            bad(format!(
                "the data block at {data_offset} lies past the end ({} bytes)",
                file.len()
            ))
        })?;
        let mut fields = Vec::new();
        let mut skipped = 0;
        let mut data_end = 0usize;
        for d in descs.chunks_exact(desc_size) {
            let flags = u32_at(d, 0).unwrap_or(0);
            let size = u16_at(d, 6).unwrap_or(0);
            let offset = u32_at(d, 8).unwrap_or(0) as usize;
            let name = c_string(&d[DESC_FIXED_SIZE..]);
            let end = offset.saturating_add(usize::from(size) * 8);
            if end > data_len {
                return Err(bad(format!(
                    "statistic {name:?} at data offset {offset} ({size} values) lies past the data block of {data_len} bytes"
                )));
            }
            data_end = data_end.max(end);
            let kind = match flags & KVM_STATS_TYPE_MASK {
                KVM_STATS_TYPE_CUMULATIVE => Some(StatKind::Cumulative),
                KVM_STATS_TYPE_INSTANT => Some(StatKind::Instant),
                KVM_STATS_TYPE_PEAK => Some(StatKind::Peak),
                // Histograms (linear, log) and types newer than this code.
                _ => None,
            };
            match kind {
                Some(kind) if size == 1 && !name.is_empty() => {
                    fields.push(Field { name, kind, offset })
                }
                _ => skipped += 1,
            }
        }
        Ok(Self {
            id,
            data_offset,
            data_len: data_end,
            fields,
            skipped,
        })
    }

    /// The values in a data block (the bytes at `data_offset`, as long as the descriptors need).
    pub fn values(&self, data: &[u8]) -> Result<KvmStats, KvmStatsError> {
        let mut out = KvmStats::default();
        for f in &self.fields {
            let value = u64_at(data, f.offset).ok_or_else(|| {
                KvmStatsError::Malformed(format!(
                    "the data block has {} bytes, statistic {:?} is at {}",
                    data.len(),
                    f.name,
                    f.offset
                ))
            })?;
            out.0.insert(
                f.name.clone(),
                Stat {
                    value,
                    kind: f.kind,
                },
            );
        }
        Ok(out)
    }

    /// Names of the scalar statistics.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }
}

/// A vCPU's (or VM's) stats fd with its layout.
#[derive(Debug)]
pub struct StatsFd {
    file: File,
    layout: StatsLayout,
}

impl StatsFd {
    /// Opens the statistics of a KVM vCPU or VM fd and reads their layout.
    pub fn open(kvm_fd: &impl AsRawFd) -> Result<Self, KvmStatsError> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and only returns a new fd (or -1); `kvm_fd`
        // is a live KVM vCPU or VM fd borrowed for the call.
        let fd = unsafe { ioctl(kvm_fd, KVM_GET_STATS_FD()) };
        if fd < 0 {
            return Err(KvmStatsError::Unsupported(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        // SAFETY: the ioctl just returned this fd to us and nothing else owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        let bytes = read_all(&file)?;
        let layout = StatsLayout::parse(&bytes)?;
        Ok(Self { file, layout })
    }

    /// The current values.
    pub fn read(&self) -> Result<KvmStats, KvmStatsError> {
        let mut data = vec![0u8; self.layout.data_len];
        let mut got = 0;
        while got < data.len() {
            let at = (self.layout.data_offset + got) as u64;
            match self.file.read_at(&mut data[got..], at) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(KvmStatsError::Read(e.to_string())),
            }
        }
        data.truncate(got);
        self.layout.values(&data)
    }

    /// The layout read when the fd was opened.
    pub fn layout(&self) -> &StatsLayout {
        &self.layout
    }
}

/// The whole file from offset 0 (bounded by [`MAX_FILE_BYTES`]).
fn read_all(file: &File) -> Result<Vec<u8>, KvmStatsError> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match file.read_at(&mut chunk, out.len() as u64) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() > MAX_FILE_BYTES {
                    return Err(KvmStatsError::Malformed(format!(
                        "more than {MAX_FILE_BYTES} bytes"
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(KvmStatsError::Read(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: usize = 48;

    /// A stats file as the kernel lays it out: header, id, descriptors, data.
    fn file(stats: &[(&str, u32, u16, u64)]) -> Vec<u8> {
        let desc_size = DESC_FIXED_SIZE + NAME;
        let id_offset = HEADER_SIZE;
        let desc_offset = id_offset + NAME;
        let data_offset = desc_offset + desc_size * stats.len();
        let mut b = Vec::new();
        for w in [
            0u32,
            NAME as u32,
            stats.len() as u32,
            id_offset as u32,
            desc_offset as u32,
            data_offset as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let mut id = b"kvm-1/vcpu-0".to_vec();
        id.resize(NAME, 0);
        b.extend_from_slice(&id);
        let mut offset = 0u32;
        for (name, flags, size, _) in stats {
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&0i16.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&offset.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            let mut n = name.as_bytes().to_vec();
            n.resize(NAME, 0);
            b.extend_from_slice(&n);
            offset += u32::from(*size) * 8;
        }
        for (_, _, size, value) in stats {
            for i in 0..u64::from(*size) {
                b.extend_from_slice(&(value + i).to_le_bytes());
            }
        }
        b
    }

    fn sample() -> Vec<u8> {
        file(&[
            ("exits", KVM_STATS_TYPE_CUMULATIVE, 1, 1000),
            ("halt_poll_success_hist", 3, 32, 7),
            ("io_exits", KVM_STATS_TYPE_CUMULATIVE, 1, 40),
            ("guest_mode", KVM_STATS_TYPE_INSTANT | 0x40, 1, 1),
            ("max_mmu_page_hash_collisions", KVM_STATS_TYPE_PEAK, 1, 3),
        ])
    }

    #[test]
    fn parses_what_the_kernel_writes() {
        let b = sample();
        let layout = StatsLayout::parse(&b).expect("parse");
        assert_eq!(layout.id, "kvm-1/vcpu-0");
        assert_eq!(layout.skipped, 1, "the histogram is left out");
        let data = &b[layout.data_offset..];
        let v = layout.values(data).expect("values");
        assert_eq!(v.get("exits"), 1000);
        assert_eq!(v.get("io_exits"), 40);
        assert_eq!(v.get("guest_mode"), 1);
        assert_eq!(v.0["guest_mode"].kind, StatKind::Instant);
        assert_eq!(v.get("nonexistent"), 0);
        assert_eq!(
            layout.names().collect::<Vec<_>>(),
            [
                "exits",
                "io_exits",
                "guest_mode",
                "max_mmu_page_hash_collisions"
            ]
        );
    }

    #[test]
    fn sums_and_windows() {
        let b = sample();
        let layout = StatsLayout::parse(&b).expect("parse");
        let start = layout.values(&b[layout.data_offset..]).expect("values");
        let mut end = start.clone();
        end.0.get_mut("exits").expect("exits").value = 1500;
        end.0
            .get_mut("max_mmu_page_hash_collisions")
            .expect("peak")
            .value = 9;
        let w = KvmStats::delta(&start, &end);
        assert_eq!(w.get("exits"), 500);
        assert_eq!(w.get("io_exits"), 0);
        assert_eq!(w.get("max_mmu_page_hash_collisions"), 9);
        let s = KvmStats::sum([&start, &end]);
        assert_eq!(s.get("exits"), 2500);
        assert_eq!(s.get("max_mmu_page_hash_collisions"), 9);
        // A counter that went backwards (a vCPU reset) gives 0, not a wrap.
        assert_eq!(KvmStats::delta(&end, &start).get("exits"), 0);
    }

    #[test]
    fn garbled_files_are_errors_not_panics() {
        let good = sample();
        // Every truncation.
        for len in 0..good.len() {
            let _ = StatsLayout::parse(&good[..len]);
        }
        // Every single-byte corruption of the header and the first descriptor, with extreme values.
        for at in 0..(HEADER_SIZE + NAME + DESC_FIXED_SIZE + 4) {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut b = good.clone();
                b[at] = v;
                if let Ok(layout) = StatsLayout::parse(&b) {
                    let data = b.get(layout.data_offset..).unwrap_or(&[]);
                    let _ = layout.values(data);
                    let _ = layout.values(&[]);
                }
            }
        }
        // Huge counts and offsets.
        let mut b = good.clone();
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(StatsLayout::parse(&b).is_err());
        let mut b = good.clone();
        b[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(StatsLayout::parse(&b).is_err());
        let mut b = good;
        b[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert!(StatsLayout::parse(&b).is_err());
        // A data block shorter than the descriptors promise.
        let b = sample();
        let layout = StatsLayout::parse(&b).expect("parse");
        assert!(layout.values(&b[layout.data_offset..][..8]).is_err());
    }

    #[test]
    fn a_real_vcpu_has_the_exit_counters_when_kvm_is_here() {
        // The format check against a real kernel; the HVM tests cover it in CI. Without /dev/kvm
        // (or with a KVM lacking binary stats) there is nothing to compare against.
        let Ok(kvm) = kvm_ioctls::Kvm::new() else {
            eprintln!("no /dev/kvm: real-stats check not run");
            return;
        };
        let vm = kvm.create_vm().expect("create a VM");
        let vcpu = vm.create_vcpu(0).expect("create a vCPU");
        match StatsFd::open(&vcpu) {
            Ok(fd) => {
                let names: Vec<&str> = fd.layout().names().collect();
                assert!(names.contains(&"exits"), "{names:?}");
                let v = fd.read().expect("read");
                assert!(v.0.contains_key("halt_exits"), "{v:?}");
            }
            Err(e @ KvmStatsError::Unsupported(_)) => eprintln!("{e}"),
            Err(e) => panic!("{e}"),
        }
    }
}
