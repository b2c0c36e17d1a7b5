//! cgroup v1: one hierarchy per controller. The trial cgroup is a directory of the same name in
//! each hierarchy the runtime uses; the child joins each by writing `0` (itself) to its
//! `cgroup.procs` before it execs, because v1 does not move memory already charged when a task
//! changes cgroups: a join after exec would leave the agent's start-up charged to the parent.
//!
//! The join writes to `tasks`, not `cgroup.procs`: the child is single-threaded, so moving its one
//! thread moves the process, and the kernel moves the *calling* thread without taking the global
//! threadgroup lock, whose write side waits for an RCU grace period (4-25 ms measured here, per
//! join, against about 20 µs through `tasks`). For the same reason the parent cannot move the
//! child (a pid other than 0 takes that lock).
//!
//! The trial cgroup is created before the clone, with its `tasks` files opened by the parent; the
//! child writes to them first thing, before it mounts anything, so the kernel memory of its
//! mounts is charged to the container. (Creating the cgroup while the child set up its
//! namespaces, with the child waiting at a gate for it, was measured slower on a loaded 2-core
//! host: the child's wake-up at the gate cost more than the overlap saved.)
//!
//! A container's limits and CPU weight, though, are written by the parent *after* the child
//! has joined (it says so through a futex), while the child brings up `lo` and mounts; the
//! child waits for them before it drops its capabilities and execs, which by then it almost
//! never has to. Written earlier, they lengthened the start by their six writes; written
//! during the join, they contended with it for the cgroup locks.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cgroups_rs::fs::hierarchies::V1;
use cgroups_rs::fs::Controllers;

use super::{
    apply_all, cpu, devices, io, memory, pids, read, remove_dirs, CgroupLimits, CgroupVersion,
};
use crate::error::ContainerError;

/// Mount points of the v1 controllers the runtime uses.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    memory: PathBuf,
    cpu: PathBuf,
    cpuacct: PathBuf,
    pids: PathBuf,
    /// I/O accounting only; a host without blkio just reports no I/O bytes.
    blkio: Option<PathBuf>,
    /// The device controller: containers may use /dev/null, /dev/zero and /dev/urandom only.
    devices: PathBuf,
    /// Where trial cgroups go below each hierarchy's root: the run's cgroup (empty: the top).
    parent: PathBuf,
    /// Swap accounting is on: the memsw limit exists and must be set to forbid swap.
    has_memsw: bool,
    /// The devices cgroup the runtime's containers share (see [`SharedDevices`]); `None` for
    /// hierarchies that make no containers (a run's native trials and VMMs).
    shared_devices: Option<Arc<SharedDevices>>,
}

/// One cgroup of the devices hierarchy with the device rules written once, which every
/// container of a runtime joins. The v1 devices controller only filters (it accounts nothing),
/// and every container of a runtime has the same rules: a cgroup per container would repeat a
/// mkdir, four writes and an rmdir per start for the same filter. Named like a trial
/// (`isolab-<pid>-<n>-devices`), so `doctor --clean` finds it if isolab dies; removed when the
/// runtime and the last of its containers are gone.
#[derive(Debug)]
pub(crate) struct SharedDevices {
    dir: PathBuf,
    tasks: OwnedFd,
}

impl SharedDevices {
    fn create(dir: PathBuf) -> Result<Self, ContainerError> {
        std::fs::create_dir(&dir).map_err(|e| ContainerError::cgroup("create", &dir, e))?;
        let tasks = apply_all(&dir, &devices::v1_rules()).and_then(|()| open_tasks(&dir));
        match tasks {
            Ok(tasks) => Ok(Self { dir, tasks }),
            Err(e) => {
                let _ = remove_dirs(std::slice::from_ref(&dir));
                Err(e)
            }
        }
    }

    /// The directory (for tests and reports).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SharedDevices {
    fn drop(&mut self) {
        // Every container that joined it has been reaped (each holds a reference until its
        // cgroup is removed). Best effort: `doctor --clean` removes what a failure leaves.
        let _ = remove_dirs(std::slice::from_ref(&self.dir));
    }
}

fn open_tasks(dir: &Path) -> Result<OwnedFd, ContainerError> {
    let tasks = dir.join("tasks");
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tasks)
        .map(OwnedFd::from)
        .map_err(|e| ContainerError::cgroup("open", &tasks, e))
}

fn missing(controller: &'static str) -> ContainerError {
    ContainerError::MissingController {
        controller,
        version: CgroupVersion::V1,
        fix: format!(
            "mount it (`mkdir -p /sys/fs/cgroup/{controller} && mount -t cgroup -o {controller} \
             cgroup /sys/fs/cgroup/{controller}`) or enable it in the kernel (CONFIG_CGROUPS and \
             the controller's option)"
        ),
    }
}

impl Hierarchy {
    /// Finds the v1 mount points in /proc/self/mountinfo (through cgroups-rs, which also handles
    /// co-mounted controllers such as `cpu,cpuacct`). Trial cgroups go below `parent` (relative
    /// to each hierarchy's root; empty for the top), which must exist in every hierarchy.
    pub(crate) fn detect(parent: &Path) -> Result<Self, ContainerError> {
        let v1 = V1::new();
        let mount = |c: Controllers| v1.get_mount_point(c).map(|(point, _root)| point);
        let memory = mount(Controllers::Mem).ok_or_else(|| missing("memory"))?;
        let cpu = mount(Controllers::Cpu).ok_or_else(|| missing("cpu"))?;
        let cpuacct = mount(Controllers::CpuAcct).ok_or_else(|| missing("cpuacct"))?;
        let pids = mount(Controllers::Pids).ok_or_else(|| missing("pids"))?;
        let blkio = mount(Controllers::BlkIo);
        let devices = mount(Controllers::Devices).ok_or_else(|| missing("devices"))?;
        let has_memsw = memory.join(memory::V1_MEMSW_LIMIT).exists();
        Ok(Self {
            memory,
            cpu,
            cpuacct,
            pids,
            blkio,
            devices,
            parent: parent.to_path_buf(),
            has_memsw,
            shared_devices: None,
        })
    }

    /// Makes the devices cgroup `name` below the parent, with the device rules, for the
    /// containers of this hierarchy's runtime to share ([`SharedDevices`]).
    pub(crate) fn with_shared_devices(mut self, name: &str) -> Result<Self, ContainerError> {
        let dir = self.devices.join(&self.parent).join(name);
        self.shared_devices = Some(Arc::new(SharedDevices::create(dir)?));
        Ok(self)
    }

    /// Gives up the shared devices cgroup, removing it now if no container holds it any more
    /// (else the last one does, when it is removed).
    pub(crate) fn release_shared_devices(&mut self) -> Result<(), ContainerError> {
        match self.shared_devices.take().map(Arc::try_unwrap) {
            Some(Ok(shared)) => remove_dirs(std::slice::from_ref(&shared.dir)),
            Some(Err(_)) | None => Ok(()),
        }
    }

    /// The shared devices cgroup's directory, if this hierarchy has one.
    pub(crate) fn shared_devices_dir(&self) -> Option<&Path> {
        self.shared_devices.as_deref().map(SharedDevices::dir)
    }

    /// Every hierarchy directory a cgroup named `rel` (relative to the roots) has, deduplicated.
    pub(crate) fn dirs_of(&self, rel: &Path) -> Vec<PathBuf> {
        let mut d: Vec<PathBuf> = [
            &self.memory,
            &self.cpu,
            &self.cpuacct,
            &self.pids,
            &self.devices,
        ]
        .into_iter()
        .chain(self.blkio.as_ref())
        .map(|m| m.join(rel))
        .collect();
        d.sort();
        d.dedup();
        d
    }

    /// Every v1 cgroup mount point (for leftover cleaning, which also looks at hierarchies this
    /// version of the runtime does not use).
    pub(crate) fn all_mount_points() -> Vec<PathBuf> {
        let mut points: Vec<PathBuf> = cgroups_rs::fs::hierarchies::mountinfo_self()
            .into_iter()
            .filter(|m| m.fs_type.0 == "cgroup")
            .map(|m| m.mount_point)
            .collect();
        points.sort();
        points.dedup();
        points
    }

    /// Creates `<mount>/<parent>/<name>` in each hierarchy, sets the CPU weight, limits and (with
    /// `confine_devices`) the device rules, opens `tasks` for the join. With `confine_devices`
    /// and a [`SharedDevices`] cgroup, the trial joins that one in the devices hierarchy instead
    /// of having its own.
    pub(crate) fn create(
        &self,
        name: &str,
        limits: &CgroupLimits,
        confine_devices: bool,
    ) -> Result<TrialCgroup, ContainerError> {
        self.create_with(name, Some(limits), confine_devices)
    }

    /// [`Hierarchy::create`]; with `limits` `None`, neither limits nor the CPU weight are
    /// written (the caller writes them with [`TrialCgroup::write_limits`]).
    pub(crate) fn create_with(
        &self,
        name: &str,
        limits: Option<&CgroupLimits>,
        confine_devices: bool,
    ) -> Result<TrialCgroup, ContainerError> {
        let rel = self.parent.join(name);
        let mut trial = TrialCgroup {
            dirs: Vec::with_capacity(6),
            procs: Vec::with_capacity(6),
            memory: self.memory.join(&rel),
            cpu: self.cpu.join(&rel),
            cpuacct: self.cpuacct.join(&rel),
            pids: self.pids.join(&rel),
            blkio: self.blkio.as_ref().map(|b| b.join(&rel)),
            devices: self.devices.join(&rel),
            shared_devices: self.shared_devices.clone().filter(|_| confine_devices),
            has_memsw: self.has_memsw,
        };
        match self.fill(&mut trial, limits, confine_devices) {
            Ok(()) => Ok(trial),
            Err(e) => {
                trial.procs.clear();
                // The first error is the one to report; removal of a half-made cgroup is
                // best-effort and `doctor --clean` catches what it misses.
                let _ = remove_dirs(&trial.dirs);
                Err(e)
            }
        }
    }

    fn fill(
        &self,
        trial: &mut TrialCgroup,
        limits: Option<&CgroupLimits>,
        confine_devices: bool,
    ) -> Result<(), ContainerError> {
        let mut wanted: Vec<PathBuf> = vec![
            trial.memory.clone(),
            trial.cpu.clone(),
            trial.cpuacct.clone(),
            trial.pids.clone(),
        ];
        // Every trial is in the devices hierarchy too (native without rules, a container in its
        // runtime's shared one or its own), so a trial never stays in isolab's own cgroup of any
        // hierarchy.
        if trial.shared_devices.is_none() {
            wanted.push(trial.devices.clone());
        }
        wanted.extend(trial.blkio.clone());
        // Co-mounted controllers (cpu,cpuacct) share one directory.
        wanted.sort();
        wanted.dedup();
        for dir in wanted {
            std::fs::create_dir(&dir).map_err(|e| ContainerError::cgroup("create", &dir, e))?;
            trial.dirs.push(dir);
        }
        if let Some(limits) = limits {
            trial.write_limits(limits)?;
        }
        if confine_devices && trial.shared_devices.is_none() {
            apply_all(&trial.devices, &devices::v1_rules())?;
        }
        for dir in &trial.dirs {
            trial.procs.push(open_tasks(dir)?);
        }
        Ok(())
    }
}

/// The trial cgroup across the v1 hierarchies.
#[derive(Debug)]
pub(crate) struct TrialCgroup {
    /// Directories created, deduplicated (what removal must delete).
    pub(crate) dirs: Vec<PathBuf>,
    /// `tasks` of each directory, open for the child's join.
    pub(crate) procs: Vec<OwnedFd>,
    memory: PathBuf,
    cpu: PathBuf,
    cpuacct: PathBuf,
    pids: PathBuf,
    blkio: Option<PathBuf>,
    devices: PathBuf,
    /// The runtime's shared devices cgroup this trial joins (held until the trial is dropped,
    /// after its process is reaped, so the shared cgroup outlives its members).
    shared_devices: Option<Arc<SharedDevices>>,
    has_memsw: bool,
}

impl TrialCgroup {
    /// Writes `limits` (memory and swap, CPU quota, pids) and the run's CPU weight.
    pub(crate) fn write_limits(&self, limits: &CgroupLimits) -> Result<(), ContainerError> {
        apply_all(&self.cpu, &[cpu::v1_weight()])?;
        if let Some(bytes) = limits.memory_bytes {
            apply_all(&self.memory, &memory::v1_limit(bytes, self.has_memsw))?;
        }
        if let Some(cores) = limits.cpus {
            apply_all(&self.cpu, &cpu::v1_limit(cores))?;
        }
        if let Some(max) = limits.pids_max {
            apply_all(&self.pids, &pids::limit(max))?;
        }
        Ok(())
    }

    /// The `tasks` files the child writes itself to, in order (the shared devices one last).
    pub(crate) fn join_fds(&self) -> Vec<RawFd> {
        if self.procs.is_empty() {
            // Joined already (the fds are closed once the child is in): nothing to write.
            return Vec::new();
        }
        let shared = self.shared_devices.iter().map(|d| d.tasks.as_raw_fd());
        self.procs
            .iter()
            .map(AsRawFd::as_raw_fd)
            .chain(shared)
            .collect()
    }

    /// The directory in the memory hierarchy.
    pub(crate) fn memory_dir(&self) -> &Path {
        &self.memory
    }

    pub(crate) fn memory_breakdown(&self) -> memory::MemoryBreakdown {
        let kmem = read(&self.memory, memory::V1_KMEM);
        memory::parse_v1_stat(
            &read(&self.memory, memory::STAT),
            (!kmem.is_empty()).then_some(kmem.as_str()),
        )
    }

    pub(crate) fn usage(&self) -> super::ResourceUsage {
        super::ResourceUsage {
            peak_memory_bytes: read(&self.memory, memory::V1_PEAK)
                .trim()
                .parse()
                .unwrap_or(0),
            memory: self.memory_breakdown(),
            cpu: cpu::parse_v1(
                &read(&self.cpuacct, cpu::V1_USAGE),
                &read(&self.cpuacct, cpu::V1_USAGE_USER),
                &read(&self.cpuacct, cpu::V1_USAGE_SYS),
            ),
            io: self
                .blkio
                .as_deref()
                .map(|b| io::parse_v1(&read(b, io::V1_SERVICE_BYTES)))
                .unwrap_or_default(),
            oom_kills: memory::parse_oom_kills(&read(&self.memory, memory::V1_OOM)),
            pids_limit_hits: pids::parse_limit_hits(&read(&self.pids, pids::EVENTS)),
        }
    }
}
