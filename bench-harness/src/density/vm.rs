//! The VM instances of a density run: each VM in a VMM process of its own (`isolab-vmm`, issue
//! 12's process model), below the run's cgroup, started with `hold` so it runs until the run
//! stops it. The guest's agent runs the `wait` workload: it writes its working set, reports
//! (its `/proc/meminfo` in the result) and sends `Waiting`, which the VMM forwards as a marker.
//!
//! - PSS of the instance = PSS of its VMM process, which maps the guest's RAM: guest RAM touched
//!   plus the VMM's own memory, the same meter as a native process's or a container's PSS;
//! - the split ([`VmMemory`]): `/proc/PID/smaps` of the VMM process divided by the guest RAM
//!   ranges it reported when its vCPUs started;
//! - from inside: the agent's `MemTotal` and `MemAvailable`, read back from the VM's report when
//!   it stops;
//! - teardown: a stop request to every VMM (the VM is torn down and reports), then each is
//!   reaped and its cgroup removed: "first kill to last reap" for a VM.

use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use container_backend::MarkerRead;
use vm_backend::process::client::{Next, VmmProcess};
use vm_backend::process::protocol::{StartRequest, VmmMessage};
use vm_backend::vmm::VmReport;

use super::instance::{marker_phases, Finished, Instance, Kind, Launcher, StartFailure};
use super::limits::Needs;
use super::record::VmMemory;
use crate::backend::{Backend, PrepareContext};
use crate::backends::vm::{memory_inside, HeldVmPlan, VmBackend, VmmPlaces};
use crate::timefmt::monotonic_ns;

/// How long a stopped VM may take to report and end before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Starts VMs.
#[derive(Debug)]
pub struct VmLauncher {
    /// Holds the prepared kernel and initramfs; cleaned up when the launcher goes.
    backend: std::sync::Mutex<VmBackend>,
    plan: HeldVmPlan,
}

impl VmLauncher {
    /// Prepares the VM backend (kernel, initramfs with the agent) and the plan of a VM running
    /// `spec`; `mergeable` marks guest RAM for KSM (`--ksm on`).
    pub fn new(
        ctx: &PrepareContext,
        kernel: Option<&std::path::Path>,
        spec: &workloads::WorkloadSpec,
        mergeable: bool,
    ) -> Result<Self, String> {
        let mut backend = match kernel {
            Some(k) => VmBackend::with_kernel(k.to_path_buf()),
            None => VmBackend::new(),
        };
        backend.prepare(ctx).map_err(|e| e.to_string())?;
        let plan = match backend.held_vm_plan(spec, mergeable) {
            Ok(p) => p,
            Err(e) => {
                let _ = backend.cleanup();
                return Err(e);
            }
        };
        Ok(Self {
            backend: std::sync::Mutex::new(backend),
            plan,
        })
    }
}

impl Drop for VmLauncher {
    fn drop(&mut self) {
        let b = self.backend.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = b.cleanup() {
            eprintln!("warning: {e}");
        }
    }
}

impl Launcher for VmLauncher {
    fn kind(&self) -> Kind {
        Kind::Vm
    }

    fn needs(&self) -> Needs {
        Needs {
            // The socket to the VMM, its stderr pipe, and its cgroup's join fds for a moment.
            fds: 4,
            // The VMM's main, vCPU and control threads, and the reader thread in isolab.
            processes: 4,
            cgroups: 1,
            namespaces: false,
        }
    }

    fn start(&self, _stderr: Option<OwnedFd>) -> Result<Box<dyn Instance>, StartFailure> {
        let fail = |message: String| StartFailure {
            message,
            limit: None,
        };
        let started_ns = monotonic_ns();
        let places = VmmPlaces::create(
            self.plan.run_cgroup.as_deref(),
            self.plan.config.memory_mib,
            None,
        )
        .map_err(fail)?;
        let process = VmmProcess::spawn(&places.spawn(self.plan.vmm.clone(), false))
            .map_err(|e| fail(e.to_string()))?;
        let request = StartRequest {
            config: self.plan.config.clone(),
            origin_mono_ns: started_ns,
            seccomp: self.plan.seccomp,
            jail: None,
            hold: true,
            probe_jail: false,
        };
        process.start(&request).map_err(|e| fail(e.to_string()))?;
        Ok(Box::new(VmInstance {
            process,
            places,
            started_ns,
            guest_ram: Vec::new(),
            markers: Vec::new(),
            report: None,
            ended: None,
        }))
    }

    fn facts(&self) -> std::collections::BTreeMap<String, String> {
        let b = self.backend.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = b.facts();
        f.insert(
            "vm_guest_ram_mib".into(),
            self.plan.config.memory_mib.to_string(),
        );
        f.insert(
            "vm_mergeable".into(),
            self.plan.config.mergeable.to_string(),
        );
        if self.plan.emulated {
            f.insert(super::render::EMULATED_FACT.into(), "true".into());
        }
        f
    }
}

/// One VM.
struct VmInstance {
    process: VmmProcess,
    places: VmmPlaces,
    /// When its start began, CLOCK_MONOTONIC ns.
    started_ns: u64,
    /// Guest RAM's (host address, length) in the VMM process, once its vCPUs run.
    guest_ram: Vec<(u64, u64)>,
    /// Marker bytes and when they arrived, ns after the start.
    markers: Vec<(u8, u64)>,
    report: Option<Box<VmReport>>,
    /// Why it ended, once it did.
    ended: Option<String>,
}

impl VmInstance {
    /// Takes every message that has arrived (waiting at most until `deadline`); returns the
    /// marker bytes among them.
    fn drain(&mut self, deadline: Instant) -> Vec<u8> {
        let mut got = Vec::new();
        while self.ended.is_none() {
            match self.process.next(Some(deadline)) {
                Ok(Some(VmmMessage::Marker(m))) => {
                    got.push(m.byte);
                    self.markers
                        .push((m.byte, monotonic_ns().saturating_sub(self.started_ns)));
                }
                Ok(Some(VmmMessage::Running { guest_ram, .. })) => self.guest_ram = guest_ram,
                Ok(Some(VmmMessage::Report(r))) => {
                    self.ended = Some(format!("the VM stopped: {}", r.stop));
                    self.report = Some(r);
                }
                Ok(Some(VmmMessage::Failed { message, .. })) => self.ended = Some(message),
                Ok(Some(_)) => {}
                Ok(None) | Err(Next::Closed) => {
                    self.ended = Some(format!(
                        "the VMM process ended: {}",
                        crate::backends::tail_lines(&self.process.stderr(), 10)
                    ));
                }
                Err(Next::TimedOut) => break,
                Err(Next::Garbled(e)) => self.ended = Some(format!("the VMM said: {e}")),
            }
        }
        got
    }
}

impl Instance for VmInstance {
    fn pid(&self) -> i32 {
        self.process.pid()
    }

    fn marker_fd(&self) -> Option<RawFd> {
        // Messages arrive on a channel from the client's reader thread, not on a descriptor:
        // the round reads them every time it looks.
        None
    }

    fn read_markers(&mut self) -> MarkerRead {
        let got = self.drain(Instant::now());
        if got.is_empty() && self.ended.is_some() {
            MarkerRead::Closed
        } else {
            MarkerRead::Bytes(got)
        }
    }

    fn processes(&self) -> Vec<i32> {
        vec![self.process.pid()]
    }

    fn vm_memory(&self) -> Option<VmMemory> {
        if self.guest_ram.is_empty() {
            return None;
        }
        let m = vm_backend::vstate::memory::measure_pid(self.process.pid(), &self.guest_ram)?;
        Some(VmMemory {
            guest_ram_kib: m.guest_ram_pss / 1024,
            vmm_overhead_kib: m.other_pss / 1024,
        })
    }

    fn phases_ms(&self) -> Vec<(String, f64)> {
        marker_phases(&self.markers)
    }

    fn kill(&self) {
        // The VM is stopped and reports (its guest's view from inside is in the report).
        self.process.stop();
    }

    fn finish(mut self: Box<Self>) -> Result<Finished, String> {
        let deadline = Instant::now() + STOP_GRACE;
        while self.report.is_none() && self.ended.is_none() && Instant::now() < deadline {
            self.drain(deadline);
        }
        let (exit, _) = self.process.wait(deadline);
        let problems = self.places.remove();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        match &self.report {
            Some(r) => Ok(Finished {
                inside: memory_inside(r),
            }),
            None => Err(format!(
                "the VM gave no report when stopped ({exit:?}): {}",
                self.ended.as_deref().unwrap_or("no message")
            )),
        }
    }

    fn places(&self) -> Vec<PathBuf> {
        self.places.cgroup_dirs()
    }
}
