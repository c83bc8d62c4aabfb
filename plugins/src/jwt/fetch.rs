//! HTTP for key sets: discovery documents and JWKS, with conditional requests, `Cache-Control`,
//! bounded bodies, an optional CA bundle and an optional bearer token (Kubernetes).

use super::conf::KeySource;
use super::jwk::JwksError;
use bytes::Bytes;
use http::header;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Discovery documents and JWKS larger than this are refused.
const MAX_BODY: usize = 1 << 20;

/// Why fetching keys failed (the last good keys keep serving).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request to {url} failed: {message}")]
    Http { url: String, message: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent more than {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error("cannot read the token file {}: {message}", path.display())]
    TokenFile { path: PathBuf, message: String },
    #[error("bad discovery document at {url}: {message}")]
    Discovery { url: String, message: String },
    #[error("bad JWKS from {source_name}: {error}")]
    Jwks {
        source_name: String,
        error: JwksError,
    },
    #[error("cannot read {}: {message}", path.display())]
    File { path: PathBuf, message: String },
}

/// A response worth keeping.
pub(crate) enum Fetched {
    Body {
        body: Bytes,
        etag: Option<String>,
        max_age: Option<Duration>,
    },
    NotModified {
        max_age: Option<Duration>,
    },
}

/// `max-age` of a `Cache-Control` value, unless caching is forbidden (then zero).
pub(crate) fn max_age(cache_control: &str) -> Option<Duration> {
    let mut age = None;
    for directive in cache_control.split(',') {
        let d = directive.trim();
        let (name, value) = d.split_once('=').unwrap_or((d, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return Some(Duration::ZERO),
            "max-age" => age = value.trim().trim_matches('"').parse::<u64>().ok(),
            _ => {}
        }
    }
    age.map(Duration::from_secs)
}

#[derive(Deserialize)]
struct DiscoveryDoc {
    issuer: String,
    jwks_uri: String,
}

/// Reads a PEM bundle of CA certificates.
pub(crate) fn read_ca_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} is not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// An HTTP client for one issuer's key source.
pub(crate) struct Fetcher {
    client: reqwest::Client,
    token_file: Option<PathBuf>,
    /// The token is only ever sent to this origin (the configured URL's), never to a URL a
    /// discovery document names elsewhere.
    token_origin: Option<url::Origin>,
}

impl Fetcher {
    /// Builds the client; fails on an unreadable CA bundle.
    pub(crate) fn new(
        source: &KeySource,
        configured_url: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &source.ca_file {
            for cert in read_ca_bundle(ca)? {
                builder = builder.add_root_certificate(cert);
            }
            if source.ca_only {
                builder = builder.tls_built_in_root_certs(false);
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let token_origin = match &source.token_file {
            Some(_) => Some(
                url::Url::parse(configured_url)
                    .map_err(|e| format!("`{configured_url}` is not a URL: {e}"))?
                    .origin(),
            ),
            None => None,
        };
        Ok(Self {
            client,
            token_file: source.token_file.clone(),
            token_origin,
        })
    }

    async fn token_for(&self, url: &str) -> Result<Option<String>, FetchError> {
        let (Some(path), Some(origin)) = (&self.token_file, &self.token_origin) else {
            return Ok(None);
        };
        let same_origin = url::Url::parse(url).is_ok_and(|u| &u.origin() == origin);
        if !same_origin {
            return Ok(None);
        }
        // Re-read on every fetch: projected service-account tokens are rotated on disk.
        let token = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| FetchError::TokenFile {
                path: path.clone(),
                message: e.to_string(),
            })?;
        Ok(Some(token.trim().to_string()))
    }

    /// GETs `url`, conditionally when `etag` is given.
    pub(crate) async fn get(&self, url: &str, etag: Option<&str>) -> Result<Fetched, FetchError> {
        let http_err = |e: reqwest::Error| FetchError::Http {
            url: url.to_string(),
            message: e.to_string(),
        };
        let mut req = self
            .client
            .get(url)
            .header(header::ACCEPT, "application/json");
        if let Some(token) = self.token_for(url).await? {
            req = req.bearer_auth(token);
        }
        if let Some(etag) = etag {
            req = req.header(header::IF_NONE_MATCH, etag);
        }
        let mut resp = req.send().await.map_err(http_err)?;
        let max_age = resp
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Fetched::NotModified { max_age });
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let etag = resp
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body {
            body: body.into(),
            etag,
            max_age,
        })
    }

    /// Reads a discovery document and returns its `jwks_uri`, checking that it speaks for
    /// `expected_issuer`.
    pub(crate) async fn discover(
        &self,
        url: &str,
        expected_issuer: &str,
    ) -> Result<String, FetchError> {
        let bad = |message: String| FetchError::Discovery {
            url: url.to_string(),
            message,
        };
        let Fetched::Body { body, .. } = self.get(url, None).await? else {
            return Err(bad("unexpected 304".into()));
        };
        let doc: DiscoveryDoc =
            serde_json::from_slice(&body).map_err(|e| bad(format!("not JSON: {e}")))?;
        if doc.issuer != expected_issuer {
            return Err(bad(format!(
                "it is for issuer `{}`, not `{expected_issuer}`",
                doc.issuer
            )));
        }
        super::conf::check_fetch_url(&doc.jwks_uri).map_err(bad)?;
        Ok(doc.jwks_uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(max_age("max-age=120"), Some(Duration::from_secs(120)));
        assert_eq!(
            max_age("public, Max-Age=\"60\", must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("max-age=60, no-cache"), Some(Duration::ZERO));
    }
}
