//! Runs one microVM and prints its report as one framed line: the VMM as a small static binary,
//! for the HVM test machine (until the `isolab` binary itself goes there).
//!
//! ```text
//! vmm-run --kernel PATH [--initrd PATH | --agent PATH] [--mem MIB] [--vcpus N] [--timeout-s S] [--append "WORDS"] [--live] [--quiet]
//!         [--disk IMAGE [--disk-read-only]] [--acpi auto|on|off] [--memory thp|hugetlbfs|small]
//!         [--no-channel] [--inject-fault FAULT]
//! ```
//!
//! `--acpi` says how the devices are described (default `auto`: ACPI tables and the command
//! line, see `vm_backend::devices::slots`); a stock distro kernel such as Debian's finds them
//! only in ACPI, its modules go into the `--initrd`. `--memory` backs guest RAM (default `thp`).
//! `--no-channel` leaves out the virtio console (the agent's result then goes to the serial
//! console).
//!
//! `--inject-fault` is for tests of the VMM's error paths: `spawn-vcpu:N`, `device-thread`,
//! `kvm-run:N`, `slow-disk-ms:MS`, `single-step`.
//!
//! Output: `ISOLAB-VMM-REPORT:<len>:<base64url JSON>` when the VM ran (whatever the guest did),
//! exit 0; `ISOLAB-VMM-ERROR:<message>` and `ISOLAB-VMM-THREADS:<n>` (the threads left in the
//! process) when it could not run, exit 2; usage errors exit 64.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use vm_backend::vmm::{run, AcpiMode, DiskConfig, Fault, VmConfig};
use vm_backend::vstate::memory::MemoryBacking;

fn usage(msg: &str) -> ! {
    eprintln!("vmm-run: {msg}\nusage: vmm-run --kernel PATH [--initrd PATH | --agent PATH] [--mem MIB] [--vcpus N (1..=64)] [--timeout-s S] [--append WORDS] [--live] [--quiet] [--disk IMAGE [--disk-read-only]] [--acpi auto|on|off] [--memory thp|hugetlbfs|small] [--no-channel] [--inject-fault FAULT]");
    std::process::exit(64)
}

fn main() {
    let origin = Instant::now();
    let mut args = std::env::args().skip(1);
    let mut kernel = None;
    let mut initrd = None;
    let mut mem = 256u64;
    let mut vcpus = 1u8;
    let mut timeout = 60u64;
    let mut append = Vec::new();
    let mut live = false;
    let mut quiet = false;
    let mut disk = None;
    let mut disk_read_only = false;
    let mut acpi = AcpiMode::Auto;
    let mut memory = MemoryBacking::Thp;
    let mut channel = true;
    let mut fault = None;
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--kernel" => kernel = Some(value("--kernel")),
            "--initrd" => initrd = Some(value("--initrd")),
            "--agent" => {
                // An initramfs with this binary as /init, written next to the temp files.
                let agent = value("--agent");
                let bytes =
                    std::fs::read(&agent).unwrap_or_else(|e| usage(&format!("{agent}: {e}")));
                let path =
                    std::env::temp_dir().join(format!("isolab-agent-{}.cpio", std::process::id()));
                std::fs::write(
                    &path,
                    vm_backend::image::initramfs::agent_image(bytes).to_bytes(),
                )
                .unwrap_or_else(|e| usage(&format!("{}: {e}", path.display())));
                initrd = Some(path.display().to_string());
            }
            "--mem" => {
                mem = value("--mem")
                    .parse()
                    .unwrap_or_else(|_| usage("--mem takes MiB"))
            }
            "--vcpus" => {
                // Range-checked by the VMM, whose error names the limits.
                vcpus = value("--vcpus")
                    .parse()
                    .unwrap_or_else(|_| usage("--vcpus takes a count from 1 to 64"))
            }
            "--timeout-s" => {
                timeout = value("--timeout-s")
                    .parse()
                    .unwrap_or_else(|_| usage("--timeout-s takes seconds"))
            }
            "--append" => append.push(value("--append")),
            "--live" => live = true,
            "--quiet" => quiet = true,
            "--disk" => disk = Some(value("--disk")),
            "--disk-read-only" => disk_read_only = true,
            "--acpi" => {
                acpi = AcpiMode::parse(&value("--acpi"))
                    .unwrap_or_else(|| usage("--acpi takes auto, on or off"))
            }
            "--memory" => {
                memory = MemoryBacking::parse(&value("--memory"))
                    .unwrap_or_else(|| usage("--memory takes thp, hugetlbfs or small"))
            }
            "--no-channel" => channel = false,
            "--inject-fault" => {
                let spec = value("--inject-fault");
                fault = Some(
                    Fault::parse(&spec).unwrap_or_else(|| usage(&format!("unknown fault {spec}"))),
                );
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let Some(kernel) = kernel else {
        usage("--kernel is required")
    };
    let mut config = VmConfig::new(kernel, mem);
    config.initrd = initrd.map(Into::into);
    config.timeout = Duration::from_secs(timeout);
    config.vcpus = vcpus;
    config.extra_cmdline = append;
    config.live_console = live;
    config.quiet = quiet;
    config.acpi = acpi;
    config.memory = memory;
    config.channel = channel;
    config.fault = fault;
    if disk.is_none() && disk_read_only {
        usage("--disk-read-only needs --disk");
    }
    config.disk = disk.map(|path| DiskConfig {
        path: path.into(),
        read_only: disk_read_only,
    });
    let threads = || std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    match run(&config, origin) {
        Ok(report) => {
            // After teardown: the vCPU thread must be gone and guest RAM unmapped.
            let threads = threads();
            let rss_kib = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                })
                .unwrap_or(0);
            // Guest RAM must be unmapped too (hugetlbfs pages go back to the pool only then).
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
            let guest_ram_mapped = report.guest_ram_host_ranges.iter().any(|(addr, _)| {
                let start = format!("{addr:x}-");
                maps.lines().any(|l| l.starts_with(&start))
            });
            let mut value = report.to_json();
            value["after_teardown"] = serde_json::json!({
                "threads": threads,
                "rss_kib": rss_kib,
                "guest_ram_mapped": guest_ram_mapped,
            });
            let json = value.to_string();
            println!(
                "ISOLAB-VMM-REPORT:{}:{}",
                json.len(),
                URL_SAFE_NO_PAD.encode(json.as_bytes())
            );
        }
        Err(e) => {
            println!("ISOLAB-VMM-ERROR:{}", e.to_string().replace('\n', " "));
            println!("ISOLAB-VMM-THREADS:{}", threads());
            std::process::exit(2);
        }
    }
}
