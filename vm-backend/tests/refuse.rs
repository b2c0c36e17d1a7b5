//! Inputs the VMM refuses before it touches KVM: these run on any host, with or without /dev/kvm.

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
