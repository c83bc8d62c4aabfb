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
    /// Translate Kubernetes Ingress manifests (ingress-nginx) into a Warden conf: the conf on
    /// stdout (or in --output), a report of what did not carry over on stderr.
    MigrateIngress {
        /// Manifest files (several YAML documents each); `-` reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(short, long)]
        output: Option<PathBuf>,
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
        Command::MigrateIngress { files, output } => {
            warden::migrate::cli(&files, output.as_deref())
        }
    }
}
