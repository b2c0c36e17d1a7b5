//! One VM, one process: the VMM runs in `isolab-vmm`, a small static binary the host starts
//! per VM, as Firecracker runs one process per microVM. A VM's memory (the process's
//! proportional set size, guest RAM apart from the VMM's own), its confinement (a seccomp filter
//! per thread, a jail) and its cleanup are then those of one process, and a VMM that crashes,
//! hangs or is killed by its filter takes nothing else with it.
//!
//! - [`protocol`]: what the host and the VMM process say (JSON lines over a socketpair);
//! - [`client`]: the host's side: start the process (namespaces, cgroup, parent-death
//!   signal), talk to it, watch it, kill and reap it;
//! - [`server`]: the VMM process's `main`;
//! - [`jail`]: the jail the process enters itself;
//! - [`wire`]: how the report's names cross the pipe.
//!
//! Why a separate binary rather than `isolab` re-executed in a hidden mode: the VMM process
//! maps only the VMM's code (a few MiB of static binary instead of the harness's tens, with its
//! plotting, book and statistics), so its own memory, the figure density runs add up per VM,
//! holds only what a VMM needs, and a jailed VMM carries no harness code into its jail.

pub mod client;
pub mod jail;
pub mod protocol;
pub mod server;
pub mod wire;
