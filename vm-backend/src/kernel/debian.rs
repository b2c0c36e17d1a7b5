//! The `debian` guest kernel: Debian's stock cloud kernel (the package [`super::fetch`] fetches
//! for the HVM test machine's L1) booted as the microVM's kernel, with the modules the VM needs.
//!
//! What the package (`linux-image-6.1.0-*-cloud-amd64`, bookworm) has, checked on 6.1.0-56:
//! `virtio`, `virtio_ring`, `virtio_mmio` and `virtio_blk` are modules (`=m`), uncompressed
//! `.ko` files (`CONFIG_MODULE_COMPRESS_NONE`); ext4, jbd2, mbcache, crc16 and crc32c are built in;
//! `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` and `CONFIG_X86_MPPARSE` are off, so the VM must describe
//! itself in ACPI tables. The package ships no `modules.dep` (depmod makes it on install), so the
//! load order comes from each module's own `.modinfo` `depends=` list: virtio_ring, virtio,
//! virtio_mmio, virtio_blk. Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`, as other Debian
//! kernels ship them) are decompressed here with the xz, zstd or gzip tool, so the guest's agent
//! only ever loads plain `.ko` files.
//!
//! The result is cached under `<cache>/kernels/debian-<package>_<version>/`: `vmlinuz`, `config`,
//! `release`, and `modules/` with one `<name>.ko` per module and `modules/order` naming them in
//! load order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::fetch::debian_cloud_kernel;
use super::{cache_err, cache_root, KernelError, Result};

/// The modules the VM needs from the kernel package (their dependencies are added): the
/// virtio-mmio transport, the disk, and the console the agent's result leaves through.
pub const GUEST_MODULES: [&str; 4] = ["virtio_mmio", "virtio_blk", "virtio_console", "virtio_net"];
/// The name of the load-order file, in the cache's `modules/` and in the guest's module directory.
pub const ORDER_FILE: &str = "order";
/// Directory name prefix of cached Debian guest kernels.
const DIR_PREFIX: &str = "debian-";

/// A cached Debian guest kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianGuest {
    /// Its cache directory.
    pub dir: PathBuf,
    /// The kernel release (`uname -r` in the guest), e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// The modules, in load order.
    pub modules: Vec<PathBuf>,
}

/// A module's name as the kernel knows it: file name without `.ko[.xz|.zst|.gz]`, `-` as `_`.
pub fn module_name(file_name: &str) -> Option<String> {
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file_name.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

/// The `depends=` list of a module's `.modinfo` section (empty when it depends on nothing).
pub fn module_depends(ko: &[u8]) -> std::result::Result<Vec<String>, String> {
    let modinfo = elf_section(ko, ".modinfo")?;
    Ok(modinfo
        .split(|b| *b == 0)
        .find_map(|entry| entry.strip_prefix(b"depends="))
        .map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('-', "_"))
                .collect()
        })
        .unwrap_or_default())
}

/// The bytes of a named section of an ELF64 little-endian relocatable file.
fn elf_section<'a>(b: &'a [u8], name: &str) -> std::result::Result<&'a [u8], String> {
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let u64_at = |o: usize| {
        b.get(o..o + 8).map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
    };
    if !b.starts_with(b"\x7fELF") || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let cut = || "its section headers are cut short".to_owned();
    let shoff = usize::try_from(u64_at(0x28).ok_or_else(cut)?).map_err(|_| cut())?;
    let shentsize = usize::from(u16_at(0x3a).ok_or_else(cut)?);
    let shnum = usize::from(u16_at(0x3c).ok_or_else(cut)?);
    let shstrndx = usize::from(u16_at(0x3e).ok_or_else(cut)?);
    if shentsize < 0x40 {
        return Err(format!("section header size {shentsize}"));
    }
    let section = |i: usize| -> Option<(u32, &'a [u8])> {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = u32_at(h)?;
        let off = usize::try_from(u64_at(h + 0x18)?).ok()?;
        let size = usize::try_from(u64_at(h + 0x20)?).ok()?;
        Some((name, b.get(off..off.checked_add(size)?)?))
    };
    let (_, strtab) = section(shstrndx).ok_or_else(cut)?;
    for i in 0..shnum {
        let (name_off, data) = section(i).ok_or_else(cut)?;
        let n = strtab
            .get(name_off as usize..)
            .and_then(|s| s.split(|c| *c == 0).next());
        if n == Some(name.as_bytes()) {
            return Ok(data);
        }
    }
    Err(format!("no {name} section"))
}

/// Orders `wanted` and everything they depend on so that every module comes after its
/// dependencies. `depends` gives a module's direct dependencies.
pub fn load_order(
    wanted: &[&str],
    depends: &mut dyn FnMut(&str) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    fn visit(
        name: &str,
        depends: &mut dyn FnMut(&str) -> Result<Vec<String>>,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<()> {
        if out.iter().any(|m| m == name) {
            return Ok(());
        }
        if path.iter().any(|m| m == name) {
            return Err(KernelError::Missing(format!(
                "the kernel's modules depend on each other in a circle: {} -> {name}",
                path.join(" -> ")
            )));
        }
        path.push(name.to_owned());
        for dep in depends(name)? {
            visit(&dep, depends, path, out)?;
        }
        path.pop();
        out.push(name.to_owned());
        Ok(())
    }
    let mut out = Vec::new();
    for w in wanted {
        visit(w, depends, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// Every module file under `dir` (recursively), by module name.
fn index_modules(dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut index = HashMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(cache_err(&d))?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(module_name)
            {
                index.insert(name, path);
            }
        }
    }
    Ok(index)
}

/// A module file's contents, decompressed if it is compressed.
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".ko.xz") {
        Some(("xz", "xz-utils"))
    } else if name.ends_with(".ko.zst") {
        Some(("zstd", "zstd"))
    } else if name.ends_with(".ko.gz") {
        Some(("gzip", "gzip"))
    } else {
        None
    };
    let Some((cmd, package)) = tool else {
        return std::fs::read(path).map_err(cache_err(path));
    };
    let out = Command::new(cmd)
        .arg("-dc")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| KernelError::Spawn {
            command: format!("{cmd} -dc {}", path.display()),
            package: package.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(KernelError::Command {
            command: format!("{cmd} -dc {}", path.display()),
            status: out.status.to_string(),
            tail: format!(": {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(out.stdout)
}

/// Whether a kernel `.config` builds `option` as a module.
fn is_module(config: &str, option: &str) -> bool {
    config
        .lines()
        .any(|l| l.trim() == format!("CONFIG_{option}=m"))
}

fn guest_in(dir: &Path) -> Option<DebianGuest> {
    let order = std::fs::read_to_string(dir.join("modules").join(ORDER_FILE)).ok()?;
    let release = std::fs::read_to_string(dir.join("release")).ok()?;
    let vmlinuz = dir.join("vmlinuz");
    let modules: Vec<PathBuf> = order
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| dir.join("modules").join(l.trim()))
        .collect();
    // A guest made before a module joined GUEST_MODULES is made again.
    let complete = GUEST_MODULES
        .iter()
        .all(|m| order.lines().any(|l| l.trim() == format!("{m}.ko")));
    (complete && vmlinuz.is_file() && modules.iter().all(|m| m.is_file())).then(|| DebianGuest {
        dir: dir.to_owned(),
        release: release.trim().to_owned(),
        vmlinuz,
        modules,
    })
}

/// The most recently made cached Debian guest kernel, if any. Makes no apt or network call.
pub fn find_cached_debian_guest() -> Option<DebianGuest> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(cache_root().join("kernels"))
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(DIR_PREFIX))
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".partial"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
    found.sort();
    found.into_iter().rev().find_map(|(_, dir)| guest_in(&dir))
}

/// Fetches Debian's cloud kernel (once) and makes the cached `debian` guest kernel from it: the
/// bzImage and [`GUEST_MODULES`] with their dependencies, plus ext4's modules if the package
/// builds ext4 as a module.
pub fn ensure_debian_guest(progress: &mut dyn FnMut(&str)) -> Result<DebianGuest> {
    let pkg = debian_cloud_kernel(progress)?;
    let kernels = cache_root().join("kernels");
    let dir = kernels.join(format!("{DIR_PREFIX}{}_{}", pkg.package, pkg.version));
    if let Some(g) = guest_in(&dir) {
        return Ok(g);
    }
    let release = pkg
        .modules
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| KernelError::Missing(format!("{}: no release", pkg.modules.display())))?
        .to_owned();
    let config_path = pkg
        .vmlinuz
        .parent()
        .map(|boot| boot.join(format!("config-{release}")))
        .ok_or_else(|| KernelError::Missing("the kernel package has no boot/".into()))?;
    let config = std::fs::read_to_string(&config_path).map_err(cache_err(&config_path))?;
    let mut wanted: Vec<&str> = GUEST_MODULES.to_vec();
    if is_module(&config, "EXT4_FS") {
        wanted.push("ext4");
    }
    progress(&format!(
        "collecting the modules {} and their dependencies from {}",
        wanted.join(", "),
        pkg.package
    ));
    let index = index_modules(&pkg.modules.join("kernel"))?;
    let mut contents: HashMap<String, Vec<u8>> = HashMap::new();
    let order = load_order(&wanted, &mut |name| {
        let path = index.get(name).ok_or_else(|| {
            KernelError::Missing(format!(
                "{} has no module {name} (is it built in? then drop it from the list)",
                pkg.package
            ))
        })?;
        let bytes = read_module(path)?;
        let deps = module_depends(&bytes).map_err(|e| {
            KernelError::Missing(format!("{}: not a kernel module: {e}", path.display()))
        })?;
        contents.insert(name.to_owned(), bytes);
        Ok(deps)
    })?;

    let tmp = kernels.join(format!(
        "{DIR_PREFIX}{}_{}.partial",
        pkg.package, pkg.version
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let mods = tmp.join("modules");
    std::fs::create_dir_all(&mods).map_err(cache_err(&mods))?;
    let mut order_text = String::new();
    for name in &order {
        let file = format!("{name}.ko");
        let bytes = contents.get(name).ok_or_else(|| {
            KernelError::Missing(format!("module {name} was ordered but not read"))
        })?;
        std::fs::write(mods.join(&file), bytes).map_err(cache_err(mods.join(&file)))?;
        order_text.push_str(&file);
        order_text.push('\n');
    }
    let write = |name: &str, data: &[u8]| {
        std::fs::write(tmp.join(name), data).map_err(cache_err(tmp.join(name)))
    };
    write("modules/order", order_text.as_bytes())?;
    write("release", format!("{release}\n").as_bytes())?;
    write("config", config.as_bytes())?;
    std::fs::copy(&pkg.vmlinuz, tmp.join("vmlinuz")).map_err(cache_err(tmp.join("vmlinuz")))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(cache_err(&dir))?;
    guest_in(&dir).ok_or_else(|| {
        KernelError::Missing(format!(
            "{} is incomplete right after it was made",
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 relocatable with a `.modinfo` section holding `info`.
    fn fake_ko(info: &[u8]) -> Vec<u8> {
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let mut f = vec![0u8; 0x40];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        let info_off = f.len();
        f.extend_from_slice(info);
        let str_off = f.len();
        f.extend_from_slice(shstrtab);
        while !f.len().is_multiple_of(8) {
            f.push(0);
        }
        let shoff = f.len();
        let mut sh = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 0x40];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            f.extend_from_slice(&h);
        };
        sh(0, 0, 0);
        sh(1, info_off, info.len());
        sh(10, str_off, shstrtab.len());
        f[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&0x40u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        f[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        f
    }

    #[test]
    fn depends_come_from_modinfo() {
        let ko = fake_ko(b"license=GPL\0depends=virtio,virtio_ring\0name=virtio_blk\0");
        assert_eq!(module_depends(&ko).unwrap(), ["virtio", "virtio_ring"]);
        let ko = fake_ko(b"depends=\0name=virtio_ring\0");
        assert!(module_depends(&ko).unwrap().is_empty());
        let ko = fake_ko(b"name=x\0");
        assert!(module_depends(&ko).unwrap().is_empty());
        assert!(module_depends(b"not elf").is_err());
        let ko = fake_ko(b"depends=a\0");
        assert!(module_depends(&ko[..ko.len() - 0x40]).is_err(), "cut short");
    }

    #[test]
    fn names_drop_the_extension_and_use_underscores() {
        assert_eq!(module_name("virtio_blk.ko").as_deref(), Some("virtio_blk"));
        assert_eq!(module_name("kvm-amd.ko.xz").as_deref(), Some("kvm_amd"));
        assert_eq!(module_name("x.ko.zst").as_deref(), Some("x"));
        assert_eq!(module_name("modules.order"), None);
    }

    #[test]
    fn dependencies_load_first() {
        let deps: HashMap<&str, Vec<&str>> = [
            ("virtio_mmio", vec!["virtio", "virtio_ring"]),
            ("virtio_blk", vec!["virtio", "virtio_ring"]),
            ("virtio_console", vec!["virtio", "virtio_ring"]),
            ("virtio_net", vec!["net_failover", "virtio", "virtio_ring"]),
            ("net_failover", vec!["failover"]),
            ("failover", vec![]),
            ("virtio", vec!["virtio_ring"]),
            ("virtio_ring", vec![]),
        ]
        .into_iter()
        .collect();
        let mut lookup = |n: &str| -> Result<Vec<String>> {
            deps.get(n)
                .map(|d| d.iter().map(|s| (*s).to_owned()).collect())
                .ok_or_else(|| KernelError::Missing(n.to_owned()))
        };
        let order = load_order(&GUEST_MODULES, &mut lookup).unwrap();
        assert_eq!(
            order,
            [
                "virtio_ring",
                "virtio",
                "virtio_mmio",
                "virtio_blk",
                "virtio_console",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
        assert!(load_order(&["nope"], &mut lookup).is_err());
        let mut circle = |n: &str| -> Result<Vec<String>> {
            Ok(vec![if n == "a" { "b" } else { "a" }.to_owned()])
        };
        assert!(load_order(&["a"], &mut circle).is_err());
    }

    #[test]
    fn module_options_are_read_from_the_config() {
        let cfg = "CONFIG_EXT4_FS=y\nCONFIG_VIRTIO_BLK=m\n# CONFIG_X is not set\n";
        assert!(is_module(cfg, "VIRTIO_BLK"));
        assert!(!is_module(cfg, "EXT4_FS"));
        assert!(!is_module(cfg, "X"));
    }

    #[test]
    fn compressed_modules_are_decompressed() {
        let dir = std::env::temp_dir().join(format!("isolab-ko-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("m.ko");
        std::fs::write(&plain, b"module bytes").unwrap();
        assert_eq!(read_module(&plain).unwrap(), b"module bytes");
        // gzip is everywhere; xz and zstd are checked the same way when present.
        for (tool, ext) in [("gzip", "gz"), ("xz", "xz"), ("zstd", "zst")] {
            let ok = Command::new(tool)
                .args(["-k", "-f", "-q"])
                .arg(&plain)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                continue;
            }
            let packed = dir.join(format!("m.ko.{ext}"));
            assert_eq!(read_module(&packed).unwrap(), b"module bytes", "{tool}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
