//! What a session holds, and the identity built from it once and shared by every request.

use super::{email_key, RandomError, Secret, SessionHandle, SessionId, SessionSummary};
use crate::identity::{AuthMethod, Identity};
use arc_swap::ArcSwap;
use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// How long sessions live: `identity.cookie.ttl` (absolute, from sign-in) and
/// `identity.cookie.idle_timeout` (since the last request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetime {
    pub ttl_secs: i64,
    pub idle_timeout_secs: i64,
}

/// The user attributes a provider vouched for; re-read on refresh or from userinfo.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// Only the claims the conf selects (for policy and header mappings); never the ID token.
    pub claims: serde_json::Value,
}

/// The provider tokens a session keeps: only what refreshing and re-reading userinfo need.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub refresh_token: Option<Secret>,
    /// The access token from the last token response, for the provider's userinfo endpoint.
    pub access_token: Option<Secret>,
    /// When the access token from the last token response expires (Unix seconds).
    pub access_token_expires_at: Option<i64>,
}

/// Everything a login produces that the session keeps.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The provider's conf name.
    pub provider: Arc<str>,
    /// The provider's issuer URL (`iss`).
    pub issuer_url: Box<str>,
    pub subject: Box<str>,
    /// The OP's session id (`sid`), to find the session when the OP logs it out.
    pub sid: Option<Box<str>>,
    pub profile: Profile,
    pub tokens: Tokens,
}

/// The parts of a session that change while it lives, replaced together so readers see either
/// the old or the new set, never a mix, and never wait for a lock.
#[derive(Debug)]
pub struct SessionState {
    pub identity: Arc<Identity>,
    pub refresh_token: Option<Secret>,
    pub access_token: Option<Secret>,
    pub access_token_expires_at: Option<i64>,
    /// When groups and claims were last read from the provider (Unix seconds).
    pub groups_refreshed_at: i64,
}

/// A signed-in browser session.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    handle: SessionHandle,
    provider: Arc<str>,
    subject: Arc<str>,
    sid: Option<Arc<str>>,
    created_at: i64,
    expires_at: i64,
    idle_timeout_secs: i64,
    last_seen: AtomicI64,
    state: ArcSwap<SessionState>,
}

impl Session {
    /// A new session with a fresh random id, created at `now` (Unix seconds).
    pub fn create(new: NewSession, now: i64, life: SessionLifetime) -> Result<Self, RandomError> {
        Ok(Self::with_id(SessionId::generate()?, new, now, life))
    }

    /// A session with a given id (stores that persist sessions, tests).
    pub fn with_id(id: SessionId, new: NewSession, now: i64, life: SessionLifetime) -> Self {
        let handle = id.handle();
        let handle_str: Arc<str> = handle.to_string().into();
        let expires_at = now.saturating_add(life.ttl_secs);
        let identity = build_identity(
            &new.subject,
            new.issuer_url,
            AuthMethod::Session {
                provider: new.provider.clone(),
                session_id: handle_str,
            },
            new.profile,
            expires_at,
        );
        Self {
            id,
            handle,
            provider: new.provider,
            subject: Arc::from(new.subject),
            sid: new.sid.map(Arc::from),
            created_at: now,
            expires_at,
            idle_timeout_secs: life.idle_timeout_secs,
            last_seen: AtomicI64::new(now),
            state: ArcSwap::from_pointee(SessionState {
                identity: Arc::new(identity),
                refresh_token: new.tokens.refresh_token,
                access_token: new.tokens.access_token,
                access_token_expires_at: new.tokens.access_token_expires_at,
                groups_refreshed_at: now,
            }),
        }
    }

    pub fn id(&self) -> &SessionId {
        &self.id
    }

    pub fn handle(&self) -> SessionHandle {
        self.handle
    }

    /// The provider's conf name.
    pub fn provider(&self) -> &Arc<str> {
        &self.provider
    }

    pub fn subject(&self) -> &Arc<str> {
        &self.subject
    }

    /// The OP's session id, if the ID token carried one.
    pub fn sid(&self) -> Option<&Arc<str>> {
        self.sid.as_ref()
    }

    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// The absolute expiry: sign-in time + ttl.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    pub fn idle_timeout_secs(&self) -> i64 {
        self.idle_timeout_secs
    }

    /// The last time (Unix seconds, to the second) a request used the session.
    pub fn last_seen(&self) -> i64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// When the session expires if no request uses it before.
    pub fn idle_expires_at(&self) -> i64 {
        self.last_seen().saturating_add(self.idle_timeout_secs)
    }

    /// Expired at `now`, absolutely or by idleness. A session is valid strictly before either
    /// deadline.
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at || now >= self.idle_expires_at()
    }

    /// Records a request at `now`. Writes only when the second changed, so sessions shared by
    /// many concurrent requests do not bounce a cache line on every one.
    pub fn touch(&self, now: i64) {
        if now > self.last_seen.load(Ordering::Relaxed) {
            self.last_seen.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// The identity requests act as.
    pub fn identity(&self) -> Arc<Identity> {
        self.state.load().identity.clone()
    }

    /// The changing parts (identity, tokens), as one consistent snapshot.
    pub fn state(&self) -> Arc<SessionState> {
        self.state.load_full()
    }

    /// Replaces the user attributes after a provider re-read them (refresh, userinfo) at `now`.
    pub fn update_profile(&self, profile: Profile, now: i64) {
        let current = self.identity();
        let identity = Arc::new(build_identity(
            &self.subject,
            current.issuer_url.clone(),
            current.method.clone(),
            profile,
            self.expires_at,
        ));
        self.state.rcu(|s| SessionState {
            identity: identity.clone(),
            refresh_token: s.refresh_token.clone(),
            access_token: s.access_token.clone(),
            access_token_expires_at: s.access_token_expires_at,
            groups_refreshed_at: now,
        });
    }

    /// Replaces the tokens after a refresh. A provider that does not rotate refresh tokens
    /// returns none: the old one is kept (likewise an absent access token).
    pub fn update_tokens(&self, tokens: Tokens) {
        self.state.rcu(|s| SessionState {
            identity: s.identity.clone(),
            refresh_token: tokens
                .refresh_token
                .clone()
                .or_else(|| s.refresh_token.clone()),
            access_token: tokens
                .access_token
                .clone()
                .or_else(|| s.access_token.clone()),
            access_token_expires_at: tokens.access_token_expires_at,
            groups_refreshed_at: s.groups_refreshed_at,
        });
    }

    /// The session's email in index form (lowercase), if it has one.
    pub(crate) fn email_key(&self) -> Option<Arc<str>> {
        let identity = self.state.load();
        identity
            .identity
            .email
            .as_deref()
            .map(|e| match email_key(e) {
                Cow::Borrowed(b) => Arc::from(b),
                Cow::Owned(o) => Arc::from(o),
            })
    }

    /// What the admin API shows: no id, no token.
    pub fn summary(&self) -> SessionSummary {
        let identity = self.identity();
        SessionSummary {
            session: self.handle.to_string(),
            provider: self.provider.to_string(),
            subject: self.subject.to_string(),
            email: identity.email.as_deref().map(str::to_string),
            name: identity.name.as_deref().map(str::to_string),
            created_at: self.created_at,
            last_seen: self.last_seen(),
            expires_at: self.expires_at,
            idle_expires_at: self.idle_expires_at(),
        }
    }
}

fn build_identity(
    subject: &str,
    issuer_url: Box<str>,
    method: AuthMethod,
    profile: Profile,
    expires_at: i64,
) -> Identity {
    Identity::new(subject, issuer_url, method)
        .with_email(profile.email)
        .with_name(profile.name)
        .with_groups(profile.groups)
        .with_claims(profile.claims)
        .with_expiry(expires_at)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) const LIFE: SessionLifetime = SessionLifetime {
        ttl_secs: 12 * 3600,
        idle_timeout_secs: 3600,
    };

    pub(crate) fn new_session(subject: &str, email: Option<&str>, sid: Option<&str>) -> NewSession {
        NewSession {
            provider: "corp".into(),
            issuer_url: "https://idp.example.com".into(),
            subject: subject.into(),
            sid: sid.map(Into::into),
            profile: Profile {
                email: email.map(str::to_string),
                name: Some("Ann Example".into()),
                groups: vec!["sre".into(), "dev".into()],
                claims: json!({"tier": "gold"}),
            },
            tokens: Tokens {
                refresh_token: Some(Secret::new("rt-1")),
                access_token: Some(Secret::new("at-1")),
                access_token_expires_at: Some(1_300),
            },
        }
    }

    fn ann() -> Session {
        Session::create(
            new_session("u1", Some("ann@example.com"), None),
            1_000,
            LIFE,
        )
        .unwrap()
    }

    #[test]
    fn identity_is_built_from_the_fields() {
        let s = ann();
        let id = s.identity();
        assert_eq!(&*id.subject, "u1");
        assert_eq!(id.email.as_deref(), Some("ann@example.com"));
        assert_eq!(id.name.as_deref(), Some("Ann Example"));
        assert!(id.has_group("sre") && id.has_group("dev"));
        assert_eq!(id.claim("tier"), Some(&json!("gold")));
        assert_eq!(&*id.issuer_url, "https://idp.example.com");
        assert_eq!(id.expires_at, 1_000 + 12 * 3600);
        assert_eq!(
            id.method,
            AuthMethod::Session {
                provider: "corp".into(),
                session_id: s.handle().to_string().into()
            }
        );
    }

    #[test]
    fn identity_and_debug_never_hold_the_id_or_the_refresh_token() {
        let s = Session::create(new_session("u1", None, None), 1_000, LIFE).unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("rt-1"), "{printed}");
        assert!(!printed.contains("at-1"), "{printed}");
        let id_hex = hex::encode(s.id().as_bytes());
        assert!(!printed.contains(&id_hex));
        assert_ne!(s.identity().method.session_id(), Some(id_hex.as_str()));
    }

    #[test]
    fn expiry_absolute_and_idle() {
        let s = Session::create(new_session("u1", None, None), 1_000, LIFE).unwrap();
        assert!(!s.is_expired(1_000 + 3599));
        assert!(s.is_expired(1_000 + 3600), "idle deadline is exclusive");
        s.touch(4_000);
        assert_eq!(s.last_seen(), 4_000);
        assert!(!s.is_expired(1_000 + 3600));
        s.touch(3_000);
        assert_eq!(s.last_seen(), 4_000, "last_seen never moves back");
        // Keep it active to the absolute deadline.
        let end = 1_000 + 12 * 3600;
        let mut t = 4_000;
        while t < end {
            s.touch(t);
            t += 1_800;
        }
        s.touch(end - 1);
        assert!(!s.is_expired(end - 1));
        assert!(s.is_expired(end));
    }

    #[test]
    fn updates_replace_the_identity_and_keep_what_was_not_renewed() {
        let s = ann();
        let before = s.identity();
        s.update_profile(
            Profile {
                email: Some("ann@new.example".into()),
                groups: vec!["ops".into()],
                ..Profile::default()
            },
            2_000,
        );
        let after = s.identity();
        assert_eq!(
            before.email.as_deref(),
            Some("ann@example.com"),
            "readers keep their copy"
        );
        assert_eq!(after.email.as_deref(), Some("ann@new.example"));
        assert!(after.has_group("ops") && !after.has_group("sre"));
        assert_eq!(after.method, before.method);
        assert_eq!(s.state().groups_refreshed_at, 2_000);
        assert_eq!(
            s.state().refresh_token.as_ref().map(Secret::expose),
            Some("rt-1")
        );

        s.update_tokens(Tokens {
            refresh_token: None,
            access_token: None,
            access_token_expires_at: Some(5_000),
        });
        let st = s.state();
        assert_eq!(st.refresh_token.as_ref().map(Secret::expose), Some("rt-1"));
        assert_eq!(st.access_token.as_ref().map(Secret::expose), Some("at-1"));
        assert_eq!(st.access_token_expires_at, Some(5_000));
        s.update_tokens(Tokens {
            refresh_token: Some(Secret::new("rt-2")),
            access_token: Some(Secret::new("at-2")),
            access_token_expires_at: Some(6_000),
        });
        assert_eq!(
            s.state().refresh_token.as_ref().map(Secret::expose),
            Some("rt-2")
        );
        assert_eq!(
            s.state().access_token.as_ref().map(Secret::expose),
            Some("at-2")
        );
        assert!(Arc::ptr_eq(&s.identity(), &after));
    }

    #[test]
    fn summary_has_no_secrets() {
        let s = Session::create(
            new_session("u1", Some("Ann@Example.com"), Some("op-1")),
            1_000,
            LIFE,
        )
        .unwrap();
        let j = serde_json::to_string(&s.summary()).unwrap();
        assert!(!j.contains("rt-1"));
        assert!(!j.contains(&hex::encode(s.id().as_bytes())));
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["session"], json!(s.handle().to_string()));
        assert_eq!(v["email"], json!("Ann@Example.com"));
        assert_eq!(v["expires_at"], json!(1_000 + 12 * 3600));
        assert_eq!(s.email_key().as_deref(), Some("ann@example.com"));
    }
}
