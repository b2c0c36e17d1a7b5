//! virtio-net: the VM's network card, a receive queue (0) and a transmit queue (1) whose frames
//! go to and come from a tap device on the host (in the run's lab network namespace, where the
//! network workloads' peer is).
//!
//! Frames cross with the virtio net header in front (`struct virtio_net_hdr_v1`, 12 bytes, the
//! layout of every virtio 1.x device): the tap is opened with `IFF_VNET_HDR` and the same header
//! size, so the header goes to the host kernel as the guest wrote it and comes back as the host
//! kernel wrote it, and checksum and segmentation offloads (`--vm-net-offload on`) need no work
//! in the VMM. With offloads off the device offers none of those features, zeroes the header of
//! every transmitted frame (a guest that was not offered them may not use them) and tells the tap
//! to hand over only complete, checksummed frames (`TUNSETOFFLOAD` 0).
//!
//! Serving: one device thread (the same [`super::DeviceThread`] as the disk's) waits on the
//! queues' ioeventfd (both queues' QueueNotify writes are matched in KVM and never reach the
//! VMM), on the control eventfd and, edge-triggered, on the tap. Each wake-up serves the transmit
//! queue, then the receive queue, each in a bounded pass, and raises at most one interrupt. A
//! frame read from the tap while the guest has no receive buffer waits in the device (one frame,
//! as a NIC's FIFO would hold it) and the device asks the guest to notify when it adds buffers
//! (event index). With `VIRTIO_RING_F_EVENT_IDX` both interrupts and notifications are
//! suppressed as the driver and the device ask; the interrupts the device did not raise because
//! the driver did not want them are counted.
//!
//! Everything in the rings is guest input: a transmit chain must be device-readable, hold at
//! least a header and at most [`MAX_PACKET`] bytes and no more than [`MAX_CHAIN`] descriptors;
//! a receive chain must be device-writable; every descriptor must lie in guest RAM. A bad chain is
//! returned used and counted (the frame is dropped, as a NIC drops a malformed one); a broken
//! ring (an index or head out of range) marks the device `DEVICE_NEEDS_RESET`. A pass serves at
//! most [`MAX_CHAINS_PER_PASS`] chains per queue.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;
use virtio_bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::block::PassControl;
use super::VIRTIO_RING_F_EVENT_IDX;
use super::{lock, ActivateError, Interrupt, VirtioDevice, VIRTIO_F_VERSION_1};

/// The virtio device id of a network card.
pub const VIRTIO_ID_NET: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_NET;
/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// The receive queue's index.
pub const RX_QUEUE: usize = 0;
/// The transmit queue's index.
pub const TX_QUEUE: usize = 1;
/// Length of `struct virtio_net_hdr_v1` (with `num_buffers`), in front of every frame.
pub const VNET_HDR_LEN: usize = 12;
/// The largest frame: a 64 KiB TCP segment (with segmentation offload) and its Ethernet and VLAN
/// headers, as Linux's virtio_net driver and Firecracker bound it.
pub const MAX_FRAME: usize = 65550;
/// The largest packet the device moves: header and frame.
pub const MAX_PACKET: usize = VNET_HDR_LEN + MAX_FRAME;
/// Most descriptors in one chain. Linux's driver uses at most `MAX_SKB_FRAGS + 2` (19) for a
/// packet; virtio-queue ends a chain that loops only after a queue's worth of descriptors, so a
/// bound well below the queue size is also what refuses a loop.
pub const MAX_CHAIN: usize = 64;
/// Most chains served per queue in one pass; more left means another pass after the device
/// thread has looked at its stop flag.
pub const MAX_CHAINS_PER_PASS: usize = QUEUE_SIZE as usize;
/// The MAC address the guest gets (locally administered).
pub const GUEST_MAC: [u8; 6] = [0x06, 0x00, 0x69, 0x73, 0x6f, 0x02];

/// Feature bits (virtio 1.2, 5.1.3).
const VIRTIO_NET_F_CSUM: u32 = 0;
const VIRTIO_NET_F_GUEST_CSUM: u32 = 1;
const VIRTIO_NET_F_MAC: u32 = 5;
const VIRTIO_NET_F_GUEST_TSO4: u32 = 7;
const VIRTIO_NET_F_GUEST_TSO6: u32 = 8;
const VIRTIO_NET_F_HOST_TSO4: u32 = 11;
const VIRTIO_NET_F_HOST_TSO6: u32 = 12;

/// `TUNSETOFFLOAD` flags (linux/if_tun.h).
const TUN_F_CSUM: u32 = 0x01;
const TUN_F_TSO4: u32 = 0x02;
const TUN_F_TSO6: u32 = 0x04;

/// The feature bits the device offers: always version 1, event index and a MAC address; with
/// `offload`, checksum offload both ways and TCP segmentation offload both ways (IPv4, IPv6).
pub fn offered_features(offload: bool) -> u64 {
    let mut f = (1u64 << VIRTIO_F_VERSION_1)
        | (1u64 << VIRTIO_RING_F_EVENT_IDX)
        | (1u64 << VIRTIO_NET_F_MAC);
    if offload {
        for bit in [
            VIRTIO_NET_F_CSUM,
            VIRTIO_NET_F_GUEST_CSUM,
            VIRTIO_NET_F_GUEST_TSO4,
            VIRTIO_NET_F_GUEST_TSO6,
            VIRTIO_NET_F_HOST_TSO4,
            VIRTIO_NET_F_HOST_TSO6,
        ] {
            f |= 1u64 << bit;
        }
    }
    f
}

/// The tap offloads that match what the driver accepted for frames it receives: the host
/// kernel may then hand over partially checksummed and unsegmented frames.
pub fn tap_offload_flags(acked_features: u64) -> u32 {
    let has = |bit: u32| acked_features & (1u64 << bit) != 0;
    let mut flags = 0;
    if has(VIRTIO_NET_F_GUEST_CSUM) {
        flags |= TUN_F_CSUM;
        if has(VIRTIO_NET_F_GUEST_TSO4) {
            flags |= TUN_F_TSO4;
        }
        if has(VIRTIO_NET_F_GUEST_TSO6) {
            flags |= TUN_F_TSO6;
        }
    }
    flags
}

/// Why the tap could not be opened.
#[derive(Debug, Error)]
pub enum NetError {
    /// `/dev/net/tun` is missing or cannot be opened.
    #[error(
        "opening /dev/net/tun: {0}. Load the tun module (modprobe tun; CONFIG_TUN) and run as root"
    )]
    NoTun(io::Error),
    /// The tap device could not be attached.
    #[error("attaching tap device {name}: {source}. The tap must exist in the VMM's network namespace (isolab makes it in the run's lab namespace), with vnet_hdr, and not be in use")]
    Attach {
        /// Its name.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// A tap setting was refused.
    #[error("setting {what} on tap device {name}: {source}")]
    Setting {
        /// Which setting.
        what: &'static str,
        /// The device.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// The lab's network namespace could not be entered.
    #[error("entering the network namespace {path}: {source}. The run's lab network is gone, or isolab is not root")]
    Netns {
        /// Its path.
        path: std::path::PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The name is not a valid interface name.
    #[error("{0:?} is not an interface name (1 to 15 bytes, no '/', no whitespace)")]
    BadName(String),
}

/// Where the device's frames go and come from.
pub trait NetBackend: Send {
    /// Reads one packet (header and frame) into `buf`; `Ok(None)` when none is waiting.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Sends one packet (header and frame).
    fn send(&mut self, packet: &[u8]) -> io::Result<()>;
    /// The offloads the host kernel may use for frames it hands over (`TUN_F_*`).
    fn set_offload(&mut self, flags: u32) -> io::Result<()>;
    /// The descriptor that becomes readable when a packet waits (None: nothing to wait on).
    fn wait_fd(&self) -> Option<RawFd>;
}

/// `TUNSETIFF`, `TUNSETOFFLOAD` and `TUNSETVNETHDRSZ` (linux/if_tun.h: `_IOW('T', n, int)`).
const TUNSETIFF: u64 = 0x4004_54ca;
const TUNSETOFFLOAD: u64 = 0x4004_54d0;
const TUNSETVNETHDRSZ: u64 = 0x4004_54d8;
const TUNSETPERSIST: u64 = 0x4004_54cb;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;

/// The `TUNSETOFFLOAD` request, for the device thread's seccomp filter.
pub const TUNSETOFFLOAD_REQUEST: u64 = TUNSETOFFLOAD;

/// `struct ifreq` with the flags member of its union.
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: i16,
    _pad: [u8; 22],
}

/// A tap device opened with the virtio net header.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
}

impl Tap {
    /// Attaches to tap `name` in the calling thread's network namespace (creating it if it does
    /// not exist, which needs CAP_NET_ADMIN), nonblocking, with a 12-byte virtio net header and no
    /// offloads until the driver accepts some.
    pub fn open(name: &str) -> Result<Self, NetError> {
        if name.is_empty()
            || name.len() >= libc::IFNAMSIZ
            || name
                .bytes()
                .any(|b| b == b'/' || b.is_ascii_whitespace() || b == 0)
        {
            return Err(NetError::BadName(name.to_owned()));
        }
        // SAFETY: open(2) with a constant NUL-terminated path; the result is checked.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(NetError::NoTun(io::Error::last_os_error()));
        }
        // SAFETY: `raw` was just returned by open(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReqFlags {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `req` is laid out as (and
        // at least as large as); `fd` is open.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
            return Err(NetError::Attach {
                name: name.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads an int through the pointer, which is valid.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETVNETHDRSZ as _, &hdr_len) } < 0 {
            return Err(NetError::Setting {
                what: "the virtio net header size",
                name: name.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        let mut tap = Self {
            fd,
            name: name.to_owned(),
        };
        tap.set_offload(0).map_err(|source| NetError::Setting {
            what: "offloads",
            name: name.to_owned(),
            source,
        })?;
        Ok(tap)
    }

    /// [`Tap::open`] in the network namespace at `netns` (e.g. `/proc/PID/ns/net`), from a
    /// short-lived thread that enters it (a thread's namespace is its own, and the tap's fd works
    /// from any namespace once open); in the caller's namespace when None.
    pub fn open_in(netns: Option<&std::path::Path>, name: &str) -> Result<Self, NetError> {
        let Some(path) = netns else {
            return Self::open(name);
        };
        let ns = std::fs::File::open(path).map_err(|source| NetError::Netns {
            path: path.to_owned(),
            source,
        })?;
        let name = name.to_owned();
        let path = path.to_owned();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns(2) of this thread only, on a namespace fd that stays open.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(NetError::Netns {
                        path,
                        source: io::Error::last_os_error(),
                    });
                }
                Self::open(&name)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetError::BadName(
                    "(the thread opening the tap panicked)".into(),
                ))
            })
        })
    }

    /// Makes the tap outlive this descriptor (`TUNSETPERSIST`): it stays, with its address,
    /// until it is deleted or its namespace ends, and a VMM attaches to it by name.
    pub fn make_persistent(&self) -> Result<(), NetError> {
        // SAFETY: TUNSETPERSIST takes its flag by value; `fd` is open.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), TUNSETPERSIST as _, 1 as libc::c_ulong) } < 0 {
            return Err(NetError::Setting {
                what: "persistence",
                name: self.name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl NetBackend for Tap {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: read(2) into `buf`, which is valid for `buf.len()` bytes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(e),
            }
        }
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: write(2) from `packet`, valid for `packet.len()` bytes.
            let n =
                unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn set_offload(&mut self, flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its flags by value; `fd` is open.
        if unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                TUNSETOFFLOAD as _,
                flags as libc::c_ulong,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }
}

/// What an in-memory network holds.
#[derive(Debug, Default)]
pub struct MemNetState {
    /// Packets the device sent (header and frame), oldest first (the first 4096).
    pub sent: Vec<Vec<u8>>,
    /// Packets waiting for the guest.
    pub incoming: std::collections::VecDeque<Vec<u8>>,
    /// The last offload flags set.
    pub offload: u32,
}

/// An in-memory network for tests and fuzzing: frames the guest sends are kept, frames queued
/// with [`MemNet::inject`] are received. Clones share one state (the test keeps one, the
/// device the other).
#[derive(Debug, Default, Clone)]
pub struct MemNet(Arc<Mutex<MemNetState>>);

impl MemNet {
    /// Queues a packet (header and frame) for the guest.
    pub fn inject(&self, packet: Vec<u8>) {
        lock(&self.0).incoming.push_back(packet);
    }

    /// The shared state.
    pub fn state(&self) -> std::sync::MutexGuard<'_, MemNetState> {
        lock(&self.0)
    }
}

impl NetBackend for MemNet {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(p) = lock(&self.0).incoming.pop_front() else {
            return Ok(None);
        };
        // Like a read(2) of a datagram: the part that fits.
        let n = p.len().min(buf.len());
        buf[..n].copy_from_slice(&p[..n]);
        Ok(Some(n))
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        assert!(
            packet.len() <= MAX_PACKET && packet.len() >= VNET_HDR_LEN,
            "the device let an unbounded packet through: {} bytes",
            packet.len()
        );
        let mut state = lock(&self.0);
        if state.sent.len() < 4096 {
            state.sent.push(packet.to_vec());
        }
        Ok(())
    }

    fn set_offload(&mut self, flags: u32) -> io::Result<()> {
        lock(&self.0).offload = flags;
        Ok(())
    }

    fn wait_fd(&self) -> Option<RawFd> {
        None
    }
}

/// What the network device did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NetStats {
    /// Guest notifications (both queues) the device thread was woken by.
    pub notifies: u64,
    /// Wake-ups with no guest notification: the tap (a frame waiting), a control message or a
    /// bounded pass continuing.
    pub other_wakeups: u64,
    /// Frames sent to the tap.
    pub tx_packets: u64,
    /// Their bytes (frames, without the header).
    pub tx_bytes: u64,
    /// Frames received from the tap and given to the guest.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Transmit chains refused: a device-writable or out-of-RAM descriptor, shorter than the
    /// header, longer than [`MAX_PACKET`] or [`MAX_CHAIN`] descriptors.
    pub tx_bad_chains: u64,
    /// Frames the tap refused (its queue full, or the host dropped them).
    pub tx_dropped: u64,
    /// Receive chains refused (a device-readable or out-of-RAM descriptor) or too small for the
    /// frame; the frame is dropped.
    pub rx_bad_chains: u64,
    /// Times a frame waited because the guest had no receive buffer.
    pub rx_no_buffer: u64,
    /// Errors reading the tap.
    pub rx_errors: u64,
    /// Interrupts raised.
    pub interrupts: u64,
    /// Passes that used chains but raised no interrupt because the driver did not ask for one
    /// (event index).
    pub interrupts_suppressed: u64,
    /// Passes that stopped at their bound with work left.
    pub passes_bounded: u64,
}

impl NetStats {
    /// `end - start`, field by field (saturating).
    pub fn delta(start: &NetStats, end: &NetStats) -> NetStats {
        let d = |f: fn(&NetStats) -> u64| f(end).saturating_sub(f(start));
        NetStats {
            notifies: d(|s| s.notifies),
            other_wakeups: d(|s| s.other_wakeups),
            tx_packets: d(|s| s.tx_packets),
            tx_bytes: d(|s| s.tx_bytes),
            rx_packets: d(|s| s.rx_packets),
            rx_bytes: d(|s| s.rx_bytes),
            tx_bad_chains: d(|s| s.tx_bad_chains),
            tx_dropped: d(|s| s.tx_dropped),
            rx_bad_chains: d(|s| s.rx_bad_chains),
            rx_no_buffer: d(|s| s.rx_no_buffer),
            rx_errors: d(|s| s.rx_errors),
            interrupts: d(|s| s.interrupts),
            interrupts_suppressed: d(|s| s.interrupts_suppressed),
            passes_bounded: d(|s| s.passes_bounded),
        }
    }
}

/// Why the device stopped serving its queues.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum NetQueueError {
    /// A ring is unusable (index out of range, unreadable ring, bad head).
    #[error("the {queue} queue is broken: {reason}")]
    Ring {
        /// `receive` or `transmit`.
        queue: &'static str,
        /// virtio-queue's reason.
        reason: String,
    },
}

fn ring(queue: &'static str) -> impl Fn(virtio_queue::Error) -> NetQueueError {
    move |e| NetQueueError::Ring {
        queue,
        reason: e.to_string(),
    }
}

/// What one pass over a queue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetPass {
    /// Chains returned used.
    pub used: usize,
    /// The driver asked to be interrupted.
    pub notify: bool,
    /// The pass stopped at its bound with work left.
    pub more: bool,
}

/// Serves the transmit queue: each chain's header and frame go to `backend` as one packet.
/// `offload` false zeroes the header (no offload was offered). `buf` is scratch space.
pub fn process_tx(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    backend: &mut dyn NetBackend,
    stats: &mut NetStats,
    offload: bool,
    buf: &mut Vec<u8>,
) -> Result<NetPass, NetQueueError> {
    let err = ring("transmit");
    let mut pass = NetPass::default();
    let mut rounds = 0usize;
    'outer: loop {
        queue.disable_notification(mem).map_err(&err)?;
        loop {
            if pass.used >= MAX_CHAINS_PER_PASS {
                // Notifications stay disabled: the caller comes back without a kick.
                pass.more = true;
                stats.passes_bounded += 1;
                break 'outer;
            }
            let chain = match queue.iter(mem) {
                Ok(mut it) => it.next(),
                Err(e) => return Err(err(e)),
            };
            let Some(chain) = chain else { break };
            let head = chain.head_index();
            buf.clear();
            let mut bad = false;
            for (i, d) in chain.enumerate() {
                let len = d.len() as usize;
                if i >= MAX_CHAIN || d.is_write_only() || buf.len().saturating_add(len) > MAX_PACKET
                {
                    bad = true;
                    break;
                }
                let at = buf.len();
                buf.resize(at + len, 0);
                if mem.read_slice(&mut buf[at..], d.addr()).is_err() {
                    bad = true;
                    break;
                }
            }
            if bad || buf.len() < VNET_HDR_LEN {
                stats.tx_bad_chains += 1;
            } else {
                if !offload {
                    buf[..VNET_HDR_LEN].fill(0);
                }
                match backend.send(buf) {
                    Ok(()) => {
                        stats.tx_packets += 1;
                        stats.tx_bytes += (buf.len() - VNET_HDR_LEN) as u64;
                    }
                    // A full tap queue or a frame the host refuses: dropped, as a NIC drops.
                    Err(_) => stats.tx_dropped += 1,
                }
            }
            queue.add_used(mem, head, 0).map_err(&err)?;
            pass.used += 1;
        }
        // true: the driver published after our last look; go round again.
        if !queue.enable_notification(mem).map_err(&err)? {
            break;
        }
        rounds += 1;
        if rounds > MAX_CHAINS_PER_PASS {
            pass.more = true;
            stats.passes_bounded += 1;
            break;
        }
    }
    pass.notify = pass.used > 0 && queue.needs_notification(mem).map_err(&err)?;
    if pass.used > 0 && !pass.notify {
        stats.interrupts_suppressed += 1;
    }
    Ok(pass)
}

/// A frame read from the tap and not yet given to the guest.
#[derive(Debug)]
pub struct RxState {
    buf: Vec<u8>,
    pending: Option<usize>,
}

impl Default for RxState {
    fn default() -> Self {
        Self {
            buf: vec![0; MAX_PACKET],
            pending: None,
        }
    }
}

impl RxState {
    /// True when a frame waits for a receive buffer.
    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }
}

/// Serves the receive queue: frames from `backend` (and the one waiting in `rx`) go into the
/// guest's receive chains, one frame per chain. Without a chain the frame waits, and the
/// device asks the driver to notify when it adds one.
pub fn process_rx(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    backend: &mut dyn NetBackend,
    stats: &mut NetStats,
    offload: bool,
    rx: &mut RxState,
) -> Result<NetPass, NetQueueError> {
    let err = ring("receive");
    let mut pass = NetPass::default();
    let mut rounds = 0usize;
    let mut reads = 0usize;
    loop {
        if pass.used >= MAX_CHAINS_PER_PASS || reads >= 2 * MAX_CHAINS_PER_PASS {
            pass.more = true;
            stats.passes_bounded += 1;
            break;
        }
        if rx.pending.is_none() {
            reads += 1;
        }
        let len = match rx.pending {
            Some(n) => n,
            None => match backend.recv(&mut rx.buf) {
                Ok(Some(n)) if n >= VNET_HDR_LEN => n,
                // A short read is no packet (a tap always gives the header).
                Ok(Some(_)) => {
                    stats.rx_errors += 1;
                    continue;
                }
                Ok(None) => break,
                Err(_) => {
                    stats.rx_errors += 1;
                    break;
                }
            },
        };
        rx.pending = Some(len);
        let chain = match queue.iter(mem) {
            Ok(mut it) => it.next(),
            Err(e) => return Err(err(e)),
        };
        let Some(chain) = chain else {
            // No buffer: ask for a notification when one comes; true means one came meanwhile.
            if queue.enable_notification(mem).map_err(&err)? {
                rounds += 1;
                if rounds <= MAX_CHAINS_PER_PASS {
                    continue;
                }
                pass.more = true;
                stats.passes_bounded += 1;
            } else {
                stats.rx_no_buffer += 1;
            }
            break;
        };
        let head = chain.head_index();
        let packet = &mut rx.buf[..len];
        if !offload {
            // Nothing the guest was not offered: no checksum or segmentation flags.
            packet[..VNET_HDR_LEN - 2].fill(0);
        }
        // num_buffers: one buffer per frame (no VIRTIO_NET_F_MRG_RXBUF).
        packet[VNET_HDR_LEN - 2..VNET_HDR_LEN].copy_from_slice(&1u16.to_le_bytes());
        let mut written = 0usize;
        let mut bad = false;
        for (i, d) in chain.enumerate() {
            if written == len {
                break;
            }
            if i >= MAX_CHAIN || !d.is_write_only() {
                bad = true;
                break;
            }
            let take = (d.len() as usize).min(len - written);
            if mem
                .write_slice(&packet[written..written + take], d.addr())
                .is_err()
            {
                bad = true;
                break;
            }
            written += take;
        }
        rx.pending = None;
        let used_len = if bad || written < len {
            // Too small or unusable: the frame is dropped and the buffer returned empty.
            stats.rx_bad_chains += 1;
            0
        } else {
            stats.rx_packets += 1;
            stats.rx_bytes += (len - VNET_HDR_LEN) as u64;
            len as u32
        };
        queue.add_used(mem, head, used_len).map_err(&err)?;
        pass.used += 1;
    }
    pass.notify = pass.used > 0 && queue.needs_notification(mem).map_err(&err)?;
    if pass.used > 0 && !pass.notify {
        stats.interrupts_suppressed += 1;
    }
    Ok(pass)
}

/// What the transport asks of the device thread.
enum Control {
    /// DRIVER_OK: serve these queues (validated by the transport) with these features.
    Activate {
        mem: GuestMemoryMmap,
        rx: Queue,
        tx: Queue,
        acked_features: u64,
    },
    /// Status = 0: stop using the queues.
    Reset,
}

/// What the transport (vCPU threads), the device thread and the VMM share about the device.
/// Only leaf locks, each held for a swap or a copy.
pub struct NetShared {
    /// Stop flag and activation epoch.
    pub ctl: PassControl,
    control: Mutex<Option<Control>>,
    wake: Option<EventFd>,
    stats: Mutex<NetStats>,
    /// `epoch + 1` of the activation found broken, 0 if none.
    broken_epoch: AtomicU64,
    broken_reason: Mutex<Option<NetQueueError>>,
}

impl std::fmt::Debug for NetShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetShared")
            .field("broken", &self.broken())
            .finish()
    }
}

impl NetShared {
    fn post(&self, control: Control) {
        {
            let mut slot = lock(&self.control);
            *slot = Some(control);
            self.ctl.epoch.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(wake) = &self.wake {
            let _ = wake.write(1);
        }
    }

    /// The device's counters as of its last pass.
    pub fn stats(&self) -> NetStats {
        *lock(&self.stats)
    }

    /// True when the running activation found a queue unusable.
    pub fn broken(&self) -> bool {
        self.broken_epoch.load(Ordering::Acquire)
            == self.ctl.epoch.load(Ordering::Acquire).wrapping_add(1)
    }

    /// Why the device last marked itself broken, if it ever did.
    pub fn broken_reason(&self) -> Option<NetQueueError> {
        lock(&self.broken_reason).clone()
    }
}

struct Active {
    mem: GuestMemoryMmap,
    rx: Queue,
    tx: Queue,
    offload: bool,
    epoch: u64,
}

/// The part of the device the device thread owns: the backend and the running queues.
pub struct NetWorker {
    backend: Box<dyn NetBackend>,
    active: Option<Active>,
    interrupt: Arc<Interrupt>,
    shared: Arc<NetShared>,
    stats: NetStats,
    tx_buf: Vec<u8>,
    rx: RxState,
}

impl std::fmt::Debug for NetWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetWorker")
            .field("active", &self.active.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

impl NetWorker {
    /// Applies a pending activation or reset, then serves the transmit and receive queues
    /// after `notifications` guest kicks (0 for a control or tap wake-up). Returns true when a
    /// pass ended at its bound with work left.
    pub fn serve(&mut self, notifications: u64) -> bool {
        self.stats.notifies = self.stats.notifies.saturating_add(notifications);
        if notifications == 0 {
            self.stats.other_wakeups += 1;
        }
        let (control, epoch) = {
            let mut slot = lock(&self.shared.control);
            (slot.take(), self.shared.ctl.epoch.load(Ordering::Acquire))
        };
        match control {
            Some(Control::Activate {
                mem,
                rx,
                tx,
                acked_features,
            }) => {
                let offload = acked_features & (1u64 << VIRTIO_NET_F_CSUM) != 0
                    || tap_offload_flags(acked_features) != 0;
                // A refused setting leaves the tap without offloads: frames still flow whole.
                let _ = self.backend.set_offload(tap_offload_flags(acked_features));
                self.rx.pending = None;
                self.active = Some(Active {
                    mem,
                    rx,
                    tx,
                    offload,
                    epoch,
                });
            }
            Some(Control::Reset) => self.active = None,
            None => {}
        }
        let more = self.serve_active();
        *lock(&self.shared.stats) = self.stats;
        more
    }

    fn serve_active(&mut self) -> bool {
        if self.shared.ctl.stop.load(Ordering::Acquire) {
            return false;
        }
        let Some(a) = &mut self.active else {
            // Not running: frames from the tap are dropped, or they would fill its queue (a
            // bounded drain; the rest at the next call).
            let mut scratch = [0u8; 64];
            for _ in 0..MAX_CHAINS_PER_PASS {
                if !matches!(self.backend.recv(&mut scratch), Ok(Some(_))) {
                    return false;
                }
            }
            return true;
        };
        if a.epoch != self.shared.ctl.epoch.load(Ordering::Acquire) {
            // A new activation or reset is posted: the next wake-up takes it.
            return true;
        }
        let passes = process_tx(
            &mut a.tx,
            &a.mem,
            self.backend.as_mut(),
            &mut self.stats,
            a.offload,
            &mut self.tx_buf,
        )
        .and_then(|tx| {
            process_rx(
                &mut a.rx,
                &a.mem,
                self.backend.as_mut(),
                &mut self.stats,
                a.offload,
                &mut self.rx,
            )
            .map(|rx| (tx, rx))
        });
        match passes {
            Ok((tx, rx)) => {
                if tx.notify || rx.notify {
                    self.stats.interrupts += 1;
                    self.interrupt.trigger(VIRTIO_MMIO_INT_VRING);
                }
                tx.more || rx.more
            }
            Err(e) => {
                let epoch = a.epoch;
                self.active = None;
                *lock(&self.shared.broken_reason) = Some(e);
                self.shared
                    .broken_epoch
                    .store(epoch.wrapping_add(1), Ordering::Release);
                self.interrupt.trigger(VIRTIO_MMIO_INT_CONFIG);
                false
            }
        }
    }

    /// The backend's wait descriptor (the tap), for the device thread.
    pub fn wait_fd(&self) -> Option<RawFd> {
        self.backend.wait_fd()
    }
}

/// The virtio-net device model the transport drives.
pub struct Net {
    features: u64,
    config: [u8; 12],
    queue_sizes: [u16; 2],
    shared: Arc<NetShared>,
    worker: Option<NetWorker>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("features", &format_args!("{:#x}", self.features))
            .field("broken", &self.shared.broken())
            .finish()
    }
}

impl Net {
    /// A network card on `backend`, raising `interrupt`, offering offloads when `offload`.
    /// `wake` is signalled when the transport posts an activation or reset (None: the caller
    /// serves the worker itself, as tests do).
    pub fn new(
        backend: Box<dyn NetBackend>,
        offload: bool,
        interrupt: Arc<Interrupt>,
        wake: Option<EventFd>,
    ) -> Self {
        // struct virtio_net_config: mac[6], status, max_virtqueue_pairs, mtu (u16 each); only
        // the MAC is offered.
        let mut config = [0u8; 12];
        config[..6].copy_from_slice(&GUEST_MAC);
        let shared = Arc::new(NetShared {
            ctl: PassControl::default(),
            control: Mutex::new(None),
            wake,
            stats: Mutex::new(NetStats::default()),
            broken_epoch: AtomicU64::new(0),
            broken_reason: Mutex::new(None),
        });
        let worker = NetWorker {
            backend,
            active: None,
            interrupt,
            shared: Arc::clone(&shared),
            stats: NetStats::default(),
            tx_buf: Vec::with_capacity(MAX_PACKET),
            rx: RxState::default(),
        };
        Self {
            features: offered_features(offload),
            config,
            queue_sizes: [QUEUE_SIZE; 2],
            shared,
            worker: Some(worker),
        }
    }

    /// The worker, for the device thread (once).
    pub fn take_worker(&mut self) -> Option<NetWorker> {
        self.worker.take()
    }

    /// What the device shares with its worker and the VMM.
    pub fn shared(&self) -> Arc<NetShared> {
        Arc::clone(&self.shared)
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // The MAC is read-only in virtio 1.x (VIRTIO_NET_F_CTRL_MAC_ADDR is not offered).
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), ActivateError> {
        let mut queues = queues.into_iter();
        let rx = queues
            .next()
            .ok_or(ActivateError::QueueNotReady(RX_QUEUE))?;
        let tx = queues
            .next()
            .ok_or(ActivateError::QueueNotReady(TX_QUEUE))?;
        self.shared.post(Control::Activate {
            mem,
            rx,
            tx,
            acked_features: acked_features & self.features,
        });
        Ok(())
    }

    fn reset(&mut self) {
        self.shared.post(Control::Reset);
    }

    fn broken(&self) -> bool {
        self.shared.broken()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Address, GuestAddress};

    const RX_DESC: u64 = 0x1000;
    const RX_AVAIL: u64 = 0x2000;
    const RX_USED: u64 = 0x3000;
    const TX_DESC: u64 = 0x5000;
    const TX_AVAIL: u64 = 0x6000;
    const TX_USED: u64 = 0x7000;
    const F_NEXT: u16 = 1;
    const F_WRITE: u16 = 2;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("mem")
    }

    fn queue(mem: &GuestMemoryMmap, at: (u64, u64, u64), event_idx: bool) -> Queue {
        let mut q = Queue::new(QUEUE_SIZE).expect("queue");
        q.try_set_desc_table_address(GuestAddress(at.0))
            .expect("desc");
        q.try_set_avail_ring_address(GuestAddress(at.1))
            .expect("avail");
        q.try_set_used_ring_address(GuestAddress(at.2))
            .expect("used");
        q.set_event_idx(event_idx);
        q.set_ready(true);
        assert!(q.is_valid(mem));
        q
    }

    fn desc(
        mem: &GuestMemoryMmap,
        table: u64,
        idx: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let at = GuestAddress(table + 16 * u64::from(idx));
        mem.write_obj(addr, at).expect("desc");
        mem.write_obj(len, at.unchecked_add(8)).expect("desc");
        mem.write_obj(flags, at.unchecked_add(12)).expect("desc");
        mem.write_obj(next, at.unchecked_add(14)).expect("desc");
    }

    fn publish(mem: &GuestMemoryMmap, avail: u64, heads: &[u16]) {
        let idx: u16 = mem.read_obj(GuestAddress(avail + 2)).expect("idx");
        for (i, h) in heads.iter().enumerate() {
            let slot = (usize::from(idx) + i) % usize::from(QUEUE_SIZE);
            mem.write_obj(*h, GuestAddress(avail + 4 + 2 * slot as u64))
                .expect("ring");
        }
        mem.write_obj(
            idx.wrapping_add(heads.len() as u16),
            GuestAddress(avail + 2),
        )
        .expect("idx");
    }

    fn used(mem: &GuestMemoryMmap, used: u64, i: u16) -> (u32, u32) {
        let at = used + 4 + 8 * u64::from(i);
        (
            mem.read_obj(GuestAddress(at)).expect("id"),
            mem.read_obj(GuestAddress(at + 4)).expect("len"),
        )
    }

    fn used_idx(mem: &GuestMemoryMmap, used: u64) -> u16 {
        mem.read_obj(GuestAddress(used + 2)).expect("used idx")
    }

    /// A running device on an in-memory network, served by the test itself.
    fn running(
        m: &GuestMemoryMmap,
        offload: bool,
        event_idx: bool,
    ) -> (Net, NetWorker, Arc<Interrupt>, MemNet) {
        let irq = Arc::new(Interrupt::new(None));
        let wire = MemNet::default();
        let mut net = Net::new(Box::new(wire.clone()), offload, Arc::clone(&irq), None);
        let worker = net.take_worker().expect("worker");
        let mut features = net.features();
        if !event_idx {
            features &= !(1u64 << VIRTIO_RING_F_EVENT_IDX);
        }
        net.activate(
            m.clone(),
            vec![
                queue(m, (RX_DESC, RX_AVAIL, RX_USED), event_idx),
                queue(m, (TX_DESC, TX_AVAIL, TX_USED), event_idx),
            ],
            features,
        )
        .expect("activate");
        (net, worker, irq, wire)
    }

    fn packet(hdr_byte: u8, frame: &[u8]) -> Vec<u8> {
        let mut p = vec![hdr_byte; VNET_HDR_LEN];
        p.extend_from_slice(frame);
        p
    }

    #[test]
    fn frames_cross_both_ways_with_the_header_and_one_interrupt_per_pass() {
        let m = mem();
        let (net, mut w, irq, wire) = running(&m, true, false);
        // Transmit: header and frame split over two descriptors.
        m.write_slice(&[7u8; VNET_HDR_LEN], GuestAddress(0x10000))
            .expect("hdr");
        m.write_slice(b"hello frame", GuestAddress(0x11000))
            .expect("frame");
        desc(&m, TX_DESC, 0, 0x10000, VNET_HDR_LEN as u32, F_NEXT, 1);
        desc(&m, TX_DESC, 1, 0x11000, 11, 0, 0);
        publish(&m, TX_AVAIL, &[0]);
        // Receive: one buffer the guest offers, and a frame waiting on the host side.
        desc(&m, RX_DESC, 0, 0x20000, 2048, F_WRITE, 0);
        publish(&m, RX_AVAIL, &[0]);
        wire.inject(packet(0x55, b"from the peer"));
        assert!(!w.serve(1));
        let sent = wire.state().sent.clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0],
            packet(7, b"hello frame"),
            "offload on: header as written"
        );
        assert_eq!(used_idx(&m, TX_USED), 1);
        assert_eq!(used_idx(&m, RX_USED), 1);
        let (id, len) = used(&m, RX_USED, 0);
        assert_eq!((id, len as usize), (0, VNET_HDR_LEN + 13));
        let mut got = vec![0u8; VNET_HDR_LEN + 13];
        m.read_slice(&mut got, GuestAddress(0x20000)).expect("rx");
        assert_eq!(&got[VNET_HDR_LEN..], b"from the peer");
        assert_eq!(
            &got[VNET_HDR_LEN - 2..VNET_HDR_LEN],
            &1u16.to_le_bytes(),
            "num_buffers"
        );
        assert_eq!(irq.raised(), 1, "one interrupt for both queues");
        let s = net.shared().stats();
        assert_eq!(
            (s.tx_packets, s.rx_packets, s.tx_bytes, s.rx_bytes),
            (1, 1, 11, 13)
        );
        assert_eq!(wire.state().offload, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
    }

    #[test]
    fn without_offloads_headers_are_zeroed_and_none_is_offered() {
        let f = offered_features(false);
        assert_eq!(tap_offload_flags(f), 0);
        assert_eq!(f & (1 << VIRTIO_NET_F_CSUM), 0);
        let m = mem();
        let (_net, mut w, _, wire) = running(&m, false, false);
        m.write_slice(&[0xffu8; VNET_HDR_LEN + 4], GuestAddress(0x10000))
            .expect("pkt");
        desc(&m, TX_DESC, 0, 0x10000, VNET_HDR_LEN as u32 + 4, 0, 0);
        publish(&m, TX_AVAIL, &[0]);
        desc(&m, RX_DESC, 0, 0x20000, 2048, F_WRITE, 0);
        publish(&m, RX_AVAIL, &[0]);
        wire.inject(packet(0xee, b"abc"));
        w.serve(1);
        assert_eq!(wire.state().sent[0][..VNET_HDR_LEN], [0u8; VNET_HDR_LEN]);
        let mut hdr = [0u8; VNET_HDR_LEN];
        m.read_slice(&mut hdr, GuestAddress(0x20000)).expect("rx");
        assert_eq!(hdr, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(wire.state().offload, 0);
    }

    #[test]
    fn hostile_transmit_chains_are_refused_counted_and_returned() {
        let m = mem();
        let (net, mut w, _, wire) = running(&m, true, false);
        // 0: device-writable; 1: outside RAM; 2: shorter than the header; 3: longer than
        // MAX_PACKET over two descriptors; 4: a descriptor loop (next points to itself).
        desc(&m, TX_DESC, 0, 0x10000, 64, F_WRITE, 0);
        desc(&m, TX_DESC, 1, 0xffff_0000, 64, 0, 0);
        desc(&m, TX_DESC, 2, 0x10000, 4, 0, 0);
        desc(&m, TX_DESC, 3, 0x10000, 60_000, F_NEXT, 5);
        desc(&m, TX_DESC, 5, 0x10000, 60_000, 0, 0);
        desc(&m, TX_DESC, 4, 0x10000, 100, F_NEXT, 4);
        // 6: a good one after them all.
        desc(&m, TX_DESC, 6, 0x10000, 100, 0, 0);
        publish(&m, TX_AVAIL, &[0, 1, 2, 3, 4, 6]);
        w.serve(1);
        let s = net.shared().stats();
        assert_eq!(s.tx_bad_chains, 5, "{s:?}");
        assert_eq!(s.tx_packets, 1);
        assert_eq!(used_idx(&m, TX_USED), 6, "every chain is returned");
        assert!(!net.broken());
        // A lengths sum that would wrap is refused, not wrapped.
        desc(&m, TX_DESC, 7, 0x10000, u32::MAX, F_NEXT, 8);
        desc(&m, TX_DESC, 8, 0x10000, 16, 0, 0);
        publish(&m, TX_AVAIL, &[7]);
        w.serve(1);
        assert_eq!(net.shared().stats().tx_bad_chains, 6);
        assert_eq!(wire.state().sent.len(), 1);
    }

    #[test]
    fn hostile_receive_chains_drop_the_frame_and_a_missing_buffer_keeps_it() {
        let m = mem();
        let (net, mut w, _, wire) = running(&m, true, true);
        // No buffer yet: the frame waits, and the device asks for a notification.
        wire.inject(packet(0, &[9u8; 100]));
        w.serve(0);
        let s = net.shared().stats();
        assert_eq!((s.rx_packets, s.rx_no_buffer), (0, 1));
        assert!(w.rx.pending());
        // 0: device-readable; 1: outside RAM; 2: too small for the frame; 3: fits.
        desc(&m, RX_DESC, 0, 0x20000, 2048, 0, 0);
        desc(&m, RX_DESC, 1, 0xffff_f000, 2048, F_WRITE, 0);
        desc(&m, RX_DESC, 2, 0x20000, 50, F_WRITE, 0);
        desc(&m, RX_DESC, 3, 0x20000, 2048, F_WRITE, 0);
        publish(&m, RX_AVAIL, &[0, 1, 2, 3]);
        for _ in 0..3 {
            wire.inject(packet(0, &[8u8; 100]));
        }
        w.serve(1);
        let s = net.shared().stats();
        assert_eq!(s.rx_bad_chains, 3, "{s:?}");
        assert_eq!(s.rx_packets, 1);
        assert_eq!(used_idx(&m, RX_USED), 4);
        assert_eq!(
            used(&m, RX_USED, 0).1,
            0,
            "a refused buffer comes back empty"
        );
        assert_eq!(used(&m, RX_USED, 3).1 as usize, VNET_HDR_LEN + 100);
        // A ring that claims more buffers than the queue holds is broken (seen when a frame
        // looks for a buffer).
        m.write_obj(4u16 + QUEUE_SIZE + 1, GuestAddress(RX_AVAIL + 2))
            .expect("idx");
        wire.inject(packet(0, b"y"));
        w.serve(1);
        assert!(net.broken());
        assert!(net.shared().broken_reason().is_some());
    }

    #[test]
    fn passes_are_bounded_and_continue_without_a_kick() {
        let m = mem();
        let (net, mut w, _, _wire) = running(&m, false, false);
        m.write_slice(&[0u8; 64], GuestAddress(0x10000))
            .expect("pkt");
        // The whole ring, then another round after it is returned: more than one pass.
        let mut served = 0u64;
        for round in 0..3u16 {
            for i in 0..QUEUE_SIZE {
                desc(&m, TX_DESC, i, 0x10000, 64, 0, 0);
            }
            publish(&m, TX_AVAIL, &(0..QUEUE_SIZE).collect::<Vec<_>>());
            let more = w.serve(u64::from(round == 0));
            assert!(!more || net.shared().stats().passes_bounded > 0);
            while w.serve(0) {}
            served += u64::from(QUEUE_SIZE);
            assert_eq!(net.shared().stats().tx_packets, served);
        }
    }

    #[test]
    fn event_idx_suppresses_interrupts_the_driver_did_not_ask_for() {
        let m = mem();
        let (net, mut w, irq, _wire) = running(&m, false, true);
        m.write_slice(&[0u8; 64], GuestAddress(0x10000))
            .expect("pkt");
        desc(&m, TX_DESC, 0, 0x10000, 64, 0, 0);
        desc(&m, TX_DESC, 1, 0x10000, 64, 0, 0);
        // used_event (after the avail ring) = 5: the driver wants to hear only after entry 5.
        m.write_obj(5u16, GuestAddress(TX_AVAIL + 4 + 2 * u64::from(QUEUE_SIZE)))
            .expect("used_event");
        publish(&m, TX_AVAIL, &[0, 1]);
        w.serve(1);
        let s = net.shared().stats();
        assert_eq!(s.tx_packets, 2);
        assert_eq!(irq.raised(), 0);
        assert_eq!(s.interrupts_suppressed, 1);
    }

    #[test]
    fn reset_stops_serving_and_a_bad_tap_name_is_refused() {
        let m = mem();
        let (mut net, mut w, _, wire) = running(&m, false, false);
        net.reset();
        desc(&m, TX_DESC, 0, 0x10000, 64, 0, 0);
        publish(&m, TX_AVAIL, &[0]);
        wire.inject(packet(0, b"x"));
        w.serve(1);
        assert_eq!(net.shared().stats().tx_packets, 0);
        assert!(
            wire.state().incoming.is_empty(),
            "a stopped card drops what comes"
        );
        let irq = Arc::new(Interrupt::new(None));
        let mut n = Net::new(Box::<MemNet>::default(), false, irq, None);
        assert_eq!(n.device_type(), 1);
        let mut mac = [0u8; 8];
        n.read_config(0, &mut mac);
        assert_eq!(&mac[..6], &GUEST_MAC);
        n.read_config(u64::MAX, &mut mac);
        assert!(n
            .activate(mem(), Vec::new(), 0)
            .is_err_and(|e| e == ActivateError::QueueNotReady(RX_QUEUE)));
        for bad in ["", "a/b", "x y", "sixteen-bytes-xx"] {
            assert!(matches!(Tap::open(bad), Err(NetError::BadName(_))), "{bad}");
        }
    }

    #[test]
    fn a_tap_carries_frames_with_the_header_both_ways() {
        // A real tap in a network namespace of this thread's own (root, /dev/net/tun, `ip`).
        if !std::path::Path::new("/dev/net/tun").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "no /dev/net/tun in CI: modprobe tun"
            );
            eprintln!("skipped: no /dev/net/tun (modprobe tun)");
            return;
        }
        let t = std::thread::spawn(|| -> Result<(), String> {
            // SAFETY: unshare(2) of this thread's network namespace only; no pointers.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(format!("unshare: {}", io::Error::last_os_error()));
            }
            let mut tap = Tap::open("isotap0").map_err(|e| e.to_string())?;
            if Tap::open("isotap0").is_ok() {
                return Err("a tap in use was attached twice".into());
            }
            let mut frame = vec![0u8; VNET_HDR_LEN];
            frame.extend_from_slice(&[0xff; 6]);
            frame.extend_from_slice(&GUEST_MAC);
            frame.extend_from_slice(&[0x08, 0x06]);
            frame.extend_from_slice(&[0u8; 28]);
            // Down, the host kernel refuses frames (the device counts them dropped).
            if tap.send(&frame).is_ok() {
                return Err("a down tap took a frame".into());
            }
            // Children start in this thread's namespace.
            let ip = |args: &[&str]| {
                std::process::Command::new("ip")
                    .args(args)
                    .status()
                    .map_err(|e| format!("ip: {e}"))
                    .and_then(|s| s.success().then_some(()).ok_or(format!("ip {args:?}: {s}")))
            };
            ip(&["addr", "add", "10.99.0.1/30", "dev", "isotap0"])?;
            ip(&["link", "set", "isotap0", "up"])?;
            tap.send(&frame).map_err(|e| format!("send: {e}"))?;
            // A datagram to the other end of the /30 makes the host kernel ask for its MAC
            // address: an ARP request comes out of the tap, behind a virtio net header.
            let sock = std::net::UdpSocket::bind("10.99.0.1:0").map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; MAX_PACKET];
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut sent_at = None::<std::time::Instant>;
            while std::time::Instant::now() < until {
                // Again every 500 ms: until the kernel's link watch has seen the carrier come
                // up (up to a second after the attach), the tap's queue drops what it sends.
                if sent_at.is_none_or(|at| at.elapsed() > std::time::Duration::from_millis(500)) {
                    let _ = sock.send_to(b"x", "10.99.0.2:9");
                    sent_at = Some(std::time::Instant::now());
                }
                match tap.recv(&mut buf).map_err(|e| e.to_string())? {
                    Some(n)
                        if n >= VNET_HDR_LEN + 14 && buf[VNET_HDR_LEN + 12..][..2] == [8, 6] =>
                    {
                        return Ok(());
                    }
                    _ => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
            Err("no ARP request came out of the tap".into())
        });
        t.join().expect("thread").expect("tap");
    }
}
