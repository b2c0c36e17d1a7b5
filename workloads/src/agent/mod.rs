//! The agent's duties around a workload: finding its spec ([`spec_source`]), announcing progress
//! ([`marker`]), PID-1 housekeeping ([`pid1`]) and reporting ([`report`]). The binary
//! `isolab-agent` only calls [`main`].
//!
//! The same code path runs natively, as a container's PID 1 and as a VM's `/init`. As PID 1 it
//! must never panic or return (either would take the kernel down in a VM), so every failure becomes
//! an error result and the agent always ends through [`pid1::shutdown`].

pub mod marker;
pub mod netif;
pub mod pid1;
pub mod report;
pub mod spec_source;

use std::ffi::OsString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use thiserror::Error;

use crate::kernels;
use crate::protocol::{
    cmdline_value, DiskMode, MarkerEvent, ProtocolError, DISK_CMDLINE_KEY, NET_CMDLINE_KEY,
    VM_NET_INTERFACE,
};
use crate::result::{AgentClock, Outcome, WorkloadResult};
use crate::spec::PROTOCOL_VERSION;
use marker::Marker;
use report::ResultSink;

/// Exit code: the workload ran and reported.
pub const EXIT_OK: i32 = 0;
/// Exit code: the workload failed (the result line says why).
pub const EXIT_WORKLOAD_FAILED: i32 = 2;
/// Exit code: no spec, an unreadable spec, or bad arguments.
pub const EXIT_BAD_SPEC: i32 = 3;

/// The workload name reported when no spec could be read.
const UNKNOWN_WORKLOAD: &str = "unknown";

const USAGE: &str = "\
isolab-agent: runs one isolab workload and prints one framed result line on stdout.

usage: isolab-agent [--spec B64 | --spec-file PATH]
       isolab-agent --exit-immediately   (exit 0 at once: the child of the `spawn` workload)
       isolab-agent --peer PORT          (the network workloads' peer: `isolab run` starts it in
                                          its lab network namespace; brings `lo` up, listens on
                                          0.0.0.0:PORT for TCP and UDP (0: any free
                                          port), prints `ready PORT`, serves
                                          until its stdin closes)
       isolab-agent --help

The spec (base64url JSON made by workloads::protocol::encode_spec) is taken from --spec,
--spec-file, the ISOLAB_SPEC environment variable or, as PID 1, `isolab.spec=` on the kernel
command line. Markers go to ISOLAB_MARKER (`fd:N` or `port:0xNNN`) or `isolab.marker=`.
Exit codes: 0 ok, 2 the workload failed, 3 no or invalid spec.";

/// Why the agent could not run a workload.
#[derive(Debug, Error)]
pub enum AgentError {
    /// An argument the agent does not know.
    #[error("unknown argument {0:?}; run `isolab-agent --help` for the usage")]
    UnknownArgument(String),
    /// An option given without its value.
    #[error("{0} needs a value; run `isolab-agent --help` for the usage")]
    MissingValue(&'static str),
    /// No spec anywhere.
    #[error(
        "no workload spec: pass --spec B64 or --spec-file PATH, set ISOLAB_SPEC, or (as PID 1) put \
         isolab.spec=B64 on the kernel command line; the harness makes B64 with \
         workloads::protocol::encode_spec"
    )]
    NoSpec,
    /// The spec file could not be read.
    #[error("cannot read the spec file {path}: {source}; pass a readable file")]
    SpecFile {
        /// The path given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A spec was found but does not decode.
    #[error("the spec from {origin} is unusable: {source}")]
    BadSpec {
        /// Where it came from (`--spec`, `ISOLAB_SPEC`, ...).
        origin: &'static str,
        /// Why it does not decode.
        source: ProtocolError,
    },
    /// The result line could not be made or written.
    #[error("cannot write the result line to stdout: {0}; keep the agent's stdout open")]
    Report(String),
}

/// The argument that makes the agent the network workloads' peer.
pub const PEER_FLAG: &str = "--peer";

/// `--peer PORT`: the peer server. Returns the exit code when it cannot serve; serves until its
/// stdin closes (the harness holds the other end, so the peer ends with the harness).
fn run_peer(port: Option<OsString>) -> i32 {
    let Some(port) = port.and_then(|p| p.to_str().and_then(|p| p.parse::<u16>().ok())) else {
        eprintln!("isolab-agent: --peer needs a port number");
        return EXIT_BAD_SPEC;
    };
    // The lab namespace is fresh: its loopback starts down.
    let up = libc::IFF_UP as libc::c_short;
    if let Err(e) = kernels::net_loopback::loopback_flags(None).and_then(|f| {
        if f & up == 0 {
            kernels::net_loopback::loopback_flags(Some(f | up))
        } else {
            Ok(f)
        }
    }) {
        eprintln!("isolab-agent: cannot bring `lo` up in the peer's namespace: {e}");
        return EXIT_WORKLOAD_FAILED;
    }
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], port));
    let (tcp, udp) = match kernels::net::peer::bind(addr) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("isolab-agent: the peer cannot listen on {addr}: {e}");
            return EXIT_WORKLOAD_FAILED;
        }
    };
    let port = tcp.local_addr().map_or(port, |a| a.port());
    std::thread::spawn(move || kernels::net::peer::serve(tcp, udp));
    println!("ready {port}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    EXIT_OK
}

/// CLOCK_MONOTONIC in nanoseconds; 0 if the clock cannot be read (it always can on Linux).
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

/// The agent's entry point. Never returns: exits, or as PID 1 powers the sandbox off.
pub fn main() -> ! {
    let agent_start_ns = monotonic_ns();
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    // Before anything else, markers included: the `spawn` child must be as cheap as a process can
    // be, and must not announce itself on the parent's marker pipe.
    if first.as_deref() == Some(kernels::spawn::EXIT_IMMEDIATELY.as_ref()) {
        std::process::exit(EXIT_OK);
    }
    if first.as_deref() == Some(PEER_FLAG.as_ref()) {
        std::process::exit(run_peer(args.next()));
    }
    let args: Vec<OsString> = first.into_iter().chain(args).collect();

    let pid1 = nix::unistd::getpid().as_raw() == 1;
    let mut warnings = Vec::new();
    if pid1 {
        // The marker sink may be on the kernel command line, which needs /proc.
        pid1::mount_proc(&mut warnings);
    }
    let marker = Marker::from_environment(pid1, &mut warnings);
    marker.send(MarkerEvent::AgentStart);

    let code = match catch_unwind(AssertUnwindSafe(|| {
        run(&args, pid1, agent_start_ns, &marker, &mut warnings)
    })) {
        Ok(code) => code,
        // The panic message is already on stderr (default hook); what matters now is to end the
        // sandbox cleanly instead of unwinding out of init.
        Err(_) => EXIT_WORKLOAD_FAILED,
    };
    if pid1 {
        pid1::shutdown(code)
    }
    std::process::exit(code)
}

fn run(
    raw_args: &[OsString],
    pid1: bool,
    agent_start_ns: u64,
    marker: &Marker,
    warnings: &mut Vec<String>,
) -> i32 {
    let mut sink = ResultSink::stdout();
    let args = match spec_source::parse_args(raw_args) {
        Ok(a) => a,
        Err(e) => return fail_without_spec(&e, agent_start_ns, pid1, marker, &sink),
    };
    if args.help {
        println!("{USAGE}");
        return EXIT_OK;
    }
    if !args.unknown.is_empty() {
        // The kernel hands init every command-line word it does not know; as PID 1 those are
        // expected and harmless, anywhere else they are a mistake.
        let e = AgentError::UnknownArgument(args.unknown.join(" "));
        if pid1 {
            warnings.push(e.to_string());
        } else {
            return fail_without_spec(&e, agent_start_ns, pid1, marker, &sink);
        }
    }
    // A stock kernel's drivers (virtio) come as modules in a VM's initramfs: load them before
    // anything needs a device. A failure is a warning here and part of the error of a workload
    // that then lacks its disk.
    let mut module_failures = Vec::new();
    let cmdline = if pid1 {
        std::fs::read_to_string("/proc/cmdline").unwrap_or_default()
    } else {
        String::new()
    };
    if pid1 {
        pid1::setup(warnings);
        module_failures = pid1::load_modules();
        warnings.extend(module_failures.iter().cloned());
        // A VM may offer a result channel (its console driver may be one of the modules just
        // loaded); opened now, for the whole run.
        sink = ResultSink::offered(&cmdline);
        if let Some(why) = sink.route().fallback {
            warnings.push(format!("the result goes to the serial console: {why}"));
        }
    }
    for w in warnings.drain(..) {
        eprintln!("isolab-agent: warning: {w}");
    }

    let mut spec = match spec_source::find_spec(&args, pid1) {
        Ok(s) => s,
        Err(e) => return fail_without_spec(&e, agent_start_ns, pid1, marker, &sink),
    };
    // A VM's disk (isolab.disk=raw|ext4): point the I/O workloads at it. A disk that cannot be
    // prepared becomes the workload's error below, so the harness learns why.
    let mut disk_error = None;
    if pid1 && spec.workload.io_path().is_some() {
        if let Some(value) = cmdline_value(&cmdline, DISK_CMDLINE_KEY) {
            match DiskMode::parse(value) {
                Some(mode) => match pid1::prepare_disk(mode) {
                    Ok(path) => spec.workload.set_io_path(path),
                    Err(e) if module_failures.is_empty() => disk_error = Some(e),
                    Err(e) => disk_error = Some(format!("{e}; {}", module_failures.join("; "))),
                },
                None => {
                    disk_error = Some(format!(
                    "{DISK_CMDLINE_KEY}={value} is not `raw` or `ext4`; fix the VM's command line"
                ))
                }
            }
        }
    }

    // A VM's network interface (isolab.net=ADDR/PREFIX): set up before a network workload.
    if pid1 && disk_error.is_none() && spec.workload.peer().is_some() {
        if let Some(value) = cmdline_value(&cmdline, NET_CMDLINE_KEY) {
            if let Err(e) = netif::configure_from(value, VM_NET_INTERFACE) {
                disk_error = Some(if module_failures.is_empty() {
                    e
                } else {
                    format!("{e}; {}", module_failures.join("; "))
                });
            }
        }
    }

    let workload = spec.workload.kind();
    marker.send(MarkerEvent::WorkloadStart);
    let workload_start_ns = monotonic_ns();
    let outcome = match disk_error {
        Some(e) => Ok(Err(e)),
        None => catch_unwind(AssertUnwindSafe(|| {
            kernels::run(&spec.workload, &|phase| {
                marker.send(MarkerEvent::Phase(phase))
            })
            .map_err(|e| e.to_string())
        })),
    };
    let workload_end_ns = monotonic_ns();
    marker.send(MarkerEvent::WorkloadEnd);

    let (outcome, metrics, inspect, held) = match outcome {
        Ok(Ok(out)) => (Outcome::Ok, out.metrics, out.inspect, out.held),
        Ok(Err(e)) => (error(e), Vec::new(), None, None),
        Err(panic) => (
            error(format!(
                "the workload panicked: {}; this is a bug in the agent, please report it",
                panic_text(&*panic)
            )),
            Vec::new(),
            None,
            None,
        ),
    };
    let failed = outcome != Outcome::Ok;
    if let Outcome::Error { message } = &outcome {
        eprintln!("isolab-agent: workload {workload} failed: {message}");
    }
    let result = WorkloadResult {
        protocol: PROTOCOL_VERSION,
        workload: workload.to_owned(),
        outcome,
        metrics,
        inspect,
        clock: AgentClock {
            agent_start_ns,
            workload_start_ns,
            workload_end_ns,
        },
        memory_inside: kernels::inspect::read_meminfo(),
        was_pid1: pid1,
        route: Some(sink.route()),
    };
    emit(&result, marker, &sink);
    // A density instance (`wait`): ready now; the working set stays until it is told to exit.
    if let Some(working_set) = held {
        marker.send(MarkerEvent::Waiting);
        // How it was told (a signal, or the end of stdin) changes nothing: it exits cleanly.
        let _ = kernels::wait::until_told_to_exit();
        drop(working_set);
    }
    if failed {
        EXIT_WORKLOAD_FAILED
    } else {
        EXIT_OK
    }
}

/// Reports an error that happened before a workload was known: on stderr for a person, and as a
/// framed error result so a harness that reads only the console (a VM) learns why too.
fn fail_without_spec(
    e: &AgentError,
    agent_start_ns: u64,
    pid1: bool,
    marker: &Marker,
    sink: &ResultSink,
) -> i32 {
    eprintln!("isolab-agent: {e}");
    let result = WorkloadResult {
        protocol: PROTOCOL_VERSION,
        workload: UNKNOWN_WORKLOAD.to_owned(),
        outcome: error(e.to_string()),
        metrics: Vec::new(),
        inspect: None,
        clock: AgentClock {
            agent_start_ns,
            ..AgentClock::default()
        },
        memory_inside: kernels::inspect::read_meminfo(),
        was_pid1: pid1,
        route: Some(sink.route()),
    };
    emit(&result, marker, sink);
    EXIT_BAD_SPEC
}

fn emit(result: &WorkloadResult, marker: &Marker, sink: &ResultSink) {
    match report::write_result(result, sink) {
        Ok(()) => marker.send(MarkerEvent::ResultWritten),
        Err(e) => eprintln!("isolab-agent: {e}"),
    }
}

fn error(message: String) -> Outcome {
    Outcome::Error { message }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn panic_payloads_become_text() {
        let p = catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_text(&*p), "boom 1");
        let p = catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
        assert_eq!(panic_text(&*p), "(no message)");
    }
}
