//! One round: read the host, start N instances (`--parallel P` at a time), wait until they are
//! ready and settled, read the host again and every instance's PSS, start a few more one at a
//! time beside them, tear everything down, and wait until the host's memory is back.
//!
//! Instances are started by a pool of starter threads that lives as long as the backend's
//! instances: a container's (and a floor process's) parent-death signal fires when the *thread*
//! that cloned it ends, so a thread may end only after its instances are gone. The pool is made
//! before the first baseline, so its own memory is in every baseline.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use container_backend::MarkerRead;
use workloads::protocol::MarkerEvent;

use super::instance::{Instance, Kind, Launcher, StartFailure};
use super::ksm;
use super::meter::{self, Reading};
use super::record::{CgroupTotals, RoundRecord, StartRecord, Stop, VmMemoryTotals};
use crate::timefmt::monotonic_ns;

/// Stack of a starter thread: it runs the runtime's start code and, briefly, each clone's child
/// before exec; neither needs much.
const STARTER_STACK: usize = 512 << 10;

/// A started (or failed) instance as a starter thread hands it back.
pub(crate) struct Started {
    index: usize,
    /// CLOCK_MONOTONIC when its start call began.
    t0_ns: u64,
    result: Result<Box<dyn Instance>, StartFailure>,
}

/// Starter threads.
pub(crate) struct Pool {
    jobs: Option<Sender<usize>>,
    results: Receiver<Started>,
    threads: Vec<JoinHandle<()>>,
    cancel: Arc<AtomicBool>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} threads)", self.threads.len())
    }
}

impl Pool {
    /// `threads` starters of `launcher`; the instances' stderr goes to `log`.
    pub(crate) fn new(
        launcher: Arc<dyn Launcher>,
        threads: usize,
        log: Option<Arc<File>>,
    ) -> std::io::Result<Self> {
        let (job_tx, job_rx) = mpsc::channel::<usize>();
        let (res_tx, res_rx) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let cancel = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let (jobs, results, launcher, log, cancel) = (
                job_rx.clone(),
                res_tx.clone(),
                launcher.clone(),
                log.clone(),
                cancel.clone(),
            );
            handles.push(
                std::thread::Builder::new()
                    .name(format!("starter-{i}"))
                    .stack_size(STARTER_STACK)
                    .spawn(move || loop {
                        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(index) = job else { break };
                        let t0_ns = monotonic_ns();
                        let result = if cancel.load(Ordering::SeqCst) {
                            Err(StartFailure {
                                message: "not started: the run stopped adding instances".into(),
                                limit: None,
                            })
                        } else {
                            let stderr = log
                                .as_ref()
                                .and_then(|f| f.try_clone().ok())
                                .map(std::os::fd::OwnedFd::from);
                            launcher.start(stderr)
                        };
                        if results
                            .send(Started {
                                index,
                                t0_ns,
                                result,
                            })
                            .is_err()
                        {
                            break;
                        }
                    })?,
            );
        }
        Ok(Self {
            jobs: Some(job_tx),
            results: res_rx,
            threads: handles,
            cancel,
        })
    }

    fn submit(&self, index: usize) {
        if let Some(j) = &self.jobs {
            let _ = j.send(index);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What a round does.
#[derive(Debug, Clone)]
pub(crate) struct RoundPlan {
    pub backend: Kind,
    pub count: usize,
    pub round: u32,
    /// In flight at most.
    pub parallel: usize,
    /// Stop adding instances below this MemAvailable, KiB.
    pub floor_kib: u64,
    /// Wait this long after the last ready before reading the host.
    pub settle: Duration,
    /// Wait for KSM to settle too (at most this long).
    pub ksm_settle: Option<Duration>,
    /// Instances started one at a time beside the N.
    pub beside: u32,
    /// An instance not ready after this long has failed.
    pub ready_timeout: Duration,
    /// Wait at most this long for MemAvailable to come back after the teardown.
    pub recovery_limit: Duration,
    /// Samples per reading of the host.
    pub samples: u32,
    /// Time between two samples of a reading.
    pub sample_every: Duration,
}

/// What the round tells its caller as it goes (progress), and whether to stop.
pub(crate) trait Progress {
    /// A line for the terminal.
    fn note(&self, line: &str);
    /// How many are ready of how many.
    fn starting(&self, ready: usize, of: usize);
    /// Ctrl-C.
    fn interrupted(&self) -> bool;
}

/// Runs one round. Every instance started is gone when it returns.
pub(crate) fn run(pool: &Pool, plan: &RoundPlan, progress: &dyn Progress) -> RoundRecord {
    pool.cancel.store(false, Ordering::SeqCst);
    let baseline = read_host(plan.samples, plan.sample_every);
    let mut rec = RoundRecord::empty(
        plan.backend,
        plan.count,
        plan.round,
        plan.parallel,
        baseline,
    );
    if plan.ksm_settle.is_some() {
        rec.ksm_before = ksm::KsmState::read();
    }
    let storm = storm(pool, plan, progress);
    rec.starts = storm.starts;
    rec.storm_ms = storm.storm_ms;
    rec.ready = storm.ready.len();
    rec.stopped = storm.stop;
    let mut ready = storm.ready;
    if rec.stopped.is_none() && !ready.is_empty() {
        let settle_from = Instant::now();
        sleep_unless(plan.settle, progress);
        if let Some(limit) = plan.ksm_settle {
            rec.ksm = ksm::settle(limit, &|| progress.interrupted());
        }
        rec.settled_s = settle_from.elapsed().as_secs_f64();
        rec.loaded = Some(read_host(plan.samples, plan.sample_every));
        let mut anon = 0;
        rec.pss_kib = ready
            .iter()
            .map(|i| {
                let (pss, a) = i
                    .processes()
                    .into_iter()
                    .filter_map(meter::pss_anon_kib)
                    .fold((0, 0), |(p, a), (pp, aa)| (p + pp, a + aa));
                anon += a;
                pss
            })
            .collect();
        rec.instances_anon_kib = Some(anon);
        rec.cgroup = cgroup_totals(&ready);
        rec.vm_memory = vm_totals(&ready);
        for _ in 0..plan.beside {
            if progress.interrupted() {
                break;
            }
            if let Some(ms) = one_more(pool, plan) {
                rec.beside_ms.push(ms);
            }
        }
    }
    if progress.interrupted() && rec.stopped.is_none() {
        rec.stopped = Some(stop(plan, "interrupted", "Ctrl-C".into(), None));
    }
    // Teardown: first kill to last reap, with every cgroup removed.
    let places: Vec<_> = ready.iter().flat_map(|i| i.places()).collect();
    let t0 = Instant::now();
    for i in &ready {
        i.kill();
    }
    for i in ready.drain(..) {
        match i.finish() {
            Ok(f) => {
                // A guest's view from inside comes with its VM's report, when it stops.
                if let (Some(inside), Some(t)) = (f.inside, rec.vm_memory.as_mut()) {
                    t.add_inside(inside);
                }
            }
            Err(e) => rec.left_behind.push(e),
        }
    }
    rec.teardown_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
    rec.left_behind.extend(
        places
            .iter()
            .filter(|p| p.exists())
            .map(|p| format!("{} still exists", p.display())),
    );
    // The kernel frees some memory later (network namespaces, RCU): how long until the host has
    // its baseline back.
    let tolerance = recovery_tolerance(&rec);
    let target = rec.baseline.meminfo.mem_available.saturating_sub(tolerance);
    let waited = Instant::now();
    loop {
        let now = meter::Meminfo::read().map_or(0, |m| m.mem_available);
        if now >= target {
            rec.recovery_ms = Some(waited.elapsed().as_secs_f64() * 1e3);
            break;
        }
        if waited.elapsed() >= plan.recovery_limit || progress.interrupted() {
            rec.recovery_short_kib = Some(target as i64 - now as i64);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if rec.loaded.is_some() {
        rec.after = Some(read_host(plan.samples, plan.sample_every));
    }
    rec
}

/// How close to its baseline MemAvailable must come back: the spread the baseline itself had,
/// and at least 1 MiB or 2% of the drop.
fn recovery_tolerance(rec: &RoundRecord) -> u64 {
    let (lo, hi) = rec.baseline.available_range;
    let drop = rec.drop_kib().unwrap_or(0).max(0) as u64;
    (hi - lo).max(1024).max(drop / 50)
}

fn read_host(samples: u32, every: Duration) -> Reading {
    meter::read_settled(samples, every).unwrap_or(Reading {
        meminfo: meter::Meminfo::default(),
        available_range: (0, 0),
        samples: 0,
        at_s: 0.0,
    })
}

fn sleep_unless(d: Duration, progress: &dyn Progress) {
    let end = Instant::now() + d;
    while Instant::now() < end && !progress.interrupted() {
        std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
    }
}

fn stop(plan: &RoundPlan, kind: &str, reason: String, limit: Option<super::limits::Limit>) -> Stop {
    Stop {
        backend: plan.backend,
        count: plan.count,
        kind: kind.to_owned(),
        reason,
        limit,
    }
}

fn cgroup_totals(ready: &[Box<dyn Instance>]) -> Option<CgroupTotals> {
    let mut t = CgroupTotals::default();
    let mut any = false;
    for m in ready.iter().filter_map(|i| i.cgroup_memory()) {
        any = true;
        t.charged_kib += m.charged_bytes / 1024;
        t.anon_kib += m.breakdown.anon / 1024;
        t.file_kib += m.breakdown.file / 1024;
        t.kernel_kib += m.breakdown.kernel / 1024;
    }
    any.then_some(t)
}

fn vm_totals(ready: &[Box<dyn Instance>]) -> Option<VmMemoryTotals> {
    let mut t = VmMemoryTotals::default();
    for m in ready.iter().filter_map(|i| i.vm_memory()) {
        t.add(m);
    }
    (t.vms > 0).then_some(t)
}

/// What the storm left.
struct Storm {
    starts: Vec<StartRecord>,
    ready: Vec<Box<dyn Instance>>,
    storm_ms: Option<f64>,
    stop: Option<Stop>,
}

struct Pending {
    index: usize,
    t0_ns: u64,
    inst: Box<dyn Instance>,
}

fn has_waiting(bytes: &[u8]) -> bool {
    bytes.contains(&MarkerEvent::Waiting.byte())
}

/// Starts `plan.count` instances, at most `plan.parallel` in flight, until all are ready or the
/// round must stop (a host limit, the MemAvailable floor, failures, Ctrl-C).
fn storm(pool: &Pool, plan: &RoundPlan, progress: &dyn Progress) -> Storm {
    let n = plan.count;
    let storm_t0 = monotonic_ns();
    let mut starts: Vec<StartRecord> = (0..n)
        .map(|_| StartRecord {
            ready_ms: None,
            since_storm_ms: None,
            phases: Vec::new(),
            failure: None,
        })
        .collect();
    let (mut issued, mut in_flight) = (0usize, 0usize);
    let mut pending: Vec<Pending> = Vec::new();
    let mut ready: Vec<Box<dyn Instance>> = Vec::new();
    let mut stop_now: Option<Stop> = None;
    let mut last_ready_ns = None;
    let mut next_memory_check = Instant::now();
    let fail = |starts: &mut Vec<StartRecord>, index: usize, why: String| {
        if let Some(s) = starts.get_mut(index) {
            s.failure = Some(why);
        }
    };
    loop {
        if stop_now.is_none() {
            while in_flight < plan.parallel && issued < n {
                pool.submit(issued);
                issued += 1;
                in_flight += 1;
            }
        }
        // Started (or failed) instances.
        let mut block = pending.is_empty() && in_flight > 0;
        loop {
            let got = if block {
                block = false;
                pool.results.recv_timeout(Duration::from_millis(20)).ok()
            } else {
                pool.results.try_recv().ok()
            };
            let Some(s) = got else { break };
            match s.result {
                Ok(inst) => {
                    if stop_now.is_some() {
                        // Started after the stop: not waited for.
                        inst.kill();
                        let _ = inst.finish();
                        fail(&mut starts, s.index, "stopped before it was ready".into());
                        in_flight -= 1;
                    } else {
                        pending.push(Pending {
                            index: s.index,
                            t0_ns: s.t0_ns,
                            inst,
                        });
                    }
                }
                Err(f) => {
                    in_flight -= 1;
                    if stop_now.is_none() {
                        // Ctrl-C kills the containers and refuses new ones: not their failure.
                        let kind = if progress.interrupted() {
                            "interrupted"
                        } else if f.limit.is_some() {
                            "limit"
                        } else {
                            "failed"
                        };
                        let reason = format!(
                            "instance {} of {n} could not be started: {}",
                            s.index + 1,
                            f.message
                        );
                        stop_now = Some(stop(plan, kind, reason, f.limit.clone()));
                        pool.cancel.store(true, Ordering::SeqCst);
                    }
                    fail(&mut starts, s.index, f.message);
                }
            }
        }
        if in_flight == 0 && (issued == n || stop_now.is_some()) {
            break;
        }
        // Marker pipes of the instances not ready yet.
        if !pending.is_empty() {
            let mut fds: Vec<libc::pollfd> = pending
                .iter()
                .map(|p| libc::pollfd {
                    fd: p.inst.marker_fd().unwrap_or(-1),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: a valid array of pollfd structs of the given length; negative fds are
            // ignored by the kernel.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
            let now = monotonic_ns();
            let mut still = Vec::with_capacity(pending.len());
            for (mut p, pfd) in pending.drain(..).zip(fds) {
                let timed_out = now.saturating_sub(p.t0_ns) > plan.ready_timeout.as_nanos() as u64;
                let outcome = if pfd.revents != 0 || pfd.fd < 0 {
                    p.inst.read_markers()
                } else {
                    MarkerRead::Bytes(Vec::new())
                };
                match outcome {
                    MarkerRead::Bytes(b) if has_waiting(&b) => {
                        let at = monotonic_ns();
                        let s = &mut starts[p.index];
                        s.ready_ms = Some(at.saturating_sub(p.t0_ns) as f64 / 1e6);
                        s.since_storm_ms = Some(at.saturating_sub(storm_t0) as f64 / 1e6);
                        s.phases = p.inst.phases_ms();
                        last_ready_ns = Some(at);
                        ready.push(p.inst);
                        in_flight -= 1;
                    }
                    MarkerRead::Bytes(_) if !timed_out => still.push(p),
                    other => {
                        let why = if matches!(other, MarkerRead::Closed) {
                            "ended before it was ready"
                        } else {
                            "not ready in time"
                        };
                        p.inst.kill();
                        let detail = match p.inst.finish() {
                            Err(e) => format!("{why}: {e}"),
                            Ok(_) => format!(
                                "{why} (its stderr is in the run's {})",
                                super::record::LOG_FILE
                            ),
                        };
                        if stop_now.is_none() {
                            let kind = if progress.interrupted() {
                                "interrupted"
                            } else {
                                "failed"
                            };
                            stop_now = Some(stop(
                                plan,
                                kind,
                                format!("instance {} of {n} {detail}", p.index + 1),
                                None,
                            ));
                            pool.cancel.store(true, Ordering::SeqCst);
                        }
                        fail(&mut starts, p.index, detail);
                        in_flight -= 1;
                    }
                }
            }
            pending = still;
        }
        progress.starting(ready.len(), n);
        if Instant::now() >= next_memory_check {
            next_memory_check = Instant::now() + Duration::from_millis(20);
            let avail = meter::Meminfo::read().map_or(u64::MAX, |m| m.mem_available);
            if avail < plan.floor_kib && stop_now.is_none() {
                stop_now = Some(stop(
                    plan,
                    "floor",
                    format!(
                        "MemAvailable fell to {} MiB, under the floor of {} MiB, with {} of {n} \
                         instances ready: stopped adding instances",
                        avail / 1024,
                        plan.floor_kib / 1024,
                        ready.len()
                    ),
                    None,
                ));
                pool.cancel.store(true, Ordering::SeqCst);
            }
        }
        if progress.interrupted() && stop_now.is_none() {
            stop_now = Some(stop(plan, "interrupted", "Ctrl-C".into(), None));
            pool.cancel.store(true, Ordering::SeqCst);
        }
        if stop_now.is_some() {
            // Those still starting are not waited for.
            for p in pending.drain(..) {
                p.inst.kill();
                let _ = p.inst.finish();
                fail(&mut starts, p.index, "stopped before it was ready".into());
                in_flight -= 1;
            }
        }
    }
    Storm {
        storm_ms: last_ready_ns
            .filter(|_| stop_now.is_none())
            .map(|t| t.saturating_sub(storm_t0) as f64 / 1e6),
        starts,
        ready,
        stop: stop_now,
    }
}

/// Starts one more instance beside those running, waits until it is ready and removes it;
/// returns its start in ms.
fn one_more(pool: &Pool, plan: &RoundPlan) -> Option<f64> {
    pool.submit(usize::MAX);
    let started = pool.results.recv_timeout(plan.ready_timeout).ok()?;
    let mut inst = started.result.ok()?;
    let deadline = Instant::now() + plan.ready_timeout;
    let mut ms = None;
    while Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd: inst.marker_fd().unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 20) };
        match inst.read_markers() {
            MarkerRead::Bytes(b) if has_waiting(&b) => {
                ms = Some(monotonic_ns().saturating_sub(started.t0_ns) as f64 / 1e6);
                break;
            }
            MarkerRead::Bytes(_) => {}
            MarkerRead::Closed => break,
        }
    }
    inst.kill();
    let _ = inst.finish();
    ms
}
