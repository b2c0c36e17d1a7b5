//! The `qemu-tcg` backend: the VM's guest kernel (`micro`) and the agent as its `/init`, run by
//! QEMU's full-system emulator with no hardware acceleration (TCG, the Tiny Code Generator: every
//! guest instruction is translated into host instructions in software).
//!
//! This is *emulation* measured for real: the agent times its workloads with the guest's clock,
//! which under TCG follows the host's (QEMU's virtual clock runs at real time without
//! `-icount`), and the host times the trial from the spawn of QEMU to its exit. Its samples are
//! ordinary performance figures of emulation itself, never a stand-in for the VM; the name keeps
//! them apart from `vm (emulated)` (isolab's VMM inside the HVM test machine), whose times are
//! never used.
//!
//! The agent's markers reach the host as bytes written to an I/O port that QEMU's `isa-debugcon`
//! device forwards to a Unix socket isolab listens on, timestamped when they arrive; its result
//! comes back framed on the serial console, as from the VM. There is no disk: the I/O workloads
//! are the VM backend's, and a `qemu-tcg` trial of one fails saying so.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vm_backend::boot::cmdline::Cmdline;
use vm_backend::hvm::which;
use vm_backend::image::initramfs::agent_image;
use vm_backend::kernel::fetch::apt_install;
use vm_backend::kernel::{boot_kernel, KernelChoice};
use workloads::protocol::{encode_spec, parse_framed_result, MarkerEvent, MARKER_PORT};
use workloads::result::Outcome;
use workloads::Metric;

use crate::backend::{
    Backend, BackendError, BackendKind, Phase, PrepareContext, Trial, TrialFailure, TrialOutcome,
};
use crate::backends::tail_lines;

/// The emulator.
pub const QEMU: &str = "qemu-system-x86_64";
/// The Debian package that has it.
const QEMU_PACKAGE: &str = "qemu-system-x86";
/// Console lines kept in a failed trial's log.
const TAIL_LINES: usize = 40;

/// The QEMU command line of one trial, without the kernel command line's spec: the machine
/// (q35, TCG, the emulator's most capable CPU model, so emulation is shown at its best), the
/// sandbox size, the serial console on stdout, and the marker port forwarded to `marker_socket`.
pub fn qemu_args(
    kernel: &Path,
    initrd: &Path,
    memory_mib: u64,
    vcpus: u32,
    marker_socket: &Path,
    cmdline: &str,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "-M",
        "q35",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-serial",
        "stdio",
        "-no-reboot",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    a.extend([
        "-m".into(),
        memory_mib.to_string(),
        "-smp".into(),
        vcpus.max(1).to_string(),
        "-chardev".into(),
        format!("socket,id=isolab-marker,path={}", marker_socket.display()),
        "-device".into(),
        format!("isa-debugcon,iobase={MARKER_PORT:#x},chardev=isolab-marker"),
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        cmdline.to_owned(),
    ]);
    a
}

/// Runs each trial in a fresh QEMU TCG machine.
#[derive(Debug, Default)]
pub struct QemuTcgBackend {
    prepared: Option<Prepared>,
}

#[derive(Debug, Clone)]
struct Prepared {
    qemu: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    work_dir: PathBuf,
    memory_mib: u64,
    vcpus: u32,
    timeout: Duration,
    live_console: bool,
    qemu_version: String,
}

fn prepare_err(message: String) -> BackendError {
    BackendError::Prepare {
        backend: BackendKind::QemuTcg,
        message,
    }
}

impl QemuTcgBackend {
    /// A backend booting the micro kernel under QEMU TCG.
    pub fn new() -> Self {
        Self::default()
    }
}

/// `QEMU emulator version 7.2.x ...`'s first line, or why not.
fn qemu_version(qemu: &Path) -> String {
    Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The harness timeline of one trial from the host's points and the markers.
fn timeline_of(points: &[(&str, u64)], markers: &[(u8, u64)]) -> Vec<Phase> {
    let mut t: Vec<Phase> = points
        .iter()
        .map(|(name, at_ns)| Phase {
            name: (*name).to_owned(),
            at_ns: *at_ns,
        })
        .collect();
    for (byte, at_ns) in markers {
        // Workload phases stay off the timeline, as for the VM.
        if let Some(e) =
            MarkerEvent::from_byte(*byte).filter(|e| !matches!(e, MarkerEvent::Phase(_)))
        {
            if !t.iter().any(|p| p.name == e.name()) {
                t.push(Phase {
                    name: e.name().to_owned(),
                    at_ns: *at_ns,
                });
            }
        }
    }
    t.sort_by_key(|p| p.at_ns);
    t
}

/// Host metrics from the timeline: start to the agent's first marker, the emulated machine's
/// boot (QEMU's own start included), teardown after the result, whole trial.
fn metrics_of(timeline: &[Phase]) -> Vec<Metric> {
    let at = |name: &str| timeline.iter().find(|p| p.name == name).map(|p| p.at_ns);
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut m = Vec::new();
    if let Some(ready) = at("agent_ready") {
        m.push(Metric::lower("host.start_to_ready", "ms", ms(ready)));
        if let Some(spawned) = at("spawned") {
            m.push(Metric::lower(
                "host.boot_to_agent",
                "ms",
                ms(ready.saturating_sub(spawned)),
            ));
        }
    }
    if let (Some(done), Some(end)) = (at("result_written"), at("cleaned_up")) {
        m.push(Metric::lower(
            "host.teardown",
            "ms",
            ms(end.saturating_sub(done)),
        ));
    }
    if let Some(end) = at("cleaned_up") {
        m.push(Metric::lower("host.wall", "ms", ms(end)));
    }
    m
}

impl Backend for QemuTcgBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::QemuTcg
    }

    fn prepare(&mut self, ctx: &PrepareContext) -> Result<(), BackendError> {
        let start = Instant::now();
        let mut say = |msg: &str| eprintln!("[qemu-tcg {:>4}s] {msg}", start.elapsed().as_secs());
        if which(QEMU).is_none() {
            apt_install(&[QEMU_PACKAGE], &mut say).map_err(|e| BackendError::Unavailable {
                backend: BackendKind::QemuTcg,
                reason: format!("{QEMU} is not installed and apt could not install it: {e}"),
                fix: format!("install it (`apt-get install {QEMU_PACKAGE}`)"),
            })?;
        }
        let qemu = which(QEMU).ok_or_else(|| BackendError::Unavailable {
            backend: BackendKind::QemuTcg,
            reason: format!("{QEMU} is not on PATH"),
            fix: format!("install it (`apt-get install {QEMU_PACKAGE}`)"),
        })?;
        // The VM's own guest kernel, so the two differ only in what runs it.
        let boot = boot_kernel(&KernelChoice::Micro, &mut say)
            .map_err(|e| prepare_err(format!("the micro guest kernel: {e}")))?;
        let agent = std::fs::read(&ctx.agent).map_err(|e| {
            prepare_err(format!(
                "agent {} is not readable ({e}); build it with \
                 `cargo build --release -p workloads --bin isolab-agent`",
                ctx.agent.display()
            ))
        })?;
        std::fs::create_dir_all(&ctx.work_dir)
            .map_err(|e| prepare_err(format!("{}: {e}", ctx.work_dir.display())))?;
        let initrd = ctx.work_dir.join("qemu-tcg-initramfs.cpio");
        std::fs::write(&initrd, agent_image(agent).to_bytes())
            .map_err(|e| prepare_err(format!("writing {}: {e}", initrd.display())))?;
        self.prepared = Some(Prepared {
            qemu_version: qemu_version(&qemu),
            qemu,
            kernel: boot.kernel,
            initrd,
            work_dir: ctx.work_dir.clone(),
            memory_mib: ctx.limits.memory_mib,
            vcpus: ctx.limits.vcpus,
            timeout: ctx.trial_timeout,
            live_console: ctx.live_console,
        });
        Ok(())
    }

    fn facts(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        f.insert(
            "emulator".into(),
            "QEMU TCG (software translation, no hardware acceleration), -M q35 -cpu max".into(),
        );
        if let Some(p) = &self.prepared {
            f.insert("qemu".into(), p.qemu_version.clone());
            f.insert("kernel".into(), p.kernel.display().to_string());
            f.insert("memory_mib".into(), p.memory_mib.to_string());
        }
        f
    }

    fn run_trial(&mut self, trial: &Trial) -> TrialOutcome {
        let failed = |f: TrialFailure| TrialOutcome {
            result: Err(f),
            timeline: Vec::new(),
            host_metrics: Vec::new(),
            log_tail: String::new(),
            emulated: false,
        };
        let Some(p) = self.prepared.clone() else {
            return failed(TrialFailure::Crashed {
                reason: "qemu-tcg backend used before prepare()".into(),
            });
        };
        if trial.spec.workload.peer().is_some() {
            return failed(TrialFailure::WorkloadError {
                message: format!(
                    "qemu-tcg has no network device; the {} workload runs on native, container \
                     and vm",
                    trial.spec.workload.kind()
                ),
            });
        }
        if trial.spec.workload.io_data_mib().is_some() {
            return failed(TrialFailure::WorkloadError {
                message: format!(
                    "qemu-tcg has no disk; the {} workload runs on native, container and vm",
                    trial.spec.workload.kind()
                ),
            });
        }
        let spec = match encode_spec(&trial.spec) {
            Ok(s) => s,
            Err(e) => {
                return failed(TrialFailure::Crashed {
                    reason: e.to_string(),
                })
            }
        };
        match guest_cmdline(&spec) {
            Ok(cmdline) => run_qemu(&p, trial.index, &cmdline),
            Err(e) => failed(TrialFailure::Crashed {
                reason: e.to_string(),
            }),
        }
    }

    fn cleanup(&mut self) -> Result<(), BackendError> {
        match self.prepared.take() {
            Some(p) => super::remove_made_file(BackendKind::QemuTcg, &p.initrd),
            None => Ok(()),
        }
    }
}

/// The guest kernel's command line for one trial, `spec` being the encoded workload spec.
///
/// `no_timer_check`: under TCG on a loaded host, the kernel's early check that the timer
/// interrupt arrives through the IO-APIC can time out, and the kernel then panics ("IO-APIC +
/// timer doesn't work!") and reboots, which ends the trial without a result (2 trials of 140 in
/// the reference run of 2026-12-06). The timer works; only the check is too impatient for an
/// emulated CPU (the HVM machine's L1 kernel boots with it for the same reason).
fn guest_cmdline(spec: &str) -> Result<String, vm_backend::VmError> {
    let mut cmdline = Cmdline::microvm();
    cmdline
        .push("quiet no_timer_check")?
        .push_kv("isolab.marker", &format!("port:{MARKER_PORT:#x}"))?
        .push_kv("isolab.spec", spec)?;
    Ok(cmdline.as_string())
}

/// Boots one emulated machine and turns what it did into an outcome.
fn run_qemu(p: &Prepared, index: usize, cmdline: &str) -> TrialOutcome {
    let origin = Instant::now();
    let since = |i: Instant| u64::try_from(i.duration_since(origin).as_nanos()).unwrap_or(u64::MAX);
    let failed = |f: TrialFailure, log_tail: String| TrialOutcome {
        result: Err(f),
        timeline: Vec::new(),
        host_metrics: Vec::new(),
        log_tail,
        emulated: false,
    };
    let socket = p.work_dir.join(format!("qemu-tcg-marker-{index}.sock"));
    let _ = std::fs::remove_file(&socket);
    let listener = match UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            return failed(
                TrialFailure::Crashed {
                    reason: format!("cannot listen on {}: {e}", socket.display()),
                },
                String::new(),
            )
        }
    };
    // Markers: one byte each, timestamped on arrival. QEMU connects once, at its start.
    let (marker_tx, marker_rx) = mpsc::channel::<(u8, Instant)>();
    let marker_thread = std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let now = Instant::now();
                    for b in &buf[..n] {
                        let _ = marker_tx.send((*b, now));
                    }
                }
            }
        }
    });
    let args = qemu_args(
        &p.kernel,
        &p.initrd,
        p.memory_mib,
        p.vcpus,
        &socket,
        cmdline,
    );
    let spawned = Command::new(&p.qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            // Unblock the marker thread's accept, then let it end.
            let _ = std::os::unix::net::UnixStream::connect(&socket);
            let _ = marker_thread.join();
            let _ = std::fs::remove_file(&socket);
            return failed(
                TrialFailure::Crashed {
                    reason: format!("cannot start {}: {e}", p.qemu.display()),
                },
                String::new(),
            );
        }
    };
    let spawned_at = since(Instant::now());
    let (line_tx, line_rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        let mut r = std::io::BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line_tx
                        .send(String::from_utf8_lossy(&line).into_owned())
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    let mut stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let mut console = String::new();
    let take = |line: String, console: &mut String| {
        if p.live_console {
            eprint!("[qemu-tcg] {line}");
        }
        console.push_str(&line);
    };
    let mut timed_out = false;
    let status = loop {
        match line_rx.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => {
                take(line, &mut console);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break child.wait().ok(),
        }
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if origin.elapsed() > p.timeout || crate::interrupt::requested() => {
                timed_out = !crate::interrupt::requested();
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => {}
            Err(_) => break None,
        }
    };
    let exited_at = since(Instant::now());
    let _ = reader.join();
    while let Ok(line) = line_rx.try_recv() {
        take(line, &mut console);
    }
    let qemu_stderr = err_reader.join().unwrap_or_default();
    let _ = marker_thread.join();
    let markers: Vec<(u8, u64)> = marker_rx.try_iter().map(|(b, i)| (b, since(i))).collect();
    let _ = std::fs::remove_file(&socket);
    let cleaned_at = since(Instant::now());
    let console = console.replace('\r', "");
    let timeline = timeline_of(
        &[
            ("start", 0),
            ("spawned", spawned_at),
            ("exited", exited_at),
            ("cleaned_up", cleaned_at),
        ],
        &markers,
    );
    let result = match parse_framed_result(&console) {
        Ok(r) => match &r.outcome {
            Outcome::Ok => Ok(r),
            Outcome::Error { message } => Err(TrialFailure::WorkloadError {
                message: message.clone(),
            }),
        },
        Err(_) if timed_out => Err(TrialFailure::Timeout {
            after_s: p.timeout.as_secs_f64(),
        }),
        Err(frame) => Err(TrialFailure::Crashed {
            reason: format!(
                "QEMU ended ({}) without a result: {frame}",
                status.map_or("status unknown".into(), |s| s.to_string())
            ),
        }),
    };
    let log_tail = if result.is_err() {
        let mut t = tail_lines(&console, TAIL_LINES);
        if !qemu_stderr.trim().is_empty() {
            t.push_str("\n[qemu stderr]\n");
            t.push_str(qemu_stderr.trim());
        }
        t
    } else {
        String::new()
    };
    TrialOutcome {
        host_metrics: metrics_of(&timeline),
        result,
        timeline,
        log_tail,
        emulated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_is_tcg_with_the_marker_port_on_a_socket() {
        let a = qemu_args(
            Path::new("/k"),
            Path::new("/i"),
            256,
            2,
            Path::new("/run/m.sock"),
            "console=ttyS0 quiet",
        );
        let s = a.join(" ");
        assert!(s.contains("-accel tcg"), "{s}");
        assert!(!s.contains("kvm"), "no acceleration: {s}");
        assert!(s.contains("-m 256 -smp 2"), "{s}");
        assert!(
            s.contains("socket,id=isolab-marker,path=/run/m.sock"),
            "{s}"
        );
        assert!(
            s.contains(&format!("isa-debugcon,iobase={MARKER_PORT:#x}")),
            "{s}"
        );
        // The kernel command line is one argument, however many words it has.
        assert_eq!(a.last().map(String::as_str), Some("console=ttyS0 quiet"));
    }

    #[test]
    fn the_guest_skips_the_timer_check_an_emulated_cpu_can_fail() {
        let c = guest_cmdline("e30").unwrap();
        let words: Vec<&str> = c.split_ascii_whitespace().collect();
        assert!(words.contains(&"no_timer_check"), "{c}");
        assert!(words.contains(&"isolab.spec=e30"), "{c}");
    }

    #[test]
    fn markers_become_phases_and_metrics() {
        let t = timeline_of(
            &[
                ("start", 0),
                ("spawned", 1_000_000),
                ("exited", 900_000_000),
                ("cleaned_up", 901_000_000),
            ],
            // agent start, workload start/end, a phase byte (kept off), result, garbage.
            &[
                (1, 500_000_000),
                (2, 510_000_000),
                (17, 600_000_000),
                (3, 700_000_000),
                (4, 800_000_000),
                (250, 850_000_000),
            ],
        );
        let names: Vec<&str> = t.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "start",
                "spawned",
                "agent_ready",
                "workload_start",
                "workload_end",
                "result_written",
                "exited",
                "cleaned_up"
            ]
        );
        let m = metrics_of(&t);
        let get = |n: &str| m.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get("host.start_to_ready"), Some(500.0));
        assert_eq!(get("host.boot_to_agent"), Some(499.0));
        assert_eq!(get("host.teardown"), Some(101.0));
        assert_eq!(get("host.wall"), Some(901.0));
    }
}
