//! Warden's identity logic, free of Pingora's server: who is asking (sessions, OIDC, bearer
//! JWTs), whether access holds (policy), and what the upstream is told (annotation).
#![forbid(unsafe_code)]

pub mod annotate;
pub mod clock;
pub mod conf;
pub mod group_names;
pub mod identity;
pub mod jwt;
pub mod metrics;
pub mod oidc;
pub mod path;
pub mod policy;
pub mod session;

pub use clock::{Clock, SharedClock, SystemClock};
pub use identity::{AuthMethod, Identity, KubernetesIdentity};
