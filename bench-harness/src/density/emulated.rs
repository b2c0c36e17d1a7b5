//! `isolab density --backend vm --vm-in-emulator`: VMs' density measured inside the HVM test
//! machine (QEMU TCG emulating AMD-V, kvm-amd in L1), for hosts whose `/dev/kvm` cannot boot a
//! Linux guest.
//!
//! One L1 boot runs the whole VM part: `isolab density --backend vm ... --emit-rounds` inside L1,
//! with the same options, prints each round as a framed line on L1's console as soon as it is
//! stored there, and its manifest at the end. The host appends those rounds to its own run
//! folder as they come (a run stopped half-way keeps them) and takes the VM's facts and stops
//! from the manifest, marked emulated. So the VM's readings are L1's: its MemAvailable, its
//! MemTotal (the headroom and "instances that fit" are the emulated machine's), the VMM
//! processes' PSS. Memory figures are what the guests and VMMs did and are valid; times are
//! emulated and never performance figures.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use vm_backend::hvm::{HvmFile, HvmMachine, HvmSession};
use vm_backend::kernel::{boot_kernel, KernelChoice};

use super::instance::Kind;
use super::record::{DensityManifest, RoundRecord, RoundWriter, Stop};
use super::{DensityError, DensityOptions};
use crate::backends::vm_emulated::{
    locate_isolab, stripped, L1_AGENT, L1_BOOT, L1_ISOLAB, L1_KERNEL, L1_VMM,
};

/// A round on L1's console.
pub const ROUND_PREFIX: &str = "ISOLAB-DENSITY-ROUND:";
/// The manifest on L1's console, at the end.
pub const MANIFEST_PREFIX: &str = "ISOLAB-DENSITY-MANIFEST:";
/// Where the run inside L1 writes its files.
const L1_OUT: &str = "/tmp/density";

/// `PREFIX<byte length>:<base64url JSON>`: the length lets the host reject a line that kernel
/// messages were spliced into.
pub fn frame(prefix: &str, json: &[u8]) -> String {
    format!("{prefix}{}:{}", json.len(), URL_SAFE_NO_PAD.encode(json))
}

/// The JSON of a line made by [`frame`] with `prefix`: `None` if the line is not one, an error
/// if it is but was damaged on the way.
pub fn unframe(prefix: &str, line: &str) -> Option<Result<Vec<u8>, String>> {
    let rest = line.trim().strip_prefix(prefix)?;
    let parse = || -> Result<Vec<u8>, String> {
        let (len, data) = rest.split_once(':').ok_or("no length")?;
        let len: usize = len.parse().map_err(|_| "no length")?;
        let json = URL_SAFE_NO_PAD
            .decode(data.trim())
            .map_err(|e| format!("not base64: {e}"))?;
        if json.len() != len {
            return Err(format!(
                "{} bytes instead of {len}: console output was mixed into it",
                json.len()
            ));
        }
        Ok(json)
    };
    Some(parse())
}

/// Inside L1: prints `value` framed on stdout, as one write between line breaks (the kernel's
/// own messages can only land between lines).
pub(crate) fn emit<T: serde::Serialize>(prefix: &str, value: &T) {
    if let Ok(json) = serde_json::to_vec(value) {
        let line = format!("\n{}\n", frame(prefix, &json));
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// What the VM part in L1 gave the host's run.
#[derive(Debug, Default)]
pub(crate) struct EmulatedVms {
    /// The inner run's manifest (its host is L1), when it got that far.
    pub manifest: Option<DensityManifest>,
    /// Rounds appended to the host's run.
    pub rounds: usize,
    /// Why the VM part ended early or gave nothing, with L1's last console lines.
    pub problem: Option<String>,
}

/// L1's RAM for `opts`: L1 itself and its page cache, plus per VM of the largest N its guest's
/// touched RAM (an idle micro-kernel guest touches about 40 MiB; transparent huge pages round
/// up), its working set and its VMM.
fn l1_memory_mib(opts: &DensityOptions) -> u64 {
    let largest = opts.counts.iter().copied().max().unwrap_or(1) as u64;
    let per_vm = 96 + opts.working_set_kib.div_ceil(1024);
    (1536 + (largest + 1) * per_vm).max(2048)
}

/// Generous room for the session: L1's boot, then per N and round its VMs' boots (seconds each
/// under emulation), the settling and KSM's wait.
fn session_timeout(opts: &DensityOptions) -> Duration {
    let per_round = |n: usize| {
        Duration::from_secs(60 + 30 * n as u64)
            + opts.settle
            + opts.recovery_limit
            + if opts.ksm == super::KsmMode::On {
                opts.ksm_settle
            } else {
                Duration::ZERO
            }
    };
    L1_BOOT
        + opts
            .counts
            .iter()
            .map(|&n| per_round(n + opts.beside as usize) * opts.rounds)
            .sum::<Duration>()
}

/// The inner command: the same measurement of VMs only, its rounds framed on the console.
fn inner_command(opts: &DensityOptions) -> String {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let counts: Vec<String> = opts.counts.iter().map(ToString::to_string).collect();
    let ksm = match opts.ksm {
        super::KsmMode::Host => "host",
        super::KsmMode::On => "on",
        super::KsmMode::Off => "off",
    };
    // L1's init may not mount cgroup2; VMM processes then get a run cgroup there too.
    format!(
        "[ -e /sys/fs/cgroup/cgroup.controllers ] || mount -t cgroup2 cgroup2 /sys/fs/cgroup; \
         {L1_ISOLAB} density --backend vm --count {} --rounds {} --parallel {} --working-set \
         {}KiB --beside {} --headroom {}% --stop-below {}% --ksm {ksm} --settle {} --ksm-settle \
         {} --recovery {} --ready-timeout {} --samples {} --sample-every {} --memory-mib {} \
         --out {L1_OUT} --io-dir /tmp --agent {L1_AGENT} --kernel {L1_KERNEL} --emit-rounds",
        counts.join(","),
        opts.rounds,
        opts.parallel.text(),
        opts.working_set_kib,
        opts.beside,
        opts.headroom_pct,
        opts.floor_pct,
        ms(opts.settle),
        ms(opts.ksm_settle),
        ms(opts.recovery_limit),
        ms(opts.ready_timeout),
        opts.samples,
        ms(opts.sample_every),
        opts.limits.memory_mib,
    )
}

fn tail(text: &str, n: usize) -> String {
    crate::backends::tail_lines(text, n)
}

/// Boots L1 once and runs the VM part of `opts` there; its rounds are appended to `writer` as
/// they come, `note` gets a line per round.
pub(crate) fn run_vms(
    opts: &DensityOptions,
    work_dir: &Path,
    writer: &mut RoundWriter,
    note: &dyn Fn(&str),
) -> Result<EmulatedVms, DensityError> {
    let started = Instant::now();
    let say = |msg: &str| {
        note(&format!(
            "[vm (emulated) {:>4}s] {msg}",
            started.elapsed().as_secs()
        ))
    };
    let usage = |m: String| DensityError::Usage(m);
    let boot = boot_kernel(&KernelChoice::Micro, &mut |m: &str| say(m))
        .map_err(|e| usage(format!("the VM's guest kernel: {e}")))?;
    let isolab = locate_isolab().map_err(|e| usage(e.to_string()))?;
    let vmm = vm_backend::process::client::locate_vmm()
        .map_err(|e| usage(format!("--vm-in-emulator: {e}")))?;
    let machine = HvmMachine::prepare(&mut |m: &str| say(m)).map_err(|e| {
        usage(format!(
            "the emulated AMD-V machine cannot be set up: {e}; check that apt can install \
             qemu-system-x86 and busybox-static (`apt-get update`)"
        ))
    })?;
    std::fs::create_dir_all(work_dir).map_err(|e| usage(format!("{}: {e}", work_dir.display())))?;
    let file = |guest: &str, host: &Path| {
        HvmFile::from_host(guest, host, 0o755).map_err(|e| usage(e.to_string()))
    };
    let mut files = vec![
        file(L1_ISOLAB, &stripped(&isolab, work_dir))?,
        file(L1_VMM, &stripped(&vmm, work_dir))?,
        file(L1_AGENT, &opts.agent)?,
        file(L1_KERNEL, &boot.kernel)?,
    ];
    if !boot.modules.is_empty() || boot.acpi {
        // The micro kernel needs neither; a kernel that does is not offered here.
        return Err(usage(
            "--vm-in-emulator density boots the micro kernel, which needs no modules".into(),
        ));
    }
    files.shrink_to_fit();
    let session = HvmSession {
        files,
        commands: vec![inner_command(opts)],
        memory_mib: l1_memory_mib(opts),
        timeout: session_timeout(opts),
        ..HvmSession::default()
    };
    say(&format!(
        "booting the emulated AMD-V machine ({} MiB) for the VMs' rounds; emulation is slow \
         (minutes), and its times are not performance figures",
        session.memory_mib
    ));
    let mut out = EmulatedVms::default();
    let mut damaged = 0usize;
    let mut write_error = None;
    // Counted apart from `out`, which `on_line` holds: read between two boots.
    let rounds_seen = std::cell::Cell::new(0usize);
    let mut on_line = |line: &str| {
        if let Some(got) = unframe(ROUND_PREFIX, line) {
            match got.and_then(|json| {
                serde_json::from_slice::<RoundRecord>(&json).map_err(|e| e.to_string())
            }) {
                Ok(rec) if rec.backend == Kind::Vm => {
                    note(&super::round_line(&rec));
                    if let Err(e) = writer.append(&rec) {
                        write_error.get_or_insert(e);
                    }
                    rounds_seen.set(rounds_seen.get() + 1);
                }
                Ok(_) => damaged += 1,
                Err(_) => damaged += 1,
            }
        } else if let Some(got) = unframe(MANIFEST_PREFIX, line) {
            match got.and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string())) {
                Ok(m) => out.manifest = Some(m),
                Err(_) => damaged += 1,
            }
        }
    };
    let mut ran = machine
        .run_with(&session, &mut on_line, &crate::interrupt::requested)
        .map_err(|e| usage(format!("the emulated machine did not run: {e}")))?;
    if ran.gave_up.is_some() && rounds_seen.get() == 0 && !crate::interrupt::requested() {
        // The emulated machine stalled (QEMU's fault, not the VMs') before any round was
        // recorded: nothing to lose by one new boot. After a round, a new boot would record
        // that round twice, so the stall is reported instead.
        say("the emulated machine stalled before its first round (QEMU's fault, not the VMs'); booting it again");
        ran = machine
            .run_with(&session, &mut on_line, &crate::interrupt::requested)
            .map_err(|e| usage(format!("the emulated machine did not run: {e}")))?;
    }
    out.rounds = rounds_seen.get();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let inner = ran.commands.first().map_or(&ran.console, |c| &c.output);
    if !ran.kvm_ready {
        out.problem = Some(format!(
            "kvm-amd did not load in the emulated machine; its console ended with:\n{}",
            tail(&ran.console, 30)
        ));
    } else if out.manifest.is_none() {
        out.problem = Some(format!(
            "the density run in the emulated machine {}{}; its output ended with:\n{}",
            if crate::interrupt::requested() {
                "was interrupted".to_owned()
            } else if let Some(why) = &ran.gave_up {
                format!(
                    "was stopped after {:.0} s: {why} (a stall of the emulator; run again). L1's \
                     local APIC then:\n{}",
                    ran.duration.as_secs_f64(),
                    ran.last_stall_lapic().unwrap_or("not recorded")
                )
            } else if ran.timed_out {
                format!("was stopped after {:.0} s", ran.duration.as_secs_f64())
            } else {
                "gave no manifest".to_owned()
            },
            if damaged > 0 {
                format!(" ({damaged} damaged lines)")
            } else {
                String::new()
            },
            tail(inner, 30)
        ));
    }
    Ok(out)
}

/// The stops of the inner run, as the host's run records them.
pub(crate) fn stops_of(inner: &DensityManifest) -> Vec<Stop> {
    inner
        .stops
        .iter()
        .filter(|s| s.backend == Kind::Vm)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_lines_round_trip_and_spliced_ones_are_refused() {
        let json = br#"{"backend":"vm"}"#;
        let line = frame(ROUND_PREFIX, json);
        assert_eq!(unframe(ROUND_PREFIX, &line), Some(Ok(json.to_vec())));
        assert_eq!(unframe(MANIFEST_PREFIX, &line), None);
        assert_eq!(unframe(ROUND_PREFIX, "[ 1.0] kvm: loaded"), None);
        // A kernel message spliced into the middle.
        let (a, b) = line.split_at(line.len() / 2);
        let spliced = format!("{a}[ 12.3] random: crng init done{b}");
        assert!(matches!(unframe(ROUND_PREFIX, &spliced), Some(Err(_))));
    }
}
