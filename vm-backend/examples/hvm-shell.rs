//! Runs shell commands inside the HVM test machine and prints their output and status.
//!
//! ```text
//! hvm-shell [--file GUEST_PATH=HOST_PATH]... [--timeout-s S] [--stall-s S] [--mem MIB] [--huge-pages N] COMMAND...
//! ```
//!
//! Each COMMAND is one busybox `sh` command line run in L1 (where `/dev/kvm` is hardware-style
//! KVM on an emulated AMD-V CPU). `--huge-pages N` reserves N 2 MiB pages in L1 first (for VMs
//! with `--memory hugetlbfs`). Exit status: 0 when every command exited 0.

use std::path::Path;
use std::time::Duration;

use vm_backend::hvm::{HvmFile, HvmMachine, HvmSession};

fn main() {
    let mut session = HvmSession::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--file" => {
                let spec = args.next().unwrap_or_default();
                let Some((guest, host)) = spec.split_once('=') else {
                    eprintln!("--file takes GUEST_PATH=HOST_PATH");
                    std::process::exit(64);
                };
                let mode = if Path::new(host).metadata().is_ok_and(|m| {
                    std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                }) {
                    0o755
                } else {
                    0o644
                };
                match HvmFile::from_host(guest, Path::new(host), mode) {
                    Ok(f) => session.files.push(f),
                    Err(e) => {
                        eprintln!("{e}");
                        std::process::exit(66);
                    }
                }
            }
            "--timeout-s" => {
                let s: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(600);
                session.timeout = Duration::from_secs(s);
            }
            "--stall-s" => {
                let s: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(120);
                session.stall_after = Duration::from_secs(s);
            }
            "--mem" => {
                session.memory_mib = args.next().and_then(|s| s.parse().ok()).unwrap_or(2048);
            }
            "--huge-pages" => {
                session.huge_pages_2m = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            }
            _ => session.commands.push(a),
        }
    }
    let machine = match HvmMachine::prepare(&mut |m| eprintln!("[hvm] {m}")) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(69);
        }
    };
    let out = match machine.run(&session) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(69);
        }
    };
    let mut ok = out.completed && out.kvm_ready;
    for c in &out.commands {
        println!("$ {}\n{}[status {:?}]", c.command, c.output, c.status);
        ok &= c.status == Some(0);
    }
    eprintln!(
        "[hvm] session {:.1} s (emulated), kvm in L1: {}, completed: {}, timed out: {}",
        out.duration.as_secs_f64(),
        out.kvm_ready,
        out.completed,
        out.timed_out
    );
    for stall in &out.stalls {
        eprintln!("[hvm] stall:\n{stall}");
    }
    if let Some(why) = &out.gave_up {
        eprintln!("[hvm] session ended early: {why}");
    }
    if !out.completed {
        eprintln!("--- L1 console ---\n{}", out.console);
    }
    std::process::exit(i32::from(!ok));
}
