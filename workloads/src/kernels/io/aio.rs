//! Linux native AIO (`io_setup`, `io_submit`, `io_getevents`): the engine fio's `libaio` uses
//! (and Felter et al. measured with), driven through raw system calls, so the static agent needs
//! no libaio. Not io_uring: Docker's default seccomp profile, which the container gets, denies it,
//! while it allows these calls.
//!
//! The kernel ABI (`linux/aio_abi.h`) is stable: a 64-byte `iocb` and a 32-byte `io_event`. No
//! crate on crates.io offers these calls without linking the C libaio, so the few lines are
//! written here. With O_DIRECT on a block device or a preallocated file, submissions do not
//! block and up to `depth` requests are in flight at once.

use std::os::fd::AsRawFd;
use std::time::Instant;

use super::AlignedBuf;

const IOCB_CMD_PREAD: u16 = 0;
const IOCB_CMD_PWRITE: u16 = 1;

/// `struct iocb` (x86_64, little endian).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct IoCb {
    aio_data: u64,
    aio_key: u32,
    aio_rw_flags: i32,
    aio_lio_opcode: u16,
    aio_reqprio: i16,
    aio_fildes: u32,
    aio_buf: u64,
    aio_nbytes: u64,
    aio_offset: i64,
    aio_reserved2: u64,
    aio_flags: u32,
    aio_resfd: u32,
}

/// `struct io_event`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct IoEvent {
    data: u64,
    obj: u64,
    res: i64,
    res2: i64,
}

const _: () = assert!(std::mem::size_of::<IoCb>() == 64);
const _: () = assert!(std::mem::size_of::<IoEvent>() == 32);

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Read a block into its slot's buffer.
    Read,
    /// Write the slot's buffer (filled by the caller's `fill` first).
    Write,
}

/// An AIO context with `depth` request slots, each with its own O_DIRECT-aligned buffer and
/// iocb. Dropping it destroys the context first, which waits for every request in flight, so a
/// buffer is never freed while the kernel may still write into it.
pub(crate) struct Ring {
    ctx: libc::c_ulong,
    iocbs: Box<[IoCb]>,
    bufs: Vec<AlignedBuf>,
    block: usize,
}

fn last_err(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Ring {
    /// A context for `depth` requests of `block` bytes.
    pub(crate) fn new(depth: usize, block: usize) -> std::io::Result<Ring> {
        let mut ctx: libc::c_ulong = 0;
        // SAFETY: io_setup writes the new context id into `ctx`, a live local; `depth` is a
        // plain count.
        let rc = unsafe { libc::syscall(libc::SYS_io_setup, depth as libc::c_long, &mut ctx) };
        if rc != 0 {
            return Err(last_err("io_setup"));
        }
        // From here on Drop destroys the context, whatever fails next.
        let mut ring = Ring {
            ctx,
            iocbs: vec![IoCb::default(); depth].into_boxed_slice(),
            bufs: Vec::with_capacity(depth),
            block,
        };
        for _ in 0..depth {
            ring.bufs
                .push(AlignedBuf::new(block).map_err(|e| std::io::Error::other(e.to_string()))?);
        }
        Ok(ring)
    }

    /// Runs one request per entry of `offsets` with at most `depth` in flight, refilling each
    /// slot as soon as its request completes, and returns each request's latency (µs, from its
    /// submission to the completion event) in completion order. `fill(offset, buf)` writes a
    /// block's contents before it is submitted (writes only).
    pub(crate) fn run(
        &mut self,
        file: &std::fs::File,
        op: Op,
        offsets: &[u64],
        mut fill: impl FnMut(u64, &mut [u8]),
    ) -> std::io::Result<Vec<f64>> {
        let depth = self.iocbs.len();
        let fd = file.as_raw_fd() as u32;
        let mut submitted_at = vec![Instant::now(); depth];
        let mut latencies = Vec::with_capacity(offsets.len());
        let mut next = 0usize;
        let mut in_flight = 0usize;
        let mut events = vec![IoEvent::default(); depth];
        let mut ready: Vec<usize> = (0..depth).rev().collect();
        let mut batch: Vec<*mut IoCb> = Vec::with_capacity(depth);
        while latencies.len() < offsets.len() {
            batch.clear();
            while next < offsets.len() {
                let Some(slot) = ready.pop() else { break };
                let offset = offsets[next];
                next += 1;
                let buf = self.bufs[slot].as_mut_slice();
                if op == Op::Write {
                    fill(offset, buf);
                }
                self.iocbs[slot] = IoCb {
                    aio_data: slot as u64,
                    aio_lio_opcode: match op {
                        Op::Read => IOCB_CMD_PREAD,
                        Op::Write => IOCB_CMD_PWRITE,
                    },
                    aio_fildes: fd,
                    aio_buf: buf.as_mut_ptr() as u64,
                    aio_nbytes: self.block as u64,
                    aio_offset: offset as i64,
                    ..IoCb::default()
                };
                submitted_at[slot] = Instant::now();
                batch.push(&mut self.iocbs[slot]);
            }
            let mut sent = 0usize;
            while sent < batch.len() {
                // SAFETY: every pointer in `batch` is to an iocb of `self.iocbs`, whose buffer
                // is a live slot of `self.bufs`; both stay put (boxed, never resized) until the
                // request's completion is reaped below or the context is destroyed in Drop.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_io_submit,
                        self.ctx,
                        (batch.len() - sent) as libc::c_long,
                        batch[sent..].as_mut_ptr(),
                    )
                };
                if rc < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(last_err("io_submit"));
                }
                sent += rc as usize;
                in_flight += rc as usize;
            }
            if in_flight == 0 {
                break;
            }
            // SAFETY: io_getevents writes at most `events.len()` events into `events`, a live
            // buffer of that many; a null timeout waits for at least one.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_io_getevents,
                    self.ctx,
                    1 as libc::c_long,
                    events.len() as libc::c_long,
                    events.as_mut_ptr(),
                    std::ptr::null_mut::<libc::timespec>(),
                )
            };
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(last_err("io_getevents"));
            }
            let done = Instant::now();
            for ev in &events[..rc as usize] {
                in_flight -= 1;
                let slot = ev.data as usize;
                if slot >= depth {
                    return Err(std::io::Error::other(format!(
                        "io_getevents returned an unknown request {slot}"
                    )));
                }
                if ev.res < 0 {
                    return Err(std::io::Error::from_raw_os_error(-ev.res as i32));
                }
                if ev.res as u64 != self.block as u64 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("a {}-byte request moved {} bytes", self.block, ev.res),
                    ));
                }
                latencies.push(done.duration_since(submitted_at[slot]).as_secs_f64() * 1e6);
                ready.push(slot);
            }
        }
        Ok(latencies)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Waits for (or cancels) every request in flight before the buffers go.
        // SAFETY: `ctx` is the context io_setup made, destroyed once, here.
        unsafe {
            libc::syscall(libc::SYS_io_destroy, self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::io::tests::TEST_DIR;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};

    #[test]
    fn reads_and_writes_at_depth_land_where_asked() {
        let path =
            std::path::Path::new(TEST_DIR).join(format!("isolab-aio-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .expect("O_DIRECT file");
        file.set_len(64 * 4096).expect("size");
        let mut ring = Ring::new(8, 4096).expect("io_setup");
        // 64 writes at depth 8, each block filled with its own index.
        let offsets: Vec<u64> = (0..64u64).rev().map(|i| i * 4096).collect();
        let lat = ring
            .run(&file, Op::Write, &offsets, |off, buf| {
                buf.fill((off / 4096) as u8)
            })
            .expect("writes");
        assert_eq!(lat.len(), 64);
        assert!(lat.iter().all(|l| *l >= 0.0));
        let lat = ring
            .run(&file, Op::Read, &offsets, |_, _| {})
            .expect("reads");
        assert_eq!(lat.len(), 64);
        drop(ring);
        let mut back = AlignedBuf::new(4096).expect("buf");
        for i in [0u64, 17, 63] {
            file.read_exact_at(back.as_mut_slice(), i * 4096)
                .expect("read");
            assert!(back.as_slice().iter().all(|b| *b == i as u8), "block {i}");
        }
        // Past the end of a file: a short read is an error, not a silent success.
        let mut ring = Ring::new(2, 4096).expect("io_setup");
        assert!(ring.run(&file, Op::Read, &[1 << 30], |_, _| {}).is_err());
        let _ = std::fs::remove_file(path);
    }
}
