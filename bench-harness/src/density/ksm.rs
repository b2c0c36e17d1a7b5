//! Kernel samepage merging (KSM): `ksmd` scans memory that processes marked mergeable
//! (`madvise(MADV_MERGEABLE)`, what a VMM does with guest RAM), and maps pages with equal content
//! to one copy, copy-on-write. It matters for VMs, whose identical guest kernels it can share;
//! a native process or a container marks nothing mergeable, so KSM finds nothing of theirs.
//!
//! It is a host-wide setting (`/sys/kernel/mm/ksm/run`), so a density run that changes it
//! records the host's own value in its registry entry before writing, and puts it back when it
//! ends (also on Ctrl-C), or `isolab doctor --clean` does after a `kill -9`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Where KSM's knobs and counters are.
pub const KSM_DIR: &str = "/sys/kernel/mm/ksm";
/// The switch: 0 stopped, 1 running, 2 stopped and every merged page unmerged.
pub const KSM_RUN: &str = "/sys/kernel/mm/ksm/run";

/// What `--ksm` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KsmMode {
    /// Leave the host's setting as it is (recorded).
    Host,
    /// `run = 1` for the run.
    On,
    /// `run = 0` for the run (pages merged before stay merged).
    Off,
}

impl KsmMode {
    /// Parses `host`, `on` or `off`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "host" => Some(Self::Host),
            "on" => Some(Self::On),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    /// The value written to `run`, if any.
    pub fn run_value(self) -> Option<&'static str> {
        match self {
            Self::Host => None,
            Self::On => Some("1"),
            Self::Off => Some("0"),
        }
    }
}

/// KSM's switch and counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KsmState {
    /// `run`.
    pub run: u32,
    /// Shared pages in use (one copy each).
    pub pages_shared: u64,
    /// Mappings of those copies (the pages saved, roughly: sharing − shared).
    pub pages_sharing: u64,
    /// Full scans of all mergeable memory completed since KSM started.
    pub full_scans: u64,
}

fn read_u64(dir: &Path, name: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl KsmState {
    /// Reads this host's; `None` when the kernel has no KSM.
    pub fn read() -> Option<Self> {
        Self::read_at(Path::new(KSM_DIR))
    }

    /// Reads the files of `dir` (tests use a folder of their own).
    pub fn read_at(dir: &Path) -> Option<Self> {
        Some(Self {
            run: u32::try_from(read_u64(dir, "run")?).ok()?,
            pages_shared: read_u64(dir, "pages_shared").unwrap_or(0),
            pages_sharing: read_u64(dir, "pages_sharing").unwrap_or(0),
            full_scans: read_u64(dir, "full_scans").unwrap_or(0),
        })
    }
}

/// What KSM had done once it settled after instances started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KsmSettled {
    /// The counters at the end.
    pub state: KsmState,
    /// How long it took to settle (or the time given up after), ms.
    pub waited_ms: u64,
    /// Whether it settled: two full scans in a row changed `pages_sharing` by under 1%.
    pub settled: bool,
}

/// Waits until KSM settles (two consecutive full scans change `pages_sharing` by under 1%), at
/// most `limit`; `stop` ends the wait early (Ctrl-C). `None` when KSM is absent or not running.
pub fn settle(limit: Duration, stop: &dyn Fn() -> bool) -> Option<KsmSettled> {
    settle_at(Path::new(KSM_DIR), limit, Duration::from_millis(200), stop)
}

/// [`settle`] on the files of `dir`, polling every `every`.
pub fn settle_at(
    dir: &Path,
    limit: Duration,
    every: Duration,
    stop: &dyn Fn() -> bool,
) -> Option<KsmSettled> {
    let started = Instant::now();
    let first = KsmState::read_at(dir)?;
    if first.run != 1 {
        return None;
    }
    let mut last_scan = first.full_scans;
    let mut last_sharing: Option<u64> = None;
    let mut calm_scans = 0;
    let mut state = first;
    while started.elapsed() < limit && !stop() {
        std::thread::sleep(every);
        state = KsmState::read_at(dir).unwrap_or(state);
        if state.full_scans == last_scan {
            continue;
        }
        last_scan = state.full_scans;
        let calm = last_sharing.is_some_and(|prev| {
            let diff = prev.abs_diff(state.pages_sharing);
            diff * 100 <= prev.max(1)
        });
        calm_scans = if calm { calm_scans + 1 } else { 0 };
        last_sharing = Some(state.pages_sharing);
        if calm_scans >= 1 {
            return Some(KsmSettled {
                state,
                waited_ms: started.elapsed().as_millis() as u64,
                settled: true,
            });
        }
    }
    Some(KsmSettled {
        state,
        waited_ms: started.elapsed().as_millis() as u64,
        settled: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, run: u32, sharing: u64, scans: u64) {
        std::fs::write(dir.join("run"), format!("{run}\n")).expect("run");
        std::fs::write(dir.join("pages_shared"), "10\n").expect("shared");
        std::fs::write(dir.join("pages_sharing"), format!("{sharing}\n")).expect("sharing");
        std::fs::write(dir.join("full_scans"), format!("{scans}\n")).expect("scans");
    }

    #[test]
    fn modes_and_counters() {
        assert_eq!(KsmMode::parse("on"), Some(KsmMode::On));
        assert_eq!(KsmMode::On.run_value(), Some("1"));
        assert_eq!(KsmMode::Host.run_value(), None);
        assert_eq!(KsmMode::parse("yes"), None);
        let d = tempfile::tempdir().expect("dir");
        assert!(KsmState::read_at(d.path()).is_none(), "no KSM");
        write(d.path(), 1, 500, 3);
        let s = KsmState::read_at(d.path()).expect("state");
        assert_eq!(
            (s.run, s.pages_shared, s.pages_sharing, s.full_scans),
            (1, 10, 500, 3)
        );
    }

    #[test]
    fn settles_after_two_calm_full_scans_and_gives_up_at_the_limit() {
        let d = tempfile::tempdir().expect("dir");
        write(d.path(), 0, 0, 0);
        let never = || false;
        assert!(settle_at(d.path(), Duration::from_secs(1), Duration::ZERO, &never).is_none());
        // Scans that keep changing the count never settle.
        write(d.path(), 1, 100, 1);
        let dir = d.path().to_path_buf();
        let n = std::sync::atomic::AtomicU64::new(1);
        let moving = || {
            let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            write(&dir, 1, if k.is_multiple_of(2) { 100 } else { 200 }, k);
            false
        };
        let s =
            settle_at(d.path(), Duration::from_millis(50), Duration::ZERO, &moving).expect("ksm");
        assert!(!s.settled);
        // Two scans with the same count: settled.
        write(d.path(), 1, 100, 1);
        let m = std::sync::atomic::AtomicU64::new(1);
        let calm = || {
            let k = m.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            write(&dir, 1, 1000, k);
            false
        };
        let s = settle_at(d.path(), Duration::from_secs(5), Duration::ZERO, &calm).expect("ksm");
        assert!(s.settled, "{s:?}");
        assert_eq!(s.state.pages_sharing, 1000);
    }
}
