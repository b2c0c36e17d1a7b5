//! isolab-agent: runs one workload and reports. All logic lives in [`workloads::agent`], so it is
//! unit-tested with the library.

fn main() {
    workloads::agent::main()
}
