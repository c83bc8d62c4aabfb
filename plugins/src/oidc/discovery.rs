//! What discovery taught Warden about a provider: its endpoints, its signing keys (refetched,
//! rate-limited and single-flight, when a token names a key Warden does not know), and the
//! `openidconnect` client built from them.

use super::http::IdpHttp;
use arc_swap::ArcSwap;
use openidconnect::core::{
    CoreClient, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreResponseType,
};
use openidconnect::{
    ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    JsonWebKeySetUrl, ProviderMetadataWithLogout,
};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The client type discovery produces: authorization endpoint known, token and userinfo
/// endpoints as the provider announced them.
pub(crate) type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Least time between two JWKS refetches caused by unknown key ids: tokens naming made-up keys
/// must not turn Warden into a traffic generator against its provider.
pub const JWKS_REFETCH_INTERVAL_SECS: i64 = 30;

/// A discovered provider.
pub(crate) struct Discovered {
    pub issuer: IssuerUrl,
    pub client: OidcClient,
    /// Signing algorithms the provider announced for ID tokens (never `none`, never HMAC).
    pub algs: Vec<CoreJwsSigningAlgorithm>,
    pub end_session_endpoint: Option<url::Url>,
    pub userinfo_endpoint: Option<url::Url>,
    jwks_uri: JsonWebKeySetUrl,
    jwks: ArcSwap<CoreJsonWebKeySet>,
    /// Unix seconds of the last JWKS fetch.
    jwks_fetched_at: AtomicI64,
    jwks_refetch: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Discovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovered")
            .field("issuer", &self.issuer.as_str())
            .finish_non_exhaustive()
    }
}

impl Discovered {
    /// Fetches `{issuer}/.well-known/openid-configuration` and the JWKS it names.
    pub(crate) async fn fetch(
        http: &IdpHttp,
        issuer: &str,
        client_id: &str,
        secret: &ClientSecret,
        now: i64,
    ) -> Result<Self, String> {
        let issuer = IssuerUrl::new(issuer.to_string()).map_err(|e| e.to_string())?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer.clone(), http)
            .await
            .map_err(|e| describe_discovery_error(&e))?;
        if metadata.token_endpoint().is_none() {
            return Err("the discovery document names no token_endpoint".into());
        }
        if !metadata
            .response_types_supported()
            .iter()
            .any(|r| r.as_slice() == [CoreResponseType::Code])
        {
            return Err("the provider does not support the authorization code flow".into());
        }
        let algs: Vec<CoreJwsSigningAlgorithm> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| is_public_key_alg(a))
            .cloned()
            .collect();
        if algs.is_empty() {
            return Err(
                "the provider signs ID tokens with no public-key algorithm Warden accepts".into(),
            );
        }
        let end_session_endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.url().clone());
        let userinfo_endpoint = metadata.userinfo_endpoint().map(|u| u.url().clone());
        let jwks_uri = metadata.jwks_uri().clone();
        let jwks = metadata.jwks().clone();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(client_id.to_string()),
            Some(secret.clone()),
        );
        Ok(Self {
            issuer,
            client,
            algs,
            end_session_endpoint,
            userinfo_endpoint,
            jwks_uri,
            jwks: ArcSwap::from_pointee(jwks),
            jwks_fetched_at: AtomicI64::new(now),
            jwks_refetch: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn jwks(&self) -> Arc<CoreJsonWebKeySet> {
        self.jwks.load_full()
    }

    /// Lets the next [`Discovered::refetch_jwks`] fetch at once: a provider that was down may
    /// have come back with new keys.
    pub(crate) fn allow_jwks_refetch(&self) {
        self.jwks_fetched_at.store(i64::MIN / 2, Ordering::Relaxed);
    }

    /// Refetches the JWKS unless it was fetched in the last [`JWKS_REFETCH_INTERVAL_SECS`];
    /// concurrent callers share one fetch. Whether the keys changed.
    pub(crate) async fn refetch_jwks(&self, http: &IdpHttp, now: i64) -> bool {
        let before = self.jwks.load_full();
        let _one = self.jwks_refetch.lock().await;
        if !Arc::ptr_eq(&before, &self.jwks.load_full()) {
            return true;
        }
        if now - self.jwks_fetched_at.load(Ordering::Relaxed) < JWKS_REFETCH_INTERVAL_SECS {
            return false;
        }
        self.jwks_fetched_at.store(now, Ordering::Relaxed);
        match CoreJsonWebKeySet::fetch_async(&self.jwks_uri, http).await {
            Ok(keys) => {
                let changed = keys != *before;
                if changed {
                    self.jwks.store(Arc::new(keys));
                }
                changed
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer.as_str(), error = %describe_discovery_error(&e), "cannot refetch the provider's signing keys");
                false
            }
        }
    }
}

/// RSA and ECDSA/EdDSA signatures only: `none` proves nothing and HMAC would make the client
/// secret a signing key.
pub(crate) fn is_public_key_alg(alg: &CoreJwsSigningAlgorithm) -> bool {
    use CoreJwsSigningAlgorithm as A;
    matches!(
        alg,
        A::RsaSsaPkcs1V15Sha256
            | A::RsaSsaPkcs1V15Sha384
            | A::RsaSsaPkcs1V15Sha512
            | A::RsaSsaPssSha256
            | A::RsaSsaPssSha384
            | A::RsaSsaPssSha512
            | A::EcdsaP256Sha256
            | A::EcdsaP384Sha384
            | A::EdDsa
    )
}

fn describe_discovery_error<E: std::error::Error>(e: &openidconnect::DiscoveryError<E>) -> String {
    use openidconnect::DiscoveryError as D;
    match e {
        D::Request(inner) => inner.to_string(),
        D::Response(status, _, msg) => format!("discovery answered HTTP {status}: {msg}"),
        D::Parse(err) => format!("the discovery document or JWKS is not valid: {err}"),
        D::Validation(msg) => format!("the discovery document is not valid: {msg}"),
        D::UrlParse(err) => format!("invalid URL: {err}"),
        D::Other(msg) => msg.clone(),
        other => other.to_string(),
    }
}
