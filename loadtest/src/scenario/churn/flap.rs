//! `kill_restart_upstream`: stops a backend (SIGTERM, then SIGKILL), waits for Warden's health
//! checks to eject it (`warden_upstream_healthy{backend}` 0), optionally keeps it down a
//! while, starts it again and measures how long Warden takes to mark it healthy: the
//! recovery `recovery_within` bounds.

use super::params;
use super::probe;
use crate::readiness;
use crate::scenario::driver::{Churn, ChurnContext, ChurnEvent, DriverError, Verdict};
use crate::scenario::spec::{Assertions, ChurnAction, ChurnSpec};
use async_trait::async_trait;
use serde::Deserialize;
use std::time::{Duration, Instant};

const NAME: &str = "kill_restart_upstream";
/// Longest wait for an ejection or a recovery before the tick fails.
const HEALTH_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Warden's admin listener (`http://HOST:PORT`).
    admin: String,
    /// The backend as Warden's conf names it (`127.0.0.1:28382`): the metric's label.
    backend: String,
    /// Extra time the backend stays down after Warden ejected it.
    #[serde(default)]
    down: Option<warden_plugins::conf::Duration>,
}

pub struct Flap {
    process: String,
    admin: String,
    label: String,
    down: Duration,
    client: reqwest::Client,
    recoveries: Vec<Duration>,
}

impl Flap {
    pub fn from_spec(spec: &ChurnSpec) -> Result<Self, DriverError> {
        let p: Params = params(spec)?;
        let process = spec
            .process
            .clone()
            .ok_or_else(|| DriverError::failed(NAME, "`process` is required"))?;
        Ok(Self {
            process,
            admin: p.admin,
            label: format!("backend=\"{}\"", p.backend),
            down: p.down.map(|d| d.get()).unwrap_or_default(),
            client: probe::http_client().map_err(|e| DriverError::failed(NAME, e))?,
            recoveries: Vec::new(),
        })
    }

    async fn healthy(&self, want: f64) -> Result<Duration, DriverError> {
        probe::wait_metric(
            &self.client,
            &self.admin,
            "warden_upstream_healthy",
            &[&self.label],
            HEALTH_WITHIN,
            |v| v == Some(want),
        )
        .await
        .map_err(|e| DriverError::failed(NAME, e))
    }
}

#[async_trait]
impl Churn for Flap {
    async fn tick(&mut self, ctx: &mut ChurnContext<'_>) -> Result<ChurnEvent, DriverError> {
        let at = Instant::now();
        let run = ctx.run;
        let p = ctx
            .processes
            .get_mut(&self.process)
            .ok_or_else(|| DriverError::failed(NAME, format!("no process `{}`", self.process)))?;
        p.stop().await?;
        let ejected = self.healthy(0.0).await?;
        tokio::time::sleep(self.down).await;
        let p = ctx
            .processes
            .get_mut(&self.process)
            .ok_or_else(|| DriverError::failed(NAME, format!("no process `{}`", self.process)))?;
        p.start(run).await?;
        if let Some(url) = p.default_ready() {
            readiness::wait_ready(&url, HEALTH_WITHIN)
                .await
                .map_err(|e| DriverError::failed(NAME, e.to_string()))?;
        }
        let recovered = self.healthy(1.0).await?;
        self.recoveries.push(recovered);
        Ok(ChurnEvent {
            at,
            action: ChurnAction::KillRestartUpstream,
            detail: format!(
                "{} stopped, ejected after {} ms, back in rotation {} ms after it listened again",
                self.process,
                ejected.as_millis(),
                recovered.as_millis()
            ),
        })
    }

    fn judge(&self, a: &Assertions) -> Vec<(&'static str, Verdict)> {
        let Some(limit) = a.recovery_within else {
            return Vec::new();
        };
        let v = match self.recoveries.iter().max() {
            None => Verdict::NotEvaluated("no restart happened".into()),
            Some(worst) if *worst <= limit.get() => Verdict::Pass,
            Some(worst) => Verdict::Fail(format!(
                "slowest recovery {} ms, at most {} ms allowed",
                worst.as_millis(),
                limit.get().as_millis()
            )),
        };
        vec![("recovery_within", v)]
    }
}
