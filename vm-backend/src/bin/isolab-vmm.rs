//! `isolab-vmm`: one VM in a process of its own, started by isolab (see
//! `vm_backend::process`). It reads its request from the socket on fd 3 and does nothing without
//! one.

fn main() {
    vm_backend::process::server::main()
}
