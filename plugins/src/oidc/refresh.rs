//! Keeping a session's identity current: the access token is refreshed with the refresh token
//! shortly before it expires, and the profile (groups above all) is re-read from userinfo every
//! `userinfo_refresh`. A provider that refuses the refresh token (`invalid_grant`: the user was
//! disabled, the grant revoked) ends the session; a provider that cannot be reached leaves the
//! session as it is and is not asked again about it for [`REFRESH_RETRY_SECS`].
//!
//! Refreshes are single-flight per session: concurrent requests of one session await the same
//! refresh (a rotated refresh token must be spent once).

use super::id_token::{self, NonceCheck};
use super::login::{token_failure, TokenFailure};
use super::provider::Provider;
use super::userinfo;
use super::{profile, GroupsFrom, OidcProviders};
use crate::metrics;
use crate::session::{
    IdHashBuilder, RevokeReason, Secret, Selector, Session, SessionId, SessionState, SessionStore,
    Tokens,
};
use dashmap::DashMap;
use openidconnect::{OAuth2TokenResponse, RefreshToken, TokenResponse};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// An access token is refreshed when it expires within this many seconds.
pub const ACCESS_TOKEN_REFRESH_MARGIN_SECS: i64 = 60;
/// After a refresh that could not reach the provider, the session is left alone this long.
pub const REFRESH_RETRY_SECS: i64 = 30;
/// Above this many remembered retry times, expired ones are swept on the next insert.
const RETRY_SWEEP_AT: usize = 10_000;

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The session is current (tokens and/or profile renewed, or nothing was due).
    Refreshed,
    /// The provider refused the refresh token: the session was revoked
    /// (`RevokeReason::RefreshRefused`); treat the request as signed out.
    Ended,
    /// The provider could not be reached or answered unusably: the session is kept as it was.
    Unavailable,
}

impl RefreshOutcome {
    /// The `result` label of `warden_token_refresh_total`.
    pub fn label(self) -> &'static str {
        match self {
            RefreshOutcome::Refreshed => "ok",
            RefreshOutcome::Ended => "refused",
            RefreshOutcome::Unavailable => "unavailable",
        }
    }
}

/// In-flight refreshes and retry times, by session; shared across reloads.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    inflight: DashMap<SessionId, Arc<OnceCell<RefreshOutcome>>, IdHashBuilder>,
    retry_after: DashMap<SessionId, i64, IdHashBuilder>,
}

/// What is due for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Due {
    pub token: bool,
    pub profile: bool,
}

impl Due {
    fn any(self) -> bool {
        self.token || self.profile
    }
}

/// What is due for a session in state `st` at `now`: the token when it expires within the
/// margin and can be refreshed; the profile when `userinfo_refresh_secs` passed since it was
/// read and userinfo can be asked (an endpoint, and a token that is valid or can be renewed).
pub(crate) fn due(
    st: &SessionState,
    has_userinfo: bool,
    userinfo_refresh_secs: i64,
    now: i64,
) -> Due {
    let can_refresh = st.refresh_token.is_some();
    let token_usable =
        st.access_token.is_some() && st.access_token_expires_at.is_none_or(|e| e > now);
    let profile = has_userinfo
        && (can_refresh || token_usable)
        && st.groups_refreshed_at.saturating_add(userinfo_refresh_secs) <= now;
    // A token of unknown lifetime is renewed along with the profile, so userinfo is never
    // asked with a token that may have died long ago.
    let token = can_refresh
        && match st.access_token_expires_at {
            Some(e) => e.saturating_sub(ACCESS_TOKEN_REFRESH_MARGIN_SECS) <= now,
            None => profile,
        };
    Due { token, profile }
}

fn secs(d: crate::conf::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl OidcProviders {
    fn due_for(&self, p: &Provider, session: &Session, now: i64) -> Due {
        let has_userinfo = p
            .discovered()
            .is_some_and(|d| d.userinfo_endpoint.is_some());
        due(
            &session.state(),
            has_userinfo,
            secs(p.conf.userinfo_refresh),
            now,
        )
    }

    /// Whether [`OidcProviders::refresh`] has work for this session: its access token expires
    /// within a minute, or its profile is older than `userinfo_refresh`. Cheap (no I/O, no
    /// lock): call it on every request of a session.
    pub fn needs_refresh(&self, session: &Session, now: i64) -> bool {
        let Some(p) = self.provider(session.provider()) else {
            return false;
        };
        if !self.due_for(&p, session, now).any() {
            return false;
        }
        match self.flights.retry_after.get(session.id()) {
            Some(until) => now >= *until,
            None => true,
        }
    }

    /// Refreshes what is due for `session` and records the result in `store` (`update`, or
    /// `revoke` when the provider refuses). Concurrent calls for one session share one
    /// refresh. Counts `warden_token_refresh_total`.
    pub async fn refresh(
        &self,
        session: &Arc<Session>,
        store: &dyn SessionStore,
        now: i64,
    ) -> RefreshOutcome {
        let id = *session.id();
        let cell = self.flights.inflight.entry(id).or_default().clone();
        let outcome = *cell
            .get_or_init(|| self.refresh_now(session, store, now))
            .await;
        self.flights
            .inflight
            .remove_if(&id, |_, c| Arc::ptr_eq(c, &cell));
        if outcome == RefreshOutcome::Unavailable {
            if self.flights.retry_after.len() >= RETRY_SWEEP_AT {
                self.flights.retry_after.retain(|_, until| *until > now);
            }
            self.flights
                .retry_after
                .insert(id, now + REFRESH_RETRY_SECS);
        } else {
            self.flights.retry_after.remove(&id);
        }
        outcome
    }

    async fn refresh_now(
        &self,
        session: &Arc<Session>,
        store: &dyn SessionStore,
        now: i64,
    ) -> RefreshOutcome {
        let Some(p) = self.provider(session.provider()) else {
            // The provider left the conf: nothing can be renewed; the session lives out its
            // lifetime unless an operator revokes it.
            return RefreshOutcome::Unavailable;
        };
        let due = self.due_for(&p, session, now);
        if !due.any() {
            // Another caller refreshed it a moment ago.
            return RefreshOutcome::Refreshed;
        }
        let outcome = self.renew(&p, session, store, due, now).await;
        metrics::TOKEN_REFRESH_TOTAL
            .with_label_values(&[outcome.label()])
            .inc();
        outcome
    }

    async fn renew(
        &self,
        p: &Arc<Provider>,
        session: &Arc<Session>,
        store: &dyn SessionStore,
        due: Due,
        now: i64,
    ) -> RefreshOutcome {
        let Some(d) = p.discovered() else {
            return RefreshOutcome::Unavailable;
        };
        let provider = &*p.name;
        let st = session.state();
        let mut profile = profile::current(&session.identity());
        let mut profile_read = false;
        let mut access = st.access_token.clone();

        if let (true, Some(rt)) = (due.token, &st.refresh_token) {
            let rt = RefreshToken::new(rt.expose().to_string());
            let request = match d.client.exchange_refresh_token(&rt) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(provider, error = %e, "cannot refresh tokens");
                    return RefreshOutcome::Unavailable;
                }
            };
            let response = match request.request_async(&p.http).await {
                Ok(r) => r,
                Err(e) => {
                    return match token_failure(e) {
                        TokenFailure::InvalidGrant(reason) => {
                            tracing::info!(provider, session = %session.handle(), %reason, "the provider refused the refresh token; ending the session");
                            end(session, store).await
                        }
                        TokenFailure::Unavailable(error) => {
                            p.mark_unreachable();
                            tracing::warn!(provider, session = %session.handle(), %error, "token refresh failed; keeping the session as it is");
                            RefreshOutcome::Unavailable
                        }
                        TokenFailure::Other(error) => {
                            tracing::warn!(provider, session = %session.handle(), %error, "token refresh failed; keeping the session as it is");
                            RefreshOutcome::Unavailable
                        }
                    }
                }
            };
            // Record the new tokens first: a rotated refresh token is the only one left.
            let tokens = Tokens {
                refresh_token: response
                    .refresh_token()
                    .map(|t| Secret::new(t.secret().as_str())),
                access_token: Some(Secret::new(response.access_token().secret().as_str())),
                access_token_expires_at: response
                    .expires_in()
                    .map(|e| now.saturating_add(i64::try_from(e.as_secs()).unwrap_or(i64::MAX))),
            };
            access = tokens.access_token.clone();
            session.update_tokens(tokens);
            if let Some(token) = response.id_token() {
                match id_token::verify(
                    &d,
                    &p.http,
                    &p.client_id,
                    &p.secret,
                    token,
                    NonceCheck::None,
                    now,
                )
                .await
                {
                    Ok(v) if v.subject != **session.subject() => {
                        tracing::warn!(provider, session = %session.handle(), "a refreshed ID token names another subject; ending the session");
                        return end(session, store).await;
                    }
                    // Groups from the ID token are only current if that is where they come from.
                    Ok(v) if p.conf.groups_from == GroupsFrom::IdToken => {
                        profile::merge(&mut profile, &v.claims, &p.conf.claims, true);
                        profile_read = true;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(provider, session = %session.handle(), %error, "ignoring an invalid ID token from a refresh");
                    }
                }
            }
        }

        if due.profile {
            let (Some(endpoint), Some(token)) = (&d.userinfo_endpoint, &access) else {
                return RefreshOutcome::Unavailable;
            };
            match userinfo::fetch(&p.http, endpoint, token.expose(), session.subject()).await {
                Ok(claims) => {
                    profile::merge(&mut profile, &claims, &p.conf.claims, true);
                    profile_read = true;
                }
                Err(error) => {
                    tracing::warn!(provider, session = %session.handle(), %error, "cannot re-read userinfo; keeping the profile as it is");
                    save(session, store).await;
                    return RefreshOutcome::Unavailable;
                }
            }
        }
        if profile_read {
            session.update_profile(profile, now);
        }
        save(session, store).await;
        RefreshOutcome::Refreshed
    }
}

async fn save(session: &Arc<Session>, store: &dyn SessionStore) {
    if let Err(error) = store.update(session.clone()).await {
        // This replica's copy is current; other replicas see the change on their next refresh.
        tracing::warn!(session = %session.handle(), %error, "cannot store the refreshed session");
    }
}

async fn end(session: &Arc<Session>, store: &dyn SessionStore) -> RefreshOutcome {
    if let Err(error) = store
        .revoke(&Selector::Id(*session.id()), RevokeReason::RefreshRefused)
        .await
    {
        tracing::warn!(session = %session.handle(), %error, "cannot revoke the session in the store");
    }
    RefreshOutcome::Ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{AuthMethod, Identity};

    fn state(rt: bool, at: bool, expires: Option<i64>, read_at: i64) -> SessionState {
        SessionState {
            identity: Arc::new(Identity::new(
                "u",
                "https://idp",
                AuthMethod::Bearer { issuer: "x".into() },
            )),
            refresh_token: rt.then(|| Secret::new("rt")),
            access_token: at.then(|| Secret::new("at")),
            access_token_expires_at: expires,
            groups_refreshed_at: read_at,
        }
    }

    #[test]
    fn tokens_are_due_a_minute_before_they_expire_if_they_can_be_refreshed() {
        let st = state(true, true, Some(1_000), 0);
        assert!(!due(&st, false, 300, 939).token);
        assert!(due(&st, false, 300, 940).token);
        assert!(due(&st, false, 300, 5_000).token);
        let no_rt = state(false, true, Some(1_000), 0);
        assert!(!due(&no_rt, false, 300, 5_000).token);
        let no_expiry = state(true, true, None, 0);
        assert!(!due(&no_expiry, false, 300, 5_000).token);
        assert_eq!(
            due(&no_expiry, true, 300, 5_000),
            Due {
                token: true,
                profile: true
            },
            "a token of unknown lifetime is renewed with the profile"
        );
    }

    #[test]
    fn profiles_are_due_after_the_interval_when_userinfo_can_be_asked() {
        let st = state(true, true, Some(10_000), 1_000);
        assert!(!due(&st, true, 300, 1_299).profile);
        assert!(due(&st, true, 300, 1_300).profile);
        assert!(!due(&st, false, 300, 1_300).profile, "no userinfo endpoint");
        // No refresh token: only while the access token lasts.
        let at_only = state(false, true, Some(2_000), 1_000);
        assert!(due(&at_only, true, 300, 1_300).profile);
        assert!(!due(&at_only, true, 300, 2_000).profile);
        let nothing = state(false, false, None, 1_000);
        assert!(!due(&nothing, true, 300, 9_000).profile);
    }

    #[test]
    fn outcome_labels_are_stable() {
        assert_eq!(RefreshOutcome::Refreshed.label(), "ok");
        assert_eq!(RefreshOutcome::Ended.label(), "refused");
        assert_eq!(RefreshOutcome::Unavailable.label(), "unavailable");
    }
}
