//! Everything a route tells its upstream, in two steps the gateway calls:
//!
//! 1. [`RouteAnnotations::prepare`] (in `request_filter`, after authorization): looks up or
//!    builds the identity's header set, assertion and impersonation headers. This is where a
//!    request can be refused (`groups_too_large`, `missing_email`, …), before anything is sent.
//! 2. [`RouteAnnotations::apply`] (in `upstream_request_filter`): strips what the client must
//!    not send, then writes the prepared values. No allocation beyond the header map's own.

use super::assertion::{AssertionSigner, Audience};
use super::conf::{IdentityHeadersConf, KubernetesConf, KubernetesMode};
use super::identity_headers::CompiledIdentityHeaders;
use super::inbound::InboundRules;
use super::kubernetes::CompiledKubernetes;
use super::sink::{HeaderSet, HeaderSink};
use super::{AnnotateError, X_WARDEN_JWT_ASSERTION};
use crate::clock::SharedClock;
use crate::conf::FieldError;
use crate::identity::Identity;
use http::header::AUTHORIZATION;
use http::HeaderValue;
use std::sync::Arc;

/// The annotation settings of one route, as the gateway hands them over.
#[derive(Debug, Clone, Copy)]
pub struct RouteAnnotationsConf<'a> {
    /// `identity_headers` (absent: enabled with defaults).
    pub identity_headers: Option<&'a IdentityHeadersConf>,
    pub kubernetes: Option<&'a KubernetesConf>,
    /// The route's first host as written: the default assertion audience.
    pub host: &'a str,
    /// Warden's cookie names (session, login) to strip from `Cookie`.
    pub cookie_names: &'a [&'a str],
}

/// A route's annotation, compiled once per conf version.
pub struct RouteAnnotations {
    inbound: InboundRules,
    identity_headers: CompiledIdentityHeaders,
    assertion: Option<(Arc<AssertionSigner>, Audience)>,
    kubernetes: Option<CompiledKubernetes>,
    /// Signer and audience of the bearer assertion in `kubernetes.mode: assertion`.
    kubernetes_assertion: Option<(Arc<AssertionSigner>, Audience)>,
}

impl std::fmt::Debug for RouteAnnotations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteAnnotations")
            .field("identity_headers", &self.identity_headers)
            .field(
                "assertion",
                &self.assertion.as_ref().map(|(_, a)| a.as_str()),
            )
            .field("kubernetes", &self.kubernetes)
            .finish_non_exhaustive()
    }
}

/// What [`RouteAnnotations::prepare`] found for one request; cheap to hold in the request
/// context (`Arc`s and `HeaderValue`s).
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    identity: Option<Arc<Identity>>,
    headers: Option<Arc<HeaderSet>>,
    assertion: Option<HeaderValue>,
    impersonation: Option<Arc<HeaderSet>>,
    authorization: Option<HeaderValue>,
}

impl Prepared {
    /// Identity headers about to be sent (for tests and debugging).
    pub fn headers(&self) -> Option<&HeaderSet> {
        self.headers.as_deref()
    }

    pub fn assertion(&self) -> Option<&HeaderValue> {
        self.assertion.as_ref()
    }
}

fn under(prefix: &str) -> impl Fn(FieldError) -> FieldError + '_ {
    move |e| e.under(prefix)
}

impl RouteAnnotations {
    /// Compiles a route's settings; errors are relative to the route (`identity_headers.…`,
    /// `kubernetes.…`). `signer` is the `identity.assertion` signer, if configured.
    pub fn compile(
        conf: RouteAnnotationsConf<'_>,
        signer: Option<&Arc<AssertionSigner>>,
        clock: SharedClock,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errs = Vec::new();
        let default_ih = IdentityHeadersConf::default();
        let ih_conf = conf.identity_headers.unwrap_or(&default_ih);
        let identity_headers = CompiledIdentityHeaders::compile(ih_conf)
            .map_err(|e| errs.extend(e.into_iter().map(under("identity_headers"))))
            .ok();
        let wildcard = conf.host.starts_with("*.");
        let mut assertion = None;
        if let (Some(s), true, true) = (signer, ih_conf.enabled, ih_conf.assertion) {
            let aud = s.audience(conf.host, ih_conf.assertion_audience.as_deref());
            if wildcard && aud.as_str() == conf.host {
                errs.push(FieldError::new(
                    "identity_headers.assertion_audience",
                    format!(
                        "`{}` is a wildcard host: name the assertion audience explicitly",
                        conf.host
                    ),
                ));
            }
            assertion = Some((s.clone(), aud));
        }
        let mut kubernetes = None;
        let mut kubernetes_assertion = None;
        if let Some(k) = conf.kubernetes {
            match CompiledKubernetes::compile(k, clock) {
                Err(e) => errs.extend(e.into_iter().map(under("kubernetes"))),
                Ok(c) => {
                    if c.mode() == KubernetesMode::Assertion {
                        match signer {
                            None => errs.push(FieldError::new(
                                "kubernetes.mode",
                                "`assertion` needs `identity.assertion` (Warden's signing issuer)",
                            )),
                            Some(s) => {
                                kubernetes_assertion =
                                    Some((s.clone(), s.audience(conf.host, c.audience())))
                            }
                        }
                    }
                    kubernetes = Some(c);
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let Some(identity_headers) = identity_headers else {
            return Err(errs);
        };
        let inbound = InboundRules::new(conf.cookie_names.iter().copied())
            .keep_authorization(ih_conf.keep_authorization)
            .also_strip(identity_headers.claim_header_names());
        Ok(Self {
            inbound,
            identity_headers,
            assertion,
            kubernetes,
            kubernetes_assertion,
        })
    }

    /// The Kubernetes settings, if this is a Kubernetes route (load its token file at start).
    pub fn kubernetes(&self) -> Option<&CompiledKubernetes> {
        self.kubernetes.as_ref()
    }

    pub fn inbound(&self) -> &InboundRules {
        &self.inbound
    }

    /// Looks up or builds what this identity's requests carry. `identity` is `None` for
    /// anonymous requests (public routes): they get only the stripping, except on Kubernetes
    /// routes, which refuse them (Warden's own credential must never go out unimpersonated).
    pub fn prepare(
        &self,
        identity: Option<&Arc<Identity>>,
        now: i64,
    ) -> Result<Prepared, AnnotateError> {
        let Some(id) = identity else {
            if self.kubernetes.is_some() {
                return Err(AnnotateError::Unauthenticated);
            }
            return Ok(Prepared::default());
        };
        let mut p = Prepared {
            identity: Some(id.clone()),
            ..Prepared::default()
        };
        if self.identity_headers.is_enabled() {
            p.headers = Some(self.identity_headers.headers(id, now)?);
        }
        if let Some((signer, aud)) = &self.assertion {
            p.assertion = Some(signer.assertion(id, aud, now)?);
        }
        if let Some(k) = &self.kubernetes {
            match (k.mode(), &self.kubernetes_assertion) {
                (KubernetesMode::Impersonate, _) => {
                    p.impersonation = Some(k.impersonation_headers(id, now)?);
                    p.authorization = Some(k.token_file().authorization()?);
                }
                (KubernetesMode::Assertion, Some((signer, aud))) => {
                    let token = signer.assertion(id, aud, now)?;
                    p.authorization = Some(bearer(&token)?);
                }
                // Compile refuses assertion mode without a signer.
                (KubernetesMode::Assertion, None) => return Err(AnnotateError::SigningFailed),
            }
        }
        Ok(p)
    }

    /// Strips the request, then writes what `prepare` found.
    pub fn apply<S: HeaderSink + ?Sized>(&self, prepared: &Prepared, sink: &mut S) {
        self.inbound.apply(sink, prepared.identity.as_deref());
        if let Some(h) = &prepared.headers {
            h.write_to(sink);
        }
        if let Some(a) = &prepared.assertion {
            sink.insert(&X_WARDEN_JWT_ASSERTION, a);
        }
        if let Some(i) = &prepared.impersonation {
            i.write_to(sink);
        }
        if let Some(a) = &prepared.authorization {
            sink.insert(&AUTHORIZATION, a);
        }
    }
}

/// `Bearer <assertion>`, sensitive.
fn bearer(token: &HeaderValue) -> Result<HeaderValue, AnnotateError> {
    let mut v = Vec::with_capacity(7 + token.len());
    v.extend_from_slice(b"Bearer ");
    v.extend_from_slice(token.as_bytes());
    let mut h = HeaderValue::from_maybe_shared(bytes::Bytes::from(v))
        .map_err(|_| AnnotateError::SigningFailed)?;
    h.set_sensitive(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotate::conf::SigningAlgorithm;
    use crate::annotate::keys::SigningKey;
    use crate::clock::ManualClock;
    use crate::identity::AuthMethod;
    use http::HeaderMap;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const COOKIES: &[&str] = &["__Host-warden_session", "__Host-warden_login"];

    fn signer() -> Arc<AssertionSigner> {
        let k = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        Arc::new(
            AssertionSigner::new(
                "https://auth.example.com/",
                vec![k],
                SigningAlgorithm::ES256,
                300,
                None,
            )
            .unwrap(),
        )
    }

    fn session_identity() -> Arc<Identity> {
        Arc::new(
            Identity::new(
                "u-1",
                "https://idp",
                AuthMethod::Session {
                    provider: "corp".into(),
                    session_id: "h1".into(),
                },
            )
            .with_email(Some("jane@example.com"))
            .with_groups(["dev", "sre"])
            .with_claims(json!({"tenant": "acme"}))
            .with_expiry(NOW + 3600),
        )
    }

    /// A web route with `identity_headers` from JSON.
    fn web_route(ih: serde_json::Value, signer: Option<&Arc<AssertionSigner>>) -> RouteAnnotations {
        let ih: IdentityHeadersConf = serde_json::from_value(ih).unwrap();
        RouteAnnotations::compile(
            RouteAnnotationsConf {
                identity_headers: Some(&ih),
                kubernetes: None,
                host: "app.example.com",
                cookie_names: COOKIES,
            },
            signer,
            ManualClock::at_secs(NOW),
        )
        .unwrap()
    }

    fn hostile_request() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("x-warden-user", "root"),
            ("x_warden_groups", "admins"),
            ("impersonate-user", "system:admin"),
            ("impersonate-group", "system:masters"),
            ("x-tenant", "evil"),
            ("authorization", "Bearer stolen"),
            ("cookie", "__Host-warden_session=secret; theme=dark"),
            ("accept", "text/html"),
        ] {
            h.append(
                http::HeaderName::from_static(n),
                HeaderValue::from_static(v),
            );
        }
        h
    }

    fn all(h: &HeaderMap, n: &str) -> Vec<String> {
        h.get_all(n)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn a_web_route_end_to_end() {
        let r = web_route(json!({"claims": {"tenant": "X-Tenant"}}), Some(&signer()));
        let id = session_identity();
        let p = r.prepare(Some(&id), NOW).unwrap();
        let mut h = hostile_request();
        r.apply(&p, &mut h);
        assert_eq!(all(&h, "x-warden-user"), ["u-1"]);
        assert_eq!(all(&h, "x-warden-email"), ["jane@example.com"]);
        assert_eq!(all(&h, "x-warden-groups"), ["dev,sre"]);
        assert_eq!(all(&h, "x-tenant"), ["acme"]);
        assert_eq!(all(&h, "x-warden-jwt-assertion").len(), 1);
        assert!(all(&h, "impersonate-user").is_empty() && all(&h, "impersonate-group").is_empty());
        assert!(
            all(&h, "authorization").is_empty(),
            "session request: stripped"
        );
        assert_eq!(all(&h, "cookie"), ["theme=dark"]);
        assert_eq!(all(&h, "accept"), ["text/html"]);
        assert!(h.get("x_warden_groups").is_none());
    }

    #[test]
    fn a_claim_header_the_caller_lacks_cannot_be_supplied_by_the_client() {
        let r = web_route(json!({"claims": {"missing": "X-Tenant"}}), None);
        let p = r.prepare(Some(&session_identity()), NOW).unwrap();
        let mut h = hostile_request();
        r.apply(&p, &mut h);
        assert!(all(&h, "x-tenant").is_empty());
        assert!(
            all(&h, "x-warden-jwt-assertion").is_empty(),
            "no signer, no assertion"
        );
    }

    #[test]
    fn anonymous_requests_are_only_stripped() {
        let r = RouteAnnotations::compile(
            RouteAnnotationsConf {
                identity_headers: None,
                kubernetes: None,
                host: "status.example.com",
                cookie_names: COOKIES,
            },
            Some(&signer()),
            ManualClock::at_secs(NOW),
        )
        .unwrap();
        let p = r.prepare(None, NOW).unwrap();
        let mut h = hostile_request();
        r.apply(&p, &mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["accept", "authorization", "cookie", "x-tenant"]);
    }

    fn kube_route(
        k: serde_json::Value,
        token: &std::path::Path,
        signer: Option<&Arc<AssertionSigner>>,
    ) -> Result<RouteAnnotations, Vec<FieldError>> {
        let mut k: KubernetesConf = serde_json::from_value(k).unwrap();
        k.service_account_token_file = crate::conf::ConfPath::new(token.display().to_string());
        let ih = IdentityHeadersConf {
            enabled: false,
            ..IdentityHeadersConf::default()
        };
        RouteAnnotations::compile(
            RouteAnnotationsConf {
                identity_headers: Some(&ih),
                kubernetes: Some(&k),
                host: "k8s.example.com",
                cookie_names: COOKIES,
            },
            signer,
            ManualClock::at_secs(NOW),
        )
    }

    #[test]
    fn a_kubernetes_route_impersonates() {
        let dir = std::env::temp_dir().join(format!("warden-route-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "sa-token").unwrap();
        let r = kube_route(json!({}), &token, None).unwrap();
        r.kubernetes().unwrap().token_file().load().unwrap();
        let p = r.prepare(Some(&session_identity()), NOW).unwrap();
        let mut h = hostile_request();
        r.apply(&p, &mut h);
        assert_eq!(all(&h, "authorization"), ["Bearer sa-token"]);
        assert_eq!(all(&h, "impersonate-user"), ["jane@example.com"]);
        assert_eq!(all(&h, "impersonate-group"), ["dev", "sre"]);
        assert!(
            all(&h, "x-warden-user").is_empty(),
            "identity headers disabled"
        );

        assert_eq!(
            r.prepare(None, NOW).unwrap_err(),
            AnnotateError::Unauthenticated,
            "never Warden's own token without impersonation"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_kubernetes_route_can_send_the_assertion_instead() {
        let s = signer();
        let r = kube_route(
            json!({"mode": "assertion", "audience": "kubernetes"}),
            std::path::Path::new("/nonexistent"),
            Some(&s),
        )
        .unwrap();
        let p = r.prepare(Some(&session_identity()), NOW).unwrap();
        let mut h = hostile_request();
        r.apply(&p, &mut h);
        let auth = all(&h, "authorization");
        assert_eq!(auth.len(), 1);
        let token = auth[0].strip_prefix("Bearer ").unwrap();
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], "kubernetes");
        assert!(all(&h, "impersonate-user").is_empty() && all(&h, "impersonate-group").is_empty());

        let errs = kube_route(
            json!({"mode": "assertion"}),
            std::path::Path::new("/x"),
            None,
        )
        .unwrap_err();
        assert_eq!(errs[0].path, "kubernetes.mode");
    }

    #[test]
    fn refusals_happen_in_prepare() {
        let r = web_route(json!({"max_groups_bytes": 3}), None);
        let e = r.prepare(Some(&session_identity()), NOW).unwrap_err();
        assert_eq!(e.code(), "groups_too_large");
    }

    #[test]
    fn compile_errors_are_addressed_under_the_route() {
        let ih: IdentityHeadersConf =
            serde_json::from_value(json!({"claims": {"a": "Host"}})).unwrap();
        let k: KubernetesConf = serde_json::from_value(json!({"extra": {"x": "UPPER"}})).unwrap();
        let errs = RouteAnnotations::compile(
            RouteAnnotationsConf {
                identity_headers: Some(&ih),
                kubernetes: Some(&k),
                host: "*.example.com",
                cookie_names: COOKIES,
            },
            Some(&signer()),
            ManualClock::at_secs(NOW),
        )
        .unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "identity_headers.claims.a",
                "identity_headers.assertion_audience",
                "kubernetes.extra.x"
            ]
        );
    }
}
