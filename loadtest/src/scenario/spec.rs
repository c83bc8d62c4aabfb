//! The scenario file as written (`loadtest/scenarios/*.yaml`): plain serde types, strict about
//! unknown keys, checked afterwards by `validate.rs`.

use serde::Deserialize;
use std::collections::BTreeMap;
use warden_plugins::conf::{ConfPath, Duration};

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Started in order (each ready before the next starts), stopped in reverse.
    #[serde(default)]
    pub processes: Vec<ProcessSpec>,
    /// What every phase sends, unless the phase says otherwise.
    #[serde(default)]
    pub target: TargetSpec,
    /// Run one after another.
    pub phases: Vec<PhaseSpec>,
    /// Disturbances applied periodically while phases run.
    #[serde(default)]
    pub churn: Vec<ChurnSpec>,
    /// What must hold for the scenario to pass.
    #[serde(default)]
    pub assertions: Assertions,
    /// The figures of the closing table, in order; all of them when empty.
    #[serde(default)]
    pub report: Vec<Figure>,
}

/// Kinds of process a scenario can start; each has a driver in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessKind {
    /// The `warden` binary with `conf`.
    Warden,
    /// The built-in upstream (`warden-loadtest upstream`) on `listen`.
    Upstream,
    /// An OpenID provider for logins and token signing.
    Oidc,
    /// A Redis server for the shared session store.
    Redis,
    /// Any program: `command` is its path and arguments.
    Command,
}

impl ProcessKind {
    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            ProcessKind::Warden => "warden",
            ProcessKind::Upstream => "upstream",
            ProcessKind::Oidc => "oidc",
            ProcessKind::Redis => "redis",
            ProcessKind::Command => "command",
        }
    }
}

/// One process to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// Unique; churn actions and reports refer to it.
    pub name: String,
    pub kind: ProcessKind,
    /// Program and arguments: required for `command`; for other kinds, the program to run
    /// instead of the driver's default.
    #[serde(default)]
    pub command: Vec<String>,
    /// Extra arguments after the driver's own.
    #[serde(default)]
    pub args: Vec<String>,
    /// A conf file (required for `warden`), relative to the scenario file.
    #[serde(default)]
    pub conf: Option<ConfPath>,
    /// The address it listens on (required for `upstream`).
    #[serde(default)]
    pub listen: Option<String>,
    /// Worker threads, for kinds that take the setting.
    #[serde(default)]
    pub threads: Option<usize>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Ready once a GET of this URL answers 2xx (`upstream` defaults to `http://LISTEN/`).
    #[serde(default)]
    pub ready: Option<String>,
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: Duration,
    /// Include its CPU time and memory in the figures.
    #[serde(default)]
    pub measure: bool,
    /// `background`: the process runs only when a core would otherwise idle (Linux
    /// `SCHED_IDLE`, set with `chrt` once it is ready). For scaffolding that in production runs
    /// on other machines, such as the OpenID provider, so that on a small machine its bursts do
    /// not count as the gateway's latency.
    #[serde(default)]
    pub priority: Priority,
}

/// A started process's CPU scheduling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Normal,
    Background,
}

fn default_ready_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Where and what to send; phases inherit it field by field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    #[serde(default)]
    pub url: Option<String>,
    /// Added to every request (a phase's headers add to and override these).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub tokens: Option<TokensSpec>,
    #[serde(default)]
    pub http2: Option<bool>,
    /// Statuses that count as success: codes (`200`) or classes (`2xx`); default `[2xx]`.
    #[serde(default)]
    pub expect_status: Vec<String>,
    #[serde(default)]
    pub timeout: Option<Duration>,
}

/// Per-request credentials rotated from a file, one header value per line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensSpec {
    pub file: ConfPath,
    /// `authorization` (the default) or `cookie`.
    #[serde(default = "default_tokens_header")]
    pub header: String,
}

fn default_tokens_header() -> String {
    "authorization".into()
}

/// One load phase.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    pub name: String,
    /// Sent but left out of the figures and assertions.
    #[serde(default)]
    pub warmup: bool,
    /// How long it lasts; or `requests`.
    #[serde(default)]
    pub duration: Option<Duration>,
    #[serde(default)]
    pub requests: Option<u64>,
    /// Open loop at this many requests per second; or `closed_loop: true`.
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub closed_loop: bool,
    #[serde(default = "default_connections")]
    pub connections: usize,
    #[serde(default)]
    pub h2_connections: Option<usize>,
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Overrides of the scenario's `target`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub tokens: Option<TokensSpec>,
    #[serde(default)]
    pub http2: Option<bool>,
    #[serde(default)]
    pub expect_status: Vec<String>,
    #[serde(default)]
    pub timeout: Option<Duration>,
}

fn default_connections() -> usize {
    50
}

fn default_threads() -> usize {
    1
}

/// The fixed set of churn actions; each has a driver in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChurnAction {
    /// Revoke live sessions through Warden's admin API.
    RevokeSessions,
    /// Reload Warden with two conf files in turn.
    ReloadConfAlternating,
    /// Kill an upstream process and start it again.
    KillRestartUpstream,
    /// Rotate the identity provider's signing keys.
    RotateKeys,
    /// Log in new sessions and add them to the rotation.
    LoginNewSessions,
}

impl ChurnAction {
    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            ChurnAction::RevokeSessions => "revoke_sessions",
            ChurnAction::ReloadConfAlternating => "reload_conf_alternating",
            ChurnAction::KillRestartUpstream => "kill_restart_upstream",
            ChurnAction::RotateKeys => "rotate_keys",
            ChurnAction::LoginNewSessions => "login_new_sessions",
        }
    }
}

/// One periodic disturbance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnSpec {
    pub action: ChurnAction,
    /// The period between ticks; the first tick comes one period into a phase.
    pub every: Duration,
    /// Set by smoke mode: the first tick comes this soon, so that a short phase sees one.
    #[serde(skip)]
    pub first_after: Option<std::time::Duration>,
    /// The phases it runs in; default: every measured (non-warm-up) phase.
    #[serde(default)]
    pub phases: Vec<String>,
    /// The process it acts on, by name (required for `kill_restart_upstream`).
    #[serde(default)]
    pub process: Option<String>,
    /// Settings for the action's driver, which checks them.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// Correctness conditions. The generic ones (`max_5xx`, `max_errors`) are judged from the
/// figures; the others by the churn drivers that record what they did.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertions {
    /// At most this many 5xx responses over the measured phases.
    #[serde(default)]
    pub max_5xx: Option<u64>,
    /// At most this many failed requests (no response, or an unexpected status).
    #[serde(default)]
    pub max_errors: Option<u64>,
    /// No request carrying a revoked session succeeds after the revocation returned.
    #[serde(default)]
    pub no_success_after_revoke: bool,
    /// Every allow/deny matches the policy in force when the request was sent.
    #[serde(default)]
    pub decisions_follow_policy: bool,
    /// After each disruption, responses are back to expected within this long.
    #[serde(default)]
    pub recovery_within: Option<Duration>,
    /// No valid credential is ever answered 401.
    #[serde(default)]
    pub no_false_401: bool,
}

/// Figures the closing table can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    Rps,
    P50,
    P90,
    P99,
    P999,
    Max,
    Mean,
    Errors,
    Status,
    Late,
    CpuPerRequest,
    Rss,
    Hwm,
}

impl Figure {
    /// Every figure, in the default order.
    pub const ALL: [Figure; 13] = [
        Figure::Rps,
        Figure::P50,
        Figure::P90,
        Figure::P99,
        Figure::P999,
        Figure::Max,
        Figure::Mean,
        Figure::Errors,
        Figure::Status,
        Figure::Late,
        Figure::CpuPerRequest,
        Figure::Rss,
        Figure::Hwm,
    ];

    /// The name used in scenario files and table headers.
    pub fn name(self) -> &'static str {
        match self {
            Figure::Rps => "rps",
            Figure::P50 => "p50",
            Figure::P90 => "p90",
            Figure::P99 => "p99",
            Figure::P999 => "p999",
            Figure::Max => "max",
            Figure::Mean => "mean",
            Figure::Errors => "errors",
            Figure::Status => "status",
            Figure::Late => "late",
            Figure::CpuPerRequest => "cpu_per_request",
            Figure::Rss => "rss",
            Figure::Hwm => "hwm",
        }
    }
}
