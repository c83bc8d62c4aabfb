//! The `warden` command.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "Identity-aware edge gateway for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with the conf file.
    Run {
        #[arg(short, long)]
        conf: PathBuf,
    },
    /// Validate a conf file: prints `ok`, or every error with file:line:column, and exits 1.
    Check {
        #[arg(short, long)]
        conf: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { conf } => {
            warden::logging::init();
            match warden::server::run(conf) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("warden: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { conf } => {
            let errs = warden::check::check(&conf);
            if errs.is_empty() {
                println!("ok");
                ExitCode::SUCCESS
            } else {
                for e in &errs {
                    println!("{e}");
                }
                println!("{} error(s)", errs.len());
                ExitCode::FAILURE
            }
        }
    }
}
