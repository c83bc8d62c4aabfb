//! The `upstream` process driver: `warden-loadtest upstream --listen ADDR` as a child process,
//! so its CPU time and memory are its own.

use super::command::CommandProcess;
use super::driver::{DriverError, Process, RunContext};
use super::spec::ProcessSpec;
use async_trait::async_trait;

/// The built-in upstream, run as its own process.
pub struct UpstreamProcess {
    listen: String,
    inner: CommandProcess,
}

impl UpstreamProcess {
    /// From a spec with `listen` (and optionally `threads`, `command` to use another binary,
    /// extra `args`).
    pub fn from_spec(spec: &ProcessSpec, ctx: &RunContext) -> Result<Self, DriverError> {
        let Some(listen) = spec.listen.clone() else {
            return Err(DriverError::failed(&spec.name, "`listen` is required"));
        };
        let (program, mut args) = match spec.command.split_first() {
            Some((p, rest)) => (p.clone(), rest.to_vec()),
            None => (ctx.loadtest_bin.display().to_string(), Vec::new()),
        };
        args.extend([
            "upstream".to_string(),
            "--listen".into(),
            listen.clone(),
            "--threads".into(),
            spec.threads.unwrap_or(1).to_string(),
        ]);
        args.extend(spec.args.iter().cloned());
        Ok(Self {
            inner: CommandProcess::new(&spec.name, &program, args, spec.env.clone()),
            listen,
        })
    }
}

#[async_trait]
impl Process for UpstreamProcess {
    async fn start(&mut self, ctx: &RunContext) -> Result<(), DriverError> {
        self.inner.start(ctx).await
    }

    fn pid(&self) -> Option<u32> {
        self.inner.pid()
    }

    async fn stop(&mut self) -> Result<(), DriverError> {
        self.inner.stop().await
    }

    fn default_ready(&self) -> Option<String> {
        Some(format!("http://{}/", self.listen))
    }
}
