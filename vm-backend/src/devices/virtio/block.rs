//! virtio-blk: one request queue served from a raw image file on the host.
//!
//! Requests: IN (read), OUT (write), FLUSH, GET_ID; anything else is answered UNSUPP. Chains must
//! have the layout every Linux driver uses: a 16-byte device-readable header descriptor, data
//! descriptors (device-writable for IN and GET_ID, device-readable for OUT, none for FLUSH) and a
//! device-writable status descriptor (the status goes to its first byte).
//!
//! Everything in a chain comes from the guest and is checked before any byte moves: direction
//! of each descriptor, every buffer inside guest RAM without wrapping around, at most
//! [`SEG_MAX`] data descriptors of at most [`SIZE_MAX`] bytes each (both offered to the driver,
//! which must keep to them), data a multiple of 512 bytes, `sector * 512 + length` within the disk
//! (checked arithmetic). A bad request gets VIRTIO_BLK_S_IOERR (or UNSUPP); a chain whose status
//! byte cannot be written is returned with used length 0; a broken ring (avail index out of
//! range, head index past the queue) marks the device broken (`DEVICE_NEEDS_RESET`) instead of
//! being served. A driver that publishes while the device looks at the ring is normal: the pass
//! goes round again.
//!
//! Work is bounded: one pass serves at most [`MAX_CHAINS_PER_PASS`] chains and
//! [`MAX_BYTES_PER_PASS`] bytes, and checks between requests (and a disk backend between
//! segments) whether the VMM is stopping or the driver reset the device. The device thread holds
//! no lock while it serves, so nothing a guest does keeps a vCPU or the VMM waiting for it.
//!
//! FLUSH is `fdatasync` of the image and completes before the used entry is published: when the
//! guest sees a flush complete, the data is on the host's disk. A read-only image is opened
//! read-only, offered with VIRTIO_BLK_F_RO, and writes to it fail with IOERR.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX,
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::{
    lock, ActivateError, Interrupt, VirtioDevice, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
};

/// Bytes per sector: the unit of `sector` and `capacity`, whatever the image's block size.
pub const SECTOR_SIZE: u64 = 512;
/// Size of the request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Data descriptors per request the driver may use (VIRTIO_BLK_F_SEG_MAX). Half the queue less
/// header and status, so two largest requests fit at once. Without it Linux sends one segment
/// per request, which would split every large I/O into 4 KiB pieces. More is answered IOERR.
pub const SEG_MAX: u32 = (QUEUE_SIZE as u32) / 2 - 2;
/// Bytes one data descriptor may hold (VIRTIO_BLK_F_SIZE_MAX; Linux's segments are pages merged
/// up to this). A longer descriptor is answered IOERR. With [`SEG_MAX`] it bounds a request to
/// [`MAX_REQUEST_BYTES`], so one request cannot be as large as the disk.
pub const SIZE_MAX: u32 = 128 << 10;
/// The largest request a driver that keeps to [`SEG_MAX`] and [`SIZE_MAX`] can send.
pub const MAX_REQUEST_BYTES: u64 = SEG_MAX as u64 * SIZE_MAX as u64;
/// Longest chain accepted (indirect tables can be longer than the queue); a longer one cannot
/// even be answered.
const MAX_CHAIN: usize = QUEUE_SIZE as usize + 2;
/// Most chains served in one pass over the queue. A guest can make the device's own used-ring
/// writes look like new avail entries (overlapping rings) or keep feeding the ring from another
/// vCPU; without a bound the device thread would never look at its stop eventfd again. A pass
/// that hits the bound says so ([`Pass::more`]) and the device thread calls it again after
/// looking at its stop eventfd.
pub const MAX_CHAINS_PER_PASS: usize = QUEUE_SIZE as usize;
/// Most data bytes one pass moves before it ends with [`Pass::more`] (at least one request is
/// always served): the other bound on the time between two looks at the stop eventfd.
pub const MAX_BYTES_PER_PASS: u64 = 16 << 20;
/// Length of the request header (type, reserved/ioprio, sector).
const HEADER_LEN: u32 = 16;
/// The virtio device id of a block device.
pub const VIRTIO_ID_BLOCK: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;

/// Why a disk image could not be used.
#[derive(Debug, Error)]
pub enum BlockError {
    /// The image could not be opened or measured.
    #[error("cannot open the disk image {path}: {source}. Create it first (e.g. `truncate -s 64M {path}` or `mkfs.ext4 -F -q {path} 64M`) and check its permissions")]
    Open {
        /// The image.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The image is empty or not a whole number of sectors.
    #[error("the disk image {path} holds {size} bytes; a virtio-blk disk needs a non-zero multiple of 512 bytes. Resize it (`truncate -s 64M {path}`)")]
    Size {
        /// The image.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
}

/// Where a block device's bytes live. Offsets and lengths given to these calls are already
/// checked against [`DiskBackend::size`], guest RAM and [`SIZE_MAX`]. `cancel` is set when the
/// VMM stops: an operation that can take long should then give up with
/// [`std::io::ErrorKind::Interrupted`].
pub trait DiskBackend: Send {
    /// Size in bytes (a multiple of 512).
    fn size(&self) -> u64;
    /// True when writes must fail.
    fn read_only(&self) -> bool;
    /// Copies `len` bytes at `offset` of the disk into guest memory at `addr`.
    fn read_to_guest(
        &mut self,
        mem: &GuestMemoryMmap,
        addr: GuestAddress,
        len: usize,
        offset: u64,
        cancel: &AtomicBool,
    ) -> std::io::Result<()>;
    /// Copies `len` bytes of guest memory at `addr` to `offset` of the disk.
    fn write_from_guest(
        &mut self,
        mem: &GuestMemoryMmap,
        addr: GuestAddress,
        len: usize,
        offset: u64,
        cancel: &AtomicBool,
    ) -> std::io::Result<()>;
    /// Makes every completed write durable.
    fn flush(&mut self, cancel: &AtomicBool) -> std::io::Result<()>;
    /// The 20-byte id GET_ID returns.
    fn id(&self) -> [u8; VIRTIO_BLK_ID_BYTES as usize];
}

/// A raw image file.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    size: u64,
    read_only: bool,
    id: [u8; VIRTIO_BLK_ID_BYTES as usize],
}

impl FileDisk {
    /// Opens `path` (read-only if asked) as a raw image.
    pub fn open(path: &Path, read_only: bool) -> Result<Self, BlockError> {
        let open_err = |source| BlockError::Open {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if !meta.is_file() {
            return Err(open_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let size = meta.len();
        if size == 0 || !size.is_multiple_of(SECTOR_SIZE) {
            return Err(BlockError::Size {
                path: path.to_owned(),
                size,
            });
        }
        // The serial the guest sees (/sys/block/vda/serial): stable for one image file.
        let mut id = [0u8; VIRTIO_BLK_ID_BYTES as usize];
        let text = format!("isolab-{:x}-{:x}", meta.dev(), meta.ino());
        let n = text.len().min(id.len());
        id[..n].copy_from_slice(&text.as_bytes()[..n]);
        Ok(Self {
            file,
            size,
            read_only,
            id,
        })
    }
}

impl DiskBackend for FileDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_to_guest(
        &mut self,
        mem: &GuestMemoryMmap,
        addr: GuestAddress,
        len: usize,
        offset: u64,
        _cancel: &AtomicBool,
    ) -> std::io::Result<()> {
        // Only this thread uses the file, so seek + read is as good as pread and needs no unsafe
        // pointer into guest memory: vm-memory does the bounded copy. One call moves at most
        // SIZE_MAX bytes; the caller looks at the cancel flag between calls.
        self.file.seek(SeekFrom::Start(offset))?;
        mem.read_exact_volatile_from(addr, &mut self.file, len)
            .map_err(std::io::Error::other)
    }

    fn write_from_guest(
        &mut self,
        mem: &GuestMemoryMmap,
        addr: GuestAddress,
        len: usize,
        offset: u64,
        _cancel: &AtomicBool,
    ) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        mem.write_all_volatile_to(addr, &mut self.file, len)
            .map_err(std::io::Error::other)
    }

    fn flush(&mut self, _cancel: &AtomicBool) -> std::io::Result<()> {
        // fdatasync: the image never changes size, so its data is all a flush must persist.
        self.file.sync_data()
    }

    fn id(&self) -> [u8; VIRTIO_BLK_ID_BYTES as usize] {
        self.id
    }
}

/// A disk in host memory (tests and fuzzing). It trusts the device to have checked every
/// request against its size and panics on one that is not inside it: that is a device bug, and
/// tests and the fuzzer must see it (a disk that quietly refused would hide a missing check).
#[derive(Debug, Clone)]
pub struct MemDisk {
    /// The disk's bytes.
    pub data: Vec<u8>,
    /// Refuse writes.
    pub read_only: bool,
    /// Flushes seen.
    pub flushes: u64,
}

impl MemDisk {
    /// A zeroed disk of `size` bytes.
    pub fn new(size: usize, read_only: bool) -> Self {
        Self {
            data: vec![0; size],
            read_only,
            flushes: 0,
        }
    }

    fn range(&self, offset: u64, len: usize) -> std::ops::Range<usize> {
        let start = usize::try_from(offset).ok();
        let end = start.and_then(|s| s.checked_add(len));
        match (start, end) {
            (Some(s), Some(e)) if e <= self.data.len() && len <= SIZE_MAX as usize => s..e,
            _ => panic!(
                "the device passed an unchecked request to the disk: {len} bytes at {offset} of a {}-byte disk",
                self.data.len()
            ),
        }
    }
}

impl DiskBackend for MemDisk {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_to_guest(
        &mut self,
        mem: &GuestMemoryMmap,
        addr: GuestAddress,
        len: usize,
        offset: u64,
        _cancel: &AtomicBool,
    ) -> std::io::Result<()> {
        let r = self.range(offset, len);
        mem.write_slice(&self.data[r], addr)
            .map_err(std::io::Error::other)
    }

    fn write_from_guest(
        &mut self,
        mem: &GuestMemoryMmap,
        addr: GuestAddress,
        len: usize,
        offset: u64,
        _cancel: &AtomicBool,
    ) -> std::io::Result<()> {
        assert!(!self.read_only, "the device wrote to a read-only disk");
        let r = self.range(offset, len);
        mem.read_slice(&mut self.data[r], addr)
            .map_err(std::io::Error::other)
    }

    fn flush(&mut self, _cancel: &AtomicBool) -> std::io::Result<()> {
        self.flushes += 1;
        Ok(())
    }

    fn id(&self) -> [u8; VIRTIO_BLK_ID_BYTES as usize] {
        *b"isolab-memdisk\0\0\0\0\0\0"
    }
}

/// A disk whose every operation takes `delay` before it reaches the disk underneath (a stand-in
/// for a hung NFS server or a dying drive; tests and [`crate::vmm::Fault::SlowDisk`]). It waits
/// in short steps and gives up with [`std::io::ErrorKind::Interrupted`] once cancelled, as a
/// long operation should.
#[doc(hidden)]
pub struct SlowDisk {
    inner: Box<dyn DiskBackend>,
    delay: Duration,
}

impl std::fmt::Debug for SlowDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowDisk")
            .field("size", &self.inner.size())
            .field("delay", &self.delay)
            .finish()
    }
}

impl SlowDisk {
    /// `inner`, with `delay` before each operation.
    pub fn new(inner: Box<dyn DiskBackend>, delay: Duration) -> Self {
        Self { inner, delay }
    }

    fn wait(&self, cancel: &AtomicBool) -> std::io::Result<()> {
        let until = Instant::now() + self.delay;
        while Instant::now() < until {
            if cancel.load(Ordering::Acquire) {
                return Err(std::io::Error::from(std::io::ErrorKind::Interrupted));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

impl DiskBackend for SlowDisk {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_only(&self) -> bool {
        self.inner.read_only()
    }

    fn read_to_guest(
        &mut self,
        mem: &GuestMemoryMmap,
        addr: GuestAddress,
        len: usize,
        offset: u64,
        cancel: &AtomicBool,
    ) -> std::io::Result<()> {
        self.wait(cancel)?;
        self.inner.read_to_guest(mem, addr, len, offset, cancel)
    }

    fn write_from_guest(
        &mut self,
        mem: &GuestMemoryMmap,
        addr: GuestAddress,
        len: usize,
        offset: u64,
        cancel: &AtomicBool,
    ) -> std::io::Result<()> {
        self.wait(cancel)?;
        self.inner.write_from_guest(mem, addr, len, offset, cancel)
    }

    fn flush(&mut self, cancel: &AtomicBool) -> std::io::Result<()> {
        self.wait(cancel)?;
        self.inner.flush(cancel)
    }

    fn id(&self) -> [u8; VIRTIO_BLK_ID_BYTES as usize] {
        self.inner.id()
    }
}

/// The kind of a request, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    /// Read sectors into the data buffers.
    In,
    /// Write the data buffers to sectors.
    Out,
    /// Make completed writes durable.
    Flush,
    /// Return the device id string.
    GetId,
    /// A type this device does not implement.
    Unsupported(u32),
}

impl From<u32> for RequestType {
    fn from(t: u32) -> Self {
        match t {
            VIRTIO_BLK_T_IN => Self::In,
            VIRTIO_BLK_T_OUT => Self::Out,
            VIRTIO_BLK_T_FLUSH => Self::Flush,
            VIRTIO_BLK_T_GET_ID => Self::GetId,
            other => Self::Unsupported(other),
        }
    }
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to do.
    pub kind: RequestType,
    /// First sector (IN and OUT).
    pub sector: u64,
    /// Data buffers in guest memory (each inside guest RAM, at most [`SIZE_MAX`] bytes).
    pub data: Vec<(GuestAddress, u32)>,
    /// Sum of the data buffers' lengths (at most [`MAX_REQUEST_BYTES`]).
    pub data_len: u64,
    /// Where the status byte goes.
    pub status: GuestAddress,
}

/// Why a chain is not a valid request.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RequestError {
    /// Fewer than two descriptors (header and status).
    #[error("the chain has {0} descriptors; a request needs at least a header and a status")]
    TooShort(usize),
    /// More descriptors than any valid request has.
    #[error("the chain has more than {MAX_CHAIN} descriptors")]
    TooLong,
    /// More data descriptors than the device offered (SEG_MAX).
    #[error("the request has {0} data descriptors; the device offers at most {SEG_MAX}")]
    TooManySegments(usize),
    /// A data descriptor longer than the device offered (SIZE_MAX).
    #[error("data descriptor {index} holds {len} bytes; the device offers at most {SIZE_MAX}")]
    SegmentTooLarge {
        /// Position in the chain.
        index: usize,
        /// Its length.
        len: u32,
    },
    /// The header descriptor is device-writable.
    #[error("the header descriptor is device-writable")]
    HeaderWritable,
    /// The header descriptor is not 16 bytes.
    #[error("the header descriptor holds {0} bytes, not 16")]
    HeaderLength(u32),
    /// A buffer lies (partly) outside guest RAM or wraps around the address space.
    #[error("descriptor {index} ({addr:#x}, {len} bytes) is not inside guest RAM")]
    OutsideRam {
        /// Position in the chain.
        index: usize,
        /// Its address.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// The status descriptor is device-readable.
    #[error("the status descriptor is not device-writable")]
    StatusNotWritable,
    /// The status descriptor has no room for the status byte.
    #[error("the status descriptor is empty")]
    StatusEmpty,
    /// A data descriptor has the wrong direction for the request type.
    #[error("data descriptor {0} has the wrong direction for this request")]
    WrongDirection(usize),
    /// The data length is not a whole number of sectors.
    #[error("{0} data bytes is not a multiple of 512")]
    NotSectorMultiple(u64),
    /// The request reaches past the end of the disk (or its offset overflows).
    #[error("sector {sector} + {len} bytes is past the end of the {capacity}-byte disk")]
    PastEnd {
        /// First sector.
        sector: u64,
        /// Data bytes.
        len: u64,
        /// Disk size.
        capacity: u64,
    },
    /// A FLUSH with data buffers.
    #[error("a flush request carries data")]
    DataOnFlush,
    /// A GET_ID without a buffer to write the id into.
    #[error("a get-id request has no data buffer")]
    NoIdBuffer,
}

/// Counters of what the device did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BlockStats {
    /// Chains taken from the avail ring.
    pub requests: u64,
    /// IN requests served OK.
    pub reads: u64,
    /// OUT requests served OK.
    pub writes: u64,
    /// FLUSH requests served OK (each one an fdatasync of the image).
    pub flushes: u64,
    /// GET_ID requests served OK.
    pub get_ids: u64,
    /// Bytes read from the disk into the guest.
    pub bytes_read: u64,
    /// Bytes written from the guest to the disk.
    pub bytes_written: u64,
    /// Requests answered VIRTIO_BLK_S_IOERR (invalid, or the host I/O failed).
    pub io_errors: u64,
    /// Requests answered VIRTIO_BLK_S_UNSUPP.
    pub unsupported: u64,
    /// Chains returned without a status (the status descriptor itself was invalid).
    pub unanswerable: u64,
    /// Requests taken but not answered because the VMM was stopping or the driver reset the
    /// device meanwhile.
    pub abandoned: u64,
    /// Passes that ended at their request or byte budget with requests left (served on the
    /// next pass).
    pub passes_bounded: u64,
    /// Times the driver published a request between the device's last look at the avail index
    /// and its re-enabling of notifications, in a round that had taken nothing else: normal for
    /// a busy driver, and served by going round again.
    pub late_publishes: u64,
    /// Queue notifications (guest kicks) the device thread received.
    pub notifies: u64,
    /// Interrupts the device raised (used-buffer notifications).
    pub interrupts: u64,
}

impl BlockStats {
    /// What the device did between two readings of its counters.
    pub fn delta(start: &BlockStats, end: &BlockStats) -> BlockStats {
        let d = |f: fn(&BlockStats) -> u64| f(end).saturating_sub(f(start));
        BlockStats {
            requests: d(|s| s.requests),
            reads: d(|s| s.reads),
            writes: d(|s| s.writes),
            flushes: d(|s| s.flushes),
            get_ids: d(|s| s.get_ids),
            bytes_read: d(|s| s.bytes_read),
            bytes_written: d(|s| s.bytes_written),
            io_errors: d(|s| s.io_errors),
            unsupported: d(|s| s.unsupported),
            unanswerable: d(|s| s.unanswerable),
            abandoned: d(|s| s.abandoned),
            passes_bounded: d(|s| s.passes_bounded),
            late_publishes: d(|s| s.late_publishes),
            notifies: d(|s| s.notifies),
            interrupts: d(|s| s.interrupts),
        }
    }
}

/// Why queue processing stopped and the device was marked broken.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum QueueError {
    /// The ring itself is unusable (index out of range, unreadable ring, bad head).
    #[error("the virtqueue is broken: {0}")]
    Ring(String),
}

fn ring_err(e: virtio_queue::Error) -> QueueError {
    QueueError::Ring(e.to_string())
}

/// True when `[addr, addr + len)` lies inside guest RAM and does not wrap around.
fn in_ram(mem: &GuestMemoryMmap, addr: GuestAddress, len: u32) -> bool {
    addr.0.checked_add(u64::from(len)).is_some()
        && (len == 0 || GuestMemoryBackend::check_range(mem, addr, len as usize))
}

/// Parses and validates a chain (its descriptors in order) against guest RAM and the disk size.
/// On error, the status address is returned too when the status descriptor itself is usable,
/// so the caller can answer IOERR.
pub fn parse_request(
    descs: &[Descriptor],
    mem: &GuestMemoryMmap,
    capacity: u64,
) -> Result<Request, (RequestError, Option<GuestAddress>)> {
    if descs.len() < 2 {
        return Err((RequestError::TooShort(descs.len()), None));
    }
    if descs.len() > MAX_CHAIN {
        return Err((RequestError::TooLong, None));
    }
    let last = descs.len() - 1;
    let status = &descs[last];
    if !status.is_write_only() {
        return Err((RequestError::StatusNotWritable, None));
    }
    if status.len() == 0 {
        return Err((RequestError::StatusEmpty, None));
    }
    if !in_ram(mem, status.addr(), 1) {
        return Err((
            RequestError::OutsideRam {
                index: last,
                addr: status.addr().0,
                len: status.len(),
            },
            None,
        ));
    }
    let status_addr = status.addr();
    let fail = |e| Err((e, Some(status_addr)));

    let header = &descs[0];
    if header.is_write_only() {
        return fail(RequestError::HeaderWritable);
    }
    if header.len() != HEADER_LEN {
        return fail(RequestError::HeaderLength(header.len()));
    }
    if !in_ram(mem, header.addr(), HEADER_LEN) {
        return fail(RequestError::OutsideRam {
            index: 0,
            addr: header.addr().0,
            len: header.len(),
        });
    }
    let mut raw = [0u8; HEADER_LEN as usize];
    if mem.read_slice(&mut raw, header.addr()).is_err() {
        return fail(RequestError::OutsideRam {
            index: 0,
            addr: header.addr().0,
            len: header.len(),
        });
    }
    let kind = RequestType::from(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]));
    let sector = u64::from_le_bytes([
        raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15],
    ]);

    if last - 1 > SEG_MAX as usize {
        return fail(RequestError::TooManySegments(last - 1));
    }
    let want_writable = match kind {
        RequestType::In | RequestType::GetId => Some(true),
        RequestType::Out => Some(false),
        RequestType::Flush | RequestType::Unsupported(_) => None,
    };
    let mut data = Vec::with_capacity(last - 1);
    let mut data_len = 0u64;
    for (i, d) in descs.iter().enumerate().take(last).skip(1) {
        if let Some(w) = want_writable {
            if d.is_write_only() != w {
                return fail(RequestError::WrongDirection(i));
            }
        }
        if d.len() > SIZE_MAX {
            return fail(RequestError::SegmentTooLarge {
                index: i,
                len: d.len(),
            });
        }
        if !in_ram(mem, d.addr(), d.len()) {
            return fail(RequestError::OutsideRam {
                index: i,
                addr: d.addr().0,
                len: d.len(),
            });
        }
        if d.len() > 0 {
            data.push((d.addr(), d.len()));
            data_len += u64::from(d.len());
        }
    }
    match kind {
        RequestType::In | RequestType::Out => {
            if !data_len.is_multiple_of(SECTOR_SIZE) {
                return fail(RequestError::NotSectorMultiple(data_len));
            }
            let end = sector
                .checked_mul(SECTOR_SIZE)
                .and_then(|o| o.checked_add(data_len));
            if end.is_none_or(|e| e > capacity) {
                return fail(RequestError::PastEnd {
                    sector,
                    len: data_len,
                    capacity,
                });
            }
        }
        RequestType::Flush if !data.is_empty() => return fail(RequestError::DataOnFlush),
        RequestType::GetId if data.is_empty() => return fail(RequestError::NoIdBuffer),
        _ => {}
    }
    Ok(Request {
        kind,
        sector,
        data,
        data_len,
        status: status_addr,
    })
}

/// What running a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// The status byte for the driver.
    pub status: u8,
    /// Bytes written into guest memory, not counting the status byte.
    pub written: u32,
    /// Data bytes moved between the disk and guest memory (the pass's byte budget).
    pub moved: u64,
    /// The VMM stopped during the request: it was given up and must not be answered.
    pub cancelled: bool,
}

/// Runs a validated request against the disk, looking at `cancel` between segments.
pub fn execute(
    req: &Request,
    disk: &mut dyn DiskBackend,
    mem: &GuestMemoryMmap,
    stats: &mut BlockStats,
    cancel: &AtomicBool,
) -> Executed {
    let ioerr = VIRTIO_BLK_S_IOERR as u8;
    let done = |status: u8, written: u32, moved: u64| Executed {
        status,
        written,
        moved,
        cancelled: false,
    };
    let stopped = |moved: u64| Executed {
        status: ioerr,
        written: 0,
        moved,
        cancelled: true,
    };
    let is_cancel = |e: &std::io::Error| {
        e.kind() == std::io::ErrorKind::Interrupted && cancel.load(Ordering::Acquire)
    };
    match req.kind {
        RequestType::In => {
            let mut offset = req.sector * SECTOR_SIZE;
            let mut written = 0u32;
            for &(addr, len) in &req.data {
                if cancel.load(Ordering::Acquire) {
                    return stopped(u64::from(written));
                }
                if let Err(e) = disk.read_to_guest(mem, addr, len as usize, offset, cancel) {
                    if is_cancel(&e) {
                        return stopped(u64::from(written));
                    }
                    return done(ioerr, written, u64::from(written));
                }
                offset += u64::from(len);
                written = written.saturating_add(len);
            }
            stats.reads += 1;
            stats.bytes_read += req.data_len;
            done(VIRTIO_BLK_S_OK as u8, written, req.data_len)
        }
        RequestType::Out => {
            if disk.read_only() {
                return done(ioerr, 0, 0);
            }
            let mut offset = req.sector * SECTOR_SIZE;
            let mut moved = 0u64;
            for &(addr, len) in &req.data {
                if cancel.load(Ordering::Acquire) {
                    return stopped(moved);
                }
                if let Err(e) = disk.write_from_guest(mem, addr, len as usize, offset, cancel) {
                    if is_cancel(&e) {
                        return stopped(moved);
                    }
                    return done(ioerr, 0, moved);
                }
                offset += u64::from(len);
                moved += u64::from(len);
            }
            stats.writes += 1;
            stats.bytes_written += req.data_len;
            done(VIRTIO_BLK_S_OK as u8, 0, moved)
        }
        RequestType::Flush => match disk.flush(cancel) {
            Ok(()) => {
                stats.flushes += 1;
                done(VIRTIO_BLK_S_OK as u8, 0, 0)
            }
            Err(e) if is_cancel(&e) => stopped(0),
            Err(_) => done(ioerr, 0, 0),
        },
        RequestType::GetId => {
            let id = disk.id();
            let mut rest: &[u8] = &id;
            let mut written = 0u32;
            for &(addr, len) in &req.data {
                if rest.is_empty() {
                    break;
                }
                let n = rest.len().min(len as usize);
                if mem.write_slice(&rest[..n], addr).is_err() {
                    return done(ioerr, written, 0);
                }
                rest = &rest[n..];
                written += n as u32;
            }
            stats.get_ids += 1;
            done(VIRTIO_BLK_S_OK as u8, written, 0)
        }
        RequestType::Unsupported(_) => done(VIRTIO_BLK_S_UNSUPP as u8, 0, 0),
    }
}

/// How one chain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    /// The used length to publish.
    pub used_len: u32,
    /// Data bytes moved.
    pub moved: u64,
    /// Given up because the VMM stopped: not to be published.
    pub cancelled: bool,
}

/// Parses, executes and answers one chain.
pub fn handle_chain(
    descs: &[Descriptor],
    disk: &mut dyn DiskBackend,
    mem: &GuestMemoryMmap,
    stats: &mut BlockStats,
    cancel: &AtomicBool,
) -> Handled {
    stats.requests += 1;
    let (run, status_addr) = match parse_request(descs, mem, disk.size()) {
        Ok(req) => (execute(&req, disk, mem, stats, cancel), req.status),
        Err((_, Some(addr))) => (
            Executed {
                status: VIRTIO_BLK_S_IOERR as u8,
                written: 0,
                moved: 0,
                cancelled: false,
            },
            addr,
        ),
        Err((_, None)) => {
            stats.unanswerable += 1;
            return Handled {
                used_len: 0,
                moved: 0,
                cancelled: false,
            };
        }
    };
    if run.cancelled {
        stats.abandoned += 1;
        return Handled {
            used_len: 0,
            moved: run.moved,
            cancelled: true,
        };
    }
    match u32::from(run.status) {
        VIRTIO_BLK_S_IOERR => stats.io_errors += 1,
        VIRTIO_BLK_S_UNSUPP => stats.unsupported += 1,
        _ => {}
    }
    if mem.write_obj(run.status, status_addr).is_err() {
        // Checked to be inside guest RAM during parsing; unreachable unless memory shrank.
        stats.unanswerable += 1;
        return Handled {
            used_len: run.written,
            moved: run.moved,
            cancelled: false,
        };
    }
    Handled {
        used_len: run.written.saturating_add(1),
        moved: run.moved,
        cancelled: false,
    }
}

/// What may end a pass early: the VMM stopping (`stop`, which long disk operations watch too)
/// and the driver resetting or restarting the device (`epoch` moves on). Shared by the vCPU
/// side, the device thread and the VMM; plain atomics, no lock.
#[derive(Debug, Default)]
pub struct PassControl {
    /// Set once, when the VMM stops the device (the device thread's stop flag).
    pub stop: Arc<AtomicBool>,
    /// Bumped at every activation and reset of the device.
    pub epoch: AtomicU64,
}

impl PassControl {
    /// True when a pass started in `epoch` must end now.
    pub fn should_end(&self, epoch: u64) -> bool {
        self.stop.load(Ordering::Acquire) || self.epoch.load(Ordering::Acquire) != epoch
    }
}

/// What one pass over the queue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// The driver must be interrupted (used entries it asked to hear about).
    pub notify: bool,
    /// The pass stopped at [`MAX_CHAINS_PER_PASS`] or [`MAX_BYTES_PER_PASS`] with chains left:
    /// call again.
    pub more: bool,
    /// The pass ended early because the VMM is stopping or the driver reset the device.
    pub interrupted: bool,
}

/// Serves the available chains of `queue` (at most [`MAX_CHAINS_PER_PASS`] and about
/// [`MAX_BYTES_PER_PASS`]), with notification suppression (event index when negotiated). Looks
/// at `ctl` before each chain; a pass started in `epoch` ends as soon as that is over.
pub fn process_queue(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    disk: &mut dyn DiskBackend,
    stats: &mut BlockStats,
    ctl: &PassControl,
    epoch: u64,
) -> Result<Pass, QueueError> {
    let mut used = 0usize;
    let mut moved = 0u64;
    let mut descs: Vec<Descriptor> = Vec::with_capacity(MAX_CHAIN);
    let mut more = false;
    let mut interrupted = false;
    // Rounds of the outer loop: each one either serves a chain or follows a driver that
    // published after the last look at the avail index; bounded like the chains.
    let mut rounds = 0usize;
    'outer: loop {
        queue.disable_notification(mem).map_err(ring_err)?;
        let mut popped = 0usize;
        loop {
            if ctl.should_end(epoch) {
                interrupted = true;
                break 'outer;
            }
            if used >= MAX_CHAINS_PER_PASS || moved >= MAX_BYTES_PER_PASS {
                // Leave notifications disabled: the caller comes back without a kick.
                more = true;
                stats.passes_bounded += 1;
                break 'outer;
            }
            let chain = match queue.iter(mem) {
                Ok(mut it) => it.next(),
                Err(e) => return Err(ring_err(e)),
            };
            let Some(chain) = chain else { break };
            popped += 1;
            let head = chain.head_index();
            descs.clear();
            let mut too_long = false;
            for d in chain {
                if descs.len() == MAX_CHAIN + 1 {
                    too_long = true;
                    break;
                }
                descs.push(d);
            }
            let handled = if too_long {
                stats.requests += 1;
                stats.unanswerable += 1;
                Handled {
                    used_len: 0,
                    moved: 0,
                    cancelled: false,
                }
            } else {
                handle_chain(&descs, disk, mem, stats, &ctl.stop)
            };
            moved = moved.saturating_add(handled.moved);
            if handled.cancelled || ctl.epoch.load(Ordering::Acquire) != epoch {
                // The VMM is stopping or the driver reset the device while this request ran:
                // its queue is gone, so nothing is published into it.
                if !handled.cancelled {
                    stats.abandoned += 1;
                }
                interrupted = true;
                break 'outer;
            }
            // A head index past the queue cannot be returned: the ring is broken.
            queue
                .add_used(mem, head, handled.used_len)
                .map_err(ring_err)?;
            used += 1;
        }
        // true means the driver published between our last look at the avail index and
        // re-enabling notifications (a busy driver does that all the time): go round again, or
        // it would wait for a completion that never comes.
        if !queue.enable_notification(mem).map_err(ring_err)? {
            break;
        }
        if popped == 0 {
            stats.late_publishes += 1;
        }
        rounds += 1;
        if rounds > MAX_CHAINS_PER_PASS {
            more = true;
            stats.passes_bounded += 1;
            break;
        }
    }
    let notify = used > 0 && queue.needs_notification(mem).map_err(ring_err)?;
    Ok(Pass {
        notify,
        more,
        interrupted,
    })
}

/// What the transport asks of the device thread.
enum Control {
    /// DRIVER_OK: serve this queue (validated by the transport) in this memory.
    Activate(GuestMemoryMmap, Queue),
    /// Status = 0: stop using the queue.
    Reset,
}

/// What the transport (vCPU threads), the device thread and the VMM share about one block
/// device. Only leaf locks (see the lock order in [`super`]), each held for a swap or a copy.
pub struct BlockShared {
    /// Stop flag and activation epoch, looked at inside a pass.
    pub ctl: PassControl,
    /// The latest activation or reset the device thread has not applied yet (the last one
    /// wins: each one says everything about the queue).
    control: Mutex<Option<Control>>,
    /// Wakes the device thread for a control message (None in unit tests, which call
    /// [`BlockWorker::serve`] themselves).
    wake: Option<EventFd>,
    /// The device thread's counters, published after every pass.
    stats: Mutex<BlockStats>,
    /// `epoch + 1` of the activation the device found broken, 0 if none.
    broken_epoch: AtomicU64,
    /// Why it was marked broken.
    broken_reason: Mutex<Option<QueueError>>,
}

impl std::fmt::Debug for BlockShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockShared")
            .field("ctl", &self.ctl)
            .field("broken", &self.broken())
            .finish()
    }
}

impl BlockShared {
    fn new(wake: Option<EventFd>) -> Self {
        Self {
            ctl: PassControl::default(),
            control: Mutex::new(None),
            wake,
            stats: Mutex::new(BlockStats::default()),
            broken_epoch: AtomicU64::new(0),
            broken_reason: Mutex::new(None),
        }
    }

    /// Posts a control message for the device thread and wakes it; any pass in progress ends
    /// at its next check.
    fn post(&self, control: Control) {
        {
            let mut slot = lock(&self.control);
            *slot = Some(control);
            self.ctl.epoch.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(wake) = &self.wake {
            // A failed write means the counter is saturated: the thread is woken anyway.
            let _ = wake.write(1);
        }
    }

    /// Takes the pending control message with the epoch it started.
    fn take_control(&self) -> (Option<Control>, u64) {
        let mut slot = lock(&self.control);
        (slot.take(), self.ctl.epoch.load(Ordering::Acquire))
    }

    /// The device's counters as of its last pass.
    pub fn stats(&self) -> BlockStats {
        *lock(&self.stats)
    }

    /// Overwrites the published counters (tests of their readers).
    #[cfg(test)]
    pub(crate) fn set_stats(&self, stats: BlockStats) {
        *lock(&self.stats) = stats;
    }

    /// True when the running activation found the driver's queue unusable.
    pub fn broken(&self) -> bool {
        self.broken_epoch.load(Ordering::Acquire)
            == self.ctl.epoch.load(Ordering::Acquire).wrapping_add(1)
    }

    /// Why the device last marked itself broken, if it ever did.
    pub fn broken_reason(&self) -> Option<QueueError> {
        lock(&self.broken_reason).clone()
    }
}

/// The queue a running device serves, with the epoch of its activation.
struct Active {
    mem: GuestMemoryMmap,
    queue: Queue,
    epoch: u64,
}

/// The part of the block device the device thread owns: the disk and the running queue. No
/// other thread touches it, so no lock is held while it serves.
pub struct BlockWorker {
    disk: Box<dyn DiskBackend>,
    active: Option<Active>,
    interrupt: Arc<Interrupt>,
    shared: Arc<BlockShared>,
    stats: BlockStats,
}

impl std::fmt::Debug for BlockWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWorker")
            .field("size", &self.disk.size())
            .field("read_only", &self.disk.read_only())
            .field("active", &self.active.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

impl BlockWorker {
    /// Applies the transport's pending activation or reset, then serves the queue after
    /// `notifications` guest kicks (0 for a control wake-up or a continuation). Returns true when
    /// a pass ended at its budget with requests left: call again (after looking at the stop
    /// flag).
    pub fn serve(&mut self, notifications: u64) -> bool {
        self.stats.notifies = self.stats.notifies.saturating_add(notifications);
        let more = loop {
            let (control, epoch) = self.shared.take_control();
            match control {
                Some(Control::Activate(mem, queue)) => {
                    self.active = Some(Active { mem, queue, epoch })
                }
                Some(Control::Reset) => self.active = None,
                None => {}
            }
            if self.shared.ctl.stop.load(Ordering::Acquire) {
                break false;
            }
            let Some(active) = &mut self.active else {
                break false;
            };
            if active.epoch != epoch {
                // Another activation or reset is on its way: take it first.
                continue;
            }
            match process_queue(
                &mut active.queue,
                &active.mem,
                self.disk.as_mut(),
                &mut self.stats,
                &self.shared.ctl,
                active.epoch,
            ) {
                Ok(pass) => {
                    if pass.notify {
                        self.stats.interrupts += 1;
                        self.publish();
                        self.interrupt.trigger(VIRTIO_MMIO_INT_VRING);
                    }
                    if pass.interrupted && !self.shared.ctl.stop.load(Ordering::Acquire) {
                        // Ended by a reset or a new activation: apply it now.
                        continue;
                    }
                    break pass.more;
                }
                Err(e) => {
                    // Stop serving this queue until the driver resets the device, and tell it
                    // so: DEVICE_NEEDS_RESET in Status, announced with a configuration-change
                    // interrupt.
                    let epoch = active.epoch;
                    self.active = None;
                    *lock(&self.shared.broken_reason) = Some(e);
                    self.shared
                        .broken_epoch
                        .store(epoch.wrapping_add(1), Ordering::Release);
                    self.publish();
                    self.interrupt.trigger(VIRTIO_MMIO_INT_CONFIG);
                    break false;
                }
            }
        };
        self.publish();
        more
    }

    fn publish(&self) {
        *lock(&self.shared.stats) = self.stats;
    }

    /// The disk (tests).
    pub fn disk(&self) -> &dyn DiskBackend {
        self.disk.as_ref()
    }

    /// What the device thread shares with the transport and the VMM.
    pub fn shared(&self) -> Arc<BlockShared> {
        Arc::clone(&self.shared)
    }
}

/// The virtio-blk device model the transport drives.
pub struct Block {
    features: u64,
    config: [u8; 24],
    queue_sizes: [u16; 1],
    shared: Arc<BlockShared>,
    worker: Option<BlockWorker>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("features", &format_args!("{:#x}", self.features))
            .field("broken", &self.shared.broken())
            .finish()
    }
}

impl Block {
    /// A block device on `disk`, raising `interrupt`. `wake` is signalled when the transport
    /// posts an activation or a reset for the device thread (None: the caller serves the worker
    /// itself, as unit tests do).
    pub fn new(
        disk: Box<dyn DiskBackend>,
        interrupt: Arc<Interrupt>,
        wake: Option<EventFd>,
    ) -> Self {
        let mut features = (1u64 << VIRTIO_F_VERSION_1)
            | (1u64 << VIRTIO_RING_F_EVENT_IDX)
            | (1u64 << VIRTIO_BLK_F_FLUSH)
            | (1u64 << VIRTIO_BLK_F_SEG_MAX)
            | (1u64 << VIRTIO_BLK_F_SIZE_MAX);
        if disk.read_only() {
            features |= 1u64 << VIRTIO_BLK_F_RO;
        }
        // struct virtio_blk_config: capacity (u64), size_max (u32), seg_max (u32), geometry (4
        // bytes), blk_size (u32). Capacity, size_max and seg_max are offered.
        let mut config = [0u8; 24];
        config[0..8].copy_from_slice(&(disk.size() / SECTOR_SIZE).to_le_bytes());
        config[8..12].copy_from_slice(&SIZE_MAX.to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        let shared = Arc::new(BlockShared::new(wake));
        let worker = BlockWorker {
            disk,
            active: None,
            interrupt,
            shared: Arc::clone(&shared),
            stats: BlockStats::default(),
        };
        Self {
            features,
            config,
            queue_sizes: [QUEUE_SIZE],
            shared,
            worker: Some(worker),
        }
    }

    /// The worker, for the device thread (once; None afterwards).
    pub fn take_worker(&mut self) -> Option<BlockWorker> {
        self.worker.take()
    }

    /// What the device shares with its worker and the VMM.
    pub fn shared(&self) -> Arc<BlockShared> {
        Arc::clone(&self.shared)
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
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
        // Nothing in this device's configuration is writable (no VIRTIO_BLK_F_CONFIG_WCE).
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        mut queues: Vec<Queue>,
        _acked_features: u64,
    ) -> Result<(), ActivateError> {
        let queue = queues.pop().ok_or(ActivateError::QueueNotReady(0))?;
        // Served by the device thread, which also serves whatever the driver queued before
        // DRIVER_OK (it should not, but serving it is harmless) and will not kick for.
        self.shared.post(Control::Activate(mem, queue));
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
    use std::sync::Mutex;
    use vm_memory::{Address, Bytes};

    const RAM: usize = 1 << 20;
    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x3000;
    const USED: u64 = 0x4000;
    const BUF: u64 = 0x10000;
    const F_NEXT: u16 = 1;
    const F_WRITE: u16 = 2;

    /// A driver's view of one split queue in hand-built guest memory.
    struct Driver {
        mem: GuestMemoryMmap,
        size: u16,
        next_desc: u16,
        avail_idx: u16,
    }

    impl Driver {
        fn new(size: u16) -> Self {
            let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM)]).expect("mem");
            Self {
                mem,
                size,
                next_desc: 0,
                avail_idx: 0,
            }
        }

        fn queue(&self) -> Queue {
            let mut q = Queue::new(self.size).expect("queue");
            q.try_set_size(self.size).expect("size");
            q.try_set_desc_table_address(GuestAddress(DESC))
                .expect("desc");
            q.try_set_avail_ring_address(GuestAddress(AVAIL))
                .expect("avail");
            q.try_set_used_ring_address(GuestAddress(USED))
                .expect("used");
            q.set_ready(true);
            assert!(q.is_valid(&self.mem));
            q
        }

        /// Adds a chain of (addr, len, device-writable) buffers; returns its head.
        fn add(&mut self, bufs: &[(u64, u32, bool)]) -> u16 {
            let head = self.next_desc;
            for (i, &(addr, len, write)) in bufs.iter().enumerate() {
                let idx = self.next_desc;
                let next = (idx + 1) % self.size;
                let mut flags = if write { F_WRITE } else { 0 };
                if i + 1 < bufs.len() {
                    flags |= F_NEXT;
                }
                let at = GuestAddress(DESC + 16 * u64::from(idx));
                self.mem.write_obj(addr, at).expect("desc");
                self.mem.write_obj(len, at.unchecked_add(8)).expect("desc");
                self.mem
                    .write_obj(flags, at.unchecked_add(12))
                    .expect("desc");
                self.mem
                    .write_obj(next, at.unchecked_add(14))
                    .expect("desc");
                self.next_desc = next;
            }
            self.publish(head);
            head
        }

        fn publish(&mut self, head: u16) {
            let slot = u64::from(self.avail_idx % self.size);
            self.mem
                .write_obj(head, GuestAddress(AVAIL + 4 + 2 * slot))
                .expect("ring");
            self.avail_idx = self.avail_idx.wrapping_add(1);
            self.mem
                .write_obj(self.avail_idx, GuestAddress(AVAIL + 2))
                .expect("idx");
        }

        fn header(&self, at: u64, kind: u32, sector: u64) {
            self.mem.write_obj(kind, GuestAddress(at)).expect("hdr");
            self.mem.write_obj(0u32, GuestAddress(at + 4)).expect("hdr");
            self.mem
                .write_obj(sector, GuestAddress(at + 8))
                .expect("hdr");
        }

        fn used_idx(&self) -> u16 {
            self.mem.read_obj(GuestAddress(USED + 2)).expect("used idx")
        }

        /// (head, len) of used entry `i`.
        fn used(&self, i: u16) -> (u32, u32) {
            let at = USED + 4 + 8 * u64::from(i % self.size);
            (
                self.mem.read_obj(GuestAddress(at)).expect("used"),
                self.mem.read_obj(GuestAddress(at + 4)).expect("used"),
            )
        }

        fn status(&self, at: u64) -> u8 {
            self.mem.read_obj(GuestAddress(at)).expect("status")
        }
    }

    /// A buffer: guest address, length, device-writable.
    type Buf = (u64, u32, bool);

    const HDR: u64 = BUF;
    const DATA: u64 = BUF + 0x1000;
    const STATUS: u64 = BUF + 0x100;

    /// Runs one chain through a fresh queue; returns (used len, status byte, stats).
    fn one(
        d: &mut Driver,
        disk: &mut dyn DiskBackend,
        kind: u32,
        sector: u64,
        bufs: &[(u64, u32, bool)],
    ) -> (u32, u8, BlockStats) {
        let mut q = d.queue();
        d.header(HDR, kind, sector);
        d.mem
            .write_obj(0xffu8, GuestAddress(STATUS))
            .expect("status");
        let head = d.add(bufs);
        let mut stats = BlockStats::default();
        let pass = pq(&mut q, &d.mem, disk, &mut stats).expect("queue ok");
        assert!(pass.notify, "without event idx every completion interrupts");
        assert!(!pass.more);
        assert_eq!(d.used_idx(), 1);
        let (id, len) = d.used(0);
        assert_eq!(id, u32::from(head));
        (len, d.status(STATUS), stats)
    }

    fn req(data: &[(u64, u32, bool)]) -> Vec<(u64, u32, bool)> {
        let mut v = vec![(HDR, 16, false)];
        v.extend_from_slice(data);
        v.push((STATUS, 1, true));
        v
    }

    /// One pass with nothing to end it early.
    fn pq(
        q: &mut Queue,
        mem: &GuestMemoryMmap,
        disk: &mut dyn DiskBackend,
        stats: &mut BlockStats,
    ) -> Result<Pass, QueueError> {
        process_queue(q, mem, disk, stats, &PassControl::default(), 0)
    }

    const OK: u8 = VIRTIO_BLK_S_OK as u8;
    const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;

    #[test]
    fn write_flush_read_and_get_id_round_trip() {
        let mut disk = MemDisk::new(64 * 512, false);
        let pattern: Vec<u8> = (0..1024u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut d = Driver::new(16);
        d.mem
            .write_slice(&pattern, GuestAddress(DATA))
            .expect("fill");
        let (len, status, s) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_OUT,
            2,
            &req(&[(DATA, 512, false), (DATA + 512, 512, false)]),
        );
        assert_eq!((len, status), (1, OK));
        assert_eq!(s.writes, 1);
        assert_eq!(&disk.data[1024..2048], &pattern[..]);

        let mut d = Driver::new(16);
        let (len, status, s) = one(&mut d, &mut disk, VIRTIO_BLK_T_FLUSH, 0, &req(&[]));
        assert_eq!((len, status, s.flushes, disk.flushes), (1, OK, 1, 1));

        let mut d = Driver::new(16);
        let (len, status, _) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_IN,
            2,
            &req(&[(DATA, 1024, true)]),
        );
        assert_eq!((len, status), (1025, OK));
        let mut back = vec![0u8; 1024];
        d.mem
            .read_slice(&mut back, GuestAddress(DATA))
            .expect("read");
        assert_eq!(back, pattern);

        let mut d = Driver::new(16);
        let (len, status, _) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_GET_ID,
            0,
            &req(&[(DATA, 20, true)]),
        );
        assert_eq!((len, status), (21, OK));
        let mut id = [0u8; 20];
        d.mem.read_slice(&mut id, GuestAddress(DATA)).expect("id");
        assert!(id.starts_with(b"isolab-memdisk"));
    }

    #[test]
    fn unknown_types_are_unsupported() {
        let mut disk = MemDisk::new(8 * 512, false);
        let mut d = Driver::new(16);
        let (len, status, s) = one(&mut d, &mut disk, 11, 0, &req(&[(DATA, 512, false)]));
        assert_eq!((len, status), (1, VIRTIO_BLK_S_UNSUPP as u8));
        assert_eq!(s.unsupported, 1);
    }

    #[test]
    fn read_only_disk_fails_writes_with_ioerr_and_serves_reads() {
        let mut disk = MemDisk::new(8 * 512, true);
        let mut d = Driver::new(16);
        let (_, status, s) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_OUT,
            0,
            &req(&[(DATA, 512, false)]),
        );
        assert_eq!((status, s.io_errors, s.writes), (IOERR, 1, 0));
        let mut d = Driver::new(16);
        let (_, status, _) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_IN,
            0,
            &req(&[(DATA, 512, true)]),
        );
        assert_eq!(status, OK);
    }

    #[test]
    fn chains_too_short_are_returned_without_status() {
        let mut disk = MemDisk::new(8 * 512, false);
        // Header alone; status alone.
        for bufs in [vec![(HDR, 16, false)], vec![(STATUS, 1, true)]] {
            let mut d = Driver::new(16);
            let (len, status, s) = one(&mut d, &mut disk, VIRTIO_BLK_T_IN, 0, &bufs);
            assert_eq!((len, status, s.unanswerable), (0, 0xff, 1));
        }
    }

    #[test]
    fn wrong_directions_are_refused() {
        let mut disk = MemDisk::new(8 * 512, false);
        let cases: Vec<(u32, Vec<Buf>)> = vec![
            // Writable header.
            (
                VIRTIO_BLK_T_IN,
                vec![(HDR, 16, true), (DATA, 512, true), (STATUS, 1, true)],
            ),
            // IN into a device-readable buffer.
            (VIRTIO_BLK_T_IN, req(&[(DATA, 512, false)])),
            // OUT from a device-writable buffer.
            (VIRTIO_BLK_T_OUT, req(&[(DATA, 512, true)])),
            // GET_ID into a device-readable buffer.
            (VIRTIO_BLK_T_GET_ID, req(&[(DATA, 20, false)])),
        ];
        for (kind, bufs) in cases {
            let mut d = Driver::new(16);
            let (len, status, s) = one(&mut d, &mut disk, kind, 0, &bufs);
            assert_eq!((len, status, s.io_errors), (1, IOERR, 1), "{kind} {bufs:?}");
        }
        // A device-readable status cannot be answered.
        let mut d = Driver::new(16);
        let bufs = [(HDR, 16, false), (DATA, 512, true), (STATUS, 1, false)];
        let (len, status, s) = one(&mut d, &mut disk, VIRTIO_BLK_T_IN, 0, &bufs);
        assert_eq!((len, status, s.unanswerable), (0, 0xff, 1));
        assert!(disk.data.iter().all(|b| *b == 0));
    }

    #[test]
    fn buffers_outside_ram_or_wrapping_are_refused() {
        let mut disk = MemDisk::new(8 * 512, false);
        let ram = RAM as u64;
        for (kind, buf) in [
            (VIRTIO_BLK_T_IN, (ram - 256, 512, true)),
            (VIRTIO_BLK_T_IN, (ram, 512, true)),
            (VIRTIO_BLK_T_IN, (u64::MAX - 255, 512, true)),
            (VIRTIO_BLK_T_OUT, (u64::MAX - 255, 512, false)),
            (VIRTIO_BLK_T_OUT, (1 << 40, 512, false)),
            (VIRTIO_BLK_T_IN, (DATA, u32::MAX - 100, true)),
            (VIRTIO_BLK_T_GET_ID, (u64::MAX, 20, true)),
        ] {
            let mut d = Driver::new(16);
            let (len, status, _) = one(&mut d, &mut disk, kind, 0, &req(&[buf]));
            assert_eq!((len, status), (1, IOERR), "{buf:?}");
        }
        // A chain longer than 4 GiB in total: virtio-queue stops iterating at the overflow,
        // so the status descriptor is never reached and the chain goes back unanswered.
        let mut d = Driver::new(16);
        let (len, _, s) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_IN,
            0,
            &req(&[(DATA, u32::MAX, true)]),
        );
        assert_eq!((len, s.unanswerable), (0, 1));
        // Header outside RAM.
        let mut d = Driver::new(16);
        let bufs = [(u64::MAX - 8, 16, false), (STATUS, 1, true)];
        let (_, status, _) = one(&mut d, &mut disk, VIRTIO_BLK_T_IN, 0, &bufs);
        assert_eq!(status, IOERR);
        // Status outside RAM: nothing to answer with.
        let mut d = Driver::new(16);
        let bufs = [(HDR, 16, false), (u64::MAX, 1, true)];
        let (len, _, s) = one(&mut d, &mut disk, VIRTIO_BLK_T_IN, 0, &bufs);
        assert_eq!((len, s.unanswerable), (0, 1));
    }

    #[test]
    fn sectors_past_the_end_and_partial_sectors_are_refused() {
        let mut disk = MemDisk::new(8 * 512, false);
        for (sector, len) in [
            (8u64, 512u32),
            (7, 1024),
            (u64::MAX, 512),
            (u64::MAX / 512, 512),
            (u64::MAX / 512 + 1, 512),
            (0, 100),
            (0, 513),
        ] {
            for (kind, write) in [(VIRTIO_BLK_T_IN, true), (VIRTIO_BLK_T_OUT, false)] {
                let mut d = Driver::new(16);
                let (_, status, _) =
                    one(&mut d, &mut disk, kind, sector, &req(&[(DATA, len, write)]));
                assert_eq!(status, IOERR, "{kind} sector {sector} len {len}");
            }
        }
        // The last sector is fine.
        let mut d = Driver::new(16);
        let (_, status, _) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_IN,
            7,
            &req(&[(DATA, 512, true)]),
        );
        assert_eq!(status, OK);
        // Header of the wrong size; a flush with data.
        let mut d = Driver::new(16);
        let bufs = [(HDR, 8, false), (STATUS, 1, true)];
        assert_eq!(
            one(&mut d, &mut disk, VIRTIO_BLK_T_FLUSH, 0, &bufs).1,
            IOERR
        );
        let mut d = Driver::new(16);
        let bufs = req(&[(DATA, 512, false)]);
        assert_eq!(
            one(&mut d, &mut disk, VIRTIO_BLK_T_FLUSH, 0, &bufs).1,
            IOERR
        );
    }

    #[test]
    fn broken_rings_mark_the_queue_broken_without_serving() {
        let mut disk = MemDisk::new(8 * 512, false);
        // The avail index runs more than a queue's worth ahead.
        let d = Driver::new(16);
        let mut q = d.queue();
        d.mem
            .write_obj(17u16, GuestAddress(AVAIL + 2))
            .expect("idx");
        let mut stats = BlockStats::default();
        assert!(pq(&mut q, &d.mem, &mut disk, &mut stats).is_err());
        assert_eq!(stats.requests, 0);
        // A head index past the queue: the chain is empty and cannot be returned.
        let mut d = Driver::new(16);
        let mut q = d.queue();
        d.publish(16);
        let mut stats = BlockStats::default();
        assert!(pq(&mut q, &d.mem, &mut disk, &mut stats).is_err());
        assert_eq!(d.used_idx(), 0);
        // A descriptor loop (next pointing back to itself) ends at the queue size.
        let mut d = Driver::new(16);
        let mut q = d.queue();
        d.header(HDR, VIRTIO_BLK_T_IN, 0);
        let head = d.add(&[(HDR, 16, false)]);
        d.mem
            .write_obj(F_NEXT, GuestAddress(DESC + 16 * u64::from(head) + 12))
            .expect("flags");
        d.mem
            .write_obj(head, GuestAddress(DESC + 16 * u64::from(head) + 14))
            .expect("next");
        let mut stats = BlockStats::default();
        assert!(
            pq(&mut q, &d.mem, &mut disk, &mut stats)
                .expect("served")
                .notify
        );
        assert_eq!((stats.unanswerable, d.used_idx()), (1, 1));
    }

    #[test]
    fn event_idx_suppresses_interrupts_the_driver_did_not_ask_for() {
        let mut disk = MemDisk::new(8 * 512, false);
        let mut d = Driver::new(16);
        let mut q = d.queue();
        q.set_event_idx(true);
        // used_event (after the avail ring) = 1: interrupt only once used idx passes 1.
        d.mem
            .write_obj(1u16, GuestAddress(AVAIL + 4 + 2 * 16))
            .expect("used_event");
        d.header(HDR, VIRTIO_BLK_T_FLUSH, 0);
        d.add(&req(&[]));
        let mut stats = BlockStats::default();
        assert!(
            !pq(&mut q, &d.mem, &mut disk, &mut stats)
                .expect("ok")
                .notify
        );
        d.add(&req(&[]));
        assert!(
            pq(&mut q, &d.mem, &mut disk, &mut stats)
                .expect("ok")
                .notify
        );
        assert_eq!(d.used_idx(), 2);
        // avail_event (after the used ring) tells the driver where to kick next.
        let avail_event: u16 = d
            .mem
            .read_obj(GuestAddress(USED + 4 + 8 * 16))
            .expect("avail_event");
        assert_eq!(avail_event, 2);
    }

    /// Runs one pass on another thread; a pass that has not ended after 20 s is a hang (the
    /// thread is left behind: the test fails rather than hanging itself).
    fn pass_within_20s(
        mut q: Queue,
        mem: GuestMemoryMmap,
        mut disk: MemDisk,
        mut stats: BlockStats,
    ) -> (Queue, MemDisk, BlockStats, Pass) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pass = pq(&mut q, &mem, &mut disk, &mut stats).expect("pass");
            let _ = tx.send((q, disk, stats, pass));
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the pass did not end: the device thread would never see its stop eventfd")
    }

    #[test]
    fn overlapping_rings_that_feed_themselves_are_served_in_bounded_passes() {
        // The used ring on top of the avail ring, with the used index one ahead of the avail
        // index (a queue state the fuzzer hands over directly): every used entry the device
        // publishes sets the avail index one past what it has taken, so there is always one
        // more chain (a FLUSH) to serve. Found by the fuzzer as a device-thread hang.
        let mut d = Driver::new(16);
        d.header(HDR, VIRTIO_BLK_T_FLUSH, 0);
        d.add(&req(&[]));
        let q = Queue::try_from(virtio_queue::QueueState {
            max_size: 16,
            next_avail: 0,
            next_used: 1,
            event_idx_enabled: false,
            size: 16,
            ready: true,
            desc_table: DESC,
            avail_ring: AVAIL,
            used_ring: AVAIL,
        })
        .expect("queue");
        // The avail index (also the used index) says one chain: head 0, the flush.
        d.mem.write_obj(1u16, GuestAddress(AVAIL + 2)).expect("idx");
        let (mut q, mut disk, mut stats) = (q, MemDisk::new(8 * 512, false), BlockStats::default());
        for pass in 1..=3u64 {
            let (q2, disk2, stats2, p) = pass_within_20s(q, d.mem.clone(), disk, stats);
            (q, disk, stats) = (q2, disk2, stats2);
            assert!(p.more, "pass {pass}: {p:?}");
            assert_eq!(
                stats.requests,
                pass * MAX_CHAINS_PER_PASS as u64,
                "{stats:?}"
            );
            assert_eq!(stats.passes_bounded, pass);
        }
    }

    #[test]
    fn a_pass_ends_at_its_byte_budget() {
        // Reads of SIZE_MAX bytes (one chain, published again and again): a pass takes what
        // fits in MAX_BYTES_PER_PASS, then says "more".
        let per = u64::from(SIZE_MAX);
        let n = (MAX_BYTES_PER_PASS / per) as u16 + 8;
        let mut disk = MemDisk::new(1 << 20, false);
        let mut d = Driver::new(256);
        let mut q = d.queue();
        d.header(HDR, VIRTIO_BLK_T_IN, 0);
        let head = d.add(&req(&[(DATA, SIZE_MAX, true)]));
        for _ in 1..n {
            d.publish(head);
        }
        let mut stats = BlockStats::default();
        let p = pq(&mut q, &d.mem, &mut disk, &mut stats).expect("pass");
        assert!(p.more && p.notify, "{p:?}");
        assert_eq!(stats.requests, MAX_BYTES_PER_PASS / per);
        assert_eq!(stats.bytes_read, MAX_BYTES_PER_PASS);
        let p = pq(&mut q, &d.mem, &mut disk, &mut stats).expect("pass");
        assert!(!p.more, "{p:?}");
        assert_eq!(stats.requests, u64::from(n));
        assert_eq!(d.used_idx(), n);
    }

    #[test]
    fn requests_beyond_size_max_or_seg_max_get_ioerr() {
        let mut disk = MemDisk::new(1 << 20, false);
        // One descriptor longer than SIZE_MAX.
        let mut d = Driver::new(16);
        let (len, status, s) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_IN,
            0,
            &req(&[(DATA, SIZE_MAX + 512, true)]),
        );
        assert_eq!((len, status, s.io_errors, s.reads), (1, IOERR, 1, 0));
        // Exactly SIZE_MAX is fine.
        let mut d = Driver::new(16);
        let (len, status, _) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_IN,
            0,
            &req(&[(DATA, SIZE_MAX, true)]),
        );
        assert_eq!((len, status), (SIZE_MAX + 1, OK));
        // SEG_MAX + 1 data descriptors of 512 bytes (the chain itself is not too long).
        let mut d = Driver::new(256);
        let segs: Vec<Buf> = (0..=SEG_MAX)
            .map(|i| (DATA + 512 * u64::from(i), 512, false))
            .collect();
        let (len, status, s) = one(&mut d, &mut disk, VIRTIO_BLK_T_OUT, 0, &req(&segs));
        assert_eq!((len, status, s.io_errors, s.writes), (1, IOERR, 1, 0));
        // SEG_MAX of them is a valid request.
        let mut d = Driver::new(256);
        let (_, status, s) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_OUT,
            0,
            &req(&segs[..SEG_MAX as usize]),
        );
        assert_eq!((status, s.writes), (OK, 1));
        // Both are offered in the configuration space the driver reads.
        let dev = Block::new(
            Box::new(MemDisk::new(512, false)),
            Arc::new(Interrupt::new(None)),
            None,
        );
        assert_ne!(dev.features() & (1 << VIRTIO_BLK_F_SIZE_MAX), 0);
        assert_ne!(dev.features() & (1 << VIRTIO_BLK_F_SEG_MAX), 0);
        let mut cfg = [0u8; 8];
        dev.read_config(8, &mut cfg);
        assert_eq!(cfg[..4], SIZE_MAX.to_le_bytes());
        assert_eq!(cfg[4..], SEG_MAX.to_le_bytes());
    }

    /// A MemDisk that calls `on_read` before each read and `on_flush` before each flush (tests
    /// that need to see or change something at that moment).
    struct Hooked {
        inner: MemDisk,
        on_read: Box<dyn FnMut() + Send>,
        on_flush: Box<dyn FnMut() + Send>,
    }

    impl Hooked {
        fn new(inner: MemDisk) -> Self {
            Self {
                inner,
                on_read: Box::new(|| {}),
                on_flush: Box::new(|| {}),
            }
        }
    }

    impl DiskBackend for Hooked {
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn read_only(&self) -> bool {
            self.inner.read_only()
        }
        fn read_to_guest(
            &mut self,
            m: &GuestMemoryMmap,
            a: GuestAddress,
            l: usize,
            o: u64,
            c: &AtomicBool,
        ) -> std::io::Result<()> {
            (self.on_read)();
            self.inner.read_to_guest(m, a, l, o, c)
        }
        fn write_from_guest(
            &mut self,
            m: &GuestMemoryMmap,
            a: GuestAddress,
            l: usize,
            o: u64,
            c: &AtomicBool,
        ) -> std::io::Result<()> {
            self.inner.write_from_guest(m, a, l, o, c)
        }
        fn flush(&mut self, c: &AtomicBool) -> std::io::Result<()> {
            (self.on_flush)();
            self.inner.flush(c)
        }
        fn id(&self) -> [u8; 20] {
            self.inner.id()
        }
    }

    #[test]
    fn a_flush_is_durable_before_the_guest_sees_it_complete() {
        let mut d = Driver::new(16);
        // At each flush: how many used entries could the guest see?
        let seen = Arc::new(Mutex::new(Vec::<u16>::new()));
        let mut disk = Hooked::new(MemDisk::new(8 * 512, false));
        let (mem, probe) = (d.mem.clone(), Arc::clone(&seen));
        disk.on_flush = Box::new(move || {
            let idx = mem.read_obj(GuestAddress(USED + 2)).expect("used idx");
            probe.lock().expect("lock").push(idx);
        });
        let (_, status, _) = one(&mut d, &mut disk, VIRTIO_BLK_T_FLUSH, 0, &req(&[]));
        assert_eq!(status, OK);
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![0],
            "used idx was still 0 at fsync time"
        );
        assert_eq!(d.used_idx(), 1);
    }

    #[test]
    fn image_file_holds_the_guest_pattern_after_write_and_flush() {
        let path = std::env::temp_dir().join(format!("isolab-blk-test-{}.img", std::process::id()));
        std::fs::write(&path, vec![0u8; 16 * 512]).expect("image");
        let mut disk = FileDisk::open(&path, false).expect("open");
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i ^ (i >> 8)) as u8).collect();
        let mut d = Driver::new(16);
        d.mem
            .write_slice(&pattern, GuestAddress(DATA))
            .expect("fill");
        let (_, status, _) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_OUT,
            4,
            &req(&[(DATA, 4096, false)]),
        );
        assert_eq!(status, OK);
        let mut d = Driver::new(16);
        assert_eq!(
            one(&mut d, &mut disk, VIRTIO_BLK_T_FLUSH, 0, &req(&[])).1,
            OK
        );
        let on_disk = std::fs::read(&path).expect("read back");
        assert_eq!(&on_disk[2048..2048 + 4096], &pattern[..]);
        assert!(on_disk[..2048].iter().all(|b| *b == 0));
        drop(disk);

        // The same image opened read-only: reads work, writes fail with IOERR.
        let mut disk = FileDisk::open(&path, true).expect("open ro");
        let mut d = Driver::new(16);
        let (_, status, _) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_IN,
            4,
            &req(&[(DATA, 4096, true)]),
        );
        assert_eq!(status, OK);
        let mut d = Driver::new(16);
        let (_, status, _) = one(
            &mut d,
            &mut disk,
            VIRTIO_BLK_T_OUT,
            0,
            &req(&[(DATA, 512, false)]),
        );
        assert_eq!(status, IOERR);
        assert_eq!(std::fs::read(&path).expect("read"), on_disk);
        std::fs::remove_file(&path).expect("cleanup");

        // Images that are not whole sectors, or missing, are refused with advice.
        std::fs::write(&path, vec![0u8; 1000]).expect("odd image");
        let e = FileDisk::open(&path, false).expect_err("odd size");
        assert!(e.to_string().contains("multiple of 512"), "{e}");
        std::fs::remove_file(&path).expect("cleanup");
        assert!(FileDisk::open(&path, false).is_err());
    }

    #[test]
    fn the_device_serves_through_its_worker_and_raises_the_interrupt() {
        let irq = Arc::new(Interrupt::new(None));
        let mut dev = Block::new(
            Box::new(MemDisk::new(8 * 512, false)),
            Arc::clone(&irq),
            None,
        );
        let mut worker = dev.take_worker().expect("worker");
        let shared = dev.shared();
        let mut d = Driver::new(16);
        // Activation is only posted: nothing is served until the device thread runs.
        d.header(HDR, VIRTIO_BLK_T_IN, 0);
        d.add(&req(&[(DATA, 512, true)]));
        dev.activate(d.mem.clone(), vec![d.queue()], 0)
            .expect("activate");
        assert_eq!(d.used_idx(), 0);
        assert!(!worker.serve(0));
        assert_eq!(
            d.used_idx(),
            1,
            "the request queued before DRIVER_OK is served"
        );
        assert_eq!(irq.status(), VIRTIO_MMIO_INT_VRING);
        d.header(HDR, VIRTIO_BLK_T_IN, 0);
        d.add(&req(&[(DATA, 512, true)]));
        assert!(!worker.serve(1));
        assert_eq!(d.used_idx(), 2);
        let stats = shared.stats();
        assert_eq!(
            (stats.requests, stats.notifies, stats.interrupts),
            (2, 1, 2)
        );
        // A broken ring marks the device, which stops serving until reset.
        d.mem
            .write_obj(100u16, GuestAddress(AVAIL + 2))
            .expect("idx");
        worker.serve(1);
        assert!(dev.broken());
        assert!(shared.broken_reason().is_some());
        assert_ne!(irq.status() & VIRTIO_MMIO_INT_CONFIG, 0);
        dev.reset();
        assert!(!dev.broken(), "a reset clears NEEDS_RESET at once");
        worker.serve(0);
        assert!(!dev.broken());
    }

    #[test]
    fn a_reset_during_a_request_leaves_the_old_queue_alone() {
        // The reset arrives (from a vCPU) while the device thread is inside a request: the
        // request finishes, but nothing is published into the queue the driver gave up.
        let irq = Arc::new(Interrupt::new(None));
        let mut dev = Block::new(
            Box::new(MemDisk::new(8 * 512, false)),
            Arc::clone(&irq),
            None,
        );
        let shared = dev.shared();
        let mut worker = dev.take_worker().expect("worker");
        // The test's disk needs the shared state the device made: its first read posts a reset.
        let mut disk = Hooked::new(MemDisk::new(8 * 512, false));
        let mut resetter = Some(Arc::clone(&shared));
        disk.on_read = Box::new(move || {
            if let Some(s) = resetter.take() {
                s.post(Control::Reset);
            }
        });
        worker.disk = Box::new(disk);
        let mut d = Driver::new(16);
        d.header(HDR, VIRTIO_BLK_T_IN, 0);
        d.add(&req(&[(DATA, 512, true)]));
        d.add(&req(&[(DATA, 512, true)]));
        dev.activate(d.mem.clone(), vec![d.queue()], 0)
            .expect("activate");
        assert!(!worker.serve(0));
        assert_eq!(d.used_idx(), 0, "nothing published after the reset");
        let s = shared.stats();
        assert_eq!((s.requests, s.abandoned, s.interrupts), (1, 1, 0));
        assert!(worker.active.is_none());
    }

    #[test]
    fn a_stop_during_a_slow_request_ends_it_and_the_pass() {
        let mut disk = SlowDisk::new(
            Box::new(MemDisk::new(8 * 512, false)),
            Duration::from_secs(10),
        );
        let mut d = Driver::new(16);
        let mut q = d.queue();
        d.header(HDR, VIRTIO_BLK_T_IN, 0);
        d.add(&req(&[(DATA, 512, true)]));
        d.add(&req(&[(DATA, 512, true)]));
        let ctl = Arc::new(PassControl::default());
        let stopper = {
            let ctl = Arc::clone(&ctl);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                ctl.stop.store(true, Ordering::Release);
            })
        };
        let start = Instant::now();
        let mut stats = BlockStats::default();
        let pass = process_queue(&mut q, &d.mem, &mut disk, &mut stats, &ctl, 0).expect("pass");
        stopper.join().expect("stopper");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(pass.interrupted && !pass.more && !pass.notify, "{pass:?}");
        assert_eq!((stats.requests, stats.abandoned, stats.reads), (1, 1, 0));
        assert_eq!(d.used_idx(), 0);
    }
}
