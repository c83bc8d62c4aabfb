//! Annotation: what the upstream is told about the caller, and what it must never be told by
//! the client.
//!
//! - [`inbound`]: strips client-sent `X-Warden-*` / `Impersonate-*` headers (any case, `_` for
//!   `-`), Warden's cookies, and `Authorization` on session requests.
//! - [`identity_headers`]: `X-Warden-User`, `X-Warden-Email`, `X-Warden-Groups` and claim
//!   headers, percent-encoded where needed ([`value`]), cached per identity and route.
//! - [`assertion`]: the signed `X-Warden-Jwt-Assertion`, its JWKS and discovery document
//!   (the issuer kube-apiserver can trust), keys in [`keys`].
//! - [`kubernetes`]: service account token and impersonation headers for the API server.
//! - [`route`]: all of it for one route: `prepare` per request (may refuse), `apply` to the
//!   upstream request through a [`HeaderSink`].
//!
//! Errors carry stable codes ([`AnnotateError::code`]).

pub mod assertion;
mod cache;
pub mod conf;
mod error;
pub mod groups;
pub mod identity_headers;
pub mod inbound;
pub mod keys;
pub mod kubernetes;
pub mod route;
pub mod sink;
pub mod value;

pub use assertion::{AssertionSigner, Audience};
pub use conf::{
    AssertionConf, IdentityHeadersConf, ImpersonateUser, KubernetesConf, KubernetesMode,
    SigningAlgorithm,
};
pub use error::AnnotateError;
pub use identity_headers::CompiledIdentityHeaders;
pub use inbound::{is_identity_header, CookieEdit, InboundPlan, InboundRules};
pub use keys::{KeyError, SigningKey};
pub use kubernetes::{CompiledKubernetes, TokenFile};
pub use route::{Prepared, RouteAnnotations, RouteAnnotationsConf};
pub use sink::{HeaderSet, HeaderSink};

use http::HeaderName;

pub const X_WARDEN_USER: HeaderName = HeaderName::from_static("x-warden-user");
pub const X_WARDEN_EMAIL: HeaderName = HeaderName::from_static("x-warden-email");
pub const X_WARDEN_GROUPS: HeaderName = HeaderName::from_static("x-warden-groups");
pub const X_WARDEN_JWT_ASSERTION: HeaderName = HeaderName::from_static("x-warden-jwt-assertion");
pub const IMPERSONATE_USER: HeaderName = HeaderName::from_static("impersonate-user");
pub const IMPERSONATE_GROUP: HeaderName = HeaderName::from_static("impersonate-group");

/// Where Warden serves the assertion JWKS on every route host.
pub const JWKS_PATH: &str = "/.well-known/warden/jwks.json";

/// Default bound of each per-route and per-signer cache, in identities.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;
