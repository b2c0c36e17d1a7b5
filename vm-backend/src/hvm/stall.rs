//! Noticing that the emulated machine has stopped making progress, and telling a stall from a
//! quiet machine at work.
//!
//! Seen a few times under load: L1 falls silent with QEMU at ~2 % of a core, every L1 program
//! asleep and never woken, until the session's timeout (up to 35 minutes) kills it. The VMM's
//! own deadline inside L1 never fires then, so L1's timers are not firing either. The watch below
//! turns that into a record of L1's interrupt state and a nudge:
//!
//! 1. No console line for `quiet_after` while QEMU used less than [`IDLE_SHARE`] of a core: L1 is
//!    idle and silent. (A silent L1 that computes, e.g. KSM merging, is not a stall.)
//! 2. Nudge: read the local APIC and the registers through QMP, then send an NMI. A live kernel
//!    answers an unknown NMI on the console at once (`Uhhuh. NMI received for unknown reason`,
//!    an emergency message that `loglevel=1` lets through), and the interrupt wakes the CPU.
//! 3. If no line comes within `answer_within`, L1 is dead: the session ends now, not at its
//!    timeout. If only the kernel's answer comes, the wait starts again; after
//!    [`MAX_ANSWERED_NUDGES`] answered nudges in a row with nothing else printed, L1 runs but its
//!    programs make no progress, and the session ends too.

use std::time::{Duration, Instant};

/// Below this share of one host core, QEMU is emulating an idle L1 (measured here: ~2 %).
pub const IDLE_SHARE: f64 = 0.10;
/// Answered nudges in a row, with no other console line, before the session is given up.
pub const MAX_ANSWERED_NUDGES: u32 = 3;
/// The lines a live Linux kernel prints for an NMI no driver claims.
const NMI_ANSWERS: [&str; 2] = ["NMI received for unknown reason", "Dazed and confused"];

/// What the session loop should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum StallStep {
    /// Nothing to do.
    Wait,
    /// L1 is silent and idle: record its state and send it an NMI.
    Nudge {
        /// Time since L1's last console line that was not an answer to a nudge.
        quiet_for: Duration,
        /// QEMU's CPU use over the quiet window, as a share of one core.
        cpu_share: f64,
    },
    /// Give the session up.
    GiveUp {
        /// Why, in words.
        reason: String,
    },
}

/// The watch's state for one session.
#[derive(Debug)]
pub struct StallWatch {
    quiet_after: Duration,
    answer_within: Duration,
    last_progress: Instant,
    window_start: Instant,
    /// QEMU's CPU time at the window's start; read at the next check after a console line, so
    /// that a chatty console costs no read of /proc per line.
    window_cpu: Option<Duration>,
    nudged_at: Option<Instant>,
    answered_nudges: u32,
}

impl StallWatch {
    /// A watch that starts now, with QEMU having used `cpu` so far.
    pub fn new(
        now: Instant,
        cpu: Duration,
        quiet_after: Duration,
        answer_within: Duration,
    ) -> Self {
        Self {
            quiet_after,
            answer_within,
            last_progress: now,
            window_start: now,
            window_cpu: Some(cpu),
            nudged_at: None,
            answered_nudges: 0,
        }
    }

    /// L1 printed `line`. Returns true when it is the kernel's answer to a nudge.
    pub fn line(&mut self, line: &str, now: Instant) -> bool {
        let kernel_answer = NMI_ANSWERS.iter().any(|a| line.contains(a));
        let answer = kernel_answer && self.nudged_at.is_some();
        if answer {
            self.answered_nudges += 1;
        } else if !kernel_answer {
            self.answered_nudges = 0;
            self.last_progress = now;
        }
        self.nudged_at = None;
        self.window_start = now;
        self.window_cpu = None;
        answer
    }

    /// Called every so often with the time and QEMU's CPU use so far.
    pub fn check(&mut self, now: Instant, cpu: Duration) -> StallStep {
        if let Some(at) = self.nudged_at {
            if now.saturating_duration_since(at) >= self.answer_within {
                return StallStep::GiveUp {
                    reason: format!(
                        "L1 did not answer an NMI within {} s after {} s without output: its \
                         CPU does not take interrupts",
                        self.answer_within.as_secs(),
                        at.saturating_duration_since(self.last_progress).as_secs()
                    ),
                };
            }
            return StallStep::Wait;
        }
        let window_cpu = *self.window_cpu.get_or_insert(cpu);
        let window = now.saturating_duration_since(self.window_start);
        if window < self.quiet_after {
            return StallStep::Wait;
        }
        let cpu_share =
            cpu.saturating_sub(window_cpu).as_secs_f64() / window.as_secs_f64().max(1e-9);
        if cpu_share >= IDLE_SHARE {
            // Silent but computing: look again over the next window.
            self.window_start = now;
            self.window_cpu = Some(cpu);
            return StallStep::Wait;
        }
        if self.answered_nudges >= MAX_ANSWERED_NUDGES {
            return StallStep::GiveUp {
                reason: format!(
                    "L1's kernel answered {} NMIs but nothing else printed for {} s with QEMU \
                     idle: its programs make no progress",
                    self.answered_nudges,
                    now.saturating_duration_since(self.last_progress).as_secs()
                ),
            };
        }
        self.nudged_at = Some(now);
        StallStep::Nudge {
            quiet_for: now.saturating_duration_since(self.last_progress),
            cpu_share,
        }
    }
}

/// CPU time (user + system, all threads) process `pid` has used, from `/proc/<pid>/stat`.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|t| *t > 0)?;
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / per_second,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_secs(120);
    const ANSWER: Duration = Duration::from_secs(30);

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn a_silent_idle_machine_is_nudged_and_a_dead_one_given_up() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0, Duration::ZERO, QUIET, ANSWER);
        assert_eq!(
            w.check(at(t0, 119), Duration::from_secs(1)),
            StallStep::Wait
        );
        let StallStep::Nudge {
            quiet_for,
            cpu_share,
        } = w.check(at(t0, 120), Duration::from_secs(2))
        else {
            panic!("an idle silent machine is nudged")
        };
        assert_eq!(quiet_for, QUIET);
        assert!(cpu_share < IDLE_SHARE);
        assert_eq!(
            w.check(at(t0, 149), Duration::from_secs(2)),
            StallStep::Wait
        );
        assert!(matches!(
            w.check(at(t0, 150), Duration::from_secs(2)),
            StallStep::GiveUp { .. }
        ));
    }

    #[test]
    fn a_silent_busy_machine_is_left_alone() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0, Duration::ZERO, QUIET, ANSWER);
        for window in 1..10 {
            let now = at(t0, 120 * window);
            let cpu = Duration::from_secs(100 * window);
            assert_eq!(w.check(now, cpu), StallStep::Wait, "window {window}");
        }
    }

    #[test]
    fn an_answered_nudge_restarts_the_wait_and_progress_clears_the_count() {
        let t0 = Instant::now();
        let cpu = Duration::ZERO;
        let mut w = StallWatch::new(t0, cpu, QUIET, ANSWER);
        let mut now = t0;
        for _ in 0..MAX_ANSWERED_NUDGES {
            now += QUIET;
            assert!(matches!(w.check(now, cpu), StallStep::Nudge { .. }));
            now += Duration::from_secs(1);
            assert!(w.line(
                "[ 99.1] Uhhuh. NMI received for unknown reason 30 on CPU 0.",
                now
            ));
        }
        // Only the kernel's answers for three windows: the programs are stuck.
        assert!(matches!(
            w.check(now + QUIET, cpu),
            StallStep::GiveUp { .. }
        ));
        // A real line clears the count: the next quiet window is nudged again, not given up.
        assert!(!w.line("HVM-END:0:0", now));
        assert!(matches!(w.check(now + QUIET, cpu), StallStep::Nudge { .. }));
    }

    #[test]
    fn this_process_cpu_time_is_read() {
        let pid = std::process::id();
        let before = process_cpu(pid).expect("our own /proc stat");
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = process_cpu(pid).expect("our own /proc stat");
        assert!(after > before, "{before:?} -> {after:?}");
        assert_eq!(process_cpu(u32::MAX), None);
    }
}
