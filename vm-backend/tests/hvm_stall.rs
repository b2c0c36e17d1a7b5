//! The HVM test machine's stall watch, on a real emulated machine: an L1 that sits silent and
//! idle (here a `sleep`, standing in for the rare emulated stall where L1's timers stop firing)
//! has its local APIC and registers recorded through QMP and is sent an NMI; a live L1 answers
//! on its console and the session goes on to complete.
//!
//! `#[ignore]`d in a plain `cargo test` (it boots the emulated machine, about 40 s); CI runs it
//! with `--ignored`.

mod common;

use std::time::Duration;

use common::run_session;
use vm_backend::hvm::{HvmMachine, HvmSession};

fn progress(msg: &str) {
    eprintln!("[hvm test] {msg}");
}

#[test]
#[ignore = "boots the emulated HVM test machine; run with --ignored (CI does)"]
fn a_silent_idle_l1_is_recorded_and_nudged_and_a_live_one_answers() {
    let machine = HvmMachine::prepare(&mut |m| progress(m)).expect("HVM test machine");
    let session = HvmSession {
        commands: vec!["echo before; sleep 25; echo after".to_owned()],
        stall_after: Duration::from_secs(10),
        timeout: Duration::from_secs(300),
        ..HvmSession::default()
    };
    let out = run_session(&machine, &session, "hvm-stall-console.log", progress);
    let command = &out.commands[0];
    assert_eq!(command.status, Some(0), "{}", command.output);
    assert!(
        command.output.contains("before") && command.output.contains("after"),
        "{}",
        command.output
    );
    assert_eq!(out.gave_up, None, "a live L1 is never given up");
    assert!(
        !out.stalls.is_empty(),
        "25 s of silence with QEMU idle was not noticed:\n{}",
        out.console
    );
    let first = &out.stalls[0];
    // L1's interrupt state, read through QMP: the local APIC's timer and the I/O APIC.
    for wanted in [
        "--- info lapic",
        "LVTT",
        "Timer",
        "--- info pic",
        "--- info registers",
        "RIP=",
    ] {
        assert!(
            first.contains(wanted),
            "no {wanted:?} in the stall record:\n{first}"
        );
    }
    assert!(
        first.contains("L1 answered the NMI") && first.contains("NMI received for unknown reason"),
        "the NMI was not answered:\n{first}"
    );
    let lapic = out
        .last_stall_lapic()
        .expect("the local APIC of the last stall");
    assert!(
        lapic.contains("LVTT") && !lapic.contains("info pic"),
        "{lapic}"
    );
    assert!(
        out.console.contains("[isolab-hvm stall watch]"),
        "the record is in the saved console"
    );
}
