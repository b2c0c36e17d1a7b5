//! Inputs the VMM refuses before it touches KVM: these run on any host, with or without /dev/kvm.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use vm_backend::vmm::{run, validate, VmConfig};
use vm_backend::VmError;

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("isolab-refuse-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("write temp file");
    p
}

/// A bzImage header claiming 1 MiB of protected-mode code, with the file cut after 64 KiB.
fn truncated_bzimage() -> Vec<u8> {
    let mut b = vec![0u8; 64 * 1024];
    b[0x1f1] = 4;
    b[0x1f4..0x1f8].copy_from_slice(&(0x10_0000u32 / 16).to_le_bytes());
    b[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    b[0x211] = 1;
    b[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
    b[0x236..0x238].copy_from_slice(&1u16.to_le_bytes());
    b
}

#[test]
fn garbage_is_refused_before_kvm() {
    let k = temp("garbage", &[0xa5; 4096]);
    let err = run(&VmConfig::new(&k, 128), Instant::now()).unwrap_err();
    assert!(matches!(err, VmError::KernelFormat { .. }), "{err}");
    assert!(err.to_string().contains("isolab kernel build"), "{err}");
    let _ = std::fs::remove_file(k);
}

#[test]
fn truncated_kernel_is_refused_before_kvm() {
    let k = temp("truncated", &truncated_bzimage());
    let err = validate(&VmConfig::new(&k, 128)).unwrap_err();
    match &err {
        VmError::KernelTruncated { needed, actual, .. } => assert!(needed > actual),
        other => panic!("{other}"),
    }
    let _ = std::fs::remove_file(k);
}

#[test]
fn missing_files_and_bad_sizes_are_refused() {
    let err = validate(&VmConfig::new("/nonexistent/bzImage", 128)).unwrap_err();
    assert!(matches!(err, VmError::KernelRead { .. }), "{err}");

    let mut ok = truncated_bzimage();
    ok.resize(5 * 512 + 0x10_0000, 0);
    let k = temp("complete", &ok);
    assert!(validate(&VmConfig::new(&k, 128)).is_ok());

    let mut c = VmConfig::new(&k, 128);
    c.initrd = Some("/nonexistent/initrd".into());
    assert!(matches!(
        validate(&c).unwrap_err(),
        VmError::InitrdRead { .. }
    ));

    let c = VmConfig::new(&k, 1);
    assert!(matches!(validate(&c).unwrap_err(), VmError::Layout(_)));

    // 1 to 64 vCPUs; outside that the message names the range.
    for vcpus in [2u8, 64] {
        let mut c = VmConfig::new(&k, 128);
        c.vcpus = vcpus;
        assert!(validate(&c).is_ok(), "{vcpus} vCPUs");
    }
    for vcpus in [0u8, 65, 255] {
        let mut c = VmConfig::new(&k, 128);
        c.vcpus = vcpus;
        let err = validate(&c).unwrap_err();
        assert!(
            matches!(err, VmError::Config(_)) && err.to_string().contains("1 to 64"),
            "{err}"
        );
    }

    let mut c = VmConfig::new(&k, 128);
    c.extra_cmdline = vec!["x".repeat(3000)];
    assert!(matches!(validate(&c).unwrap_err(), VmError::Cmdline(_)));
    let _ = std::fs::remove_file(k);
}

/// A complete bzImage (the truncated one's header, filled out to its 1 MiB) with `trailing`
/// bytes after it and the given `initrd_addr_max`.
fn bzimage(trailing: usize, initrd_addr_max: u32) -> Vec<u8> {
    let mut b = truncated_bzimage();
    b[0x22c..0x230].copy_from_slice(&initrd_addr_max.to_le_bytes());
    b.resize(5 * 512 + 0x10_0000 + trailing, 0);
    b
}

/// An ELF vmlinux whose one segment loads `memsz` bytes at `paddr` (entry there too).
fn elf(paddr: u64, memsz: u64) -> Vec<u8> {
    common::elf_kernel(paddr, &[0; 4096], memsz)
}

/// Kernels and layouts the loader (or the initramfs placement) would only fail on after the VM
/// exists are refused by `validate`, which `run` calls before it opens /dev/kvm.
#[test]
fn what_would_fail_after_vm_creation_is_refused_before_kvm() {
    // A segment ending near 2^64 (it used to overflow later) and one past the largest guest.
    for (name, bytes) in [
        ("elf-wrap", elf(u64::MAX - 0xfff, 0x2000)),
        ("elf-huge", elf(0x100_0000, 1 << 62)),
        // Ends 4 KiB below 2^64: no overflow in the header check itself, but adding the
        // VMM's own 8 MiB to it did (a panic in a debug build, a wrap in release that let the
        // VM be made).
        (
            "elf-near-top",
            elf(0x100_0000, u64::MAX - 0x100_0000 - 0x1000),
        ),
    ] {
        let k = temp(name, &bytes);
        let err = validate(&VmConfig::new(&k, 128)).unwrap_err();
        assert!(matches!(err, VmError::KernelFormat { .. }), "{name}: {err}");
        let err = run(&VmConfig::new(&k, 128), Instant::now()).unwrap_err();
        assert!(matches!(err, VmError::KernelFormat { .. }), "{name}: {err}");
        let _ = std::fs::remove_file(k);
    }
    // A bzImage with 40 MiB appended: not a bzImage alone.
    let k = temp("bz-trailing", &bzimage(40 << 20, 0));
    let err = validate(&VmConfig::new(&k, 128)).unwrap_err();
    assert!(err.to_string().contains("appended"), "{err}");
    let _ = std::fs::remove_file(k);
    // 12 MiB appended (under the limit) with 16 MiB of RAM to spare: the loader copies it too,
    // so the RAM needed counts it.
    let k = temp("bz-trailing-ok", &bzimage(12 << 20, 0));
    assert!(validate(&VmConfig::new(&k, 128)).is_ok());
    let err = validate(&VmConfig::new(&k, 16)).unwrap_err();
    assert!(matches!(err, VmError::Layout(_)), "{err}");
    let _ = std::fs::remove_file(k);
    // An initramfs that cannot go below the kernel's initrd_addr_max (here just above the
    // kernel): it used to be refused only when it was placed, in a VM already made.
    let k = temp("bz-initrd-max", &bzimage(0, 0x60_0000));
    let initrd = temp("initrd", &vec![0u8; 5 << 20]);
    let mut c = VmConfig::new(&k, 128);
    c.initrd = Some(initrd.clone());
    let err = validate(&c).unwrap_err();
    assert!(
        matches!(err, VmError::Layout(_)) && err.to_string().contains("initramfs"),
        "{err}"
    );
    for p in [k, initrd] {
        let _ = std::fs::remove_file(p);
    }
}
