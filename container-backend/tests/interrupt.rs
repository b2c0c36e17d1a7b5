//! Ctrl-C: `interrupt_all` kills running containers from another thread; the interrupted run
//! still reaps and cleans up and says it was interrupted; later runs are refused until cleared.
//! A test binary of its own, because the interruption is process-wide.

mod common;

use std::time::{Duration, Instant};

use common::*;
use container_backend::{
    clear_interrupt, interrupt_all, running_containers, ContainerError, KillReason,
};

#[test]
fn probe() {
    if let Ok(what) = std::env::var(PROBE_ENV) {
        common::probe(&what);
    }
}

#[test]
fn interrupt_kills_the_running_container_and_everything_is_cleaned() {
    let (rt, dir) = probe_runtime("interrupt", |_| {});
    let t = Instant::now();
    let report = std::thread::scope(|s| {
        let run = s.spawn(|| run_probe(&rt, "sleep"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while running_containers() == 0 {
            assert!(Instant::now() < deadline, "the container never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(interrupt_all(), 1);
        run.join().expect("run thread")
    });
    assert_eq!(report.killed, Some(KillReason::Interrupted));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(running_containers(), 0);
    let refused = rt.run(&probe_request("look")).unwrap_err();
    assert!(matches!(refused, ContainerError::Interrupted), "{refused}");
    clear_interrupt();
    let again = run_probe(&rt, "look");
    assert!(again.killed.is_none());
    finish(rt, dir);
}
