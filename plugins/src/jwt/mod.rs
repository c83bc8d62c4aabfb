//! Workload identity: bearer JWTs from configured issuers, Kubernetes service accounts included.
//!
//! - [`conf`]: the `identity.jwt_issuers` section and its validation.
//! - [`jwk`], [`verify`]: JWK parsing and compact-JWS verification on `ring` (public-key
//!   algorithms only; `none` and HMAC cannot be expressed).
//! - `jwks_cache`: each issuer's keys, refreshed in the background; an unknown `kid` triggers
//!   one rate-limited, single-flight refetch.
//! - `token_cache`: verified tokens, so a repeated token costs a hash lookup and a compare.
//! - [`BearerAuth`]: all of it behind `authenticate(token, allowed_issuers)`.

mod algorithm;
mod bearer;
mod claims;
pub mod conf;
mod error;
mod fetch;
pub mod jwk;
mod jwks_cache;
mod token_cache;
pub mod verify;

pub use algorithm::{Algorithm, AlgorithmSet};
pub use bearer::{BearerAuth, DEFAULT_TOKEN_CACHE_SIZE};
pub use conf::{ClaimPaths, IssuerKind, JwtIssuerConf};
pub use error::BearerError;
pub use fetch::FetchError;
pub use jwk::{JwkError, JwksError, KeySet, SkippedKey, VerifyingKey};
pub use jwks_cache::{RefreshOutcome, Timeouts};
pub use verify::{verify_with_keys, ValidationRules, VerifiedToken};

/// An issuer of a [`BearerAuth`], as routes refer to it (resolved once from its conf name).
/// Ids are only meaningful for the `BearerAuth` that issued them: re-resolve after a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IssuerId(pub(crate) u16);
