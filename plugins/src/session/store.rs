//! The session store contract. The in-memory store serves one replica; a shared store (Redis)
//! for several replicas implements the same trait, with a local cache behind `get_local` kept
//! current by pub/sub invalidation.

use super::{email_key, Session, SessionHandle, SessionId};
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;

/// Which sessions an admin or logout action is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// One session, by its id (sign-out with the session cookie).
    Id(SessionId),
    /// One session, by its public handle (admin API `{"session": HANDLE}`).
    Handle(SessionHandle),
    /// Every session of a subject, from any provider.
    Subject(String),
    /// Every session whose email matches, ignoring case.
    Email(String),
    /// The sessions a provider's logout token names by its `sid`.
    Sid {
        provider: String,
        sid: String,
    },
    All,
}

impl Selector {
    /// Whether `s` is selected. Stores narrow candidates with indexes and confirm with this.
    pub fn matches(&self, s: &Session) -> bool {
        match self {
            Selector::Id(id) => s.id() == id,
            Selector::Handle(h) => s.handle() == *h,
            Selector::Subject(sub) => **s.subject() == **sub,
            Selector::Email(e) => s
                .identity()
                .email
                .as_deref()
                .is_some_and(|have| email_key(have) == email_key(e)),
            Selector::Sid { provider, sid } => {
                **s.provider() == **provider && s.sid().is_some_and(|x| **x == **sid)
            }
            Selector::All => true,
        }
    }
}

/// Why sessions were ended; the `reason` label of `warden_sessions_revoked_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevokeReason {
    /// `POST /admin/sessions/revoke`.
    Admin,
    /// The user signed out (`/.warden/sign_out`).
    SignOut,
    /// The provider's back-channel logout token.
    Backchannel,
    /// The provider refused to refresh the session's tokens.
    RefreshRefused,
    /// The store was full and the session was among the least recently used.
    Evicted,
}

impl RevokeReason {
    pub const ALL: [RevokeReason; 5] = [
        RevokeReason::Admin,
        RevokeReason::SignOut,
        RevokeReason::Backchannel,
        RevokeReason::RefreshRefused,
        RevokeReason::Evicted,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RevokeReason::Admin => "admin",
            RevokeReason::SignOut => "sign_out",
            RevokeReason::Backchannel => "backchannel",
            RevokeReason::RefreshRefused => "refresh_refused",
            RevokeReason::Evicted => "evicted",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A session as the admin API lists it: who, since when, until when — no id, no token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSummary {
    /// The session handle, accepted by `POST /admin/sessions/revoke {"session": …}`.
    pub session: String,
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub last_seen: i64,
    /// Absolute expiry.
    pub expires_at: i64,
    /// Expiry if no request comes first.
    pub idle_expires_at: i64,
}

/// A store could not answer (a remote store's network or data); the memory store never fails.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("session store returned unreadable data: {0}")]
    Corrupt(String),
}

/// Where sessions live.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Hot path: a synchronous lookup in the local (in-memory) tier. `None` if the session is
    /// not held locally or is expired at `now_secs` (absolutely or by idleness); expired
    /// entries are removed. A hit records the access (`last_seen`).
    fn get_local(&self, id: &SessionId, now_secs: i64) -> Option<Arc<Session>>;

    /// Full lookup: a remote store goes to the network on a local miss.
    async fn get(&self, id: &SessionId, now_secs: i64) -> Result<Option<Arc<Session>>, StoreError>;

    /// Adds a new session, evicting if the store is full.
    async fn insert(&self, s: Arc<Session>) -> Result<(), StoreError>;

    /// Records a changed session (after a refresh replaced its identity or tokens), re-indexing
    /// a changed email. A session revoked meanwhile stays revoked: update never re-creates it.
    async fn update(&self, s: Arc<Session>) -> Result<(), StoreError>;

    /// Ends the selected sessions; returns how many. Bumps the revocation epoch if any ended.
    async fn revoke(&self, sel: &Selector, reason: RevokeReason) -> Result<usize, StoreError>;

    /// Describes the selected sessions, oldest first.
    async fn list(&self, sel: &Selector) -> Result<Vec<SessionSummary>, StoreError>;

    /// The id of the session with this public handle.
    async fn find_handle(&self, handle: SessionHandle) -> Result<Option<SessionId>, StoreError>;

    /// Sessions held (locally, for a store with a local tier).
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bumped on every revocation: the gateway watches it to re-check open websockets at once.
    fn revocation_epoch(&self) -> tokio::sync::watch::Receiver<u64>;
}
