//! Felter, Ferreira, Rajamony and Rubio's comparison of native, Docker and KVM (IBM RC25482,
//! 2014), from the scripts and results they published.
//!
//! Every value below was read from the spreadsheets and logs of their repository
//! (github.com/thewmf/kvm-docker-comparison, commit 6820500beab45d7c8d005caefb40eda7381eb05f of
//! 2014-08-21), the cell named in `source`; the means of the raw logs agree with them.

use workloads::Better;

use super::{Row, Study};
use crate::backend::BackendKind;

/// The study.
pub const FELTER_2014: Study = Study {
    id: "felter2014",
    short: "Felter et al. 2014",
    citation: "W. Felter, A. Ferreira, R. Rajamony, J. Rubio: An Updated Performance Comparison \
               of Virtual Machines and Linux Containers. IBM Research Report RC25482 \
               (AUS1407-001), July 2014; ISPASS 2015.",
    data_source: "the authors' scripts and results, github.com/thewmf/kvm-docker-comparison at \
                  commit 6820500beab45d7c8d005caefb40eda7381eb05f (2014-08-21); each row names \
                  its file and cells",
    setup: "one two-socket Intel Xeon server with 32 hardware threads; the CPU and memory \
            benchmarks use them all (numactl across both sockets, the VM as many vCPUs). Docker \
            with its default NAT networking and a bind-mounted volume for I/O. KVM through QEMU \
            (libvirt for the tuned Linpack and for netperf) with virtio disk and network and an \
            Ubuntu 13.10 cloud image as guest. isolab's workloads run on one CPU.",
    sandboxes: [("Docker", BackendKind::Container), ("KVM", BackendKind::Vm)],
    rows: &[
        Row {
            id: "linpack",
            name: "Linpack",
            benchmark: "Linpack (Intel MKL, N = 45000, 32 threads)",
            unit: "GFLOP/s",
            better: Better::Higher,
            native: 290.82864,
            sandboxes: [Some(290.86775), Some(284.19874)],
            source: "linpack/results/linpack.xlsx, sheet1, row Mean: E29 (native), F29 \
                     (Docker), H29 (KVM tuned); 10 runs each",
            note: "KVM tuned: libvirt with the host CPU passed through, its topology exposed \
                   and vCPUs pinned. Untuned KVM (G29) reached 130.28 GFLOP/s, 0.45x native.",
            kinds: &["cpu"],
            metric_hint: "matmul_gflops",
            requires: &[],
        },
        Row {
            id: "stream-copy",
            name: "STREAM copy",
            benchmark: "STREAM copy (16 threads per socket, two sockets, interleaved)",
            unit: "GB/s",
            better: Better::Higher,
            native: 41.2674,
            sandboxes: [Some(41.2016), Some(40.0509)],
            source: "Stream/results/stream-triad.xlsx, sheet1, row Copy, two-socket: E19, F19, \
                     G19 (means of 10 runs in Stream/results/*.two-socket.interleavedalloc.log)",
            note: "",
            kinds: &["mem-bw"],
            metric_hint: "stream_copy",
            requires: &[],
        },
        Row {
            id: "stream-triad",
            name: "STREAM triad",
            benchmark: "STREAM triad (16 threads per socket, two sockets, interleaved)",
            unit: "GB/s",
            better: Better::Higher,
            native: 45.6003,
            sandboxes: [Some(45.6307), Some(45.0213)],
            source: "Stream/results/stream-triad.xlsx, sheet1, row Triad, two-socket: E22, F22, \
                     G22 (means of 10 runs)",
            note: "",
            kinds: &["mem-bw"],
            metric_hint: "stream_triad",
            requires: &[],
        },
        Row {
            id: "randomaccess",
            name: "RandomAccess",
            benchmark: "HPCC RandomAccess (2^33-word table, 10^9 updates, OpenMP over 32 threads)",
            unit: "GUP/s",
            better: Better::Higher,
            native: 0.012612937,
            sandboxes: [Some(0.012396144), Some(0.012475643)],
            source: "RandomAccess/results/gups.xlsx, sheet1, row Mean, two-socket: E29, F29, G29 \
                     (10 runs each)",
            note: "Their GUP/s are low because the update loop forks and joins 32 threads every \
                   128 updates; compare ratios, not GUP/s.",
            kinds: &["random-access"],
            metric_hint: "gups",
            requires: &[],
        },
        Row {
            id: "fio-seq-read",
            name: "fio seq. read",
            benchmark: "fio sequential read, 1 MiB blocks, queue depth 2, libaio, O_DIRECT",
            unit: "MB/s",
            better: Better::Higher,
            native: 806.935,
            sandboxes: [Some(806.673), Some(801.946)],
            source: "fio/results/fio results.xlsx, sheet1, row Sequential Read: B6 (native), D6 \
                     (Docker), F6 (KVM)",
            note: "A 16 GiB file on a flash array; KVM's disk was virtio on the host's block \
                   device (cache=none, aio=native), Docker's a bind mount.",
            kinds: &["io-seq"],
            metric_hint: "seq_read",
            requires: &[],
        },
        Row {
            id: "fio-rand-read-qd128",
            name: "fio rand. read QD128",
            benchmark: "fio 4 KiB random read, 8 jobs x queue depth 16 (QD 128), libaio",
            unit: "IOPS",
            better: Better::Higher,
            native: 84_044.0,
            sandboxes: [Some(84_092.0), Some(46_173.0)],
            source: "fio/results/fio results.xlsx, sheet1, row Random Read (QD 128): J6, K6, L6",
            note: "",
            kinds: &["io-rand"],
            metric_hint: "rand_read_iops",
            requires: &[("depth", 128)],
        },
        Row {
            id: "fio-rand-write-qd128",
            name: "fio rand. write QD128",
            benchmark: "fio 4 KiB random write, 8 jobs x queue depth 16 (QD 128), libaio",
            unit: "IOPS",
            better: Better::Higher,
            native: 112_034.0,
            sandboxes: [Some(112_048.0), Some(59_321.0)],
            source: "fio/results/fio results.xlsx, sheet1, row Random Write (QD 128): J7, K7, L7",
            note: "",
            kinds: &["io-rand"],
            metric_hint: "rand_write_iops",
            requires: &[("depth", 128)],
        },
        Row {
            id: "netperf-tcp-rr",
            name: "netperf TCP_RR",
            benchmark: "netperf TCP_RR, 100-byte request, 200-byte response, between two hosts",
            unit: "µs",
            better: Better::Lower,
            native: 37.582060,
            sandboxes: [None, Some(67.941291)],
            source: "netperf/results/netperf.xlsx, sheet1, row TCP_RR: C4 (native), G4 (KVM), \
                     each 10^6 / transactions per second (B4, F4)",
            note: "Their data has no Docker value (the Docker NAT cells are empty).",
            kinds: &["net-rr"],
            metric_hint: "the request/response latency",
            requires: &[],
        },
        Row {
            id: "netperf-udp-rr",
            name: "netperf UDP_RR",
            benchmark: "netperf UDP_RR, 100-byte request, 200-byte response, between two hosts",
            unit: "µs",
            better: Better::Lower,
            native: 36.016749,
            sandboxes: [None, Some(63.953421)],
            source: "netperf/results/netperf.xlsx, sheet1, row UDP_RR: C5 (native), G5 (KVM)",
            note: "Their data has no Docker value (the Docker NAT cells are empty).",
            kinds: &["net-udp-rr"],
            metric_hint: "the request/response latency",
            requires: &[],
        },
        Row {
            id: "nuttcp-stream",
            name: "nuttcp stream",
            benchmark: "nuttcp TCP bulk transfer, client to server, 10 Gbit Ethernet",
            unit: "Gb/s",
            better: Better::Higher,
            native: 9.3481319,
            sandboxes: [Some(9.3298451), Some(9.2942403)],
            source: "nuttcp/results/nuttcp.xlsx, sheet1, row C->S: B6 (native), C6 (Docker NAT), \
                     E6 (KVM)",
            note: "The link, not the sandbox, limits all three.",
            kinds: &["net-stream"],
            metric_hint: "the sandbox-to-host throughput",
            requires: &[],
        },
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounded_as_the_paper_and_the_design_notes_quote_them() {
        let row = |id| FELTER_2014.row(id).unwrap();
        let r1 = |x: f64| (x * 10.0).round() / 10.0;
        assert_eq!(r1(row("linpack").native), 290.8);
        assert_eq!(r1(row("linpack").sandboxes[0].unwrap()), 290.9);
        assert_eq!(r1(row("linpack").sandboxes[1].unwrap()), 284.2);
        assert_eq!(r1(row("stream-triad").native), 45.6);
        assert_eq!(r1(row("stream-triad").sandboxes[1].unwrap()), 45.0);
        let r4 = |x: f64| (x * 1e4).round() / 1e4;
        assert_eq!(r4(row("randomaccess").native), 0.0126);
        assert_eq!(r4(row("randomaccess").sandboxes[0].unwrap()), 0.0124);
        assert_eq!(r4(row("randomaccess").sandboxes[1].unwrap()), 0.0125);
        assert_eq!(row("fio-seq-read").native.round(), 807.0);
        assert_eq!(row("fio-seq-read").sandboxes[1].unwrap().round(), 802.0);
        assert_eq!(r1(row("netperf-tcp-rr").native), 37.6);
        assert_eq!(r1(row("netperf-tcp-rr").sandboxes[1].unwrap()), 67.9);
    }
}
