//! virtio-blk: one request queue served from a raw image file on the host.
//!
//! Requests: IN (read), OUT (write), FLUSH, GET_ID; anything else is answered UNSUPP. Chains must
//! have the layout every Linux driver uses: a 16-byte device-readable header descriptor, data
//! descriptors (device-writable for IN and GET_ID, device-readable for OUT, none for FLUSH) and a
//! device-writable status descriptor (the status goes to its first byte).
//!
//! Everything in a chain comes from the guest and is checked before any byte moves: direction
//! of each descriptor, every buffer inside guest RAM without wrapping around, data a multiple of
//! 512 bytes, `sector * 512 + length` within the disk (checked arithmetic). A bad request gets
//! VIRTIO_BLK_S_IOERR (or UNSUPP); a chain whose status byte cannot be written is returned with
//! used length 0; a broken ring (avail index out of range, head index past the queue) marks the
//! device broken (`DEVICE_NEEDS_RESET`) instead of being served.
//!
//! FLUSH is `fdatasync` of the image and completes before the used entry is published: when the
//! guest sees a flush complete, the data is on the host's disk. A read-only image is opened
//! read-only, offered with VIRTIO_BLK_F_RO, and writes to it fail with IOERR.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use thiserror::Error;
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_ID_BYTES,
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::{
    lock, ActivateError, Interrupt, Shared, VirtioDevice, VIRTIO_F_VERSION_1,
    VIRTIO_RING_F_EVENT_IDX,
};

/// Bytes per sector: the unit of `sector` and `capacity`, whatever the image's block size.
pub const SECTOR_SIZE: u64 = 512;
/// Size of the request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Data descriptors per request the driver may use (VIRTIO_BLK_F_SEG_MAX). Half the queue less
/// header and status, so two largest requests fit at once. Without it Linux sends one segment
/// per request, which would split every large I/O into 4 KiB pieces.
pub const SEG_MAX: u32 = (QUEUE_SIZE as u32) / 2 - 2;
/// Longest chain accepted (indirect tables can be longer than the queue).
const MAX_CHAIN: usize = QUEUE_SIZE as usize + 2;
/// Most chains served in one pass over the queue. A guest can make the device's own used-ring
/// writes look like new avail entries (overlapping rings) or keep feeding the ring from another
/// vCPU; without a bound the device thread would never look at its stop eventfd again. A pass
/// that hits the bound asks to be called again (the device thread kicks itself).
pub const MAX_CHAINS_PER_PASS: usize = QUEUE_SIZE as usize;
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
/// checked against [`DiskBackend::size`] and guest RAM.
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
    ) -> std::io::Result<()>;
    /// Copies `len` bytes of guest memory at `addr` to `offset` of the disk.
    fn write_from_guest(
        &mut self,
        mem: &GuestMemoryMmap,
        addr: GuestAddress,
        len: usize,
        offset: u64,
    ) -> std::io::Result<()>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> std::io::Result<()>;
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
    ) -> std::io::Result<()> {
        // Only this thread uses the file, so seek + read is as good as pread and needs no unsafe
        // pointer into guest memory: vm-memory does the bounded copy.
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
    ) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        mem.write_all_volatile_to(addr, &mut self.file, len)
            .map_err(std::io::Error::other)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // fdatasync: the image never changes size, so its data is all a flush must persist.
        self.file.sync_data()
    }

    fn id(&self) -> [u8; VIRTIO_BLK_ID_BYTES as usize] {
        self.id
    }
}

/// A disk in host memory (tests and fuzzing).
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

    fn range(&self, offset: u64, len: usize) -> std::io::Result<std::ops::Range<usize>> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| std::io::Error::other("past the end of the disk"))?;
        Ok(start..end)
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
    ) -> std::io::Result<()> {
        let r = self.range(offset, len)?;
        mem.write_slice(&self.data[r], addr)
            .map_err(std::io::Error::other)
    }

    fn write_from_guest(
        &mut self,
        mem: &GuestMemoryMmap,
        addr: GuestAddress,
        len: usize,
        offset: u64,
    ) -> std::io::Result<()> {
        let r = self.range(offset, len)?;
        mem.read_slice(&mut self.data[r], addr)
            .map_err(std::io::Error::other)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flushes += 1;
        Ok(())
    }

    fn id(&self) -> [u8; VIRTIO_BLK_ID_BYTES as usize] {
        *b"isolab-memdisk\0\0\0\0\0\0"
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
    /// Data buffers in guest memory (each inside guest RAM).
    pub data: Vec<(GuestAddress, u32)>,
    /// Sum of the data buffers' lengths.
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    /// The avail index says there are chains but none can be read.
    #[error("the avail ring announces chains that cannot be read")]
    Stuck,
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

/// Runs a validated request against the disk. Returns (status, bytes written into guest memory
/// not counting the status byte).
pub fn execute(
    req: &Request,
    disk: &mut dyn DiskBackend,
    mem: &GuestMemoryMmap,
    stats: &mut BlockStats,
) -> (u8, u32) {
    let ioerr = VIRTIO_BLK_S_IOERR as u8;
    match req.kind {
        RequestType::In => {
            let mut offset = req.sector * SECTOR_SIZE;
            let mut done = 0u32;
            for &(addr, len) in &req.data {
                if disk.read_to_guest(mem, addr, len as usize, offset).is_err() {
                    return (ioerr, done);
                }
                offset += u64::from(len);
                done = done.saturating_add(len);
            }
            stats.reads += 1;
            stats.bytes_read += req.data_len;
            (VIRTIO_BLK_S_OK as u8, done)
        }
        RequestType::Out => {
            if disk.read_only() {
                return (ioerr, 0);
            }
            let mut offset = req.sector * SECTOR_SIZE;
            for &(addr, len) in &req.data {
                if disk
                    .write_from_guest(mem, addr, len as usize, offset)
                    .is_err()
                {
                    return (ioerr, 0);
                }
                offset += u64::from(len);
            }
            stats.writes += 1;
            stats.bytes_written += req.data_len;
            (VIRTIO_BLK_S_OK as u8, 0)
        }
        RequestType::Flush => match disk.flush() {
            Ok(()) => {
                stats.flushes += 1;
                (VIRTIO_BLK_S_OK as u8, 0)
            }
            Err(_) => (ioerr, 0),
        },
        RequestType::GetId => {
            let id = disk.id();
            let mut rest: &[u8] = &id;
            let mut done = 0u32;
            for &(addr, len) in &req.data {
                if rest.is_empty() {
                    break;
                }
                let n = rest.len().min(len as usize);
                if mem.write_slice(&rest[..n], addr).is_err() {
                    return (ioerr, done);
                }
                rest = &rest[n..];
                done += n as u32;
            }
            stats.get_ids += 1;
            (VIRTIO_BLK_S_OK as u8, done)
        }
        RequestType::Unsupported(_) => (VIRTIO_BLK_S_UNSUPP as u8, 0),
    }
}

/// Parses, executes and answers one chain. Returns the used length to publish.
pub fn handle_chain(
    descs: &[Descriptor],
    disk: &mut dyn DiskBackend,
    mem: &GuestMemoryMmap,
    stats: &mut BlockStats,
) -> u32 {
    stats.requests += 1;
    let (status, written, status_addr) = match parse_request(descs, mem, disk.size()) {
        Ok(req) => {
            let (s, w) = execute(&req, disk, mem, stats);
            (s, w, req.status)
        }
        Err((_, Some(addr))) => (VIRTIO_BLK_S_IOERR as u8, 0, addr),
        Err((_, None)) => {
            stats.unanswerable += 1;
            return 0;
        }
    };
    match u32::from(status) {
        VIRTIO_BLK_S_IOERR => stats.io_errors += 1,
        VIRTIO_BLK_S_UNSUPP => stats.unsupported += 1,
        _ => {}
    }
    if mem.write_obj(status, status_addr).is_err() {
        // Checked to be inside guest RAM during parsing; unreachable unless memory shrank.
        stats.unanswerable += 1;
        return written;
    }
    written.saturating_add(1)
}

/// What one pass over the queue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// The driver must be interrupted (used entries it asked to hear about).
    pub notify: bool,
    /// The pass stopped at [`MAX_CHAINS_PER_PASS`] with chains left: call again.
    pub more: bool,
}

/// Serves the available chains of `queue` (at most [`MAX_CHAINS_PER_PASS`]), with notification
/// suppression (event index when negotiated).
pub fn process_queue(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    disk: &mut dyn DiskBackend,
    stats: &mut BlockStats,
) -> Result<Pass, QueueError> {
    let mut used = 0usize;
    let mut descs: Vec<Descriptor> = Vec::with_capacity(MAX_CHAIN);
    let mut more = false;
    'outer: loop {
        queue.disable_notification(mem).map_err(ring_err)?;
        let mut popped = 0usize;
        loop {
            if used >= MAX_CHAINS_PER_PASS {
                // Leave notifications disabled: the caller comes back without a kick.
                more = true;
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
            let len = if too_long {
                stats.requests += 1;
                stats.unanswerable += 1;
                0
            } else {
                handle_chain(&descs, disk, mem, stats)
            };
            // A head index past the queue cannot be returned: the ring is broken.
            queue.add_used(mem, head, len).map_err(ring_err)?;
            used += 1;
        }
        if !queue.enable_notification(mem).map_err(ring_err)? {
            break;
        }
        if popped == 0 {
            return Err(QueueError::Stuck);
        }
    }
    let notify = used > 0 && queue.needs_notification(mem).map_err(ring_err)?;
    Ok(Pass { notify, more })
}

/// The part of the block device the device thread owns while the driver runs it.
pub struct BlockWorker {
    disk: Box<dyn DiskBackend>,
    active: Option<(GuestMemoryMmap, Queue)>,
    interrupt: Arc<Interrupt>,
    kick: Option<EventFd>,
    broken: Arc<AtomicBool>,
    /// What the device did so far.
    pub stats: BlockStats,
    /// Why the device was marked broken, if it was.
    pub broken_reason: Option<QueueError>,
}

impl std::fmt::Debug for BlockWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWorker")
            .field("size", &self.disk.size())
            .field("read_only", &self.disk.read_only())
            .field("active", &self.active.is_some())
            .field("stats", &self.stats)
            .field("broken_reason", &self.broken_reason)
            .finish()
    }
}

impl BlockWorker {
    /// Serves the queue after `count` guest notifications.
    pub fn notified(&mut self, count: u64) {
        self.stats.notifies = self.stats.notifies.saturating_add(count);
        self.process();
    }

    /// Serves the queue (if the driver has started the device and it is not broken).
    pub fn process(&mut self) {
        let Some((mem, queue)) = &mut self.active else {
            return;
        };
        match process_queue(queue, mem, self.disk.as_mut(), &mut self.stats) {
            Ok(pass) => {
                if pass.notify {
                    self.stats.interrupts += 1;
                    self.interrupt.trigger(VIRTIO_MMIO_INT_VRING);
                }
                if pass.more {
                    if let Some(kick) = &self.kick {
                        // Come back after the device thread has looked at its stop eventfd.
                        // A failed write means the counter is saturated: it is signalled anyway.
                        let _ = kick.write(1);
                    }
                }
            }
            Err(e) => {
                // Stop serving this queue until the driver resets the device, and tell it so:
                // DEVICE_NEEDS_RESET in Status, announced with a configuration-change interrupt.
                self.active = None;
                self.broken_reason = Some(e);
                self.broken.store(true, Ordering::SeqCst);
                self.interrupt.trigger(VIRTIO_MMIO_INT_CONFIG);
            }
        }
    }

    /// The disk (tests).
    pub fn disk(&self) -> &dyn DiskBackend {
        self.disk.as_ref()
    }

    /// Sets the eventfd the worker signals to be called again when a pass hit
    /// [`MAX_CHAINS_PER_PASS`] (the queue's notify eventfd the device thread waits on).
    pub fn set_kick(&mut self, kick: EventFd) {
        self.kick = Some(kick);
    }
}

/// The virtio-blk device model the transport drives.
pub struct Block {
    features: u64,
    config: [u8; 24],
    queue_sizes: [u16; 1],
    worker: Shared<BlockWorker>,
    broken: Arc<AtomicBool>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("features", &format_args!("{:#x}", self.features))
            .field("broken", &self.broken.load(Ordering::Relaxed))
            .finish()
    }
}

impl Block {
    /// A block device on `disk`, raising `interrupt`.
    pub fn new(disk: Box<dyn DiskBackend>, interrupt: Arc<Interrupt>) -> Self {
        let mut features = (1u64 << VIRTIO_F_VERSION_1)
            | (1u64 << VIRTIO_RING_F_EVENT_IDX)
            | (1u64 << VIRTIO_BLK_F_FLUSH)
            | (1u64 << VIRTIO_BLK_F_SEG_MAX);
        if disk.read_only() {
            features |= 1u64 << VIRTIO_BLK_F_RO;
        }
        // struct virtio_blk_config: capacity (u64), size_max (u32), seg_max (u32), geometry (4
        // bytes), blk_size (u32). Only capacity and seg_max are offered.
        let mut config = [0u8; 24];
        config[0..8].copy_from_slice(&(disk.size() / SECTOR_SIZE).to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        let broken = Arc::new(AtomicBool::new(false));
        let worker = Arc::new(std::sync::Mutex::new(BlockWorker {
            disk,
            active: None,
            interrupt,
            kick: None,
            broken: Arc::clone(&broken),
            stats: BlockStats::default(),
            broken_reason: None,
        }));
        Self {
            features,
            config,
            queue_sizes: [QUEUE_SIZE],
            worker,
            broken,
        }
    }

    /// The worker, for the device thread.
    pub fn worker(&self) -> Shared<BlockWorker> {
        Arc::clone(&self.worker)
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
        let mut w = lock(&self.worker);
        w.active = Some((mem, queue));
        // The driver may have queued requests before DRIVER_OK (it should not, but serving them
        // is harmless) and will not kick again for them.
        w.process();
        Ok(())
    }

    fn reset(&mut self) {
        let mut w = lock(&self.worker);
        w.active = None;
        w.broken_reason = None;
        self.broken.store(false, Ordering::SeqCst);
    }

    fn broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
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
        let pass = process_queue(&mut q, &d.mem, disk, &mut stats).expect("queue ok");
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
        assert!(process_queue(&mut q, &d.mem, &mut disk, &mut stats).is_err());
        assert_eq!(stats.requests, 0);
        // A head index past the queue: the chain is empty and cannot be returned.
        let mut d = Driver::new(16);
        let mut q = d.queue();
        d.publish(16);
        let mut stats = BlockStats::default();
        assert!(process_queue(&mut q, &d.mem, &mut disk, &mut stats).is_err());
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
            process_queue(&mut q, &d.mem, &mut disk, &mut stats)
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
            !process_queue(&mut q, &d.mem, &mut disk, &mut stats)
                .expect("ok")
                .notify
        );
        d.add(&req(&[]));
        assert!(
            process_queue(&mut q, &d.mem, &mut disk, &mut stats)
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

    #[test]
    fn overlapping_rings_that_feed_themselves_are_served_in_bounded_passes() {
        // The used ring on top of the avail ring: every used entry the device writes bumps the
        // avail index it reads next (found by the fuzzer as a device-thread hang).
        let mut disk = MemDisk::new(8 * 512, false);
        let d = Driver::new(16);
        let mut q = Queue::new(16).expect("queue");
        q.try_set_desc_table_address(GuestAddress(DESC))
            .expect("desc");
        q.try_set_avail_ring_address(GuestAddress(AVAIL))
            .expect("avail");
        q.try_set_used_ring_address(GuestAddress(AVAIL))
            .expect("used");
        q.set_ready(true);
        d.mem.write_obj(1u16, GuestAddress(AVAIL + 2)).expect("idx");
        let mut stats = BlockStats::default();
        let mut passes = 0;
        loop {
            match process_queue(&mut q, &d.mem, &mut disk, &mut stats) {
                Ok(p) if p.more => passes += 1,
                _ => break,
            }
            if passes == 3 {
                break;
            }
        }
        assert!(stats.requests <= 3 * MAX_CHAINS_PER_PASS as u64 + MAX_CHAINS_PER_PASS as u64);
    }

    /// A disk that records, at each flush, how many used entries the guest could see.
    struct OrderProbe {
        inner: MemDisk,
        mem: GuestMemoryMmap,
        used_idx_at_flush: Arc<Mutex<Vec<u16>>>,
    }

    impl DiskBackend for OrderProbe {
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn read_only(&self) -> bool {
            false
        }
        fn read_to_guest(
            &mut self,
            m: &GuestMemoryMmap,
            a: GuestAddress,
            l: usize,
            o: u64,
        ) -> std::io::Result<()> {
            self.inner.read_to_guest(m, a, l, o)
        }
        fn write_from_guest(
            &mut self,
            m: &GuestMemoryMmap,
            a: GuestAddress,
            l: usize,
            o: u64,
        ) -> std::io::Result<()> {
            self.inner.write_from_guest(m, a, l, o)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            let idx = self.mem.read_obj(GuestAddress(USED + 2)).expect("used idx");
            self.used_idx_at_flush.lock().expect("lock").push(idx);
            Ok(())
        }
        fn id(&self) -> [u8; 20] {
            [0; 20]
        }
    }

    #[test]
    fn a_flush_is_durable_before_the_guest_sees_it_complete() {
        let mut d = Driver::new(16);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut disk = OrderProbe {
            inner: MemDisk::new(8 * 512, false),
            mem: d.mem.clone(),
            used_idx_at_flush: Arc::clone(&seen),
        };
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
        let mut dev = Block::new(Box::new(MemDisk::new(8 * 512, false)), Arc::clone(&irq));
        let mut d = Driver::new(16);
        dev.activate(d.mem.clone(), vec![d.queue()], 0)
            .expect("activate");
        d.header(HDR, VIRTIO_BLK_T_IN, 0);
        d.add(&req(&[(DATA, 512, true)]));
        let worker = dev.worker();
        lock(&worker).notified(1);
        assert_eq!(d.used_idx(), 1);
        assert_eq!(irq.status(), VIRTIO_MMIO_INT_VRING);
        let stats = lock(&worker).stats;
        assert_eq!(
            (stats.requests, stats.notifies, stats.interrupts),
            (1, 1, 1)
        );
        // A broken ring marks the device, which stops serving until reset.
        d.mem
            .write_obj(100u16, GuestAddress(AVAIL + 2))
            .expect("idx");
        lock(&worker).notified(1);
        assert!(dev.broken());
        assert_ne!(irq.status() & VIRTIO_MMIO_INT_CONFIG, 0);
        dev.reset();
        assert!(!dev.broken());
    }
}
