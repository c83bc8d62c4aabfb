//! `warden-loadtest`: see `warden_loadtest::cli`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

// Warden's allocator and its settings, so that the bare Pingora passthrough
// (`pingora-passthrough`) differs from Warden only in what the proxy does, and the generator
// costs the same in every comparison.
#[global_allocator]
static ALLOC: warden::allocator::MiMalloc = warden::allocator::MiMalloc;

fn main() -> ExitCode {
    warden::allocator::tune();
    match warden_loadtest::cli::main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden-loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}
