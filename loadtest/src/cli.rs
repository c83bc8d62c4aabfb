//! The command line: `run` (one load run), `upstream` (the built-in upstream server),
//! `pingora-passthrough` (a bare Pingora proxy, the baseline) and `scenario` (a scenario file,
//! or its plan with `--dry-run`).

use crate::generator::target::{parse_header, Target, Tokens};
use crate::generator::{self, Length, Mode, RunConfig, Watched};
use crate::report::Report;
use crate::scenario::{self, describe, driver, runner};
use crate::status::ExpectStatus;
use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};
use http::header::HeaderName;
use http::Method;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_plugins::conf::Duration;

/// Warden's load-test harness.
#[derive(Debug, Parser)]
#[command(name = "warden-loadtest", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send load to a URL and report throughput, latency percentiles, errors and (with --pid)
    /// the CPU time and memory of the processes under test.
    Run(Box<RunArgs>),
    /// Serve `200 OK` to everything (HTTP/1.1 keep-alive and h2c) as fast as possible.
    Upstream(UpstreamArgs),
    /// A bare Pingora reverse proxy to one upstream: the baseline `compare.sh` measures Warden's
    /// own cost against.
    PingoraPassthrough(PassthroughArgs),
    /// A stub OpenID provider that signs every user in at once (for `sessions-fill`).
    OidcStub(OidcStubArgs),
    /// Logs many browser sessions in through Warden and a provider (`oidc-stub`), to measure
    /// Warden's memory with them live.
    SessionsFill(SessionsFillArgs),
    /// Run a scenario file, or print its plan with --dry-run.
    Scenario(ScenarioArgs),
    /// Write an ES256 key (created when absent), its JWKS, and signed bearer tokens.
    Tokens(TokensArgs),
}

#[derive(Debug, Args)]
pub struct TokensArgs {
    /// The signing key (PKCS#8 DER); for ES256 created when the file does not exist.
    #[arg(long)]
    pub key: PathBuf,
    /// `ES256` or `RS256`.
    #[arg(long, default_value = "ES256")]
    pub alg: String,
    /// Where to write the public JWKS.
    #[arg(long)]
    pub jwks: PathBuf,
    /// Where to write the tokens, one per line.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub issuer: String,
    #[arg(long, default_value = "warden")]
    pub audience: String,
    #[arg(long, default_value = "user-")]
    pub subject_prefix: String,
    /// Groups claim of every token (comma-separated).
    #[arg(long, default_value = "")]
    pub groups: String,
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Lifetime of each token.
    #[arg(long, default_value = "24h")]
    pub ttl: Duration,
    #[arg(long, default_value = "loadtest-1")]
    pub kid: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The URL to send to (http:// only).
    #[arg(long)]
    pub url: String,
    /// An extra request header, `Name: value` (repeatable; a Host here replaces the URL's).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Open loop: this many requests per second, latency measured from each request's intended
    /// send time.
    #[arg(
        long,
        conflicts_with = "closed_loop",
        required_unless_present = "closed_loop"
    )]
    pub rate: Option<f64>,
    /// Closed loop: every connection sends back to back, for maximum throughput.
    #[arg(long)]
    pub closed_loop: bool,
    /// Concurrent requests at most: HTTP/1.1 keep-alive connections, or HTTP/2 streams.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// How long the measured part lasts (`10s`, `1m`).
    #[arg(long, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Or how many requests it measures.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Sent before the measured part and left out of the figures.
    #[arg(long, default_value = "0s")]
    pub warmup: Duration,
    /// Speak HTTP/2 with prior knowledge (h2c).
    #[arg(long)]
    pub http2: bool,
    /// HTTP/2: TCP connections the streams are multiplexed over (default: one per thread).
    #[arg(long)]
    pub h2_connections: Option<usize>,
    /// Generator threads, each with its own single-threaded runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// A request not answered within this counts as a timeout.
    #[arg(long, default_value = "10s")]
    pub timeout: Duration,
    /// Statuses that count as success: codes and classes, comma-separated.
    #[arg(long, default_value = "2xx")]
    pub expect_status: ExpectStatus,
    /// One header value per line, used one per request in turn (distinct tokens or sessions).
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// The header the tokens file fills: `authorization` or `cookie`.
    #[arg(long, default_value = "authorization")]
    pub tokens_header: String,
    /// A process to measure (CPU time per request, RSS): `PID` or `NAME=PID` (repeatable).
    #[arg(long = "pid")]
    pub pids: Vec<String>,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Append a Markdown table row here (with the header when the file is new).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// A name for this run in the reports.
    #[arg(long)]
    pub label: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpstreamArgs {
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

#[derive(Debug, Args)]
pub struct PassthroughArgs {
    #[arg(long)]
    pub listen: SocketAddr,
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Worker threads (Warden's default is one per core).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

#[derive(Debug, Args)]
pub struct OidcStubArgs {
    #[arg(long)]
    pub listen: SocketAddr,
    /// The ES256 signing key (PKCS#8 DER), created when absent.
    #[arg(long)]
    pub key: PathBuf,
    #[arg(long, default_value = "warden")]
    pub client_id: String,
}

#[derive(Debug, Args)]
pub struct SessionsFillArgs {
    /// A URL on a login route (`auth: { login: … }`).
    #[arg(long)]
    pub start: String,
    /// Where the URL's host is served (Warden's listener).
    #[arg(long)]
    pub connect: SocketAddr,
    #[arg(long)]
    pub count: u64,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 32)]
    pub parallel: usize,
}

#[derive(Debug, Args)]
pub struct ScenarioArgs {
    pub file: PathBuf,
    /// Check the file and print the plan without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the phases' reports and the verdicts as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Append one Markdown row per measured phase here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Where started processes write their output (default: a temporary directory).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Every phase cut to a few seconds: checks the correctness assertions, not the speed.
    #[arg(long)]
    pub smoke: bool,
    /// Run the `measure: true` processes (the gateway) on these CPUs (`taskset` list, e.g.
    /// `1`); needs --load-cpus.
    #[arg(long, requires = "load_cpus")]
    pub target_cpus: Option<String>,
    /// Run the generator, the churn drivers and every other process on these CPUs (e.g. `0`);
    /// needs --target-cpus.
    #[arg(long, requires = "target_cpus")]
    pub load_cpus: Option<String>,
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Run(a) => run(&a),
        Command::Upstream(a) => upstream(&a),
        Command::PingoraPassthrough(a) => {
            crate::passthrough::run(a.listen, a.upstream, a.threads);
            Ok(ExitCode::SUCCESS)
        }
        Command::OidcStub(a) => {
            runtime(1)?.block_on(crate::sessions_fill::serve_stub(
                a.listen,
                &a.key,
                &a.client_id,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::SessionsFill(a) => {
            runtime(1)?.block_on(crate::sessions_fill::fill(
                &a.start, a.connect, a.count, a.parallel,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario(a) => scenario_cmd(&a),
        Command::Tokens(a) => tokens_cmd(&a),
    }
}

/// `NAME=PID` or `PID`.
fn parse_pid(s: &str) -> anyhow::Result<Watched> {
    let (name, pid) = match s.split_once('=') {
        Some((n, p)) => (Some(n.to_string()), p),
        None => (None, s),
    };
    let pid = pid
        .trim()
        .parse()
        .map_err(|_| anyhow!("--pid `{s}`: expected a process id or NAME=PID"))?;
    Ok(Watched { pid, name })
}

/// The generator settings `a` asks for.
pub fn run_config(a: &RunArgs) -> anyhow::Result<RunConfig> {
    let headers = a
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    let tokens = match &a.tokens_file {
        Some(f) => {
            let header = HeaderName::from_bytes(a.tokens_header.to_ascii_lowercase().as_bytes())
                .map_err(|_| {
                    anyhow!("--tokens-header `{}` is not a header name", a.tokens_header)
                })?;
            Some(Tokens::from_file(f, header)?)
        }
        None => None,
    };
    let method = Method::from_bytes(a.method.as_bytes())
        .map_err(|_| anyhow!("--method `{}` is not an HTTP method", a.method))?;
    let target = Target::new(&a.url, method, headers, tokens, a.http2)?;
    let mode = match (a.rate, a.closed_loop) {
        (Some(rate), false) => Mode::Open { rate },
        (None, true) => Mode::Closed,
        _ => bail!("give either --rate RPS or --closed-loop"),
    };
    let length = match (a.duration, a.requests) {
        (Some(d), None) => Length::Duration(d.get()),
        (None, Some(n)) => Length::Requests(n),
        (None, None) => Length::Duration(std::time::Duration::from_secs(10)),
        (Some(_), Some(_)) => bail!("give either --duration or --requests"),
    };
    Ok(RunConfig {
        target,
        mode,
        length,
        warmup: a.warmup.get(),
        connections: a.connections,
        h2_connections: a.h2_connections.unwrap_or(a.threads),
        threads: a.threads,
        timeout: a.timeout.get(),
        expect: a.expect_status.clone(),
        watch: a
            .pids
            .iter()
            .map(|p| parse_pid(p))
            .collect::<Result<_, _>>()?,
        label: a.label.clone(),
    })
}

fn run(a: &RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = run_config(a)?;
    let mut report = generator::run(&cfg)?;
    report.label = cfg.label.clone();
    print!("{}", report.human());
    write_outputs(&report, a.json.as_deref(), a.markdown.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(
    report: &Report,
    json: Option<&Path>,
    markdown: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(path) = json {
        std::fs::write(path, report.to_json() + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = markdown {
        report
            .append_markdown(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn upstream(a: &UpstreamArgs) -> anyhow::Result<ExitCode> {
    let up = crate::upstream::Upstream::start(a.listen, a.threads)
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    eprintln!(
        "warden-loadtest upstream listening on http://{} ({} thread(s))",
        up.addr, a.threads
    );
    up.wait();
    Ok(ExitCode::SUCCESS)
}

fn tokens_cmd(a: &TokensArgs) -> anyhow::Result<ExitCode> {
    let key = crate::tokens::SigningKey::load(&a.alg, &a.key)?;
    let spec = crate::tokens::TokenSpec {
        issuer: a.issuer.clone(),
        audience: a.audience.clone(),
        subject_prefix: a.subject_prefix.clone(),
        groups: a
            .groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect(),
        count: a.count,
        ttl_secs: i64::try_from(a.ttl.get().as_secs()).context("--ttl is too long")?,
        kid: a.kid.clone(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let tokens = crate::tokens::mint(&key, &spec, i64::try_from(now)?)?;
    let jwks = key.jwks(&a.kid);
    std::fs::write(&a.jwks, serde_json::to_string_pretty(&jwks)? + "\n")
        .with_context(|| format!("cannot write {}", a.jwks.display()))?;
    std::fs::write(&a.out, tokens).with_context(|| format!("cannot write {}", a.out.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn scenario_cmd(a: &ScenarioArgs) -> anyhow::Result<ExitCode> {
    let sc = match scenario::load(&a.file) {
        Ok(sc) => sc,
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", a.file.display(), errs.len());
            return Ok(ExitCode::from(1));
        }
    };
    let mut sc = sc;
    if a.smoke {
        sc.plan.smoke();
    }
    let registry = driver::Registry::builtin();
    if a.dry_run {
        print!("{}", describe::describe(&sc, &registry));
        return Ok(ExitCode::SUCCESS);
    }
    let missing = registry.missing(&sc.plan);
    if !missing.is_empty() {
        bail!(
            "cannot run {}: no driver yet for {}",
            a.file.display(),
            missing.join("; ")
        );
    }
    let log_dir = match &a.log_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("warden-loadtest-{}", std::process::id())),
    };
    let placement = match (&a.target_cpus, &a.load_cpus) {
        (Some(target), Some(load)) => {
            // Before any thread or process starts, so that all of them inherit the load CPUs.
            runner::pin(std::process::id(), load).map_err(|e| anyhow::anyhow!(e))?;
            Some(driver::Placement {
                target: target.clone(),
                load: load.clone(),
            })
        }
        _ => None,
    };
    let ctx = driver::RunContext {
        dir: sc.dir.clone(),
        log_dir,
        loadtest_bin: std::env::current_exe().context("cannot find this program's path")?,
        placement,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let outcome = rt.block_on(runner::run(&sc, &registry, &ctx))?;
    for p in &outcome.phases {
        print!("{}", p.report.human());
        for c in &p.churn {
            println!("  churn      {c}");
        }
        if !p.warmup {
            if let Some(path) = &a.markdown {
                p.report
                    .append_markdown(path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        println!();
    }
    print!("{}", outcome.table(&sc.plan.report));
    for v in &outcome.assertions {
        println!("assertion {}: {} {}", v.assertion, v.verdict, v.detail);
    }
    for e in &outcome.churn_errors {
        println!("churn error: {e}");
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&outcome)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let passed = outcome.passed();
    println!(
        "scenario {}: {}",
        outcome.scenario,
        if passed { "passed" } else { "FAILED" }
    );
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start a runtime")
}
