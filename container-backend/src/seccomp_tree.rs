//! The seccomp program as a binary search over system-call numbers, instead of seccompiler's
//! linear chain (one comparison after another for each of the ~300 allowed calls, 1605
//! instructions for Docker's profile in two filters).
//!
//! Why: installing a filter costs the kernel time in proportion to what it must walk. It checks
//! and converts the program and JITs it (linear in its length), then builds the action cache by
//! *emulating* the program once for every system-call number to find the calls whose verdict
//! does not depend on their arguments. A linear chain makes that emulation walk up to the whole
//! chain for each of ~450 numbers: about 1 ms of CPU per container start (issue 10's finding).
//! A search over the number's intervals walks a dozen instructions per number.
//!
//! The program, in one filter:
//!
//! 1. the architecture must be x86_64, else the process is killed (as seccompiler does);
//! 2. load the system-call number, and search the intervals of numbers with one verdict (the
//!    allowed ranges, the refused gaps): a tree of `jge` comparisons, each node jumping over
//!    its left half (falling into it otherwise);
//! 3. each leaf returns its verdict (`ALLOW`, `ERRNO(EPERM)`, `ERRNO(ENOSYS)` for `clone3`) or
//!    checks the argument rules of its one call (`socket`, `personality`, `clone`). A leaf that
//!    only returns is no instruction of its own: its node jumps to one `ret` per verdict at the
//!    end of the program, shared by every leaf (Docker's profile: 102 instructions, where a
//!    `ret` per leaf and a long `ja` per node made 231). Only jumps on constants are used, so
//!    the kernel's action cache still finds every call whose verdict needs no argument.
//!
//! The rules are the same as `seccomp::docker_rules` (written with seccompiler's types); a test
//! runs both programs in an interpreter for every system-call number, the x32 and out-of-range
//! numbers, the wrong architecture and the arguments around every rule's edges, and demands the
//! same verdict the kernel would reach with seccompiler's two filters.

use seccompiler::sock_filter;

const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_AND: u16 = 0x50;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;

/// `struct seccomp_data` offsets: `nr`, `arch`, `args[0]` (low and high 32 bits, little-endian).
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0_LO: u32 = 16;
const ARG0_HI: u32 = 20;

/// `AUDIT_ARCH_X86_64`.
pub(crate) const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn ret(k: u32) -> sock_filter {
    stmt(BPF_RET | BPF_K, k)
}

/// `SECCOMP_RET_ERRNO` with `errno`.
pub(crate) fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}

/// What a system-call number's leaf does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// Return this (`SECCOMP_RET_*`).
    Return(u32),
    /// Run this block (its own loads, comparisons and returns; short jumps only).
    Check(Vec<sock_filter>),
}

/// The leaf of one interval.
fn leaf(v: &Verdict) -> Vec<sock_filter> {
    match v {
        Verdict::Return(k) => vec![ret(*k)],
        Verdict::Check(code) => code.clone(),
    }
}

/// The search over `intervals` (start number, verdict; sorted, the first starting at 0, each
/// reaching to the next one's start).
fn search(intervals: &[(u32, Verdict)]) -> Vec<sock_filter> {
    if intervals.len() == 1 {
        return leaf(&intervals[0].1);
    }
    let mid = intervals.len() / 2;
    let left = search(&intervals[..mid]);
    let right = search(&intervals[mid..]);
    let mut out = Vec::with_capacity(2 + left.len() + right.len());
    match u8::try_from(left.len()) {
        // nr >= the right half's first start: jump over the left half; else fall into it. One
        // instruction per node wherever the left half is short enough for a conditional jump's
        // 8-bit offset, which is all but the top of the tree: the program is then about a third
        // shorter, and the kernel's conversion, JIT and action cache at install with it.
        Ok(over) => out.push(jump(BPF_JMP | BPF_JGE | BPF_K, intervals[mid].0, over, 0)),
        // Else through a long `ja` over the left half.
        Err(_) => {
            out.push(jump(BPF_JMP | BPF_JGE | BPF_K, intervals[mid].0, 0, 1));
            out.push(stmt(BPF_JMP | BPF_JA, left.len() as u32));
        }
    }
    out.extend(left);
    out.extend(right);
    out
}

/// Where a conditional jump of [`shared_search`] goes before offsets are known.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The next instruction.
    Next,
    /// This many instructions further (a leaf's own jumps, inside the leaf).
    Skip(u8),
    /// The instruction at this index of the search's code.
    At(usize),
    /// The shared `ret` of this verdict at the end of the program.
    Ret(u32),
}

/// One instruction of [`shared_search`], its jumps still symbolic.
struct Pending {
    insn: sock_filter,
    jt: Target,
    jf: Target,
}

/// The same search as [`search`], but a node whose half is one interval with a plain verdict
/// jumps straight to a `ret` of that verdict shared by the whole program (placed after the
/// search) instead of to a `ret` of its own: a search of ~70 intervals then needs a few
/// `ret`s, not one per interval (each is two instructions once the kernel converts the
/// program). `None` when a jump would not reach (8-bit offsets): [`search`] is used then.
fn shared_search(intervals: &[(u32, Verdict)]) -> Option<Vec<sock_filter>> {
    fn emit(intervals: &[(u32, Verdict)], code: &mut Vec<Pending>) {
        if intervals.len() == 1 {
            // Reached only for a `Check` leaf or a one-interval program.
            for insn in leaf(&intervals[0].1) {
                let (jt, jf) = (Target::Skip(insn.jt), Target::Skip(insn.jf));
                code.push(Pending { insn, jt, jf });
            }
            return;
        }
        let mid = intervals.len() / 2;
        let (left, right) = intervals.split_at(mid);
        let as_ret = |half: &[(u32, Verdict)]| match half {
            [(_, Verdict::Return(k))] => Some(*k),
            _ => None,
        };
        let node = code.len();
        code.push(Pending {
            insn: jump(BPF_JMP | BPF_JGE | BPF_K, right[0].0, 0, 0),
            jt: Target::Next,
            jf: as_ret(left).map_or(Target::Next, Target::Ret),
        });
        if as_ret(left).is_none() {
            emit(left, code);
        }
        code[node].jt = match as_ret(right) {
            Some(k) => Target::Ret(k),
            None => {
                let at = code.len();
                emit(right, code);
                Target::At(at)
            }
        };
    }
    let mut code = Vec::new();
    emit(intervals, &mut code);
    let mut rets: Vec<u32> = Vec::new();
    for p in &code {
        for t in [p.jt, p.jf] {
            if let Target::Ret(k) = t {
                if !rets.contains(&k) {
                    rets.push(k);
                }
            }
        }
    }
    let end = code.len();
    let mut out = Vec::with_capacity(end + rets.len());
    for (i, p) in code.iter().enumerate() {
        let offset = |t: Target| -> Option<u8> {
            let to = match t {
                Target::Next => return Some(0),
                Target::Skip(n) => return Some(n),
                Target::At(at) => at,
                Target::Ret(k) => end + rets.iter().position(|&r| r == k)?,
            };
            u8::try_from(to.checked_sub(i + 1)?).ok()
        };
        out.push(jump(p.insn.code, p.insn.k, offset(p.jt)?, offset(p.jf)?));
    }
    out.extend(rets.into_iter().map(ret));
    Some(out)
}

/// The whole program: architecture check, then the search over the system-call numbers of
/// `rules` (number → verdict); every other number gets `default`.
pub(crate) fn program(
    rules: &std::collections::BTreeMap<u32, Verdict>,
    default: u32,
) -> Vec<sock_filter> {
    // Intervals of equal verdicts: a number with rules is an interval of its own; runs of
    // numbers with the same return merge.
    let mut intervals: Vec<(u32, Verdict)> = Vec::new();
    let mut push = |start: u32, v: Verdict| {
        let merge = matches!((&v, intervals.last()), (Verdict::Return(a), Some((_, Verdict::Return(b)))) if a == b);
        if !merge {
            intervals.push((start, v));
        }
    };
    let mut next = 0u32;
    for (&nr, v) in rules {
        if nr > next {
            push(next, Verdict::Return(default));
        }
        push(nr, v.clone());
        next = nr.saturating_add(1);
    }
    if next > 0 {
        push(next, Verdict::Return(default));
    }
    if intervals.is_empty() {
        intervals.push((0, Verdict::Return(default)));
    }
    let mut out = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        ret(libc::SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, NR),
    ];
    out.extend(shared_search(&intervals).unwrap_or_else(|| search(&intervals)));
    out
}

/// Allowed when the low 32 bits of argument 0 (a `Dword`) are below `lo`, equal to `eq`, or
/// above `hi`; else `deny`. (`socket`: no `AF_ALG`, no `AF_VSOCK`.)
pub(crate) fn dword_outside(lo: u32, eq: u32, hi: u32, deny: u32) -> Verdict {
    let allow = libc::SECCOMP_RET_ALLOW;
    Verdict::Check(vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARG0_LO),
        jump(BPF_JMP | BPF_JGE | BPF_K, lo, 1, 0),
        ret(allow),
        jump(BPF_JMP | BPF_JEQ | BPF_K, eq, 0, 1),
        ret(allow),
        jump(BPF_JMP | BPF_JGT | BPF_K, hi, 0, 1),
        ret(allow),
        ret(deny),
    ])
}

/// Allowed when argument 0 (a `Qword`) equals one of `values` (each below 2^32); else `deny`.
/// (`personality`.)
pub(crate) fn qword_one_of(values: &[u64], deny: u32) -> Verdict {
    let mut code = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARG0_HI),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
        ret(deny),
        stmt(BPF_LD | BPF_W | BPF_ABS, ARG0_LO),
    ];
    for &v in values {
        debug_assert!(v <= u64::from(u32::MAX));
        code.push(jump(BPF_JMP | BPF_JEQ | BPF_K, v as u32, 0, 1));
        code.push(ret(libc::SECCOMP_RET_ALLOW));
    }
    code.push(ret(deny));
    Verdict::Check(code)
}

/// Allowed when argument 0 (a `Qword`) has none of the bits of `mask` (below 2^32); else
/// `deny`. (`clone` without namespace flags.)
pub(crate) fn qword_none_of(mask: u32, deny: u32) -> Verdict {
    Verdict::Check(vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARG0_LO),
        stmt(BPF_ALU | BPF_AND | BPF_K, mask),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
        ret(libc::SECCOMP_RET_ALLOW),
        ret(deny),
    ])
}

/// A classic-BPF interpreter of the instructions seccomp programs use here, for tests: runs
/// `prog` on a `seccomp_data` of `nr`, `arch` and `args`, returns the verdict.
#[cfg(test)]
pub(crate) fn interpret(prog: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 10_000, "no end");
        let i = &prog[pc];
        let k = i.k;
        let cond = |c: bool| if c { i.jt as usize } else { i.jf as usize };
        match i.code {
            0x20 => {
                let o = k as usize;
                acc = u32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes"));
                pc += 1;
            }
            0x54 => {
                acc &= k;
                pc += 1;
            }
            0x05 => pc += 1 + k as usize,
            0x15 => pc += 1 + cond(acc == k),
            0x25 => pc += 1 + cond(acc > k),
            0x35 => pc += 1 + cond(acc >= k),
            0x45 => pc += 1 + cond(acc & k != 0),
            0x06 => return k,
            other => panic!("instruction {other:#x} is not interpreted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_finds_every_interval() {
        let mut rules = std::collections::BTreeMap::new();
        for nr in [0u32, 1, 2, 5, 9, 10, 11, 300] {
            rules.insert(nr, Verdict::Return(libc::SECCOMP_RET_ALLOW));
        }
        rules.insert(7, Verdict::Return(errno(libc::ENOSYS)));
        let p = program(&rules, errno(libc::EPERM));
        for nr in 0..400u32 {
            let want = match nr {
                0 | 1 | 2 | 5 | 9 | 10 | 11 | 300 => libc::SECCOMP_RET_ALLOW,
                7 => errno(libc::ENOSYS),
                _ => errno(libc::EPERM),
            };
            assert_eq!(
                interpret(&p, nr, AUDIT_ARCH_X86_64, [0; 6]),
                want,
                "nr {nr}"
            );
        }
        assert_eq!(
            interpret(&p, u32::MAX, AUDIT_ARCH_X86_64, [0; 6]),
            errno(libc::EPERM)
        );
        assert_eq!(
            interpret(&p, 0, 0xdead, [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }

    /// Too many intervals for the shared returns' 8-bit jumps: the plain search is used, and
    /// decides the same.
    #[test]
    fn a_search_too_long_for_shared_returns_still_finds_every_interval() {
        let rules: std::collections::BTreeMap<u32, Verdict> = (0..1200u32)
            .step_by(2)
            .map(|nr| (nr, Verdict::Return(libc::SECCOMP_RET_ALLOW)))
            .collect();
        let intervals: Vec<(u32, Verdict)> = (0..1201u32)
            .map(|nr| {
                let v = if nr % 2 == 0 && nr < 1200 {
                    libc::SECCOMP_RET_ALLOW
                } else {
                    errno(libc::EPERM)
                };
                (nr, Verdict::Return(v))
            })
            .collect();
        assert!(shared_search(&intervals).is_none());
        let p = program(&rules, errno(libc::EPERM));
        for nr in 0..1300u32 {
            let want = if nr % 2 == 0 && nr < 1200 {
                libc::SECCOMP_RET_ALLOW
            } else {
                errno(libc::EPERM)
            };
            assert_eq!(
                interpret(&p, nr, AUDIT_ARCH_X86_64, [0; 6]),
                want,
                "nr {nr}"
            );
        }
    }
}
