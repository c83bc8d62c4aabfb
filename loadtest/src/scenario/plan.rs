//! Checking a scenario file and resolving it into a plan: phases with their target settings
//! merged and parsed, every problem reported with its field path.

use super::spec::{
    Assertions, ChurnAction, ChurnSpec, Figure, PhaseSpec, ProcessKind, ProcessSpec, ScenarioFile,
    TokensSpec,
};
use crate::generator::target::{Target, TargetError, Tokens};
use crate::generator::{Length, Mode, RunConfig, Watched};
use crate::status::ExpectStatus;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use http::{Method, Uri};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use warden_plugins::conf::FieldError;

/// The request timeout when neither the target nor the phase sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A checked scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub description: String,
    pub processes: Vec<ProcessSpec>,
    pub phases: Vec<PhasePlan>,
    pub churn: Vec<ChurnSpec>,
    pub assertions: Assertions,
    pub report: Vec<Figure>,
}

/// How long a phase lasts at most in smoke mode (warm-up phases: a quarter of it).
pub const SMOKE_PHASE: Duration = Duration::from_secs(2);
/// How many requests a request-counted phase sends at most in smoke mode.
pub const SMOKE_REQUESTS: u64 = 2_000;

impl Plan {
    /// Cuts every phase short, for CI: the correctness assertions still apply, figures mean
    /// nothing.
    pub fn smoke(&mut self) {
        for p in &mut self.phases {
            let cap = if p.warmup {
                SMOKE_PHASE / 4
            } else {
                SMOKE_PHASE
            };
            p.length = match p.length {
                Length::Duration(d) => Length::Duration(d.min(cap)),
                Length::Requests(n) => Length::Requests(n.min(SMOKE_REQUESTS)),
            };
        }
        // Later ticks keep their period: some disruptions (an unknown-key refetch, say) are
        // rate limited in Warden, and ticking faster than real life would test that instead.
        for c in &mut self.churn {
            c.first_after = Some(c.every.get().min(SMOKE_PHASE / 3));
        }
    }
}

/// One phase with everything it inherits resolved.
#[derive(Debug, Clone)]
pub struct PhasePlan {
    pub name: String,
    pub warmup: bool,
    pub mode: Mode,
    pub length: Length,
    pub connections: usize,
    pub h2_connections: usize,
    pub threads: usize,
    pub url: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub tokens: Option<(PathBuf, HeaderName)>,
    pub http2: bool,
    pub expect: ExpectStatus,
    pub timeout: Duration,
}

impl PhasePlan {
    /// The generator settings for this phase, watching `watch`; reads the tokens file.
    pub fn run_config(&self, watch: Vec<Watched>, label: String) -> Result<RunConfig, TargetError> {
        let tokens = match &self.tokens {
            Some((file, header)) => Some(Tokens::from_file(file, header.clone())?),
            None => None,
        };
        let target = Target::new(
            &self.url,
            Method::GET,
            self.headers.clone(),
            tokens,
            self.http2,
        )?;
        Ok(RunConfig {
            target,
            mode: self.mode,
            length: self.length,
            warmup: Duration::ZERO,
            connections: self.connections,
            h2_connections: self.h2_connections,
            threads: self.threads,
            timeout: self.timeout,
            expect: self.expect.clone(),
            watch,
            label: Some(label),
        })
    }
}

/// Checks `file` and resolves it; on failure, every problem found.
pub fn resolve(file: ScenarioFile) -> Result<Plan, Vec<FieldError>> {
    let mut errs = Vec::new();
    if file.name.trim().is_empty() {
        errs.push(FieldError::new("name", "the scenario needs a name"));
    }
    check_processes(&file.processes, &mut errs);
    let phases: Vec<PhasePlan> = file
        .phases
        .iter()
        .enumerate()
        .filter_map(|(i, p)| resolve_phase(&file, p, &format!("phases[{i}]"), &mut errs))
        .collect();
    if file.phases.is_empty() {
        errs.push(FieldError::new(
            "phases",
            "a scenario needs at least one phase",
        ));
    } else if file.phases.iter().all(|p| p.warmup) {
        errs.push(FieldError::new(
            "phases",
            "every phase is a warm-up: at least one must be measured",
        ));
    }
    unique(
        file.phases.iter().map(|p| p.name.as_str()),
        "phases",
        "phase",
        &mut errs,
    );
    check_churn(&file, &mut errs);
    check_assertions(&file, &mut errs);
    let report = if file.report.is_empty() {
        Figure::ALL.to_vec()
    } else {
        file.report.clone()
    };
    if errs.is_empty() {
        Ok(Plan {
            name: file.name,
            description: file.description,
            processes: file.processes,
            phases,
            churn: file.churn,
            assertions: file.assertions,
            report,
        })
    } else {
        Err(errs)
    }
}

fn unique<'a>(
    names: impl Iterator<Item = &'a str>,
    list: &str,
    what: &str,
    errs: &mut Vec<FieldError>,
) {
    let mut seen = BTreeSet::new();
    for (i, n) in names.enumerate() {
        if n.trim().is_empty() {
            errs.push(FieldError::new(
                format!("{list}[{i}].name"),
                format!("a {what} needs a name"),
            ));
        } else if !seen.insert(n) {
            errs.push(FieldError::new(
                format!("{list}[{i}].name"),
                format!("another {what} is already named `{n}`; names must be unique"),
            ));
        }
    }
}

fn check_processes(procs: &[ProcessSpec], errs: &mut Vec<FieldError>) {
    unique(
        procs.iter().map(|p| p.name.as_str()),
        "processes",
        "process",
        errs,
    );
    for (i, p) in procs.iter().enumerate() {
        let at = |f: &str| format!("processes[{i}].{f}");
        match p.kind {
            ProcessKind::Command if p.command.is_empty() => errs.push(FieldError::new(
                at("command"),
                "a `command` process needs `command: [program, args...]`",
            )),
            ProcessKind::Warden if p.conf.is_none() => errs.push(FieldError::new(
                at("conf"),
                "a `warden` process needs `conf: FILE` (relative to the scenario file)",
            )),
            ProcessKind::Upstream if p.listen.is_none() => errs.push(FieldError::new(
                at("listen"),
                "an `upstream` process needs `listen: 127.0.0.1:PORT`",
            )),
            _ => {}
        }
        if p.command.first().is_some_and(|c| c.trim().is_empty()) {
            errs.push(FieldError::new(
                at("command[0]"),
                "the program cannot be empty",
            ));
        }
        if let Some(l) = &p.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                errs.push(FieldError::new(
                    at("listen"),
                    format!("`{l}` is not an address like 127.0.0.1:8080"),
                ));
            }
        }
        if let Some(u) = &p.ready {
            if let Err(m) = check_url(u) {
                errs.push(FieldError::new(at("ready"), m));
            }
        }
        if p.threads == Some(0) {
            errs.push(FieldError::new(at("threads"), "must be at least 1"));
        }
        if p.ready_timeout.get().is_zero() {
            errs.push(FieldError::new(
                at("ready_timeout"),
                "must be longer than zero",
            ));
        }
    }
}

/// An http:// URL with a host, or why not.
fn check_url(url: &str) -> Result<(), String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("`{url}` is not a URL like http://127.0.0.1:8080/path"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(()),
        (Some(s), Some(_)) if s != "http" => Err(format!(
            "`{url}`: only http:// is supported (the generator does not speak TLS)"
        )),
        _ => Err(format!(
            "`{url}` is not a URL like http://127.0.0.1:8080/path"
        )),
    }
}

fn resolve_phase(
    file: &ScenarioFile,
    p: &PhaseSpec,
    at: &str,
    errs: &mut Vec<FieldError>,
) -> Option<PhasePlan> {
    let before = errs.len();
    let t = &file.target;
    let field = |f: &str| format!("{at}.{f}");
    let mode = match (p.rate, p.closed_loop) {
        (Some(r), false) if r.is_finite() && r > 0.0 => Some(Mode::Open { rate: r }),
        (Some(_), false) => {
            errs.push(FieldError::new(
                field("rate"),
                "must be a positive number of requests per second",
            ));
            None
        }
        (Some(_), true) => {
            errs.push(FieldError::new(
                field("rate"),
                "give either `rate` (open loop) or `closed_loop: true`, not both",
            ));
            None
        }
        (None, true) => Some(Mode::Closed),
        (None, false) => {
            errs.push(FieldError::new(
                at,
                "needs `rate: RPS` (open loop) or `closed_loop: true`",
            ));
            None
        }
    };
    let length = match (p.duration, p.requests) {
        (Some(d), None) if !d.get().is_zero() => Some(Length::Duration(d.get())),
        (None, Some(n)) if n > 0 => Some(Length::Requests(n)),
        (Some(_), None) => {
            errs.push(FieldError::new(
                field("duration"),
                "must be longer than zero",
            ));
            None
        }
        (None, Some(_)) => {
            errs.push(FieldError::new(field("requests"), "must be at least 1"));
            None
        }
        (Some(_), Some(_)) => {
            errs.push(FieldError::new(
                field("requests"),
                "give either `duration` or `requests`, not both",
            ));
            None
        }
        (None, None) => {
            errs.push(FieldError::new(
                at,
                "needs `duration: 10s` or `requests: N`",
            ));
            None
        }
    };
    if p.connections == 0 {
        errs.push(FieldError::new(field("connections"), "must be at least 1"));
    }
    if p.threads == 0 {
        errs.push(FieldError::new(field("threads"), "must be at least 1"));
    }
    if p.h2_connections == Some(0) {
        errs.push(FieldError::new(
            field("h2_connections"),
            "must be at least 1",
        ));
    }
    let url = match p.url.as_ref().or(t.url.as_ref()) {
        Some(u) => {
            let path = if p.url.is_some() {
                field("url")
            } else {
                "target.url".into()
            };
            if let Err(m) = check_url(u) {
                errs.push(FieldError::new(path, m));
            }
            u.clone()
        }
        None => {
            errs.push(FieldError::new(
                at,
                "no URL: set `target.url` or this phase's `url`",
            ));
            String::new()
        }
    };
    // The phase's headers add to and override the target's (case-insensitively).
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for (section, map) in [
        ("target.headers".to_string(), &t.headers),
        (field("headers"), &p.headers),
    ] {
        for (k, v) in map {
            let path = format!("{section}.{k}");
            match (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.retain(|(n, _)| *n != name);
                    headers.push((name, value));
                }
                (Err(_), _) => {
                    errs.push(FieldError::new(path, format!("`{k}` is not a header name")))
                }
                (_, Err(_)) => errs.push(FieldError::new(path, "not a valid header value")),
            }
        }
    }
    let tokens = match (&p.tokens, &t.tokens) {
        (Some(spec), _) => resolve_tokens(spec, &field("tokens"), errs),
        (None, Some(spec)) => resolve_tokens(spec, "target.tokens", errs),
        (None, None) => None,
    };
    let (status_list, status_at) = if p.expect_status.is_empty() {
        (&t.expect_status, "target.expect_status".to_string())
    } else {
        (&p.expect_status, field("expect_status"))
    };
    let expect = if status_list.is_empty() {
        ExpectStatus::default()
    } else {
        match status_list.join(",").parse::<ExpectStatus>() {
            Ok(e) => e,
            Err(e) => {
                errs.push(FieldError::new(status_at, e.to_string()));
                ExpectStatus::default()
            }
        }
    };
    let timeout = p.timeout.or(t.timeout).map_or(DEFAULT_TIMEOUT, |d| d.get());
    if timeout.is_zero() {
        errs.push(FieldError::new(
            field("timeout"),
            "must be longer than zero",
        ));
    }
    let http2 = p.http2.or(t.http2).unwrap_or(false);
    if errs.len() > before {
        return None;
    }
    Some(PhasePlan {
        name: p.name.clone(),
        warmup: p.warmup,
        mode: mode?,
        length: length?,
        connections: p.connections,
        h2_connections: p.h2_connections.unwrap_or(p.threads),
        threads: p.threads,
        url,
        headers,
        tokens,
        http2,
        expect,
        timeout,
    })
}

/// The tokens file need not exist yet (a process started earlier may write it); it is read
/// when its phase starts.
fn resolve_tokens(
    spec: &TokensSpec,
    at: &str,
    errs: &mut Vec<FieldError>,
) -> Option<(PathBuf, HeaderName)> {
    let header = match spec.header.to_ascii_lowercase().as_str() {
        "authorization" => AUTHORIZATION,
        "cookie" => COOKIE,
        _ => {
            errs.push(FieldError::new(
                format!("{at}.header"),
                format!(
                    "`{}`: tokens go in `authorization` or `cookie`",
                    spec.header
                ),
            ));
            return None;
        }
    };
    Some((spec.file.path().to_path_buf(), header))
}

fn check_churn(file: &ScenarioFile, errs: &mut Vec<FieldError>) {
    let phases: BTreeSet<&str> = file.phases.iter().map(|p| p.name.as_str()).collect();
    let procs: BTreeSet<&str> = file.processes.iter().map(|p| p.name.as_str()).collect();
    for (i, c) in file.churn.iter().enumerate() {
        let at = |f: &str| format!("churn[{i}].{f}");
        if c.every.get().is_zero() {
            errs.push(FieldError::new(
                at("every"),
                "the period must be longer than zero",
            ));
        }
        for (j, p) in c.phases.iter().enumerate() {
            if !phases.contains(p.as_str()) {
                errs.push(FieldError::new(
                    at(&format!("phases[{j}]")),
                    format!("no phase is named `{p}`"),
                ));
            }
        }
        match &c.process {
            Some(p) if !procs.contains(p.as_str()) => errs.push(FieldError::new(
                at("process"),
                format!("no process is named `{p}`"),
            )),
            None if c.action == ChurnAction::KillRestartUpstream => errs.push(FieldError::new(
                format!("churn[{i}]"),
                "`kill_restart_upstream` needs `process: NAME` of the upstream to kill",
            )),
            _ => {}
        }
    }
}

fn check_assertions(file: &ScenarioFile, errs: &mut Vec<FieldError>) {
    let a = &file.assertions;
    let has = |action: ChurnAction| file.churn.iter().any(|c| c.action == action);
    if a.no_success_after_revoke && !has(ChurnAction::RevokeSessions) {
        errs.push(FieldError::new(
            "assertions.no_success_after_revoke",
            "needs a `revoke_sessions` churn action: nothing is revoked otherwise",
        ));
    }
    let disrupts = [
        ChurnAction::KillRestartUpstream,
        ChurnAction::ReloadConfAlternating,
        ChurnAction::RotateKeys,
    ];
    if a.recovery_within.is_some() && !disrupts.iter().any(|d| has(*d)) {
        errs.push(FieldError::new(
            "assertions.recovery_within",
            "needs a disruption to recover from: `kill_restart_upstream`, `reload_conf_alternating` or `rotate_keys`",
        ));
    }
    if a.recovery_within.is_some_and(|d| d.get().is_zero()) {
        errs.push(FieldError::new(
            "assertions.recovery_within",
            "must be longer than zero",
        ));
    }
    let credentials = file.target.tokens.is_some()
        || file.phases.iter().any(|p| p.tokens.is_some())
        || has(ChurnAction::LoginNewSessions);
    if a.no_false_401 && !credentials {
        errs.push(FieldError::new(
            "assertions.no_false_401",
            "needs credentials: `tokens` on the target or a phase, or `login_new_sessions`",
        ));
    }
}
