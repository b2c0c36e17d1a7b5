//! The HVM test machine: QEMU in TCG mode emulating an AMD CPU with SVM and nested paging, running
//! Debian's cloud kernel (L1) with `kvm-amd` loaded, so this VMM meets a hardware-style `/dev/kvm`
//! on hosts whose own KVM cannot boot Linux guests (PVM) or that have none.
//!
//! It is for correctness only: boots, devices, protocols, error paths. Times measured inside are
//! emulated and never performance results.
//!
//! [`HvmMachine::prepare`] installs QEMU and a static busybox from apt if missing and fetches the
//! L1 kernel with its kvm modules (cached, see [`crate::kernel::fetch::debian_cloud_kernel`]).
//! [`HvmMachine::run`] builds an L1 initramfs (busybox `/init`, the modules, the session's files),
//! boots it, runs the session's shell commands one after the other and returns each command's
//! output and exit status, framed on L1's serial console.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::image::initramfs::Initramfs;
use crate::kernel::fetch::{apt_install, debian_cloud_kernel, DebianKernel};
use crate::kernel::KernelError;

pub mod qmp;
pub mod stall;

use stall::{StallStep, StallWatch};

/// How long L1 has to answer an NMI (a live kernel prints at once; emulated, give it time).
const NMI_ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// The L1 modules, in load order, by their path under the modules' `kernel/` directory: kvm,
/// and tun for the VMs' network cards (their taps in L1's lab namespace).
pub const L1_MODULES: [&str; 4] = [
    "virt/lib/irqbypass.ko",
    "arch/x86/kvm/kvm.ko",
    "arch/x86/kvm/kvm-amd.ko",
    "drivers/net/tun.ko",
];
/// The static busybox Debian's `busybox-static` installs.
pub const BUSYBOX: &str = "/bin/busybox";

/// Why the HVM test machine could not run.
#[derive(Debug, Error)]
pub enum HvmError {
    /// Fetching or installing something failed.
    #[error("preparing the HVM test machine: {0}")]
    Prepare(#[from] KernelError),
    /// A file for L1 could not be read or written.
    #[error("HVM test machine file {path}: {source}")]
    File {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error("cannot start QEMU ({0}); install qemu-system-x86 (apt-get install qemu-system-x86)")]
    Qemu(std::io::Error),
}

/// A file to put into L1.
#[derive(Debug, Clone)]
pub struct HvmFile {
    /// Absolute path inside L1.
    pub guest_path: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

impl HvmFile {
    /// A host file copied into L1 (executables are stripped of debug info if `strip` exists, to
    /// keep the L1 image small).
    pub fn from_host(guest_path: &str, host: &Path, mode: u32) -> Result<Self, HvmError> {
        let file_err = |source| HvmError::File {
            path: host.to_owned(),
            source,
        };
        let mut data = std::fs::read(host).map_err(file_err)?;
        if mode & 0o111 != 0 && data.starts_with(b"\x7fELF") {
            let tmp = std::env::temp_dir().join(format!("isolab-hvm-strip-{}", std::process::id()));
            let stripped = Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(&tmp)
                .arg(host)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if stripped {
                if let Ok(d) = std::fs::read(&tmp) {
                    data = d;
                }
            }
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(Self {
            guest_path: guest_path.to_owned(),
            data,
            mode,
        })
    }

    /// Bytes as a file in L1.
    pub fn bytes(guest_path: &str, data: Vec<u8>, mode: u32) -> Self {
        Self {
            guest_path: guest_path.to_owned(),
            data,
            mode,
        }
    }
}

/// One boot of the HVM test machine.
#[derive(Debug, Clone)]
pub struct HvmSession {
    /// Files to put into L1 (directories are created).
    pub files: Vec<HvmFile>,
    /// Shell commands (busybox sh) run in order inside L1.
    pub commands: Vec<String>,
    /// L1 RAM, MiB.
    pub memory_mib: u64,
    /// The whole session is killed after this long.
    pub timeout: Duration,
    /// 2 MiB huge pages L1 reserves (`vm.nr_hugepages`) before the commands run, for VMs whose
    /// guest RAM is backed by hugetlbfs.
    pub huge_pages_2m: u64,
    /// L1 silent this long with QEMU idle is taken as a stall (see [`stall`]): its state is
    /// recorded and it is sent an NMI; a session whose L1 does not recover ends early.
    pub stall_after: Duration,
}

impl Default for HvmSession {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            commands: Vec::new(),
            memory_mib: 2048,
            timeout: Duration::from_secs(600),
            huge_pages_2m: 0,
            stall_after: Duration::from_secs(120),
        }
    }
}

/// One command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HvmCommandOutput {
    /// The command.
    pub command: String,
    /// What it printed (stdout and stderr, as L1's console carried them).
    pub output: String,
    /// Its exit status; None if it never finished (the session died or timed out).
    pub status: Option<i32>,
}

/// What a session produced.
#[derive(Debug, Clone)]
pub struct HvmOutput {
    /// Everything L1's console printed.
    pub console: String,
    /// Per command, in order.
    pub commands: Vec<HvmCommandOutput>,
    /// True when `/dev/kvm` was there in L1 (kvm-amd loaded).
    pub kvm_ready: bool,
    /// True when L1 ran every command and powered off.
    pub completed: bool,
    /// True when the session hit its timeout.
    pub timed_out: bool,
    /// Each time L1 stalled (silent with QEMU idle): what was seen, L1's local APIC and
    /// registers, and whether it answered the NMI it was sent. Also at the end of `console`.
    pub stalls: Vec<String>,
    /// Set when the session was ended early because L1 stopped making progress: why.
    pub gave_up: Option<String>,
    /// QEMU's exit status.
    pub qemu_status: Option<i32>,
    /// Wall time of the session (emulated: not a performance figure).
    pub duration: Duration,
}

impl HvmOutput {
    /// The local APIC state recorded at L1's last stall, if it stalled: its timer and pending
    /// interrupts are what tell a lost interrupt from a timer that never fired.
    pub fn last_stall_lapic(&self) -> Option<&str> {
        let report = self.stalls.last()?;
        let start = report.find("--- info lapic\n")?;
        let rest = &report[start..];
        let end = rest.find("--- info pic").unwrap_or(rest.len());
        Some(rest[..end].trim_end())
    }
}

/// The prepared HVM test machine.
#[derive(Debug, Clone)]
pub struct HvmMachine {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// The L1 kernel and its modules.
    pub l1: DebianKernel,
    /// A static busybox for L1's shell.
    pub busybox: PathBuf,
}

/// Where `cmd` is on PATH, if it is.
pub fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// The L1 `/init` script: mounts, the kvm modules, `huge_pages` 2 MiB pages reserved (0: none),
/// then the commands, each framed on the console.
pub fn l1_init_script(commands: &[String], huge_pages: u64) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         /bin/busybox mkdir -p /proc /sys /dev /tmp /bin\n\
         /bin/busybox mount -t proc proc /proc\n\
         /bin/busybox mount -t sysfs sysfs /sys\n\
         /bin/busybox mount -t devtmpfs devtmpfs /dev\n\
         /bin/busybox mount -t tmpfs tmpfs /tmp\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin\n\
         export ISOLAB_EMULATED=1\n\
         cd /\n",
    );
    for m in L1_MODULES {
        let name = Path::new(m)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(m);
        s.push_str(&format!(
            "insmod /lib/modules/{name} || echo HVM-MODULE-FAILED:{name}\n"
        ));
    }
    s.push_str("[ -c /dev/kvm ] && echo HVM-KVM-READY || echo HVM-NO-KVM\n");
    if huge_pages > 0 {
        // Reserved at boot, before anything fragments L1's memory; the kernel may give fewer,
        // which the count echoed here shows (and a VM that needs more says so).
        s.push_str(&format!(
            "echo {huge_pages} > /proc/sys/vm/nr_hugepages; echo HVM-HUGEPAGES:$(cat /proc/sys/vm/nr_hugepages)\n"
        ));
    }
    for (i, c) in commands.iter().enumerate() {
        s.push_str(&format!(
            "echo HVM-BEGIN:{i}\n( {c} ) 2>&1\necho HVM-END:{i}:$?\n"
        ));
    }
    s.push_str("echo HVM-DONE\nsync\npoweroff -f\n");
    s
}

/// Splits L1's console into per-command outputs.
pub fn parse_console(console: &str, commands: &[String]) -> Vec<HvmCommandOutput> {
    let mut out: Vec<HvmCommandOutput> = commands
        .iter()
        .map(|c| HvmCommandOutput {
            command: c.clone(),
            output: String::new(),
            status: None,
        })
        .collect();
    let mut current: Option<usize> = None;
    for raw in console.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("HVM-BEGIN:") {
            current = rest.trim().parse().ok().filter(|i| *i < out.len());
            continue;
        }
        if let Some(rest) = line.strip_prefix("HVM-END:") {
            let mut parts = rest.trim().splitn(2, ':');
            let idx: Option<usize> = parts.next().and_then(|i| i.parse().ok());
            let status: Option<i32> = parts.next().and_then(|s| s.parse().ok());
            if let Some(c) = idx.and_then(|i| out.get_mut(i)) {
                c.status = status;
            }
            current = None;
            continue;
        }
        if let Some(c) = current.and_then(|i| out.get_mut(i)) {
            c.output.push_str(line);
            c.output.push('\n');
        }
    }
    out
}

impl HvmMachine {
    /// Installs QEMU and busybox-static from apt when missing and fetches the L1 kernel.
    pub fn prepare(progress: &mut dyn FnMut(&str)) -> Result<Self, HvmError> {
        let mut missing = Vec::new();
        if which("qemu-system-x86_64").is_none() {
            missing.push("qemu-system-x86");
        }
        if !Path::new(BUSYBOX).is_file() || !is_static(Path::new(BUSYBOX)) {
            missing.push("busybox-static");
        }
        apt_install(&missing, progress)?;
        let qemu = which("qemu-system-x86_64").ok_or_else(|| {
            HvmError::Qemu(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "qemu-system-x86_64 is not on PATH",
            ))
        })?;
        let l1 = debian_cloud_kernel(progress)?;
        for m in L1_MODULES {
            let p = l1.module(m);
            if !p.is_file() {
                return Err(HvmError::File {
                    path: p,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "module missing from the kernel package",
                    ),
                });
            }
        }
        Ok(Self {
            qemu,
            l1,
            busybox: PathBuf::from(BUSYBOX),
        })
    }

    /// Builds the L1 initramfs for a session.
    pub fn initramfs(&self, session: &HvmSession) -> Result<Vec<u8>, HvmError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| HvmError::File {
                path: p.to_owned(),
                source,
            })
        };
        let mut img = Initramfs::new();
        img.dir("bin", 0o755)
            .dir("dev", 0o755)
            .char_dev("dev/console", 0o600, 5, 1)
            .dir("proc", 0o555)
            .dir("sys", 0o555)
            .dir("tmp", 0o1777)
            .dir("lib", 0o755)
            .dir("lib/modules", 0o755)
            .file("bin/busybox", 0o755, read(&self.busybox)?)
            .file(
                "init",
                0o755,
                l1_init_script(&session.commands, session.huge_pages_2m).into_bytes(),
            );
        for m in L1_MODULES {
            let name = Path::new(m)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(m);
            img.file(
                &format!("lib/modules/{name}"),
                0o644,
                read(&self.l1.module(m))?,
            );
        }
        let mut dirs: Vec<String> = Vec::new();
        for f in &session.files {
            let path = f.guest_path.trim_start_matches('/');
            let mut prefix = String::new();
            let parts: Vec<&str> = path.split('/').collect();
            for part in &parts[..parts.len().saturating_sub(1)] {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                if !dirs.contains(&prefix)
                    && !["bin", "dev", "proc", "sys", "tmp", "lib"].contains(&prefix.as_str())
                {
                    dirs.push(prefix.clone());
                    img.dir(&prefix, 0o755);
                }
            }
            img.file(path, f.mode, f.data.clone());
        }
        Ok(img.to_bytes())
    }

    /// Boots L1, runs the session, returns what it printed.
    pub fn run(&self, session: &HvmSession) -> Result<HvmOutput, HvmError> {
        self.run_with(session, &mut |_| {}, &|| false)
    }

    /// Like [`HvmMachine::run`], calling `on_line` with each line of L1's console as it arrives
    /// (for progress and a live console) and stopping QEMU as soon as `stop` returns true (Ctrl-C).
    pub fn run_with(
        &self,
        session: &HvmSession,
        on_line: &mut dyn FnMut(&str),
        stop: &dyn Fn() -> bool,
    ) -> Result<HvmOutput, HvmError> {
        let start = Instant::now();
        let image = self.initramfs(session)?;
        let dir = std::env::temp_dir().join(format!(
            "isolab-hvm-{}-{}",
            std::process::id(),
            start.elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).map_err(|source| HvmError::File {
            path: dir.clone(),
            source,
        })?;
        let initrd = dir.join("l1.cpio");
        let qmp_path = dir.join("qmp.sock");
        std::fs::write(&initrd, &image).map_err(|source| HvmError::File {
            path: initrd.clone(),
            source,
        })?;
        let spawned = Command::new(&self.qemu)
            .args(["-M", "q35", "-accel", "tcg", "-cpu", "EPYC,+svm,+npt"])
            .arg("-m")
            .arg(session.memory_mib.to_string())
            .args([
                "-smp",
                "1",
                "-nodefaults",
                "-no-user-config",
                "-nographic",
                "-serial",
                "stdio",
            ])
            // The machine protocol, for the stall watch: L1's state and an NMI when it stalls.
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_path.display()))
            .arg("-kernel")
            .arg(&self.l1.vmlinuz)
            .arg("-initrd")
            .arg(&initrd)
            // no_timer_check: under TCG on a loaded host, L1's early check that the timer
            // interrupt arrives through the IO-APIC can time out, and the kernel then panics
            // ("IO-APIC + timer doesn't work!", seen in CI). The timer works; only the check is
            // too impatient for an emulated CPU. Cloud images boot VMs with it for the same reason.
            .args([
                "-append",
                "console=ttyS0 panic=-1 quiet loglevel=1 no_timer_check",
                "-no-reboot",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(HvmError::Qemu(e));
            }
        };
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let stdout = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut stdout = std::io::BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match stdout.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if lines_tx.send(line).is_err() {
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
            buf
        });
        let mut out = Vec::new();
        // Hands a console line on and keeps it; tells the watch, and returns the line when it
        // is L1's answer to an NMI.
        let take_line = |line: Vec<u8>,
                         out: &mut Vec<u8>,
                         on_line: &mut dyn FnMut(&str),
                         watch: &mut StallWatch| {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            let answer = watch
                .line(text, Instant::now())
                .then(|| text.trim().to_owned());
            on_line(text);
            out.extend_from_slice(&line);
            answer
        };
        let mut timed_out = false;
        let qemu_pid = child.id();
        let qemu_cpu = || stall::process_cpu(qemu_pid).unwrap_or_default();
        let mut watch = StallWatch::new(
            Instant::now(),
            qemu_cpu(),
            session.stall_after,
            NMI_ANSWER_WITHIN,
        );
        let mut stalls: Vec<String> = Vec::new();
        let mut gave_up: Option<String> = None;
        let mut last_check = Instant::now();
        let status = loop {
            match lines_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    if let Some(answer) = take_line(line, &mut out, on_line, &mut watch) {
                        if let Some(last) = stalls.last_mut() {
                            last.push_str(&format!("L1 answered the NMI: {answer}\n"));
                        }
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                // The reader is done: QEMU closed its console.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    break child.wait().ok().and_then(|s| s.code())
                }
            }
            if last_check.elapsed() >= Duration::from_secs(1) {
                last_check = Instant::now();
                let elapsed = start.elapsed().as_secs();
                match watch.check(Instant::now(), qemu_cpu()) {
                    StallStep::Wait => {}
                    StallStep::Nudge {
                        quiet_for,
                        cpu_share,
                    } => {
                        let report = nudge(&qmp_path, elapsed, quiet_for, cpu_share);
                        on_line(report.lines().next().unwrap_or_default());
                        stalls.push(report);
                    }
                    StallStep::GiveUp { reason } => {
                        on_line(&format!("[isolab-hvm {elapsed} s] {reason}; stopping QEMU"));
                        gave_up = Some(reason);
                        let _ = child.kill();
                        break child.wait().ok().and_then(|s| s.code());
                    }
                }
            }
            match child.try_wait() {
                Ok(Some(s)) => break s.code(),
                Ok(None) if start.elapsed() > session.timeout || stop() => {
                    timed_out = !stop();
                    let _ = child.kill();
                    break child.wait().ok().and_then(|s| s.code());
                }
                Ok(None) => {}
                Err(_) => break None,
            }
        };
        let _ = reader.join();
        while let Ok(line) = lines_rx.try_recv() {
            take_line(line, &mut out, on_line, &mut watch);
        }
        let err = err_reader.join().unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        let mut console = String::from_utf8_lossy(&out).replace('\r', "");
        let err_text = String::from_utf8_lossy(&err);
        // QEMU's own complaints (TCG lacks some AMD features) are harmless; keep them apart.
        if !err_text.trim().is_empty() {
            console.push_str("\n[qemu stderr]\n");
            console.push_str(&err_text);
        }
        if !stalls.is_empty() || gave_up.is_some() {
            console.push_str("\n[isolab-hvm stall watch]\n");
            for report in &stalls {
                console.push_str(report);
            }
            if let Some(why) = &gave_up {
                console.push_str(&format!("session ended early: {why}\n"));
            }
        }
        let commands = parse_console(&console, &session.commands);
        Ok(HvmOutput {
            kvm_ready: console.contains("HVM-KVM-READY"),
            completed: console.contains("HVM-DONE"),
            commands,
            console,
            timed_out,
            stalls,
            gave_up,
            qemu_status: status,
            duration: start.elapsed(),
        })
    }
}

/// Records L1's state through QMP and sends it an NMI; returns the report, its first line a
/// summary.
fn nudge(qmp_path: &Path, elapsed: u64, quiet_for: Duration, cpu_share: f64) -> String {
    let mut report = format!(
        "[isolab-hvm {elapsed} s] L1 printed nothing for {} s with QEMU at {:.1} % of a core: \
         recording its state and sending it an NMI\n",
        quiet_for.as_secs(),
        cpu_share * 100.0
    );
    match qmp::Qmp::connect(qmp_path) {
        Ok(mut qmp) => {
            for command in ["info lapic", "info pic", "info registers"] {
                match qmp.human(command) {
                    Ok(text) => report.push_str(&format!("--- {command}\n{text}")),
                    Err(e) => report.push_str(&format!("--- {command}: {e}\n")),
                }
            }
            if let Err(e) = qmp.inject_nmi() {
                report.push_str(&format!("the NMI could not be sent: {e}\n"));
            }
        }
        Err(e) => report.push_str(&format!("QEMU's QMP socket did not answer: {e}\n")),
    }
    report
}

fn is_static(path: &Path) -> bool {
    // A dynamic ELF has a PT_INTERP program header; look for the interpreter path in the first
    // pages, which is where it lives.
    let mut head = vec![0u8; 8192];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    !head[..n].windows(12).any(|w| w == b"/lib64/ld-li")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_frames_every_command() {
        let s = l1_init_script(&["echo hi".into(), "false".into()], 0);
        assert!(!s.contains("nr_hugepages"));
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        assert!(s.contains("insmod /lib/modules/kvm-amd.ko"));
        assert!(
            s.contains("insmod /lib/modules/tun.ko"),
            "taps for the VMs' cards"
        );
        let irq = s.find("irqbypass.ko").expect("irqbypass");
        let kvm = s.find("/kvm.ko").expect("kvm");
        let amd = s.find("kvm-amd.ko").expect("kvm-amd");
        assert!(irq < kvm && kvm < amd, "module load order");
        assert!(s.contains("echo HVM-BEGIN:1\n( false ) 2>&1\necho HVM-END:1:$?\n"));
        assert!(s.trim_end().ends_with("poweroff -f"));
        let s = l1_init_script(&["true".into()], 70);
        let reserve = s
            .find("echo 70 > /proc/sys/vm/nr_hugepages")
            .expect("reserved");
        assert!(
            reserve < s.find("HVM-BEGIN:0").expect("command"),
            "before the commands"
        );
    }

    #[test]
    fn console_is_split_per_command() {
        let cmds = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let console = "[ 1.0] kernel noise\nHVM-KVM-READY\nHVM-BEGIN:0\nout a\r\nHVM-END:0:0\nHVM-BEGIN:1\nline1\nline2\nHVM-END:1:2\nHVM-BEGIN:2\npartial\n";
        let out = parse_console(console, &cmds);
        assert_eq!(out[0].output, "out a\n");
        assert_eq!(out[0].status, Some(0));
        assert_eq!(out[1].output, "line1\nline2\n");
        assert_eq!(out[1].status, Some(2));
        assert_eq!(out[2].status, None);
        // Hostile framing does not panic.
        let out = parse_console("HVM-BEGIN:99\nHVM-END:x:y\nHVM-END:0:notanumber\n", &cmds);
        assert_eq!(out[0].status, None);
    }
}
