//! isolab's workloads: the kernels that measure, the protocol between the harness and the agent,
//! and (in `src/bin/isolab-agent.rs`) the static agent binary that runs one workload and reports.
//!
//! The same agent binary runs as a plain process, as PID 1 of a container and as `/init` of a
//! microVM. Everything the harness and the agent must agree on lives here, so they cannot drift:
//! [`spec::WorkloadSpec`] (what to run), [`result::WorkloadResult`] (what came out), and
//! [`protocol`] (how both travel: base64url JSON in, one framed line out, start/progress markers).

pub mod agent;
pub mod kernels;
pub mod locate;
pub mod protocol;
pub mod result;
pub mod spec;

pub use result::{Better, Metric, WorkloadResult};
pub use spec::{Workload, WorkloadSpec, PROTOCOL_VERSION};
