//! How specs and results travel between the harness and the agent.
//!
//! - **Spec in**: JSON, base64url-encoded without padding, so it survives a kernel command line
//!   (no spaces, no quotes) as well as an environment variable or an argument. The agent looks, in
//!   order, at `--spec B64`, `--spec-file PATH`, the `ISOLAB_SPEC` environment variable and (as
//!   PID 1) `isolab.spec=B64` in `/proc/cmdline`.
//! - **Result out**: one line `ISOLAB-RESULT:<version>:<len>:<fnv1a64 hex>:<base64url JSON>` on
//!   stdout (the serial console in a VM). Length and checksum let the harness reject a line a kernel
//!   message was interleaved into instead of parsing garbage; anything else on the stream is ignored.
//!   A VM may offer a result channel instead (`isolab.result=virtio-console` on the kernel command
//!   line, [`RESULT_CMDLINE_KEY`]): the agent then writes the same line to its virtio console
//!   ([`VM_RESULT_DEVICE`], one VM exit per page instead of one per byte on the serial port), and
//!   falls back to stdout when the kernel has no such device. The result's `route` says which way
//!   it went and why.
//! - **Markers**: one byte per [`MarkerEvent`], written to an inherited fd (`ISOLAB_MARKER=fd:N`,
//!   native and container) or to an I/O port (`ISOLAB_MARKER=port:0x490` or `isolab.marker=...` on
//!   the kernel command line, VM), so the host timestamps the agent's progress on its own clock.
//!   The bytes:
//!
//!   | byte | event |
//!   |---|---|
//!   | 1 | `AgentStart` |
//!   | 2 | `WorkloadStart` |
//!   | 3 | `WorkloadEnd` |
//!   | 4 | `ResultWritten` |
//!   | 5 | `Waiting` (the `wait` workload: working set in place, the agent waits to be told to exit) |
//!   | 16 | phase `prefill` begins |
//!   | 17 | phase `read` begins |
//!   | 18 | phase `write` begins |
//!
//!   Bytes [`PHASE_BYTES`] (16 to 31) are reserved for [`WorkloadPhase`]s: a workload whose
//!   operations differ (reads, then writes) announces the phase that begins now, between its
//!   `WorkloadStart` and `WorkloadEnd`. A phase ends at the next phase marker or at
//!   `WorkloadEnd`; time between `WorkloadStart` and the first phase belongs to none. The host
//!   may measure each phase on its own (the VMM snapshots its counters there). Every other byte
//!   means nothing: a reader ignores it.
//! - **Disk (VM)**: `isolab.disk=raw` or `isolab.disk=ext4` on the kernel command line points the
//!   I/O workloads at the VM's virtio-blk disk `/dev/vda` ([`VM_DISK_DEVICE`]): `raw` runs them
//!   on the device itself (O_DIRECT, as the workloads always do), `ext4` mounts the device (an
//!   ext4 image the host made with `mkfs.ext4`) at [`VM_DISK_MOUNT`] and runs them on a scratch
//!   file there, as a container does on its bind-mounted scratch directory. Any I/O path in the
//!   spec is replaced. Without the key the spec's path is used as it is.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use thiserror::Error;

use crate::result::WorkloadResult;
use crate::spec::{WorkloadSpec, PROTOCOL_VERSION};

/// Environment variable holding the encoded spec.
pub const SPEC_ENV: &str = "ISOLAB_SPEC";
/// Kernel command-line key holding the encoded spec (read from `/proc/cmdline` by a VM's init).
pub const SPEC_CMDLINE_KEY: &str = "isolab.spec";
/// Environment variable naming the marker sink: `fd:N` or `port:0xNNN`.
pub const MARKER_ENV: &str = "ISOLAB_MARKER";
/// Kernel command-line key naming the marker sink.
pub const MARKER_CMDLINE_KEY: &str = "isolab.marker";
/// The I/O port a VM agent writes markers to. Chosen because nothing on a microVM's ISA bus or in
/// Linux's probing uses it (0x80, the classic POST port, is avoided: Linux writes it for I/O delays).
pub const MARKER_PORT: u16 = 0x490;
/// Kernel command-line key choosing how a VM's I/O workloads use its disk ([`DiskMode`]).
pub const DISK_CMDLINE_KEY: &str = "isolab.disk";
/// Kernel command-line key giving a VM's network interface its address, `ADDR/PREFIX` (the
/// interface is [`VM_NET_INTERFACE`]; the peer is `.1` of the same /30 and in the spec).
pub const NET_CMDLINE_KEY: &str = "isolab.net";
/// The guest's virtio-net interface (the first one).
pub const VM_NET_INTERFACE: &str = "eth0";
/// The block device of a VM's virtio-blk disk (the first virtio disk).
pub const VM_DISK_DEVICE: &str = "/dev/vda";
/// Where `isolab.disk=ext4` mounts the disk (the same path a container's scratch directory has).
pub const VM_DISK_MOUNT: &str = "/scratch";
/// Kernel command-line key offering a VM's agent a result channel ([`RESULT_VIRTIO_CONSOLE`]).
pub const RESULT_CMDLINE_KEY: &str = "isolab.result";
/// The value of [`RESULT_CMDLINE_KEY`] for the virtio console.
pub const RESULT_VIRTIO_CONSOLE: &str = "virtio-console";
/// The guest device of the virtio console (its console port, an hvc tty).
pub const VM_RESULT_DEVICE: &str = "/dev/hvc0";
/// Where a VM's initramfs keeps kernel modules (a stock kernel's virtio drivers); its file
/// `order` names them in load order, and the agent as the VM's init loads them before anything
/// needs a device.
pub const VM_MODULES_DIR: &str = "/lib/modules/isolab";

/// How a VM's I/O workloads use its virtio-blk disk (`isolab.disk=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskMode {
    /// `raw`: the block device itself, O_DIRECT.
    Raw,
    /// `ext4`: a scratch file on the device mounted as ext4, O_DIRECT.
    Ext4,
}

impl DiskMode {
    /// Parses the value of `isolab.disk=`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "raw" => Some(Self::Raw),
            "ext4" => Some(Self::Ext4),
            _ => None,
        }
    }

    /// The command-line value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Ext4 => "ext4",
        }
    }
}

/// Prefix of the framed result line.
pub const RESULT_PREFIX: &str = "ISOLAB-RESULT:";

/// Progress events the agent announces, one byte each ([`MarkerEvent::byte`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerEvent {
    /// First instruction of the agent's `main`: the sandbox is up, the agent runs.
    AgentStart,
    /// The workload kernel begins.
    WorkloadStart,
    /// The workload kernel ended.
    WorkloadEnd,
    /// The result line has been written and flushed.
    ResultWritten,
    /// The `wait` workload (an instance of `isolab density`) has its working set in place and
    /// now waits until it is told to exit: the instance is ready. Sent after `ResultWritten`.
    Waiting,
    /// A phase of the workload begins (and the previous one, if any, ends).
    Phase(WorkloadPhase),
}

impl MarkerEvent {
    /// The event a marker byte stands for; `None` for a byte no agent sends (hostile or garbled).
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::AgentStart),
            2 => Some(Self::WorkloadStart),
            3 => Some(Self::WorkloadEnd),
            4 => Some(Self::ResultWritten),
            5 => Some(Self::Waiting),
            _ => WorkloadPhase::from_byte(byte).map(Self::Phase),
        }
    }

    /// The byte the agent writes.
    pub fn byte(self) -> u8 {
        match self {
            Self::AgentStart => 1,
            Self::WorkloadStart => 2,
            Self::WorkloadEnd => 3,
            Self::ResultWritten => 4,
            Self::Waiting => 5,
            Self::Phase(p) => p.byte(),
        }
    }

    /// Name used for timeline phases.
    pub fn name(self) -> &'static str {
        match self {
            Self::AgentStart => "agent_ready",
            Self::WorkloadStart => "workload_start",
            Self::WorkloadEnd => "workload_end",
            Self::ResultWritten => "result_written",
            Self::Waiting => "waiting",
            Self::Phase(WorkloadPhase::Prefill) => "phase_prefill",
            Self::Phase(WorkloadPhase::Read) => "phase_read",
            Self::Phase(WorkloadPhase::Write) => "phase_write",
            Self::Phase(WorkloadPhase::Verify) => "phase_verify",
        }
    }
}

/// Marker bytes reserved for [`WorkloadPhase`]s; the ones without a phase yet mean nothing.
pub const PHASE_BYTES: std::ops::RangeInclusive<u8> = 16..=31;

/// A part of a workload whose operations the host may count on their own: the I/O workloads
/// read and write in separate loops, and a figure "per 4 KiB read" needs the reads alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadPhase {
    /// Filling a scratch file before it is measured (not a timed operation).
    Prefill,
    /// Reads (`io-rand`'s random 4 KiB reads, `io-seq`'s sequential MiB reads).
    Read,
    /// Writes (`io-rand`'s random 4 KiB writes, `io-seq`'s sequential MiB writes with their
    /// fsync).
    Write,
    /// Reading back what was written to check it (`io-rand` with `verify`; not a measurement).
    Verify,
}

impl WorkloadPhase {
    /// Every phase, in byte order.
    pub const ALL: [WorkloadPhase; 4] = [Self::Prefill, Self::Read, Self::Write, Self::Verify];

    /// The marker byte announcing it, in [`PHASE_BYTES`].
    pub fn byte(self) -> u8 {
        match self {
            Self::Prefill => 16,
            Self::Read => 17,
            Self::Write => 18,
            Self::Verify => 19,
        }
    }

    /// The phase a marker byte announces; `None` for any other byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.byte() == byte)
    }

    /// Its name in metrics and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prefill => "prefill",
            Self::Read => "read",
            Self::Write => "write",
            Self::Verify => "verify",
        }
    }
}

/// Where the agent sends its markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerSink {
    /// An inherited file descriptor (a pipe the host reads and timestamps).
    Fd(i32),
    /// An x86 I/O port (a VM exit the VMM timestamps).
    Port(u16),
}

impl MarkerSink {
    /// Parses `fd:N` or `port:0xNNN` / `port:NNN`.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let bad = || ProtocolError::BadMarker(text.to_owned());
        if let Some(n) = text.strip_prefix("fd:") {
            let fd: i32 = n.parse().map_err(|_| bad())?;
            if fd < 0 {
                return Err(bad());
            }
            Ok(Self::Fd(fd))
        } else if let Some(p) = text.strip_prefix("port:") {
            let port = match p.strip_prefix("0x") {
                Some(hex) => u16::from_str_radix(hex, 16),
                None => p.parse(),
            }
            .map_err(|_| bad())?;
            Ok(Self::Port(port))
        } else {
            Err(bad())
        }
    }
}

/// Errors in encoding or decoding the protocol.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// The spec text is not base64url.
    #[error("the workload spec is not valid base64url ({0}); pass what `encode_spec` produced")]
    SpecEncoding(base64::DecodeError),
    /// The spec is not the JSON of a [`WorkloadSpec`].
    #[error("the workload spec is not valid: {0}")]
    SpecJson(serde_json::Error),
    /// The spec was made for another protocol version.
    #[error(
        "the workload spec uses protocol {found} but this agent speaks {expected}; \
         rebuild the agent and the harness from the same commit"
    )]
    VersionMismatch {
        /// Version in the spec or result.
        found: u32,
        /// Version this build speaks.
        expected: u32,
    },
    /// A marker sink description that is neither `fd:N` nor `port:N`.
    #[error("marker sink {0:?} is not `fd:N` or `port:0xNNN`")]
    BadMarker(String),
    /// A serialisation failure (should not happen for our own types).
    #[error("could not serialise: {0}")]
    Serialise(serde_json::Error),
}

/// Encodes a spec for the command line, an argument or the environment.
pub fn encode_spec(spec: &WorkloadSpec) -> Result<String, ProtocolError> {
    let json = serde_json::to_vec(spec).map_err(ProtocolError::Serialise)?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Decodes and version-checks a spec made by [`encode_spec`].
pub fn decode_spec(text: &str) -> Result<WorkloadSpec, ProtocolError> {
    let json = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(ProtocolError::SpecEncoding)?;
    // Check the version before the shape, so an old agent says "rebuild" instead of a field error.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&json) {
        if let Some(found) = value.get("protocol").and_then(|v| v.as_u64()) {
            if found != u64::from(PROTOCOL_VERSION) {
                return Err(ProtocolError::VersionMismatch {
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                    expected: PROTOCOL_VERSION,
                });
            }
        }
    }
    serde_json::from_slice(&json).map_err(ProtocolError::SpecJson)
}

/// FNV-1a, 64 bit: a checksum to catch interleaved console output, not a security measure.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Renders the one result line (with a trailing newline).
pub fn frame_result(result: &WorkloadResult) -> Result<String, ProtocolError> {
    let json = serde_json::to_vec(result).map_err(ProtocolError::Serialise)?;
    Ok(format!(
        "{RESULT_PREFIX}{PROTOCOL_VERSION}:{}:{:016x}:{}\n",
        json.len(),
        fnv1a64(&json),
        URL_SAFE_NO_PAD.encode(&json)
    ))
}

/// Why a framed result could not be taken from an output stream.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// No line carried the result prefix: the agent died before reporting.
    #[error("the agent printed no result line")]
    Missing,
    /// A result line was there but damaged (interleaved output, truncation).
    #[error("the agent's result line is damaged: {0}")]
    Damaged(String),
    /// The result was made by an agent of another protocol version.
    #[error(
        "the agent speaks protocol {found}, this harness {expected}; rebuild both from one commit"
    )]
    Version {
        /// Version in the line.
        found: String,
        /// Version of this build.
        expected: u32,
    },
}

/// Finds and checks the last framed result in an output stream that may hold other text (kernel
/// messages, workload chatter). Every field is validated: the stream may come from a hostile guest.
pub fn parse_framed_result(output: &str) -> Result<WorkloadResult, FrameError> {
    let mut last_error = FrameError::Missing;
    for line in output.lines().rev() {
        let Some(start) = line.find(RESULT_PREFIX) else {
            continue;
        };
        match parse_frame_line(line[start + RESULT_PREFIX.len()..].trim_end()) {
            Ok(result) => return Ok(result),
            // A damaged late line may be followed (earlier in the stream) by nothing usable;
            // remember the first reason we saw, which is the most recent line's.
            Err(e) => {
                if last_error == FrameError::Missing {
                    last_error = e;
                }
            }
        }
    }
    Err(last_error)
}

fn parse_frame_line(rest: &str) -> Result<WorkloadResult, FrameError> {
    let damaged = |what: &str| FrameError::Damaged(what.to_owned());
    let mut fields = rest.splitn(4, ':');
    let version = fields.next().ok_or_else(|| damaged("no version"))?;
    if version != PROTOCOL_VERSION.to_string() {
        return Err(FrameError::Version {
            found: version.chars().take(16).collect(),
            expected: PROTOCOL_VERSION,
        });
    }
    let len: usize = fields
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| damaged("bad length"))?;
    let sum = fields
        .next()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| damaged("bad checksum field"))?;
    let payload = fields.next().ok_or_else(|| damaged("no payload"))?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|e| FrameError::Damaged(format!("payload is not base64url: {e}")))?;
    if json.len() != len {
        return Err(FrameError::Damaged(format!(
            "payload is {} bytes, header says {len}",
            json.len()
        )));
    }
    if fnv1a64(&json) != sum {
        return Err(damaged("checksum mismatch"));
    }
    let result: WorkloadResult = serde_json::from_slice(&json)
        .map_err(|e| FrameError::Damaged(format!("payload is not a result: {e}")))?;
    if result.protocol != PROTOCOL_VERSION {
        return Err(FrameError::Version {
            found: result.protocol.to_string(),
            expected: PROTOCOL_VERSION,
        });
    }
    Ok(result)
}

/// The value of `key=` in a kernel command line, if present.
pub fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_ascii_whitespace().find_map(|word| {
        word.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{AgentClock, Metric, Outcome};
    use crate::spec::Workload;

    fn sample_result() -> WorkloadResult {
        WorkloadResult {
            protocol: PROTOCOL_VERSION,
            workload: "noop".into(),
            outcome: Outcome::Ok,
            metrics: vec![Metric::lower("x", "ns", 1.5)],
            inspect: None,
            clock: AgentClock::default(),
            memory_inside: None,
            was_pid1: false,
            route: None,
        }
    }

    #[test]
    fn spec_round_trips_and_has_no_spaces_or_quotes() {
        let spec = WorkloadSpec::new(Workload::default_of_kind("io-rand").unwrap());
        let text = encode_spec(&spec).unwrap();
        assert!(!text.contains([' ', '"', '\'', '=']));
        assert_eq!(decode_spec(&text).unwrap(), spec);
    }

    #[test]
    fn spec_of_another_version_is_refused_with_advice() {
        let json = br#"{"protocol":99,"workload":{"kind":"noop"}}"#;
        let err = decode_spec(&URL_SAFE_NO_PAD.encode(json)).unwrap_err();
        assert!(err.to_string().contains("rebuild"), "{err}");
    }

    #[test]
    fn framed_result_is_found_among_kernel_noise() {
        let line = frame_result(&sample_result()).unwrap();
        let stream = format!(
            "[    0.1] booting\r\nnoise\n{}[    1.0] reboot: Restarting\n",
            line
        );
        assert_eq!(parse_framed_result(&stream).unwrap(), sample_result());
    }

    #[test]
    fn damaged_frames_are_rejected_not_misparsed() {
        let line = frame_result(&sample_result()).unwrap();
        // A kernel message spliced into the payload.
        let mid = line.len() / 2 + 20;
        let spliced = format!("{}[ 3.1] virtio_blk{}", &line[..mid], &line[mid..]);
        assert!(matches!(
            parse_framed_result(&spliced),
            Err(FrameError::Damaged(_))
        ));
        // Truncated.
        assert!(matches!(
            parse_framed_result(&line[..line.len() - 10]),
            Err(FrameError::Damaged(_))
        ));
        assert_eq!(
            parse_framed_result("nothing here"),
            Err(FrameError::Missing)
        );
        assert!(matches!(
            parse_framed_result("ISOLAB-RESULT:7:1:0:AA"),
            Err(FrameError::Version { .. })
        ));
        assert!(matches!(
            parse_framed_result("ISOLAB-RESULT:1:99999999999999999999:zz:"),
            Err(FrameError::Damaged(_))
        ));
    }

    #[test]
    fn marker_sinks_parse() {
        assert_eq!(MarkerSink::parse("fd:3").unwrap(), MarkerSink::Fd(3));
        assert_eq!(
            MarkerSink::parse("port:0x490").unwrap(),
            MarkerSink::Port(0x490)
        );
        assert_eq!(
            MarkerSink::parse("port:1168").unwrap(),
            MarkerSink::Port(1168)
        );
        assert!(MarkerSink::parse("fd:-1").is_err());
        assert!(MarkerSink::parse("tty").is_err());
    }

    #[test]
    fn marker_bytes_round_trip_and_unknown_bytes_mean_nothing() {
        let known: Vec<u8> = (0..=255u8)
            .filter(|&b| match MarkerEvent::from_byte(b) {
                Some(e) => {
                    assert_eq!(e.byte(), b);
                    true
                }
                None => false,
            })
            .collect();
        assert_eq!(known, [1, 2, 3, 4, 5, 16, 17, 18, 19]);
        for p in WorkloadPhase::ALL {
            assert!(PHASE_BYTES.contains(&p.byte()), "{p:?}");
            assert_eq!(WorkloadPhase::from_byte(p.byte()), Some(p));
            assert_eq!(
                MarkerEvent::from_byte(p.byte()),
                Some(MarkerEvent::Phase(p))
            );
        }
        // Reserved phase bytes without a phase, and the rest, are nobody's.
        for b in [0, 6, 15, 20, 31, 32, 255] {
            assert_eq!(MarkerEvent::from_byte(b), None, "{b}");
            assert_eq!(WorkloadPhase::from_byte(b), None, "{b}");
        }
        let names: std::collections::HashSet<&str> = known
            .iter()
            .filter_map(|&b| MarkerEvent::from_byte(b))
            .map(MarkerEvent::name)
            .collect();
        assert_eq!(names.len(), known.len(), "names are distinct");
    }

    #[test]
    fn cmdline_values_are_found_by_exact_key() {
        let c = "console=ttyS0 isolab.spec=abc isolab.specx=no isolab.marker=port:0x490";
        assert_eq!(cmdline_value(c, "isolab.spec"), Some("abc"));
        assert_eq!(cmdline_value(c, "isolab.marker"), Some("port:0x490"));
        assert_eq!(cmdline_value(c, "missing"), None);
    }
}
