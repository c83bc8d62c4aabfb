//! The HTTP client Warden talks to one provider with: no redirects (a token or userinfo request
//! never follows one), bounded time and response size, the webpki roots plus the provider's
//! `ca_file`. Server errors (5xx, 429) count as "unavailable", like a refused connection, so a
//! struggling provider never ends a session or turns a login into a 400.

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read from a provider (discovery, JWKS, tokens, userinfo).
pub(crate) const MAX_BODY: usize = 1 << 20;

/// A request to the provider did not produce a usable HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach the provider: {0}")]
    Network(#[source] reqwest::Error),
    #[error("the provider answered HTTP {0}")]
    Status(u16),
    #[error("the provider's response is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("cannot build the request: {0}")]
    Request(String),
}

#[derive(Clone, Debug)]
pub(crate) struct IdpHttp {
    client: reqwest::Client,
}

impl IdpHttp {
    /// A client trusting the webpki roots and, if given, the certificates in `ca_pem`.
    pub(crate) fn new(ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
            if certs.is_empty() {
                return Err("holds no PEM certificate".into());
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client })
    }

    pub(crate) fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    /// Sends `req`; 5xx and 429 are errors, bodies are read up to [`MAX_BODY`].
    pub(crate) async fn execute(
        &self,
        req: reqwest::Request,
    ) -> Result<HttpResponse, TransportError> {
        let mut resp = self
            .client
            .execute(req)
            .await
            .map_err(TransportError::Network)?;
        let status = resp.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(TransportError::Status(status.as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(TransportError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(TransportError::Network)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(TransportError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::builder().status(status);
        for (name, value) in resp.headers() {
            out = out.header(name, value);
        }
        out.body(body)
            .map_err(|e| TransportError::Request(e.to_string()))
    }
}

impl<'c> AsyncHttpClient<'c> for IdpHttp {
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let req = reqwest::Request::try_from(request)
                .map_err(|e| TransportError::Request(e.to_string()))?;
            self.execute(req).await
        })
    }
}
