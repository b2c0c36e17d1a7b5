//! A writer (and, for checking, a reader) of the newc cpio format the Linux kernel unpacks as its
//! initramfs. Uncompressed: the `micro` kernel has no decompressors, and an uncompressed archive
//! costs no boot time.

use std::path::Path;

/// File type bits.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFLNK: u32 = 0o120_000;
const TRAILER: &str = "TRAILER!!!";
/// Where kernel modules go in the image (without the leading `/`); the agent as PID 1 loads the
/// files its `order` file names, in that order (`workloads::protocol::VM_MODULES_DIR`).
pub const MODULES_DIR: &str = "lib/modules/isolab";
const MAGIC: &str = "070701";

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, without a leading `/`.
    pub name: String,
    /// Full mode (type and permission bits).
    pub mode: u32,
    /// Contents (files and symlink targets).
    pub data: Vec<u8>,
    /// Device number for character devices (major, minor).
    pub rdev: (u32, u32),
}

impl Entry {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170_000 == S_IFDIR
    }
    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & 0o170_000 == S_IFREG
    }
    /// True for a character device.
    pub fn is_char_device(&self) -> bool {
        self.mode & 0o170_000 == S_IFCHR
    }
}

/// Builds a newc archive in memory.
#[derive(Debug, Clone, Default)]
pub struct Initramfs {
    entries: Vec<Entry>,
}

fn clean(path: &str) -> String {
    path.trim_start_matches('/').to_owned()
}

impl Initramfs {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, perm: u32) -> &mut Self {
        self.push(path, S_IFDIR | (perm & 0o7777), Vec::new(), (0, 0))
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: Vec<u8>) -> &mut Self {
        self.push(path, S_IFREG | (perm & 0o7777), data, (0, 0))
    }

    /// Adds a regular file read from the host.
    pub fn file_from(&mut self, path: &str, perm: u32, host: &Path) -> std::io::Result<&mut Self> {
        let data = std::fs::read(host)?;
        Ok(self.file(path, perm, data))
    }

    /// Adds kernel modules (files, in load order) under [`MODULES_DIR`] with the `order` file
    /// naming them, for the agent to load before it needs any device they drive.
    pub fn modules_from(&mut self, modules: &[std::path::PathBuf]) -> std::io::Result<&mut Self> {
        if modules.is_empty() {
            return Ok(self);
        }
        self.dir("lib", 0o755)
            .dir("lib/modules", 0o755)
            .dir(MODULES_DIR, 0o755);
        let mut order = String::new();
        for m in modules {
            let name = m
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| !n.contains(['\n', '/']))
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{}: not a usable module file name", m.display()),
                    )
                })?;
            self.file_from(&format!("{MODULES_DIR}/{name}"), 0o644, m)?;
            order.push_str(name);
            order.push('\n');
        }
        Ok(self.file(&format!("{MODULES_DIR}/order"), 0o644, order.into_bytes()))
    }

    /// Adds a character device node.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> &mut Self {
        self.push(path, S_IFCHR | (perm & 0o7777), Vec::new(), (major, minor))
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.push(path, S_IFLNK | 0o777, target.as_bytes().to_vec(), (0, 0))
    }

    fn push(&mut self, path: &str, mode: u32, data: Vec<u8>, rdev: (u32, u32)) -> &mut Self {
        self.entries.push(Entry {
            name: clean(path),
            mode,
            data,
            rdev,
        });
        self
    }

    /// The members so far.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The archive bytes, ending with the trailer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let size: usize = self
            .entries
            .iter()
            .map(|e| 120 + e.name.len() + e.data.len() + 8)
            .sum();
        let mut out = Vec::with_capacity(size + 128);
        for (i, e) in self.entries.iter().enumerate() {
            write_member(&mut out, (i + 1) as u32, &e.name, e.mode, &e.data, e.rdev);
        }
        write_member(&mut out, 0, TRAILER, 0, &[], (0, 0));
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn write_member(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
    let nlink = if mode & 0o170_000 == S_IFDIR { 2 } else { 1 };
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: fixed, so the image is reproducible
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(MAGIC.as_bytes());
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Why an archive could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a valid newc archive: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Reads a newc archive (up to its trailer), checking every length against the input.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, ParseError> {
    let err = |s: String| ParseError(s);
    let mut pos = 0usize;
    let mut entries = Vec::new();
    loop {
        let header = bytes
            .get(pos..pos + 110)
            .ok_or_else(|| err(format!("header at {pos} cut short")))?;
        if &header[..6] != MAGIC.as_bytes() {
            return Err(err(format!("bad magic at {pos}")));
        }
        let field = |i: usize| -> Result<u32, ParseError> {
            let s = std::str::from_utf8(&header[6 + i * 8..14 + i * 8])
                .map_err(|_| err("non-ASCII header".into()))?;
            u32::from_str_radix(s, 16).map_err(|_| err(format!("bad hex field {s:?}")))
        };
        let mode = field(1)?;
        let filesize = field(6)? as usize;
        let rdev = (field(9)?, field(10)?);
        let namesize = field(11)? as usize;
        if namesize == 0 {
            return Err(err("empty name".into()));
        }
        let name_start = pos + 110;
        let name_bytes = bytes
            .get(name_start..name_start + namesize)
            .ok_or_else(|| err("name cut short".into()))?;
        let name = std::str::from_utf8(&name_bytes[..namesize - 1])
            .map_err(|_| err("name is not UTF-8".into()))?
            .to_owned();
        let data_start = (name_start + namesize).next_multiple_of(4);
        let data = bytes
            .get(data_start..data_start + filesize)
            .ok_or_else(|| err(format!("data of {name} cut short")))?
            .to_vec();
        pos = (data_start + filesize).next_multiple_of(4);
        if name == TRAILER {
            return Ok(entries);
        }
        entries.push(Entry {
            name,
            mode,
            data,
            rdev,
        });
    }
}

/// The initramfs of an isolab microVM: the agent as `/init`, the mount points it uses, and
/// `/dev/console` (the kernel opens it for init's stdin/stdout/stderr before devtmpfs exists).
pub fn agent_image(agent: Vec<u8>) -> Initramfs {
    let mut img = Initramfs::new();
    img.dir("dev", 0o755)
        .char_dev("dev/console", 0o600, 5, 1)
        .dir("proc", 0o555)
        .dir("sys", 0o555)
        .dir("tmp", 0o1777)
        .dir("mnt", 0o755)
        .file("init", 0o755, agent);
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_parser() {
        let mut img = Initramfs::new();
        img.dir("/dev", 0o755)
            .char_dev("dev/console", 0o600, 5, 1)
            .file("init", 0o755, b"#!/bin/sh\n".to_vec())
            .file("odd", 0o644, vec![7u8; 13])
            .symlink("sbin/init", "/init");
        let bytes = img.to_bytes();
        assert_eq!(bytes.len() % 4, 0);
        let back = parse(&bytes).expect("parses");
        assert_eq!(back, img.entries());
        assert!(back[0].is_dir() && back[0].name == "dev");
        assert!(back[1].is_char_device() && back[1].rdev == (5, 1));
        assert!(back[2].is_file() && back[2].mode & 0o777 == 0o755);
    }

    #[test]
    fn header_layout_is_newc() {
        let mut img = Initramfs::new();
        img.file("a", 0o644, b"xyz".to_vec());
        let bytes = img.to_bytes();
        assert_eq!(&bytes[..6], b"070701");
        // mode field, then filesize field.
        assert_eq!(&bytes[14..22], b"000081a4");
        assert_eq!(&bytes[54..62], b"00000003");
        // name "a\0" right after the 110-byte header, padded to 112, then the data.
        assert_eq!(&bytes[110..112], b"a\0");
        assert_eq!(&bytes[112..115], b"xyz");
        assert!(bytes.ends_with(&[0]) || bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn damaged_archives_are_errors_not_panics() {
        let bytes = agent_image(vec![1; 1000]).to_bytes();
        for cut in [0, 5, 109, 115, 300, bytes.len() - 5] {
            assert!(parse(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] = b'x';
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn modules_go_in_with_their_order() {
        let dir = std::env::temp_dir().join(format!("isolab-initramfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (a, b) = (dir.join("virtio_ring.ko"), dir.join("virtio.ko"));
        std::fs::write(&a, b"ring").expect("write");
        std::fs::write(&b, b"virtio").expect("write");
        let mut img = agent_image(vec![1]);
        img.modules_from(&[a, b]).expect("modules");
        let entries = parse(&img.to_bytes()).expect("parses");
        let get = |n: &str| entries.iter().find(|e| e.name == n).map(|e| e.data.clone());
        assert_eq!(
            get("lib/modules/isolab/order").as_deref(),
            Some(&b"virtio_ring.ko\nvirtio.ko\n"[..])
        );
        assert_eq!(
            get("lib/modules/isolab/virtio.ko").as_deref(),
            Some(&b"virtio"[..])
        );
        assert!(entries
            .iter()
            .any(|e| e.name == "lib/modules" && e.is_dir()));
        // The agent and this writer agree on where the modules are.
        assert_eq!(
            format!("/{MODULES_DIR}"),
            workloads::protocol::VM_MODULES_DIR
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn agent_image_has_init_and_console() {
        let entries = parse(&agent_image(vec![0x7f, b'E', b'L', b'F']).to_bytes()).expect("parses");
        let init = entries.iter().find(|e| e.name == "init").expect("init");
        assert!(init.is_file() && init.mode & 0o111 != 0);
        let console = entries
            .iter()
            .find(|e| e.name == "dev/console")
            .expect("console");
        assert_eq!(console.rdev, (5, 1));
    }
}
