//! CPUID the guest sees: what KVM supports on this host, with the identity and topology of each
//! vCPU filled in and the hypervisor bit set.

use kvm_bindings::kvm_cpuid_entry2;

/// Leaf 1: version and features.
const LEAF_FEATURES: u32 = 0x1;
/// Leaf 4: deterministic cache parameters (Intel).
const LEAF_CACHE_PARAMS: u32 = 0x4;
/// Leaf 0xA: architectural performance monitoring.
const LEAF_PMU: u32 = 0xa;
/// Leaf 0xB: extended topology.
const LEAF_TOPOLOGY: u32 = 0xb;
/// Leaf 0x1F: V2 extended topology (Intel; same layout as 0xB for our two levels).
const LEAF_TOPOLOGY_V2: u32 = 0x1f;
/// Leaf 0x8000_0008: address sizes and core count (AMD).
const LEAF_AMD_SIZES: u32 = 0x8000_0008;
/// Leaf 0x8000_001E: AMD extended APIC id and core/node ids.
const LEAF_AMD_EXT_APIC: u32 = 0x8000_001e;

/// Leaf 1 ECX bit 31: running under a hypervisor.
pub const ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX bit 28: more than one logical processor per package.
pub const EDX_HTT: u32 = 1 << 28;

/// The topology of the guest: `count` vCPUs, one core each, one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuTopology {
    /// This vCPU's index, which is also its APIC id.
    pub index: u8,
    /// Number of vCPUs in the VM (at least 1).
    pub count: u8,
}

/// Rewrites the supported CPUID entries for one vCPU, in place.
///
/// - leaf 1: APIC id, logical processor count, CLFLUSH size, hypervisor bit, HTT;
/// - leaf 4: cores per package;
/// - leaf 0xA: no PMU (a guest PMU costs exits and leaks host counters);
/// - leaves 0xB and 0x1F: x2APIC id and a two-level (thread, core) topology;
/// - leaves 0x8000_0008 and 0x8000_001E: AMD's core count and ids.
pub fn filter_cpuid(entries: &mut [kvm_cpuid_entry2], topo: VcpuTopology) {
    let count = u32::from(topo.count.max(1));
    let apic_id = u32::from(topo.index);
    // Bits needed to number the cores: ceil(log2(count)).
    let core_bits = u32::BITS - (count - 1).leading_zeros();
    for e in entries.iter_mut() {
        match e.function {
            LEAF_FEATURES => {
                e.ebx = (apic_id << 24) | (count << 16) | (8 << 8) | (e.ebx & 0xff);
                e.ecx |= ECX_HYPERVISOR;
                if count > 1 {
                    e.edx |= EDX_HTT;
                } else {
                    e.edx &= !EDX_HTT;
                }
            }
            LEAF_CACHE_PARAMS => {
                // Cores per package - 1 in EAX[31:26]; caches shared by all of them.
                let cache_level = (e.eax >> 5) & 0x7;
                let sharing = if cache_level >= 3 { count - 1 } else { 0 };
                e.eax = (e.eax & 0x3fff) | (sharing << 14) | ((count - 1) << 26);
            }
            LEAF_PMU => {
                e.eax = 0;
                e.ebx = 0;
                e.ecx = 0;
                e.edx = 0;
            }
            LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => {
                e.edx = apic_id;
                match e.index {
                    0 => {
                        // SMT level: one thread per core.
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = (1 << 8) | e.index;
                    }
                    1 => {
                        // Core level: `count` cores.
                        e.eax = core_bits;
                        e.ebx = count;
                        e.ecx = (2 << 8) | e.index;
                    }
                    _ => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = e.index;
                    }
                }
            }
            LEAF_AMD_SIZES => {
                e.ecx = (e.ecx & !0xf0ff) | (core_bits << 12) | (count - 1);
            }
            LEAF_AMD_EXT_APIC => {
                e.eax = apic_id;
                e.ebx = apic_id & 0xff;
                e.ecx = 0;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: 0xffff_ffff,
            ebx: 0xffff_ffff,
            ecx: 0,
            edx: 0xffff_ffff,
            ..Default::default()
        }
    }

    fn find(entries: &[kvm_cpuid_entry2], function: u32, index: u32) -> kvm_cpuid_entry2 {
        *entries
            .iter()
            .find(|e| e.function == function && e.index == index)
            .expect("leaf present")
    }

    #[test]
    fn single_vcpu_identity_and_hypervisor_bit() {
        let mut entries = vec![
            entry(1, 0),
            entry(0xa, 0),
            entry(0xb, 0),
            entry(0xb, 1),
            entry(7, 0),
        ];
        filter_cpuid(&mut entries, VcpuTopology { index: 0, count: 1 });
        let leaf1 = find(&entries, 1, 0);
        assert_ne!(leaf1.ecx & ECX_HYPERVISOR, 0);
        assert_eq!(leaf1.ebx >> 24, 0, "APIC id");
        assert_eq!((leaf1.ebx >> 16) & 0xff, 1, "logical processors");
        assert_eq!((leaf1.ebx >> 8) & 0xff, 8, "CLFLUSH line = 64 bytes");
        assert_eq!(leaf1.edx & EDX_HTT, 0);
        assert_eq!(find(&entries, 0xa, 0).eax, 0, "no PMU");
        let smt = find(&entries, 0xb, 0);
        assert_eq!((smt.ebx, smt.ecx >> 8, smt.edx), (1, 1, 0));
        // Leaves the filter does not know are passed through untouched.
        assert_eq!(find(&entries, 7, 0), entry(7, 0));
    }

    #[test]
    fn several_vcpus_get_consistent_topology() {
        for index in 0..4u8 {
            let mut entries = vec![
                entry(1, 0),
                entry(0xb, 0),
                entry(0xb, 1),
                entry(0xb, 2),
                entry(0x1f, 0),
                entry(0x1f, 1),
                entry(0x8000_0008, 0),
            ];
            filter_cpuid(&mut entries, VcpuTopology { index, count: 4 });
            let leaf1 = find(&entries, 1, 0);
            assert_eq!(leaf1.ebx >> 24, u32::from(index));
            assert_eq!((leaf1.ebx >> 16) & 0xff, 4);
            assert_ne!(leaf1.edx & EDX_HTT, 0);
            let core = find(&entries, 0xb, 1);
            let v2 = find(&entries, 0x1f, 1);
            assert_eq!(
                (v2.eax, v2.ebx, v2.ecx, v2.edx),
                (core.eax, core.ebx, core.ecx, core.edx),
                "0x1F mirrors 0xB"
            );
            assert_eq!(find(&entries, 0x1f, 0).edx, u32::from(index));
            assert_eq!(
                (core.eax, core.ebx, core.ecx >> 8, core.edx),
                (2, 4, 2, u32::from(index))
            );
            assert_eq!(find(&entries, 0xb, 2).ebx, 0, "no further levels");
            assert_eq!(find(&entries, 0x8000_0008, 0).ecx & 0xff, 3);
        }
    }

    #[test]
    fn core_bits_round_up() {
        let mut entries = vec![entry(0xb, 1)];
        filter_cpuid(&mut entries, VcpuTopology { index: 2, count: 3 });
        assert_eq!(entries[0].eax, 2);
        let mut entries = vec![entry(0xb, 1)];
        filter_cpuid(&mut entries, VcpuTopology { index: 0, count: 1 });
        assert_eq!(entries[0].eax, 0);
    }
}
