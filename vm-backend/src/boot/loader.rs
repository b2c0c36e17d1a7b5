//! Recognising, validating and loading a guest kernel.
//!
//! [`KernelImage::from_file`] reads the file and checks it completely (format, architecture,
//! boot-protocol version, that the file is as long as its headers say, where every byte will go
//! and the notes the loader will parse) before any KVM call, so a wrong, truncated or hostile
//! file is refused with a clear message instead of a guest that never starts. All arithmetic on
//! header fields is checked, and no kernel may reach past [`MAX_RAM_BYTES`] (the largest guest
//! this VMM builds), so the sizes it reports can be added to without overflow.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use linux_loader::bootparam::setup_header;
use linux_loader::loader::{bzimage::BzImage, elf::Elf, KernelLoader};
use vm_memory::{Address, GuestAddress, GuestMemoryMmap};

use crate::arch::x86_64::{BZIMAGE_64BIT_ENTRY_OFFSET, HIMEM_START};
use crate::error::{Result, VmError};
use crate::vstate::memory::MAX_RAM_BYTES;

/// The two formats this VMM boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelFormat {
    /// `arch/x86/boot/bzImage`: setup code plus compressed kernel; entered at its 64-bit entry.
    BzImage,
    /// `vmlinux`: the uncompressed ELF kernel; entered at its ELF entry point.
    Elf,
}

impl KernelFormat {
    /// Name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            KernelFormat::BzImage => "bzImage",
            KernelFormat::Elf => "ELF vmlinux",
        }
    }
}

/// What the headers of a checked kernel say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelInfo {
    /// The format.
    pub format: KernelFormat,
    /// Boot protocol version (bzImage only, e.g. 0x020f).
    pub protocol: u16,
    /// Lowest guest RAM the kernel needs to be loaded and to decompress itself, bytes: the end
    /// of everything the loader copies (trailing data included) and of the kernel's own
    /// working area. Never above [`MAX_RAM_BYTES`].
    pub min_ram: u64,
    /// Highest address an initrd may end at (bzImage `initrd_addr_max`; 0x37ff_ffff otherwise).
    pub initrd_addr_max: u64,
    /// Longest command line the kernel accepts, bytes without the NUL.
    pub cmdline_max: usize,
}

/// Where a checked kernel's bytes are.
#[derive(Clone)]
enum Source {
    /// In its file: loaded straight into guest memory, never onto the VMM's heap.
    File,
    /// In memory (tests, generated kernels).
    Bytes(Vec<u8>),
}

/// A checked kernel.
#[derive(Clone)]
pub struct KernelImage {
    /// Where it came from.
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: u64,
    /// What its headers say.
    pub info: KernelInfo,
    source: Source,
}

impl std::fmt::Debug for KernelImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelImage")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("info", &self.info)
            .finish()
    }
}

/// Where the kernel went and where to enter it.
#[derive(Debug, Clone, Copy)]
pub struct LoadedKernel {
    /// The format.
    pub format: KernelFormat,
    /// 64-bit entry point (guest physical).
    pub entry: u64,
    /// First guest address after the kernel image.
    pub kernel_end: u64,
    /// The bzImage's setup header, the start of boot_params (bzImage only).
    pub setup_header: Option<setup_header>,
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const BZ_HDRS_MAGIC: u32 = 0x5372_6448; // "HdrS"
const XLF_KERNEL_64: u16 = 1;
const LOADED_HIGH: u8 = 1;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const EM_X86_64: u16 = 62;
/// Size of the ELF64 file header; the program header table cannot start inside it.
const ELF_HEADER_LEN: u64 = 64;
/// Most bytes after the part of a bzImage its header describes (a signature, padding): the
/// loader copies them into guest memory with the kernel, so more points at a file that is not
/// one bzImage.
pub const MAX_BZIMAGE_TRAILING: u64 = 16 << 20;
/// Largest PT_NOTE segment accepted (a vmlinux's notes are a few hundred bytes); the loader
/// walks it note by note at load time, so it is walked here first.
pub const MAX_NOTES: u64 = 1 << 20;
/// Bytes of a kernel file read to check it (the ELF program header table may extend it, up to
/// [`MAX_HEAD`]).
pub const HEAD_LEN: u64 = 64 * 1024;
/// Most bytes read to check a kernel.
pub const MAX_HEAD: u64 = 4 << 20;

/// How many bytes from the start of a kernel file are needed to check it, given its first
/// [`HEAD_LEN`] bytes and its length.
pub fn head_len(first: &[u8], file_len: u64) -> u64 {
    let mut need = HEAD_LEN;
    if first.starts_with(ELF_MAGIC) {
        let phoff = le64(first, 0x20).unwrap_or(0);
        let table =
            u64::from(le16(first, 0x36).unwrap_or(0)) * u64::from(le16(first, 0x38).unwrap_or(0));
        need = need.max(phoff.saturating_add(table));
    }
    need.min(file_len).min(MAX_HEAD)
}

/// Default `initrd_addr_max` for kernels that do not say (boot protocol < 2.03 and ELF).
pub const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;

fn le16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
}
fn le32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn le64(b: &[u8], off: usize) -> Option<u64> {
    b.get(off..off + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

/// Why a byte string is not a bootable kernel (pure: no file name, for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelCheckError {
    /// The kernel would reach past the largest guest RAM this VMM builds.
    TooLarge(String),
    /// Not a kernel of a known format, or one this VMM cannot enter.
    Format(String),
    /// The headers describe more bytes than there are.
    Truncated {
        /// Bytes the headers need.
        needed: u64,
    },
}

/// Recognises and checks a kernel held in memory, its ELF notes included.
pub fn check_kernel(bytes: &[u8]) -> std::result::Result<KernelInfo, KernelCheckError> {
    let info = check_kernel_head(bytes, bytes.len() as u64)?;
    for (i, offset, len) in note_segments(bytes)? {
        let seg = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(o, l)| bytes.get(o..o.checked_add(l)?))
            .ok_or(KernelCheckError::Truncated {
                needed: offset.saturating_add(len),
            })?;
        check_notes(i, seg)?;
    }
    Ok(info)
}

/// The PT_NOTE segments of an ELF kernel whose headers [`check_kernel_head`] accepted:
/// (index, file offset, length), each inside the file and at most [`MAX_NOTES`] bytes. Empty
/// for a bzImage.
pub fn note_segments(head: &[u8]) -> std::result::Result<Vec<(u64, u64, u64)>, KernelCheckError> {
    if !head.starts_with(ELF_MAGIC) {
        return Ok(Vec::new());
    }
    let phoff = le64(head, 0x20).unwrap_or(0);
    let phnum = u64::from(le16(head, 0x38).unwrap_or(0));
    let mut out = Vec::new();
    for i in 0..phnum {
        let Some(p) = phoff
            .checked_add(i * 56)
            .and_then(|p| usize::try_from(p).ok())
        else {
            break;
        };
        if le32(head, p) != Some(PT_NOTE) {
            continue;
        }
        let offset = le64(head, p + 0x8).unwrap_or(u64::MAX);
        let filesz = le64(head, p + 0x20).unwrap_or(u64::MAX);
        if filesz > MAX_NOTES {
            return Err(KernelCheckError::Format(format!(
                "note segment {i} holds {filesz} bytes; a vmlinux's notes take a few hundred"
            )));
        }
        out.push((i, offset, filesz));
    }
    Ok(out)
}

/// Walks the notes of PT_NOTE segment `index` the way the loader will (linux-loader looks for
/// the PVH entry note in every note segment at load time), and refuses what it would fail on:
/// a note that runs past the segment, sizes that overflow when aligned, a PVH entry note too
/// short for its address.
pub fn check_notes(index: u64, seg: &[u8]) -> std::result::Result<(), KernelCheckError> {
    const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
    let bad = |what: &str| KernelCheckError::Format(format!("note segment {index}: {what}"));
    let mut at = 0usize;
    while at < seg.len() {
        let namesz = le32(seg, at).ok_or_else(|| bad("a note header runs past the segment"))?;
        let descsz = le32(seg, at + 4).ok_or_else(|| bad("a note header runs past the segment"))?;
        let kind = le32(seg, at + 8).ok_or_else(|| bad("a note header runs past the segment"))?;
        let name_at = at + 12;
        let name_len = u64::from(namesz).next_multiple_of(4);
        let desc_len = u64::from(descsz).next_multiple_of(4);
        if name_len > u64::from(u32::MAX) || desc_len > u64::from(u32::MAX) {
            return Err(bad("a note's size overflows when aligned"));
        }
        if kind == XEN_ELFNOTE_PHYS32_ENTRY
            && namesz == 4
            && seg.get(name_at..name_at + 4) == Some(b"Xen\0".as_slice())
        {
            // The loader stops here and reads the 32-bit entry address after the name.
            if descsz < 4 {
                return Err(bad("the PVH entry note is too short for its address"));
            }
            let desc_at = name_at + name_len as usize;
            if seg.get(desc_at..desc_at + 4).is_none() {
                return Err(bad("the PVH entry note runs past the segment"));
            }
            return Ok(());
        }
        at = u64::try_from(name_at)
            .ok()
            .and_then(|a| a.checked_add(name_len)?.checked_add(desc_len))
            .and_then(|a| usize::try_from(a).ok())
            .ok_or_else(|| bad("a note's size overflows"))?;
        if at > seg.len() {
            return Err(bad("a note runs past the segment"));
        }
    }
    Ok(())
}

/// Recognises and checks a kernel from the first bytes of its file (`head`, which must hold the
/// headers: see [`head_len`]) and the file's length.
pub fn check_kernel_head(
    bytes: &[u8],
    file_len: u64,
) -> std::result::Result<KernelInfo, KernelCheckError> {
    if bytes.starts_with(ELF_MAGIC) {
        return check_elf(bytes, file_len);
    }
    if le32(bytes, 0x202) == Some(BZ_HDRS_MAGIC) {
        return check_bzimage(bytes, file_len);
    }
    let what = if (4..0x264).contains(&file_len) {
        format!("only {file_len} bytes and no kernel header")
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        "a gzip file (a compressed vmlinux? decompress it, or pass the bzImage)".to_owned()
    } else if file_len == 0 {
        "an empty file".to_owned()
    } else {
        "no ELF magic and no bzImage `HdrS` header at offset 0x202".to_owned()
    };
    Err(KernelCheckError::Format(what))
}

/// The end of `len` bytes at `start` in guest RAM, refused when it passes the largest guest
/// this VMM builds (or 2^64): every end a kernel's headers give goes through here.
fn ram_end(start: u64, len: u64, what: &str) -> std::result::Result<u64, KernelCheckError> {
    start
        .checked_add(len)
        .filter(|end| *end <= MAX_RAM_BYTES)
        .ok_or_else(|| KernelCheckError::TooLarge(format!("{what} {start:#x} + {len} bytes")))
}

fn check_bzimage(b: &[u8], file_len: u64) -> std::result::Result<KernelInfo, KernelCheckError> {
    let fmt = |s: &str| KernelCheckError::Format(s.to_owned());
    // The setup header ends before 0x268; everything below is inside it.
    if b.len() < 0x268 || file_len < 0x268 {
        return Err(KernelCheckError::Truncated { needed: 0x268 });
    }
    let read16 = |o| le16(b, o).ok_or_else(|| fmt("header cut short"));
    let read32 = |o| le32(b, o).ok_or_else(|| fmt("header cut short"));
    let protocol = read16(0x206)?;
    if protocol < 0x020c {
        return Err(KernelCheckError::Format(format!(
            "bzImage boot protocol {}.{:02} is older than 2.12, which has no 64-bit entry point",
            protocol >> 8,
            protocol & 0xff
        )));
    }
    if b[0x211] & LOADED_HIGH == 0 {
        return Err(fmt("a zImage (loaded low), not a bzImage"));
    }
    if read16(0x236)? & XLF_KERNEL_64 == 0 {
        return Err(fmt(
            "bzImage without a 64-bit entry point (a 32-bit kernel?)",
        ));
    }
    let setup_sects = match b[0x1f1] {
        0 => 4u64,
        n => u64::from(n),
    };
    // Every value here is at most 2^32 * 16: the sums cannot overflow a u64.
    let setup_len = (setup_sects + 1) * 512;
    let syssize = u64::from(read32(0x1f4)?);
    let needed = setup_len + syssize * 16;
    if file_len < needed {
        return Err(KernelCheckError::Truncated { needed });
    }
    // The loader copies everything after the setup code, trailing bytes included.
    let trailing = file_len - needed;
    if trailing > MAX_BZIMAGE_TRAILING {
        return Err(KernelCheckError::Format(format!(
            "{trailing} bytes follow the kernel its header describes ({needed} bytes); a bzImage \
             has at most a signature there. Is this a bzImage with something else appended?"
        )));
    }
    let loaded_len = file_len - setup_len;
    let code32_start = u64::from(read32(0x214)?);
    if code32_start < HIMEM_START {
        return Err(KernelCheckError::Format(format!(
            "code32_start {code32_start:#x} is below 1 MiB"
        )));
    }
    let init_size = u64::from(read32(0x260)?);
    let initrd_addr_max = u64::from(read32(0x22c)?);
    let cmdline_size = read32(0x238)? as usize;
    let min_ram = ram_end(
        code32_start,
        init_size.max(loaded_len),
        "it would need RAM up to",
    )?;
    Ok(KernelInfo {
        format: KernelFormat::BzImage,
        protocol,
        min_ram,
        initrd_addr_max: if initrd_addr_max == 0 {
            DEFAULT_INITRD_ADDR_MAX
        } else {
            initrd_addr_max
        },
        cmdline_max: if cmdline_size == 0 { 255 } else { cmdline_size },
    })
}

fn check_elf(b: &[u8], file_len: u64) -> std::result::Result<KernelInfo, KernelCheckError> {
    let fmt = |s: String| KernelCheckError::Format(s);
    if b.len() < 64 || file_len < 64 {
        return Err(KernelCheckError::Truncated { needed: 64 });
    }
    if b[4] != 2 {
        return Err(fmt("a 32-bit ELF file; pass a 64-bit x86_64 vmlinux".into()));
    }
    if b[5] != 1 {
        return Err(fmt("a big-endian ELF file; pass an x86_64 vmlinux".into()));
    }
    let e_type = le16(b, 0x10).unwrap_or(0);
    let machine = le16(b, 0x12).unwrap_or(0);
    if machine != EM_X86_64 {
        return Err(fmt(format!(
            "an ELF file for machine {machine}, not x86_64 (62)"
        )));
    }
    if e_type != 2 {
        return Err(fmt(format!(
            "an ELF file of type {e_type}, not an executable (a vmlinux is type 2)"
        )));
    }
    let entry = le64(b, 0x18).unwrap_or(0);
    let phoff = le64(b, 0x20).unwrap_or(0);
    let phentsize = u64::from(le16(b, 0x36).unwrap_or(0));
    let phnum = u64::from(le16(b, 0x38).unwrap_or(0));
    if phentsize != 56 || phnum == 0 {
        return Err(fmt(format!(
            "program headers of size {phentsize} x {phnum}; a vmlinux has 56-byte headers"
        )));
    }
    if phoff < ELF_HEADER_LEN {
        return Err(fmt(format!(
            "its program header table starts at {phoff:#x}, inside the ELF header"
        )));
    }
    let table_end = phoff
        .checked_add(phentsize * phnum)
        .ok_or_else(|| fmt("program header table offset overflows".into()))?;
    if table_end > file_len {
        return Err(KernelCheckError::Truncated { needed: table_end });
    }
    if table_end > b.len() as u64 {
        return Err(fmt(format!(
            "its program header table ends at {table_end:#x}, past the first {MAX_HEAD:#x} bytes"
        )));
    }
    let mut needed = table_end;
    let mut mem_end = 0u64;
    let mut loads = 0;
    for i in 0..phnum {
        // Inside `b` (table_end was checked against its length).
        let p = (phoff + i * phentsize) as usize;
        let p_type = le32(b, p);
        if p_type == Some(PT_NOTE) {
            // The loader reads these at load time: they must be in the file.
            let offset = le64(b, p + 0x8).unwrap_or(u64::MAX);
            let filesz = le64(b, p + 0x20).unwrap_or(u64::MAX);
            let end = offset
                .checked_add(filesz)
                .ok_or_else(|| fmt(format!("note segment {i} extends past 2^64")))?;
            needed = needed.max(end);
            continue;
        }
        if p_type != Some(PT_LOAD) {
            continue;
        }
        loads += 1;
        let offset = le64(b, p + 0x8).unwrap_or(u64::MAX);
        let paddr = le64(b, p + 0x18).unwrap_or(u64::MAX);
        let filesz = le64(b, p + 0x20).unwrap_or(u64::MAX);
        let memsz = le64(b, p + 0x28).unwrap_or(u64::MAX);
        let end = offset
            .checked_add(filesz)
            .ok_or_else(|| fmt(format!("segment {i} extends past 2^64")))?;
        needed = needed.max(end);
        if paddr < HIMEM_START {
            return Err(fmt(format!("segment {i} loads at {paddr:#x}, below 1 MiB")));
        }
        let seg_end = ram_end(
            paddr,
            memsz.max(filesz),
            &format!("segment {i} loads up to"),
        )?;
        mem_end = mem_end.max(seg_end);
    }
    if loads == 0 {
        return Err(fmt("an ELF file with no loadable segment".into()));
    }
    if needed > file_len {
        return Err(KernelCheckError::Truncated { needed });
    }
    if entry < HIMEM_START || entry >= mem_end {
        return Err(fmt(format!(
            "entry point {entry:#x} is not inside the loaded kernel"
        )));
    }
    Ok(KernelInfo {
        format: KernelFormat::Elf,
        protocol: 0,
        min_ram: mem_end,
        initrd_addr_max: DEFAULT_INITRD_ADDR_MAX,
        cmdline_max: crate::arch::x86_64::CMDLINE_MAX_SIZE - 1,
    })
}

fn check_error(path: &Path, file_len: u64, e: KernelCheckError) -> VmError {
    match e {
        KernelCheckError::Format(reason) => VmError::KernelFormat {
            path: path.to_owned(),
            reason,
        },
        KernelCheckError::Truncated { needed } => VmError::KernelTruncated {
            path: path.to_owned(),
            needed,
            actual: file_len,
        },
        KernelCheckError::TooLarge(what) => VmError::KernelFormat {
            path: path.to_owned(),
            reason: format!(
                "{what}, past the largest guest RAM this VMM builds ({} GiB)",
                MAX_RAM_BYTES >> 30
            ),
        },
    }
}

impl KernelImage {
    /// Reads a kernel file's headers and checks them. Refuses anything that is not a complete
    /// x86_64 bzImage or ELF vmlinux; makes no KVM call and reads at most [`MAX_HEAD`] bytes.
    pub fn from_file(path: &Path) -> Result<Self> {
        let read_err = |source| VmError::KernelRead {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(VmError::KernelFormat {
                path: path.to_owned(),
                reason: "not a regular file".into(),
            });
        }
        let file_len = meta.len();
        let mut head = Vec::new();
        (&mut file)
            .take(HEAD_LEN.min(file_len))
            .read_to_end(&mut head)
            .map_err(read_err)?;
        let need = head_len(&head, file_len);
        if need > head.len() as u64 {
            (&mut file)
                .take(need - head.len() as u64)
                .read_to_end(&mut head)
                .map_err(read_err)?;
        }
        let info =
            check_kernel_head(&head, file_len).map_err(|e| check_error(path, file_len, e))?;
        // The notes the loader will parse: checked now, read from wherever they are.
        let segments = note_segments(&head).map_err(|e| check_error(path, file_len, e))?;
        for (i, offset, len) in segments {
            let mut seg = Vec::new();
            file.seek(SeekFrom::Start(offset)).map_err(read_err)?;
            (&mut file)
                .take(len)
                .read_to_end(&mut seg)
                .map_err(read_err)?;
            if (seg.len() as u64) < len {
                return Err(check_error(
                    path,
                    file_len,
                    KernelCheckError::Truncated {
                        needed: offset.saturating_add(len),
                    },
                ));
            }
            check_notes(i, &seg).map_err(|e| check_error(path, file_len, e))?;
        }
        Ok(Self {
            path: path.to_owned(),
            len: file_len,
            info,
            source: Source::File,
        })
    }

    /// Checks a kernel already in memory (`path` is for messages).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let len = bytes.len() as u64;
        let info = check_kernel(&bytes).map_err(|e| check_error(path, len, e))?;
        Ok(Self {
            path: path.to_owned(),
            len,
            info,
            source: Source::Bytes(bytes),
        })
    }

    /// Copies the kernel into guest memory (from its file: the bytes never sit on the heap).
    pub fn load(&self, mem: &GuestMemoryMmap) -> Result<LoadedKernel> {
        let himem = Some(GuestAddress(HIMEM_START));
        let r = match &self.source {
            Source::File => {
                let mut file = File::open(&self.path).map_err(|source| VmError::KernelRead {
                    path: self.path.clone(),
                    source,
                })?;
                // The file may have changed since it was checked: the loader's own bounds
                // checks still hold, and a short file fails the load.
                if file.metadata().map(|m| m.len()).ok() != Some(self.len) {
                    return Err(VmError::Load(format!(
                        "{} changed since it was checked",
                        self.path.display()
                    )));
                }
                match self.info.format {
                    KernelFormat::BzImage => BzImage::load(mem, None, &mut file, himem),
                    KernelFormat::Elf => Elf::load(mem, None, &mut file, himem),
                }
            }
            Source::Bytes(bytes) => {
                let mut cursor = Cursor::new(bytes.as_slice());
                match self.info.format {
                    KernelFormat::BzImage => BzImage::load(mem, None, &mut cursor, himem),
                    KernelFormat::Elf => Elf::load(mem, None, &mut cursor, himem),
                }
            }
        }
        .map_err(|e| VmError::Load(e.to_string()))?;
        let entry = match self.info.format {
            KernelFormat::BzImage => r.kernel_load.raw_value() + BZIMAGE_64BIT_ENTRY_OFFSET,
            KernelFormat::Elf => r.kernel_load.raw_value(),
        };
        Ok(LoadedKernel {
            format: self.info.format,
            entry,
            kernel_end: r.kernel_end,
            setup_header: r.setup_header,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic bzImage: a valid setup header and `payload` bytes of protected-mode code.
    pub(crate) fn fake_bzimage(payload: usize) -> Vec<u8> {
        let setup_sects = 4u8;
        let mut b = vec![0u8; (usize::from(setup_sects) + 1) * 512 + payload];
        b[0x1f1] = setup_sects;
        b[0x1f4..0x1f8].copy_from_slice(&((payload as u32).div_ceil(16)).to_le_bytes());
        b[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        b[0x202..0x206].copy_from_slice(&BZ_HDRS_MAGIC.to_le_bytes());
        b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        b[0x211] = LOADED_HIGH;
        b[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
        b[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        b[0x236..0x238].copy_from_slice(&XLF_KERNEL_64.to_le_bytes());
        b[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
        b[0x260..0x264].copy_from_slice(&0x40_0000u32.to_le_bytes());
        b
    }

    /// A synthetic ELF vmlinux with one PT_LOAD of `payload` bytes at 16 MiB.
    pub(crate) fn fake_elf(payload: usize) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 + payload];
        b[..4].copy_from_slice(ELF_MAGIC);
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[0x10..0x12].copy_from_slice(&2u16.to_le_bytes());
        b[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
        b[0x18..0x20].copy_from_slice(&0x100_0000u64.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let p = 64;
        b[p..p + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[p + 0x8..p + 0x10].copy_from_slice(&120u64.to_le_bytes());
        b[p + 0x10..p + 0x18].copy_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
        b[p + 0x18..p + 0x20].copy_from_slice(&0x100_0000u64.to_le_bytes());
        b[p + 0x20..p + 0x28].copy_from_slice(&(payload as u64).to_le_bytes());
        b[p + 0x28..p + 0x30].copy_from_slice(&(payload as u64).to_le_bytes());
        b
    }

    #[test]
    fn bzimage_is_recognised() {
        let info = check_kernel(&fake_bzimage(4096)).expect("valid");
        assert_eq!(info.format, KernelFormat::BzImage);
        assert_eq!(info.protocol, 0x020f);
        assert_eq!(info.cmdline_max, 2047);
        assert_eq!(info.min_ram, 0x10_0000 + 0x40_0000);
    }

    #[test]
    fn elf_is_recognised() {
        let info = check_kernel(&fake_elf(4096)).expect("valid");
        assert_eq!(info.format, KernelFormat::Elf);
        assert_eq!(info.min_ram, 0x100_0000 + 4096);
    }

    #[test]
    fn garbage_is_refused_as_not_a_kernel() {
        for bytes in [
            vec![],
            vec![0u8; 100],
            vec![0x5au8; 100_000],
            b"#!/bin/sh\necho hi\n".to_vec(),
        ] {
            assert!(
                matches!(check_kernel(&bytes), Err(KernelCheckError::Format(_))),
                "{}",
                bytes.len()
            );
        }
        let mut gz = vec![0x1f, 0x8b];
        gz.resize(10_000, 0);
        match check_kernel(&gz) {
            Err(KernelCheckError::Format(m)) => assert!(m.contains("gzip")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_kernels_are_refused_as_truncated() {
        let bz = fake_bzimage(100_000);
        for cut in [0x270, bz.len() / 2, bz.len() - 16] {
            assert!(
                matches!(
                    check_kernel(&bz[..cut]),
                    Err(KernelCheckError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
        let elf = fake_elf(100_000);
        for cut in [64, 100, elf.len() - 1] {
            assert!(
                matches!(
                    check_kernel(&elf[..cut]),
                    Err(KernelCheckError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn kernels_this_vmm_cannot_enter_are_refused() {
        let mut old = fake_bzimage(4096);
        old[0x206..0x208].copy_from_slice(&0x0208u16.to_le_bytes());
        assert!(matches!(
            check_kernel(&old),
            Err(KernelCheckError::Format(_))
        ));
        let mut no64 = fake_bzimage(4096);
        no64[0x236] = 0;
        assert!(matches!(
            check_kernel(&no64),
            Err(KernelCheckError::Format(_))
        ));
        let mut arm = fake_elf(4096);
        arm[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
        assert!(matches!(
            check_kernel(&arm),
            Err(KernelCheckError::Format(_))
        ));
        let mut bad_entry = fake_elf(4096);
        bad_entry[0x18..0x20].copy_from_slice(&0x10u64.to_le_bytes());
        assert!(matches!(
            check_kernel(&bad_entry),
            Err(KernelCheckError::Format(_))
        ));
    }

    #[test]
    fn file_errors_name_the_file_and_the_fix() {
        let err = KernelImage::from_bytes(Path::new("/x/garbage"), vec![1, 2, 3]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/x/garbage") && msg.contains("isolab kernel build"),
            "{msg}"
        );
        let bz = fake_bzimage(10_000);
        let err = KernelImage::from_bytes(Path::new("/x/cut"), bz[..3000].to_vec()).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn files_are_checked_from_their_head_and_loaded_from_disk() {
        let dir = std::env::temp_dir();
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 32 << 20)]).expect("mem");
        let bz_path = dir.join(format!("isolab-loader-bz-{}", std::process::id()));
        std::fs::write(&bz_path, fake_bzimage(200_000)).expect("write");
        let k = KernelImage::from_file(&bz_path).expect("valid");
        assert_eq!(k.len, 5 * 512 + 200_000);
        assert_eq!(k.load(&mem).expect("load").entry, 0x10_0200);
        let elf_path = dir.join(format!("isolab-loader-elf-{}", std::process::id()));
        std::fs::write(&elf_path, fake_elf(300_000)).expect("write");
        let k = KernelImage::from_file(&elf_path).expect("valid");
        assert_eq!(k.info.format, KernelFormat::Elf);
        assert_eq!(k.load(&mem).expect("load").kernel_end, 0x100_0000 + 300_000);
        // Truncated on disk: refused from the header and the length alone.
        let bytes = fake_bzimage(200_000);
        std::fs::write(&bz_path, &bytes[..100_000]).expect("write");
        assert!(matches!(
            KernelImage::from_file(&bz_path),
            Err(VmError::KernelTruncated { .. })
        ));
        let _ = std::fs::remove_file(bz_path);
        let _ = std::fs::remove_file(elf_path);
    }

    #[test]
    fn loads_into_guest_memory() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 32 << 20)]).expect("mem");
        let bz = KernelImage::from_bytes(Path::new("bz"), fake_bzimage(8192)).expect("ok");
        let l = bz.load(&mem).expect("load");
        assert_eq!(l.entry, 0x10_0200);
        assert!(l.setup_header.is_some());
        let elf = KernelImage::from_bytes(Path::new("elf"), fake_elf(8192)).expect("ok");
        let l = elf.load(&mem).expect("load");
        assert_eq!(l.entry, 0x100_0000);
        assert_eq!(l.kernel_end, 0x100_0000 + 8192);
    }

    /// `fake_elf` with one more program header (a PT_NOTE over `notes`, appended to the file).
    fn elf_with_notes(notes: &[u8]) -> Vec<u8> {
        let mut b = fake_elf(4096);
        // Make room for a second program header after the first (and move the payload).
        let payload = b.split_off(64 + 56);
        b.extend_from_slice(&[0u8; 56]);
        let payload_off = b.len() as u64;
        b.extend_from_slice(&payload);
        b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        b[64 + 0x8..64 + 0x10].copy_from_slice(&payload_off.to_le_bytes());
        let note_off = b.len() as u64;
        b.extend_from_slice(notes);
        let p = 64 + 56;
        b[p..p + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
        b[p + 0x8..p + 0x10].copy_from_slice(&note_off.to_le_bytes());
        b[p + 0x20..p + 0x28].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        b
    }

    /// One ELF note: namesz, descsz, type, name (padded), desc (padded).
    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(name);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(desc);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    fn set_segment(b: &mut [u8], paddr: u64, memsz: u64) {
        b[64 + 0x18..64 + 0x20].copy_from_slice(&paddr.to_le_bytes());
        b[64 + 0x28..64 + 0x30].copy_from_slice(&memsz.to_le_bytes());
    }

    #[test]
    fn elf_segments_that_overflow_or_pass_the_largest_ram_are_refused() {
        // The end wraps past 2^64.
        let mut b = fake_elf(4096);
        set_segment(&mut b, u64::MAX - 0x1000, 0x2000);
        b[0x18..0x20].copy_from_slice(&(u64::MAX - 0x1000).to_le_bytes());
        assert!(
            matches!(check_kernel(&b), Err(KernelCheckError::Format(ref m)) if m.contains("2^64"))
                || matches!(check_kernel(&b), Err(KernelCheckError::TooLarge(_))),
            "{:?}",
            check_kernel(&b)
        );
        // Near the top without wrapping, or just a huge memsz: past the largest guest.
        for (paddr, memsz) in [
            (0xffff_ffff_0000_0000u64, 0x1000u64),
            (0x100_0000, 1 << 62),
            (0x100_0000, MAX_RAM_BYTES),
        ] {
            let mut b = fake_elf(4096);
            set_segment(&mut b, paddr, memsz);
            b[0x18..0x20].copy_from_slice(&paddr.to_le_bytes());
            assert!(
                matches!(check_kernel(&b), Err(KernelCheckError::TooLarge(_))),
                "{paddr:#x}+{memsz:#x}: {:?}",
                check_kernel(&b)
            );
        }
        // Right up to the limit is fine, and whatever the VMM adds to min_ram cannot overflow.
        let mut b = fake_elf(4096);
        set_segment(&mut b, 0x100_0000, MAX_RAM_BYTES - 0x100_0000);
        let info = check_kernel(&b).expect("at the limit");
        assert_eq!(info.min_ram, MAX_RAM_BYTES);
        // Through the file API the refusal names the file and the limit.
        let err = KernelImage::from_bytes(Path::new("/x/huge"), {
            let mut b = fake_elf(4096);
            set_segment(&mut b, 0x100_0000, 1 << 62);
            b
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("/x/huge") && err.to_string().contains("1024 GiB"),
            "{err}"
        );
    }

    #[test]
    fn program_headers_inside_the_elf_header_are_refused() {
        let mut b = fake_elf(4096);
        b[0x20..0x28].copy_from_slice(&8u64.to_le_bytes());
        assert!(
            matches!(check_kernel(&b), Err(KernelCheckError::Format(m)) if m.contains("inside the ELF header"))
        );
    }

    #[test]
    fn bzimage_trailing_data_is_loaded_and_counted_or_refused() {
        // A little trailing data (a signature): accepted, and the RAM it needs counted, so the
        // loader (which copies it too) fits in min_ram.
        let mut b = fake_bzimage(8192);
        let init_size = 0x40_0000u64;
        let trailing = 5 << 20;
        b.resize(b.len() + trailing, 0xee);
        let info = check_kernel(&b).expect("a signature's worth of trailing data");
        let loaded = (b.len() - 5 * 512) as u64;
        assert!(loaded > init_size);
        assert_eq!(info.min_ram, 0x10_0000 + loaded);
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), info.min_ram as usize)])
            .expect("mem");
        let k = KernelImage::from_bytes(Path::new("bz"), b).expect("ok");
        let l = k
            .load(&mem)
            .expect("what the check accepted loads in min_ram");
        assert_eq!(l.kernel_end, info.min_ram);
        // Far more than a signature: refused.
        let mut b = fake_bzimage(8192);
        b.resize(b.len() + MAX_BZIMAGE_TRAILING as usize + 1, 0);
        assert!(
            matches!(check_kernel(&b), Err(KernelCheckError::Format(ref m)) if m.contains("appended")),
            "{:?}",
            check_kernel(&b)
        );
    }

    #[test]
    fn note_segments_are_walked_before_any_load() {
        let pvh = note(b"Xen\0", 18, &0x100_0000u32.to_le_bytes());
        let other = note(b"Linux\0", 6, b"6.1");
        // Good notes, with and without the PVH entry: accepted, and they load.
        for notes in [
            pvh.clone(),
            [other.clone(), pvh.clone()].concat(),
            other.clone(),
        ] {
            let b = elf_with_notes(&notes);
            check_kernel(&b).expect("valid notes");
            let mem =
                GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 32 << 20)]).expect("mem");
            KernelImage::from_bytes(Path::new("elf"), b)
                .expect("ok")
                .load(&mem)
                .expect("loads");
        }
        // Notes the loader would fail on at load time.
        let mut short_pvh = note(b"Xen\0", 18, &[1, 2]);
        short_pvh.truncate(12 + 4 + 4);
        let mut runs_past = other.clone();
        runs_past.truncate(other.len() - 4);
        let mut overflow = other.clone();
        overflow[0..4].copy_from_slice(&(u32::MAX - 1).to_le_bytes());
        let mut pvh_cut = pvh.clone();
        pvh_cut.truncate(16);
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 32 << 20)]).expect("mem");
        for (what, notes, loader_fails) in [
            ("a PVH note with a 2-byte address", short_pvh, true),
            // linux-loader stops walking at the segment's end: refused here as malformed.
            ("a note running past the segment", runs_past, false),
            ("a name size that overflows when aligned", overflow, true),
            ("a PVH note cut after its name", pvh_cut, true),
            ("a header cut short", vec![1, 0, 0, 0, 0], true),
        ] {
            let b = elf_with_notes(&notes);
            // Without the check, linux-loader would fail on it only at load time, with the VM
            // already made.
            let raw = Elf::load(
                &mem,
                None,
                &mut Cursor::new(b.as_slice()),
                Some(GuestAddress(HIMEM_START)),
            );
            assert_eq!(raw.is_err(), loader_fails, "{what}: {raw:?}");
            assert!(
                matches!(check_kernel(&b), Err(KernelCheckError::Format(ref m)) if m.contains("note segment 1")),
                "{what}: {:?}",
                check_kernel(&b)
            );
        }
        // A note segment outside the file: truncated; one too large: refused.
        let mut b = elf_with_notes(&other);
        let len = b.len() as u64;
        b[64 + 56 + 0x8..64 + 56 + 0x10].copy_from_slice(&(len - 4).to_le_bytes());
        assert!(matches!(
            check_kernel(&b),
            Err(KernelCheckError::Truncated { .. })
        ));
        let mut b = elf_with_notes(&other);
        b[64 + 56 + 0x8..64 + 56 + 0x10].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
        assert!(
            matches!(check_kernel(&b), Err(KernelCheckError::Format(ref m)) if m.contains("2^64"))
        );
        let mut b = elf_with_notes(&other);
        b[64 + 56 + 0x20..64 + 56 + 0x28].copy_from_slice(&(MAX_NOTES + 1).to_le_bytes());
        assert!(check_kernel(&b).is_err());
    }

    #[test]
    fn notes_past_the_head_of_a_file_are_read_and_checked() {
        // The notes sit after a payload larger than HEAD_LEN, as in a real vmlinux.
        let dir = std::env::temp_dir();
        let path = dir.join(format!("isolab-loader-notes-{}", std::process::id()));
        let build = |notes: &[u8]| {
            let mut b = fake_elf(200_000);
            let payload = b.split_off(64 + 56);
            b.extend_from_slice(&[0u8; 56]);
            let payload_off = b.len() as u64;
            b.extend_from_slice(&payload);
            b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
            b[64 + 0x8..64 + 0x10].copy_from_slice(&payload_off.to_le_bytes());
            let note_off = b.len() as u64;
            assert!(note_off > HEAD_LEN);
            b.extend_from_slice(notes);
            let p = 64 + 56;
            b[p..p + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
            b[p + 0x8..p + 0x10].copy_from_slice(&note_off.to_le_bytes());
            b[p + 0x20..p + 0x28].copy_from_slice(&(notes.len() as u64).to_le_bytes());
            b
        };
        std::fs::write(&path, build(&note(b"Xen\0", 18, &[0, 0, 0, 1]))).expect("write");
        KernelImage::from_file(&path).expect("good notes");
        std::fs::write(&path, build(&note(b"Xen\0", 18, &[0, 0]))).expect("write");
        let err = KernelImage::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("PVH entry note"), "{err}");
        let _ = std::fs::remove_file(path);
    }
}
