//! The marker port: one byte per agent progress event, timestamped on the vCPU thread the moment
//! the guest's `out` exits to the VMM (host CLOCK_MONOTONIC).

use std::time::Instant;

/// The agent's marker byte for "the workload kernel begins" (`workloads::protocol::MarkerEvent::
/// WorkloadStart`; the VMM snapshots its exit counters and KVM's statistics there).
pub const WORKLOAD_START: u8 = 2;
/// The agent's marker byte for "the workload kernel ended" (`MarkerEvent::WorkloadEnd`).
pub const WORKLOAD_END: u8 = 3;
/// The marker bytes the agent protocol reserves for workload phases (`workloads::protocol::
/// PHASE_BYTES`): each announces that a phase begins, ending the one before. The VMM snapshots
/// its counters at them inside the workload window, whatever phase the byte names, so a new
/// phase needs no VMM change.
pub const PHASE_BYTES: std::ops::RangeInclusive<u8> = 16..=31;

/// Most events kept; a guest writing more is counted, not stored.
pub const MAX_MARKERS: usize = 256;

/// One marker write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MarkerEvent {
    /// The byte written.
    pub byte: u8,
    /// Nanoseconds since the VM's origin (host CLOCK_MONOTONIC).
    pub at_ns: u64,
}

/// The marker device.
#[derive(Debug)]
pub struct MarkerPort {
    port: u16,
    origin: Instant,
    events: Vec<MarkerEvent>,
    dropped: u64,
}

impl MarkerPort {
    /// A marker device on `port`; times are measured from `origin`.
    pub fn new(port: u16, origin: Instant) -> Self {
        Self {
            port,
            origin,
            events: Vec::new(),
            dropped: 0,
        }
    }

    /// The port it answers.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A guest write. Only single-byte writes are markers; anything else is dropped and counted.
    pub fn write(&mut self, data: &[u8]) {
        let at_ns = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match data {
            [byte] if self.events.len() < MAX_MARKERS => {
                self.events.push(MarkerEvent { byte: *byte, at_ns })
            }
            _ => self.dropped += 1,
        }
    }

    /// The events, in order.
    pub fn events(&self) -> &[MarkerEvent] {
        &self.events
    }

    /// Writes that were not kept (wrong size or over [`MAX_MARKERS`]).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The first time `byte` was written.
    pub fn first(&self, byte: u8) -> Option<u64> {
        self.events.iter().find(|e| e.byte == byte).map(|e| e.at_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_bytes_in_order_with_rising_times() {
        let mut m = MarkerPort::new(0x490, Instant::now());
        m.write(&[1]);
        m.write(&[2]);
        m.write(&[1, 2]);
        m.write(&[]);
        assert_eq!(
            m.events().iter().map(|e| e.byte).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(m.events()[0].at_ns <= m.events()[1].at_ns);
        assert_eq!(m.dropped(), 2);
        assert_eq!(m.first(2), Some(m.events()[1].at_ns));
        assert_eq!(m.first(9), None);
    }

    #[test]
    fn window_bytes_match_the_agent_protocol() {
        use workloads::protocol::MarkerEvent;
        assert_eq!(WORKLOAD_START, MarkerEvent::WorkloadStart.byte());
        assert_eq!(WORKLOAD_END, MarkerEvent::WorkloadEnd.byte());
        assert_eq!(PHASE_BYTES, workloads::protocol::PHASE_BYTES);
    }

    #[test]
    fn a_flood_is_bounded() {
        let mut m = MarkerPort::new(0x490, Instant::now());
        for i in 0..10_000u32 {
            m.write(&[i as u8]);
        }
        assert_eq!(m.events().len(), MAX_MARKERS);
        assert_eq!(m.dropped(), 10_000 - MAX_MARKERS as u64);
    }
}
