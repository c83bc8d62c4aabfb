//! `reload_conf_alternating`: Warden's conf file is replaced by each of `confs` in turn. Each
//! tick waits for the new generation in `/metrics` (a reload Warden refused is a churn
//! error) and then probes one credential, whose status must be the one `probe.expect` gives
//! for the conf now in force: decisions follow the active policy.

use super::probe::{self, ProbeSpec, Prober};
use super::{at, first_line, params, replace_file};
use crate::scenario::driver::{Churn, ChurnContext, ChurnEvent, DriverError, RunContext, Verdict};
use crate::scenario::spec::{Assertions, ChurnAction, ChurnSpec};
use async_trait::async_trait;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const NAME: &str = "reload_conf_alternating";
/// Longest wait for Warden to take a new conf.
const RELOAD_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Written to `active` in turn; the first before Warden starts.
    confs: Vec<PathBuf>,
    /// The conf file the `warden` process runs with.
    active: PathBuf,
    /// Warden's admin listener (`http://HOST:PORT`), for the generation.
    admin: String,
    #[serde(default)]
    probe: Option<ReloadProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadProbe {
    url: String,
    #[serde(default)]
    host: Option<String>,
    /// Its first line is the credential sent.
    credential_file: PathBuf,
    #[serde(default = "default_header")]
    header: String,
    /// The status expected under each of `confs`, in order.
    expect: Vec<u16>,
}

fn default_header() -> String {
    "authorization".into()
}

pub struct ReloadConfs {
    confs: Vec<Vec<u8>>,
    active: PathBuf,
    admin: String,
    client: reqwest::Client,
    probe: Option<(Prober, String, String, Vec<u16>)>,
    current: usize,
    probes: u64,
    mismatches: Vec<String>,
}

impl ReloadConfs {
    /// Reads every conf and installs the first as the active one.
    pub fn from_spec(spec: &ChurnSpec, ctx: &RunContext) -> Result<Self, DriverError> {
        let p: Params = params(spec)?;
        let fail = |m: String| DriverError::failed(NAME, m);
        if p.confs.len() < 2 {
            return Err(fail("`confs` needs at least two files".into()));
        }
        let mut confs = Vec::new();
        for c in &p.confs {
            let path = at(ctx, c);
            confs.push(
                std::fs::read(&path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?,
            );
        }
        let active = at(ctx, &p.active);
        replace_file(&active, &confs[0])
            .map_err(|e| fail(format!("cannot write {}: {e}", active.display())))?;
        let probe = match p.probe {
            None => None,
            Some(pr) => {
                if pr.expect.len() != confs.len() {
                    return Err(fail(format!(
                        "`probe.expect` needs one status per conf ({}), not {}",
                        confs.len(),
                        pr.expect.len()
                    )));
                }
                let credential = first_line(&at(ctx, &pr.credential_file)).map_err(fail)?;
                Some((
                    Prober::new(ProbeSpec {
                        url: pr.url,
                        host: pr.host,
                    })
                    .map_err(fail)?,
                    pr.header,
                    credential,
                    pr.expect,
                ))
            }
        };
        Ok(Self {
            confs,
            active,
            admin: p.admin,
            client: probe::http_client().map_err(fail)?,
            probe,
            current: 0,
            probes: 0,
            mismatches: Vec::new(),
        })
    }

    async fn generation(&self) -> Result<f64, String> {
        probe::metric(&self.client, &self.admin, "warden_config_generation", &[])
            .await?
            .ok_or_else(|| "no warden_config_generation in /metrics".to_string())
    }
}

#[async_trait]
impl Churn for ReloadConfs {
    async fn tick(&mut self, _ctx: &mut ChurnContext<'_>) -> Result<ChurnEvent, DriverError> {
        let fail = |m: String| DriverError::failed(NAME, m);
        let at = Instant::now();
        let before = self.generation().await.map_err(fail)?;
        let next = (self.current + 1) % self.confs.len();
        replace_file(&self.active, &self.confs[next])
            .map_err(|e| fail(format!("cannot write {}: {e}", self.active.display())))?;
        let took = probe::wait_metric(
            &self.client,
            &self.admin,
            "warden_config_generation",
            &[],
            RELOAD_WITHIN,
            |g| g.is_some_and(|g| g > before),
        )
        .await
        .map_err(|e| fail(format!("conf {next} was not taken: {e}")))?;
        self.current = next;
        let mut detail = format!("conf {next} in force after {} ms", took.as_millis());
        if let Some((prober, header, credential, expect)) = &self.probe {
            let got = prober.status(header, credential).await.map_err(fail)?;
            self.probes += 1;
            detail.push_str(&format!("; probe {got}"));
            if got != expect[next] {
                self.mismatches.push(format!(
                    "conf {next}: probe answered {got}, the conf says {}",
                    expect[next]
                ));
            }
        }
        Ok(ChurnEvent {
            at,
            action: ChurnAction::ReloadConfAlternating,
            detail,
        })
    }

    fn judge(&self, a: &Assertions) -> Vec<(&'static str, Verdict)> {
        if !a.decisions_follow_policy {
            return Vec::new();
        }
        let v = if self.probe.is_none() {
            Verdict::NotEvaluated("`reload_conf_alternating` has no `probe`".into())
        } else if self.probes == 0 {
            Verdict::NotEvaluated("no reload happened".into())
        } else if self.mismatches.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(format!(
                "{} of {} probes: {}",
                self.mismatches.len(),
                self.probes,
                self.mismatches.join("; ")
            ))
        };
        vec![("decisions_follow_policy", v)]
    }
}
