//! `warden-loadtest`: see `warden_loadtest::cli`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    match warden_loadtest::cli::main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden-loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}
