//! Runs a static binary as /init of a container N times and prints the timeline of each run and
//! the medians of start-to-ready and teardown: `run_once INIT [N] [MEMORY_MIB]`.
//! The init is given `ISOLAB_MARKER=fd:3` and our `ISOLAB_*` variables; anything it writes to fd 3
//! is a marker. `STATE_DIR` overrides the state directory, `PAUSE_MS` waits between runs and
//! `VERBOSE` prints every run's timeline.

use std::path::PathBuf;

use container_backend::{CgroupLimits, ContainerConfig, RunRequest, Runtime, MARKER_FD};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let init = PathBuf::from(args.next().ok_or("usage: run_once INIT [N] [MEMORY_MIB]")?);
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let mem: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(512);
    let mut cfg = ContainerConfig::new(init);
    if let Some(dir) = std::env::var_os("STATE_DIR") {
        cfg.state_dir = PathBuf::from(dir);
    }
    cfg.limits = CgroupLimits {
        memory_bytes: Some(mem << 20),
        cpus: Some(1.0),
        pids_max: Some(256),
    };
    let mut rt = Runtime::new(cfg)?;
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("ISOLAB_"))
        .chain([("ISOLAB_MARKER".to_owned(), format!("fd:{MARKER_FD}"))])
        .collect();
    let req = RunRequest {
        args: Vec::new(),
        env,
        netns: None,
    };
    let (mut ready, mut down) = (Vec::new(), Vec::new());
    let pause: u64 = std::env::var("PAUSE_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for i in 0..n {
        std::thread::sleep(std::time::Duration::from_millis(pause));
        let r = rt.run(&req)?;
        if i == 0 || n == 1 {
            for (p, t) in &r.timeline.phases {
                println!("{:>18} {:>9.3} ms", p.name(), *t as f64 / 1e6);
            }
            println!("markers {:?}", r.timeline.markers);
            println!(
                "exit {} killed {:?} oom {}",
                r.exit, r.killed, r.out_of_memory
            );
            println!("usage {:?}", r.usage);
            println!(
                "stdout {:?}",
                r.stdout.chars().take(2000).collect::<String>()
            );
            println!("stderr {:?}", r.stderr_tail);
        }
        if std::env::var_os("VERBOSE").is_some() {
            let line: Vec<String> = r
                .timeline
                .phases
                .iter()
                .map(|(p, t)| format!("{}={:.2}", p.name(), *t as f64 / 1e6))
                .collect();
            println!("{}", line.join(" "));
        }
        if let Some(t) = r.timeline.start_to_ready_ns() {
            ready.push(t as f64 / 1e6);
        }
        if let Some(t) = r.timeline.teardown_ns() {
            down.push(t as f64 / 1e6);
        }
    }
    println!(
        "runs {n}: start-to-ready median {:.3} ms, teardown median {:.3} ms",
        median(&mut ready),
        median(&mut down)
    );
    rt.cleanup()?;
    Ok(())
}
