//! Single requests the churn drivers send beside the load: to a route (is this credential
//! allowed right now?) and to the admin listener (`/metrics`).

use serde::Deserialize;
use std::time::Duration;

/// Where probes go: a URL on Warden's listener and the route's host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    pub url: String,
    #[serde(default)]
    pub host: Option<String>,
}

/// Sends probes; API-style (`Accept: application/json`), so a route with browser login
/// answers 401 rather than redirecting.
pub struct Prober {
    client: reqwest::Client,
    spec: ProbeSpec,
}

impl Prober {
    pub fn new(spec: ProbeSpec) -> Result<Self, String> {
        let client = http_client()?;
        Ok(Self { client, spec })
    }

    /// The status of one GET carrying `credential` in `header` (`authorization`, `cookie`).
    pub async fn status(&self, header: &str, credential: &str) -> Result<u16, String> {
        let mut req = self
            .client
            .get(&self.spec.url)
            .header("accept", "application/json")
            .header(header, credential);
        if let Some(h) = &self.spec.host {
            req = req.header("host", h);
        }
        req.send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("probe {}: {e}", self.spec.url))
    }
}

/// A client for probes and admin calls: no proxy, no redirects, a 10 s bound.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The sum of the samples of metric `name` whose labels include every `labels` entry
/// (`key="value"`), from the admin listener at `admin`; `None` when absent.
pub async fn metric(
    client: &reqwest::Client,
    admin: &str,
    name: &str,
    labels: &[&str],
) -> Result<Option<f64>, String> {
    let url = format!("{}/metrics", admin.trim_end_matches('/'));
    let text = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    Ok(warden_tests::warden::metric_sum(&text, name, labels))
}

/// Polls [`metric`] every 10 ms until `done` holds for its value, for at most `within`;
/// returns how long it took.
pub async fn wait_metric(
    client: &reqwest::Client,
    admin: &str,
    name: &str,
    labels: &[&str],
    within: Duration,
    done: impl Fn(Option<f64>) -> bool,
) -> Result<Duration, String> {
    let start = std::time::Instant::now();
    loop {
        let v = metric(client, admin, name, labels).await?;
        if done(v) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            return Err(format!(
                "{name}{labels:?} is {v:?} after {:.1}s",
                within.as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
