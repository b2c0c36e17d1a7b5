//! What the process that runs a VM can do at the VMM's turning points, without the VMM knowing
//! how that process is confined: open `/dev/kvm` its own way, drop privileges once every input
//! is open, confine each thread as it starts (seccomp), learn where guest RAM is and stop the VM
//! on request, see the agent's markers as they come, and measure memory.
//!
//! [`crate::vmm::run`] uses [`InProcess`], which does nothing special (tests, `vmm-run`, a VMM
//! run inside a bigger program); the VMM process ([`crate::process`]) confines itself through
//! these hooks. Each hook says on which thread it runs and at which moment: that is the contract
//! a confinement relies on.

use std::sync::mpsc;

use kvm_ioctls::Kvm;

use crate::devices::marker::MarkerEvent;
use crate::error::{Result, VmError};
use crate::vstate::memory::{self, MemoryUsage};

/// The threads of a running VM, by what they do (each kind gets its own seccomp filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmmThread {
    /// The thread that built the VM and now waits for it to stop, then tears it down.
    Main,
    /// The thread of one vCPU (its index): KVM_RUN and the exits it handles.
    Vcpu(usize),
    /// A device's own thread, by device (`virtio-blk`).
    Device(&'static str),
}

impl std::fmt::Display for VmmThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmmThread::Main => f.write_str("the VMM's main thread"),
            VmmThread::Vcpu(i) => write!(f, "the thread of vCPU {i}"),
            VmmThread::Device(d) => write!(f, "the {d} device thread"),
        }
    }
}

/// The vCPU-done value [`StopHandle::stop`] sends: no vCPU has this index.
pub(crate) const HOST_STOP: usize = usize::MAX;

/// Stops a running VM from outside (the host asked, or the process that runs it is told to
/// stop): the VM ends as at a timeout, with [`crate::vmm::StopReason::HostRequest`].
#[derive(Debug, Clone)]
pub struct StopHandle {
    tx: mpsc::Sender<usize>,
}

impl StopHandle {
    pub(crate) fn new(tx: mpsc::Sender<usize>) -> Self {
        Self { tx }
    }

    /// Asks the VM to stop. Harmless when it has already stopped.
    pub fn stop(&self) {
        let _ = self.tx.send(HOST_STOP);
    }
}

/// The turning points of [`crate::vmm::run_with`]. Every method has a default that does what an
/// unconfined VMM does.
pub trait VmmHooks: Send + Sync + std::fmt::Debug {
    /// Opens `/dev/kvm` (main thread, before anything else touches KVM). A jailed VMM opened it
    /// before entering its jail, where there is no `/dev`.
    fn open_kvm(&self) -> Result<Kvm> {
        Kvm::new().map_err(VmError::KvmOpen)
    }

    /// Opens the network device's tap (main thread, before [`VmmHooks::inputs_opened`]). A VMM
    /// process opened it before its jail and filters, in the lab namespace.
    fn open_tap(&self, net: &crate::vmm::NetConfig) -> Result<crate::devices::virtio::net::Tap> {
        Ok(crate::devices::virtio::net::Tap::open_in(
            net.netns.as_deref(),
            &net.tap,
        )?)
    }

    /// Every input is open: `/dev/kvm`, the kernel, the initramfs and the disk image, and the
    /// guest is loaded (main thread; no other thread of the VM exists yet). The place to drop
    /// privileges: nothing after this opens a file by path.
    fn inputs_opened(&self) -> Result<()> {
        Ok(())
    }

    /// A thread of the VM starts (called on that thread before it does anything a guest can
    /// influence; for [`VmmThread::Main`], once every other thread has been started). An error
    /// ends the VM: a thread that cannot be confined must not run.
    fn thread_started(&self, thread: VmmThread) -> std::result::Result<(), String> {
        let _ = thread;
        Ok(())
    }

    /// The vCPUs run (main thread, before [`VmmHooks::thread_started`] of the main thread): where
    /// guest RAM lies in this process (host address, length), for whoever measures it from
    /// outside, and a handle that stops the VM.
    fn running(&self, guest_ram: &[(u64, u64)], stop: StopHandle) {
        let _ = (guest_ram, stop);
    }

    /// The guest wrote a marker (on the vCPU thread whose write exited, after the VMM took its
    /// snapshots; keep it short).
    fn marker(&self, event: MarkerEvent) {
        let _ = event;
    }

    /// This process's memory, guest RAM apart, with the largest other mappings (main thread,
    /// after the guest stopped and before the VM is torn down).
    fn measure_memory(
        &self,
        guest_ram: &[(u64, u64)],
    ) -> Option<(MemoryUsage, Vec<(String, u64)>)> {
        memory::measure_detailed(guest_ram, 8)
    }
}

/// The hooks of a VMM that runs unconfined inside the calling process: every default.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess;

impl VmmHooks for InProcess {}
