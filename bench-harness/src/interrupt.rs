//! Ctrl-C handling, and the same for SIGTERM and SIGHUP (a `kill`, a closed terminal, a service
//! manager stopping isolab). The first signal asks the run to stop after cleaning up the trial in
//! progress (its child is killed and reaped, samples taken so far stay valid, the run's folders
//! and cgroup are removed); a second one exits at once.

use std::sync::atomic::{AtomicU32, Ordering};

static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// Installs the handler. Call once, early in `main`.
pub fn install() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        let n = INTERRUPTS.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            eprintln!("\ninterrupted: finishing cleanup of the current trial (interrupt again to abort at once)");
            // Containers run in their own session, so the terminal's SIGINT does not reach them.
            crate::backends::container::interrupt_all();
        } else {
            // The user insists. Cleanup code may not have run; `isolab doctor --clean` removes
            // what is left.
            eprintln!("aborted; run `isolab doctor --clean` to remove anything left behind");
            std::process::exit(130);
        }
    })
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    INTERRUPTS.load(Ordering::SeqCst) > 0
}

/// Marks the run as interrupted (used by tests and by backends that detect SIGINT themselves).
pub fn request() {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}
