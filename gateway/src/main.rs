//! The `warden` command.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

// Per-request allocations (headers, log lines, futures) dominate allocator use; mimalloc's
// thread-local free lists cost a fraction of glibc malloc's under two busy worker threads.
#[global_allocator]
static ALLOC: warden::allocator::MiMalloc = warden::allocator::MiMalloc;

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
    /// Explain the decision on one request: the route, the identity, the decision, the deciding
    /// rule and the evaluation trace. Exit code 0: allowed; 2: refused (denied or no route);
    /// 1: the conf, the arguments or the identity could not be read.
    Explain {
        #[arg(short, long)]
        conf: PathBuf,
        #[arg(long, default_value = "GET")]
        method: String,
        /// The request's URL, e.g. https://app.example.com/admin/users
        #[arg(long)]
        url: String,
        /// A JSON file of the caller's claims (as a verified token would carry them).
        #[arg(long, conflicts_with = "token")]
        claims: Option<PathBuf>,
        /// The caller's JWT (verified only when its issuer has a `jwks_file`).
        #[arg(long)]
        token: Option<String>,
        /// The client address source_ip rules see.
        #[arg(long, default_value = "127.0.0.1")]
        client_ip: std::net::IpAddr,
        /// A PEM file: the client certificate presented over mutual TLS, for
        /// `client_certificate` rules (its chain is not verified here).
        #[arg(long)]
        client_cert: Option<PathBuf>,
        /// Decide at this RFC 3339 time instead of now (time-bounded rules).
        #[arg(long)]
        at: Option<jiff::Timestamp>,
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
    warden::allocator::tune();
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
        Command::Explain {
            conf,
            method,
            url,
            claims,
            token,
            client_ip,
            client_cert,
            at,
        } => {
            let caller = match (claims, token) {
                (Some(c), _) => warden::explain::Caller::Claims(c),
                (None, Some(t)) => warden::explain::Caller::Token(t),
                (None, None) => warden::explain::Caller::Anonymous,
            };
            let req = warden::explain::Request {
                conf,
                method,
                url,
                caller,
                client_ip,
                client_cert,
                at: at.unwrap_or_else(jiff::Timestamp::now).as_second(),
            };
            match warden::explain::explain(&req) {
                Ok(o) => {
                    print!("{}", o.text);
                    ExitCode::from(if o.allowed { 0 } else { 2 })
                }
                Err(e) => {
                    eprintln!("warden explain: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::MigrateIngress { files, output } => {
            warden::migrate::cli(&files, output.as_deref())
        }
    }
}
