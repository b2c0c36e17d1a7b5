//! The device controller: a container may use three character devices, `/dev/null` (1:3),
//! `/dev/zero` (1:5) and `/dev/urandom` (1:9), for reading, writing and `mknod`, and no other
//! device, even if a node for it appears inside (a kept `CAP_MKNOD`, a mount that forgot `nodev`).
//!
//! - cgroup v1: the `devices` controller's lists: deny everything (`a`), then allow the three,
//!   written once per runtime in one devices cgroup all its containers join
//!   (`v1::SharedDevices`).
//! - cgroup v2 has no device files: a `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the trial
//!   cgroup answers every access, as runc's `libcontainer/cgroups/devices/ebpf` and youki do. The
//!   program is written here by hand (15 instructions, see [`program`]), loaded once per runtime
//!   and attached to each trial cgroup before the child is born in it. A cgroup2 directory takes a
//!   device program even when no controller is enabled, so the hybrid hierarchy of a v1 host
//!   (`/sys/fs/cgroup/unified`) runs it for real too.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use super::Write;
use crate::error::ContainerError;

/// The devices a container may use: (major, minor) of character devices.
pub const ALLOWED_CHAR_DEVICES: [(u32, u32); 3] = [(1, 3), (1, 5), (1, 9)];

/// The v1 controller's writes for a trial cgroup, in order: deny all, then allow the three.
pub(crate) fn v1_rules() -> Vec<Write> {
    let mut w = vec![Write::new("devices.deny", "a")];
    for (major, minor) in ALLOWED_CHAR_DEVICES {
        w.push(Write::new(
            "devices.allow",
            format!("c {major}:{minor} rwm"),
        ));
    }
    w
}

// eBPF encoding (include/uapi/linux/bpf.h, bpf_common.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU64: u8 = 0x07;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_AND: u8 = 0x50;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;
/// `BPF_DEVCG_DEV_CHAR`: the device type in the low 16 bits of `access_type`.
const DEV_CHAR: i32 = 2;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// The device program. Its context is `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
/// u32 minor; }` with the device type in the low 16 bits of `access_type` and the access
/// (mknod 1, read 2, write 4) in the high 16; it returns 1 to allow and 0 to deny.
///
/// ```text
///  0  r2 = *(u32 *)(r1 + 0)     access_type
///  1  r2 &= 0xffff              device type
///  2  r3 = *(u32 *)(r1 + 4)     major
///  3  r4 = *(u32 *)(r1 + 8)     minor
///  4  if r2 != CHAR goto deny   (+N)
///  5  if r3 != 1 goto deny
///  6  if r4 == 3 goto allow     one test per allowed minor ...
///  9  deny:  r0 = 0; exit
/// 11  allow: r0 = 1; exit
/// ```
/// Every access type is allowed for the three devices (the v1 rules say `rwm` too).
pub fn program() -> Vec<Insn> {
    let r0 = 0;
    let (r1, r2, r3, r4) = (1, 2, 3, 4);
    let minors: Vec<i32> = ALLOWED_CHAR_DEVICES
        .iter()
        .map(|&(_, minor)| minor as i32)
        .collect();
    let n = minors.len() as i16;
    let mut p = vec![
        insn(BPF_LDX | BPF_W | BPF_MEM, r2, r1, 0, 0),
        insn(BPF_ALU64 | BPF_AND | BPF_K, r2, 0, 0, 0xffff),
        insn(BPF_LDX | BPF_W | BPF_MEM, r3, r1, 4, 0),
        insn(BPF_LDX | BPF_W | BPF_MEM, r4, r1, 8, 0),
        // Jumps are relative to the next instruction; deny is after the minor tests.
        insn(BPF_JMP | BPF_JNE | BPF_K, r2, 0, 1 + n, DEV_CHAR),
        insn(BPF_JMP | BPF_JNE | BPF_K, r3, 0, n, 1),
    ];
    for (i, minor) in minors.iter().enumerate() {
        // From test i, allow is after the rest of the tests and the two deny instructions.
        let to_allow = (n - 1 - i as i16) + 2;
        p.push(insn(BPF_JMP | BPF_JEQ | BPF_K, r4, 0, to_allow, *minor));
    }
    p.extend([
        insn(BPF_ALU64 | BPF_MOV | BPF_K, r0, 0, 0, 0),
        insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        insn(BPF_ALU64 | BPF_MOV | BPF_K, r0, 0, 0, 1),
        insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    ]);
    p
}

/// The `BPF_PROG_LOAD` part of `union bpf_attr` (the kernel accepts a shorter attr than its own,
/// provided the bytes it does not know are zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// A loaded device program, attached to each trial cgroup.
#[derive(Debug)]
pub struct DeviceFilterProgram {
    fd: OwnedFd,
}

fn sys_error(what: &'static str) -> ContainerError {
    let source = nix::errno::Errno::last();
    ContainerError::DeviceFilter {
        what,
        source,
        hint: match source {
            nix::errno::Errno::EPERM => {
                "loading a BPF program needs root (CAP_BPF and CAP_SYS_ADMIN); run isolab as root"
            }
            nix::errno::Errno::EINVAL => {
                "this kernel lacks BPF_PROG_TYPE_CGROUP_DEVICE (CONFIG_CGROUP_BPF, Linux 4.15+)"
            }
            _ => "run `isolab doctor`; the kernel needs CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF",
        },
    }
}

impl DeviceFilterProgram {
    /// Loads [`program`] into the kernel (the verifier checks it).
    pub fn load() -> Result<Self, ContainerError> {
        let insns = program();
        let license = CString::from(c"Apache-2.0");
        let attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            ..ProgLoadAttr::default()
        };
        // SAFETY: bpf(BPF_PROG_LOAD) reads `attr` and the instruction array and license it points
        // to (no log buffer); all live for the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                std::ptr::addr_of!(attr),
                std::mem::size_of::<ProgLoadAttr>(),
            )
        };
        if fd < 0 {
            return Err(sys_error("loading the cgroup v2 device program (bpf)"));
        }
        // SAFETY: the kernel returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Self { fd })
    }

    /// Attaches the program to a cgroup2 directory (`BPF_F_ALLOW_MULTI`, so programs a service
    /// manager attached to the parents keep running too: every one of them must allow an access).
    /// The attachment ends with the cgroup.
    pub fn attach(&self, cgroup_dir: impl AsFd) -> Result<(), ContainerError> {
        let attr = ProgAttachAttr {
            target_fd: cgroup_dir.as_fd().as_raw_fd() as u32,
            attach_bpf_fd: self.fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
            replace_bpf_fd: 0,
        };
        // SAFETY: bpf(BPF_PROG_ATTACH) reads `attr`, which lives for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_ATTACH,
                std::ptr::addr_of!(attr),
                std::mem::size_of::<ProgAttachAttr>(),
            )
        };
        if r < 0 {
            return Err(sys_error(
                "attaching the device program to the trial cgroup",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_rules_deny_all_then_allow_three() {
        let r = v1_rules();
        assert_eq!(r[0], Write::new("devices.deny", "a"));
        assert_eq!(
            r[1..],
            [
                Write::new("devices.allow", "c 1:3 rwm"),
                Write::new("devices.allow", "c 1:5 rwm"),
                Write::new("devices.allow", "c 1:9 rwm"),
            ]
        );
    }

    /// Runs the program on a context as the kernel would (the subset of eBPF it uses), so the
    /// jumps are checked without root.
    fn interpret(p: &[Insn], access_type: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access_type, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                c if c == BPF_LDX | BPF_W | BPF_MEM => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                c if c == BPF_ALU64 | BPF_AND | BPF_K => r[dst] &= i.imm as u64,
                c if c == BPF_ALU64 | BPF_MOV | BPF_K => r[dst] = i.imm as u64,
                c if c == BPF_JMP | BPF_JNE | BPF_K => {
                    if r[dst] != i.imm as u64 {
                        pc = (pc as i64 + i64::from(i.off)) as usize;
                    }
                }
                c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                    if r[dst] == i.imm as u64 {
                        pc = (pc as i64 + i64::from(i.off)) as usize;
                    }
                }
                c if c == BPF_JMP | BPF_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_program_allows_exactly_null_zero_urandom() {
        let p = program();
        assert_eq!(p.len(), 13);
        let char_dev = |access: u32| (access << 16) | 2;
        let block_dev = |access: u32| (access << 16) | 1;
        for access in [1, 2, 4, 6, 7] {
            for minor in [3, 5, 9] {
                assert_eq!(interpret(&p, char_dev(access), 1, minor), 1, "1:{minor}");
                assert_eq!(
                    interpret(&p, block_dev(access), 1, minor),
                    0,
                    "block 1:{minor}"
                );
            }
            for (major, minor) in [(1, 1), (1, 7), (1, 8), (1, 11), (5, 0), (4, 0), (8, 0)] {
                assert_eq!(
                    interpret(&p, char_dev(access), major, minor),
                    0,
                    "{major}:{minor}"
                );
            }
        }
    }

    /// The kernel's verifier accepts the program (needs root: CAP_BPF).
    #[test]
    fn the_kernel_loads_the_program() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "loading a BPF program needs root; run the tests as root"
        );
        DeviceFilterProgram::load().unwrap_or_else(|e| panic!("{e}"));
    }
}
