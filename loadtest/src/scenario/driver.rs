//! Drivers: how a scenario starts a kind of process and how it performs a churn action. The
//! runner only knows these traits; a [`Registry`] maps each `kind:` and `action:` to a factory.
//! The harness registers `command`, `upstream` and `warden`; the OpenID provider, Redis and the
//! churn actions are registered by whoever provides them.

use super::plan::Plan;
use super::spec::{Assertions, ChurnAction, ChurnSpec, ProcessKind, ProcessSpec};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// A driver failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("no driver for process kind `{0}` is registered")]
    NoProcessDriver(&'static str),
    #[error("no driver for churn action `{0}` is registered")]
    NoChurnDriver(&'static str),
    #[error("{name}: {message}")]
    Failed { name: String, message: String },
}

impl DriverError {
    /// A failure of the process or action called `name`.
    pub fn failed(name: impl Into<String>, message: impl Into<String>) -> Self {
        DriverError::Failed {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// What every driver may use.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The scenario file's directory; processes start in it.
    pub dir: PathBuf,
    /// Where processes write their output (`NAME.log`).
    pub log_dir: PathBuf,
    /// The `warden-loadtest` binary, for drivers that run its subcommands (`upstream`).
    pub loadtest_bin: PathBuf,
    /// Which CPUs the measured processes, and everything else, run on (none: anywhere).
    pub placement: Option<Placement>,
}

/// CPU lists in `taskset` syntax (`1`, `0-3`, `0,2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The `measure: true` processes: the system under test.
    pub target: String,
    /// The generator, the churn drivers and every other process.
    pub load: String,
}

/// A process a scenario starts and stops. `start` returns once the process runs; readiness
/// (the spec's `ready` URL) is awaited by the runner afterwards.
#[async_trait]
pub trait Process: Send {
    /// Starts the process.
    async fn start(&mut self, ctx: &RunContext) -> Result<(), DriverError>;
    /// Its pid while it runs, for CPU and memory figures.
    fn pid(&self) -> Option<u32>;
    /// Stops it (gracefully first); stopping a stopped process does nothing.
    async fn stop(&mut self) -> Result<(), DriverError>;
    /// The readiness URL when the spec gives none (the upstream's own address, say).
    fn default_ready(&self) -> Option<String> {
        None
    }
}

/// The processes of a running scenario, by name, in start order.
pub struct Processes {
    pub order: Vec<String>,
    pub by_name: BTreeMap<String, Box<dyn Process>>,
}

impl Processes {
    /// The process called `name`.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut (dyn Process + 'static)> {
        self.by_name.get_mut(name).map(|p| &mut **p)
    }
}

/// Something a churn tick did, kept for the assertions and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChurnEvent {
    pub at: Instant,
    pub action: ChurnAction,
    /// What happened, for people (no secrets).
    pub detail: String,
}

/// What a churn tick may act on.
pub struct ChurnContext<'a> {
    pub run: &'a RunContext,
    pub processes: &'a mut Processes,
    /// The phase being run.
    pub phase: &'a str,
}

/// A verdict on one assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    /// Nobody could judge it (no driver records what it needs).
    NotEvaluated(String),
}

/// A periodic disturbance.
#[async_trait]
pub trait Churn: Send {
    /// Runs once after every process is ready and before the first phase (logging in the
    /// sessions the load will use, say). The default does nothing.
    async fn prepare(&mut self, _run: &RunContext) -> Result<(), DriverError> {
        Ok(())
    }
    /// Performs the action once; returns what it did.
    async fn tick(&mut self, ctx: &mut ChurnContext<'_>) -> Result<ChurnEvent, DriverError>;
    /// Verdicts on the assertions this action can judge (`no_success_after_revoke` by the
    /// revocation driver, say), after the run. The default judges none.
    fn judge(&self, _assertions: &Assertions) -> Vec<(&'static str, Verdict)> {
        Vec::new()
    }
}

/// Builds a process driver from its spec.
pub type ProcessFactory =
    Box<dyn Fn(&ProcessSpec, &RunContext) -> Result<Box<dyn Process>, DriverError> + Send + Sync>;
/// Builds a churn driver from its spec.
pub type ChurnFactory =
    Box<dyn Fn(&ChurnSpec, &RunContext) -> Result<Box<dyn Churn>, DriverError> + Send + Sync>;

/// Which driver serves each process kind and churn action.
#[derive(Default)]
pub struct Registry {
    processes: BTreeMap<ProcessKind, ProcessFactory>,
    churn: BTreeMap<ChurnAction, ChurnFactory>,
}

impl Registry {
    /// No drivers at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every driver the harness provides: the `command`, `upstream`, `warden` and `oidc`
    /// processes and every churn action.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register_process(ProcessKind::Command, |spec, _| {
            Ok(Box::new(super::command::CommandProcess::from_spec(spec)?))
        });
        r.register_process(ProcessKind::Upstream, |spec, ctx| {
            Ok(Box::new(super::upstream::UpstreamProcess::from_spec(
                spec, ctx,
            )?))
        });
        r.register_process(ProcessKind::Warden, |spec, ctx| {
            Ok(Box::new(super::gateway::WardenProcess::from_spec(
                spec, ctx,
            )?))
        });
        super::churn::register(&mut r);
        r
    }

    /// Serves `kind` with `factory` (replacing any earlier one).
    pub fn register_process(
        &mut self,
        kind: ProcessKind,
        factory: impl Fn(&ProcessSpec, &RunContext) -> Result<Box<dyn Process>, DriverError>
            + Send
            + Sync
            + 'static,
    ) {
        self.processes.insert(kind, Box::new(factory));
    }

    /// Serves `action` with `factory` (replacing any earlier one).
    pub fn register_churn(
        &mut self,
        action: ChurnAction,
        factory: impl Fn(&ChurnSpec, &RunContext) -> Result<Box<dyn Churn>, DriverError>
            + Send
            + Sync
            + 'static,
    ) {
        self.churn.insert(action, Box::new(factory));
    }

    /// Whether a driver serves `kind`.
    pub fn has_process(&self, kind: ProcessKind) -> bool {
        self.processes.contains_key(&kind)
    }

    /// Whether a driver serves `action`.
    pub fn has_churn(&self, action: ChurnAction) -> bool {
        self.churn.contains_key(&action)
    }

    /// A driver for `spec`.
    pub fn process(
        &self,
        spec: &ProcessSpec,
        ctx: &RunContext,
    ) -> Result<Box<dyn Process>, DriverError> {
        let f = self
            .processes
            .get(&spec.kind)
            .ok_or(DriverError::NoProcessDriver(spec.kind.name()))?;
        f(spec, ctx)
    }

    /// A driver for `spec`.
    pub fn churn(&self, spec: &ChurnSpec, ctx: &RunContext) -> Result<Box<dyn Churn>, DriverError> {
        let f = self
            .churn
            .get(&spec.action)
            .ok_or(DriverError::NoChurnDriver(spec.action.name()))?;
        f(spec, ctx)
    }

    /// The kinds and actions `plan` uses that no driver serves.
    pub fn missing(&self, plan: &Plan) -> Vec<String> {
        let mut out = Vec::new();
        for p in &plan.processes {
            if !self.has_process(p.kind) {
                out.push(format!("process kind `{}` ({})", p.kind.name(), p.name));
            }
        }
        for c in &plan.churn {
            if !self.has_churn(c.action) {
                out.push(format!("churn action `{}`", c.action.name()));
            }
        }
        out.dedup();
        out
    }
}
