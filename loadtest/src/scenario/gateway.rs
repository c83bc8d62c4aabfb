//! The `warden` process driver: `warden run -c CONF`. The binary is the spec's `command`, else
//! `$WARDEN_BIN`, else the `warden` next to this harness (both come from one `cargo build`).

use super::command::CommandProcess;
use super::driver::{DriverError, Process, RunContext};
use super::spec::ProcessSpec;
use async_trait::async_trait;
use std::path::PathBuf;

/// Warden itself, under test.
pub struct WardenProcess {
    inner: CommandProcess,
}

impl WardenProcess {
    /// From a spec with `conf` (and optionally `command`, extra `args`, `env`).
    pub fn from_spec(spec: &ProcessSpec, ctx: &RunContext) -> Result<Self, DriverError> {
        let Some(conf) = &spec.conf else {
            return Err(DriverError::failed(&spec.name, "`conf` is required"));
        };
        let (program, mut args) = match spec.command.split_first() {
            Some((p, rest)) => (p.clone(), rest.to_vec()),
            None => (binary(ctx).display().to_string(), Vec::new()),
        };
        args.extend([
            "run".to_string(),
            "-c".into(),
            conf.path().display().to_string(),
        ]);
        args.extend(spec.args.iter().cloned());
        Ok(Self {
            inner: CommandProcess::new(&spec.name, &program, args, spec.env.clone()),
        })
    }
}

fn binary(ctx: &RunContext) -> PathBuf {
    if let Some(p) = std::env::var_os("WARDEN_BIN") {
        return PathBuf::from(p);
    }
    ctx.loadtest_bin
        .parent()
        .map(|d| d.join("warden"))
        .unwrap_or_else(|| PathBuf::from("warden"))
}

#[async_trait]
impl Process for WardenProcess {
    async fn start(&mut self, ctx: &RunContext) -> Result<(), DriverError> {
        self.inner.start(ctx).await
    }

    fn pid(&self) -> Option<u32> {
        self.inner.pid()
    }

    async fn stop(&mut self) -> Result<(), DriverError> {
        self.inner.stop().await
    }
}
