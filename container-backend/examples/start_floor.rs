//! The container's start against its floor, side by side in one run, with the same end point as
//! isolab's start figure (`host.start_to_ready`): from the start of the start (before the cgroup
//! is made) to the agent's first instruction, by the agent's own clock (the host's
//! CLOCK_MONOTONIC: no time namespace), for the `noop` workload.
//!
//! - `floor`: one clone3 with the container's namespaces into a fresh cgroup below a run
//!   cgroup, mounts made private, exec of the agent ([`container_backend::floor`]);
//! - `container`: isolab's container with Docker's seccomp profile (the default), and without a
//!   filter (`container-seccomp-off`), its cgroup with the sandbox's limits below the same run
//!   cgroup;
//! - `native`: the agent as a plain process (clone + exec, no namespaces) in one cgroup.
//!
//! Rounds interleave the four in a shuffled order so the host's drift hits all alike. Prints
//! the median with its 95% interval (order statistics) per kind and the ratio of each median to
//! the floor's with a bootstrap interval.
//!
//!   sudo target/.../examples/start_floor [REPS]      (as start-references.sh runs it)

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use container_backend::floor::Floor;
use container_backend::{
    CgroupLimits, CgroupSettings, ContainerConfig, Phase, RunCgroup, RunRequest, Runtime,
    SeccompProfile, MARKER_FD,
};
use workloads::protocol::{encode_spec, parse_framed_result, MARKER_ENV, SPEC_ENV};
use workloads::{Workload, WorkloadSpec};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn env() -> Result<Vec<(String, String)>> {
    Ok(vec![
        (
            SPEC_ENV.to_owned(),
            encode_spec(&WorkloadSpec::new(Workload::Noop))?,
        ),
        (MARKER_ENV.to_owned(), format!("fd:{MARKER_FD}")),
    ])
}

fn runtime(
    agent: &Path,
    state: &Path,
    run: &RunCgroup,
    seccomp: SeccompProfile,
) -> Result<Runtime> {
    let mut c = ContainerConfig::new(agent.to_path_buf());
    c.state_dir = state.to_path_buf();
    c.cgroups = run.settings();
    c.seccomp = seccomp;
    // The sizes of the harness's default sandbox.
    c.limits = CgroupLimits {
        memory_bytes: Some(512 << 20),
        cpus: Some(1.0),
        pids_max: Some(256),
    };
    Ok(Runtime::new(c)?)
}

/// The container phases `--phases` prints, in the order of a start.
const PHASES: [Phase; 7] = [
    Phase::CgroupCreated,
    Phase::CloneReturned,
    Phase::ChildStarted,
    Phase::NamespacesReady,
    Phase::CgroupJoined,
    Phase::RootPivoted,
    Phase::Exec,
];

/// Start to the agent's first instruction of one container, ms, and when each of [`PHASES`]
/// happened (ms since the start; NaN if it did not).
fn container_once(rt: &Runtime, req: &RunRequest) -> Result<(f64, [f64; PHASES.len()])> {
    let r = rt.run(req)?;
    let result = parse_framed_result(&r.stdout)?;
    let at = result
        .clock
        .agent_start_ns
        .saturating_sub(r.timeline.start_monotonic_ns);
    let phases = PHASES.map(|p| r.timeline.at(p).map_or(f64::NAN, |t| t as f64 / 1e6));
    Ok((at as f64 / 1e6, phases))
}

/// The same for a floor (or plain) process.
fn floor_once(floor: &Floor) -> Result<f64> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let child = floor.start(Some(w), None)?;
    let started = child.started_ns;
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out)?;
    child.finish()?;
    let result = parse_framed_result(&out)?;
    Ok(result.clock.agent_start_ns.saturating_sub(started) as f64 / 1e6)
}

/// SplitMix64, for the shuffle and the bootstrap.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The 95% order-statistic interval of the median (normal approximation of the binomial rank).
fn median_ci(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let half = 1.96 * n.sqrt() / 2.0;
    let lo = ((n / 2.0 - half).floor() as usize).min(s.len() - 1);
    let hi = ((n / 2.0 + half).ceil() as usize).min(s.len() - 1);
    (s[lo], s[hi])
}

/// median(a) / median(b) with a percentile-bootstrap 95% interval.
fn ratio_ci(a: &[f64], b: &[f64], rng: &mut Rng) -> (f64, f64, f64) {
    let mut rs: Vec<f64> = (0..2000)
        .map(|_| {
            let ra: Vec<f64> = (0..a.len()).map(|_| a[rng.below(a.len())]).collect();
            let rb: Vec<f64> = (0..b.len()).map(|_| b[rng.below(b.len())]).collect();
            median(&ra) / median(&rb)
        })
        .collect();
    rs.sort_by(f64::total_cmp);
    (median(a) / median(b), rs[50], rs[1949])
}

/// `--phases`: the median time of each container phase since the start, and the agent's first
/// instruction, per container kind (phases are medians each on their own, so they need not add
/// up).
fn print_phases(phase_times: &[Vec<[f64; PHASES.len()]>; 2], times: &[Vec<f64>; 4]) {
    println!(
        "container phases, median ms since the start (n = {}):",
        times[1].len()
    );
    print!("  {:<22}", "");
    for p in PHASES {
        print!(" {:>16}", p.name());
    }
    println!(" {:>16}", "agent_start");
    for (slot, name) in [(0, "container"), (1, "container-seccomp-off")] {
        print!("  {name:<22}");
        for i in 0..PHASES.len() {
            let v: Vec<f64> = phase_times[slot]
                .iter()
                .map(|p| p[i])
                .filter(|t| !t.is_nan())
                .collect();
            if v.is_empty() {
                print!(" {:>16}", "-");
            } else {
                print!(" {:>16.3}", median(&v));
            }
        }
        println!(" {:>16.3}", median(&times[slot + 1]));
    }
}

fn main() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err("run as root: namespaces and cgroups need it".into());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let phases_wanted = args.iter().any(|a| a == "--phases");
    let reps: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let agent = workloads::locate::locate_agent(None)?;
    let name = format!("isolab-run-startfloor-{}", std::process::id());
    let run = Arc::new(RunCgroup::create(&name, &CgroupSettings::default())?);
    let state = std::env::temp_dir().join(format!("isolab-startfloor-{}", std::process::id()));
    std::fs::create_dir_all(&state)?;
    let result = (|| -> Result<()> {
        let env = env()?;
        let req = RunRequest {
            args: Vec::new(),
            env: env.clone(),
            netns: None,
        };
        let docker = runtime(&agent, &state, &run, SeccompProfile::Docker)?;
        let off = runtime(&agent, &state, &run, SeccompProfile::Off)?;
        let floor = Floor::new(&agent, &env, Some(run.clone()))?;
        let plain_cg = Arc::new(run.create_sibling("native-startfloor")?);
        let plain = Floor::plain(&agent, &env, Some(plain_cg.clone()))?;
        const KINDS: [&str; 4] = ["floor", "container", "container-seccomp-off", "native"];
        let mut times: [Vec<f64>; 4] = Default::default();
        // Per container kind (with and without seccomp): each phase's times, ms since the start.
        let mut phase_times: [Vec<[f64; PHASES.len()]>; 2] = Default::default();
        let mut rng = Rng(0x5eed);
        // Warm-up: page cache, first cgroups.
        for _ in 0..5 {
            floor_once(&floor)?;
            container_once(&docker, &req)?;
            container_once(&off, &req)?;
            floor_once(&plain)?;
        }
        let mut container = |rt: &Runtime, slot: usize| -> Result<f64> {
            let (t, p) = container_once(rt, &req)?;
            phase_times[slot].push(p);
            Ok(t)
        };
        for _ in 0..reps {
            let mut order = [0usize, 1, 2, 3];
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            for k in order {
                let t = match k {
                    0 => floor_once(&floor)?,
                    1 => container(&docker, 0)?,
                    2 => container(&off, 1)?,
                    _ => floor_once(&plain)?,
                };
                times[k].push(t);
            }
        }
        println!(
            "start to the agent's first instruction (its own clock), noop, n = {reps} each, \
             interleaved:"
        );
        for (k, name) in KINDS.iter().enumerate() {
            let (lo, hi) = median_ci(&times[k]);
            let (r, rlo, rhi) = ratio_ci(&times[k], &times[0], &mut rng);
            println!(
                "  {name:<22} {:>7.3} ms [95% CI {lo:.3}, {hi:.3}]   {r:.2}x the floor [{rlo:.2}, {rhi:.2}]",
                median(&times[k])
            );
        }
        if phases_wanted {
            print_phases(&phase_times, &times);
        }
        if let Ok(path) = std::env::var("ISOLAB_PHASES_CSV") {
            let mut csv = String::from("kind,total");
            for p in PHASES {
                csv.push(',');
                csv.push_str(p.name());
            }
            csv.push('\n');
            for (slot, name) in [(0, "container"), (1, "container-seccomp-off")] {
                for (t, p) in times[slot + 1].iter().zip(&phase_times[slot]) {
                    csv.push_str(&format!("{name},{t}"));
                    for v in p {
                        csv.push_str(&format!(",{v}"));
                    }
                    csv.push('\n');
                }
            }
            std::fs::write(path, csv)?;
        }
        drop(plain);
        plain_cg.remove()?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&state);
    run.remove()?;
    result
}
