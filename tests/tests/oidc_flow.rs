//! Warden's OIDC library (`warden_plugins::oidc`) end to end against the real test provider,
//! without the gateway: login (and every way a callback can be wrong), refresh, userinfo,
//! logout, key rotation, and a provider that is down when Warden starts.

use serde_json::json;
use std::sync::Arc;
use warden_plugins::clock::{Clock, ManualClock, SystemClock};
use warden_plugins::metrics;
use warden_plugins::oidc::{
    CompletedLogin, LoginError, LogoutError, OidcError, OidcProviders, ProviderConf,
    RefreshOutcome, BACKCHANNEL_LOGOUT_EVENT, LOGIN_STATE_TTL_SECS,
};
use warden_plugins::session::cookie::purpose;
use warden_plugins::session::{
    CookieKey, CookieSecret, MemoryStore, Selector, Session, SessionLifetime, SessionStore,
};
use warden_tests::oidc::{
    self, browser, jwt_claims, query_param, LogoutSink, OidcProvider, ProviderOpts, WebClient,
};

const REDIRECT: &str = "https://app.example.test/.warden/callback";
const RETURN_TO: &str = "https://app.example.test/dashboard?tab=2";
const SIGNED_OUT: &str = "https://app.example.test/signed-out";
const LIFE: SessionLifetime = SessionLifetime {
    ttl_secs: 12 * 3600,
    idle_timeout_secs: 3600,
};

/// The provider, Warden's OIDC providers for it, a store, and a clock set to the real time
/// (the provider's tokens carry real timestamps) that tests move forward.
struct Setup {
    idp: OidcProvider,
    sink: LogoutSink,
    oidc: OidcProviders,
    clock: Arc<ManualClock>,
    key: CookieKey,
    store: Arc<MemoryStore>,
    name: String,
    _dir: tempfile::TempDir,
}

struct Opts {
    /// The provider's conf name: tests use their own so their metrics do not mix.
    name: &'static str,
    conf: serde_json::Value,
    idp: ProviderOpts,
}

impl Opts {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            conf: json!({}),
            idp: ProviderOpts::default(),
        }
    }
}

fn web_client(sink: &LogoutSink) -> WebClient {
    let mut c = WebClient::new("warden", "warden-secret", &[REDIRECT]);
    c.post_logout_redirect_uris = vec![SIGNED_OUT.into()];
    c.backchannel_logout_uri = Some(sink.url.clone());
    c
}

fn provider_conf(
    name: &str,
    issuer: &str,
    secret_file: &std::path::Path,
    extra: &serde_json::Value,
) -> ProviderConf {
    let mut v = json!({
        "name": name,
        "issuer": issuer,
        "client_id": "warden",
        "client_secret_file": secret_file,
        "scopes": ["openid", "email", "profile", "groups"],
        "claims": {"keep": ["email_verified"]},
    });
    for (k, x) in extra.as_object().into_iter().flatten() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).expect("provider conf")
}

fn cookie_key() -> CookieKey {
    CookieSecret::new(b"0123456789abcdef0123456789abcdef-oidc-tests")
        .unwrap()
        .key(purpose::LOGIN_STATE)
}

impl Setup {
    async fn start(opts: Opts) -> Self {
        let sink = LogoutSink::start().await;
        let mut idp_opts = opts.idp;
        idp_opts.clients = vec![web_client(&sink)];
        let idp = OidcProvider::start(idp_opts).await;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("oidc-secret");
        std::fs::write(&secret, "warden-secret\n").unwrap();
        let clock = ManualClock::at_secs(SystemClock.now_secs());
        let conf = provider_conf(opts.name, &idp.issuer(), &secret, &opts.conf);
        let oidc = OidcProviders::start(&[conf], clock.clone(), None)
            .await
            .expect("providers start");
        assert!(oidc.is_ready(opts.name), "{}", idp.log());
        Self {
            idp,
            sink,
            oidc,
            store: Arc::new(MemoryStore::with_capacity(1000, clock.clone())),
            clock,
            key: cookie_key(),
            name: opts.name.into(),
            _dir: dir,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_secs()
    }

    /// Begins a login and drives the provider's form: the callback URL and the login cookie.
    async fn authorize(&self, b: &reqwest::Client, user: &str) -> (url::Url, String) {
        let start = self
            .oidc
            .begin_login(&self.name, RETURN_TO, REDIRECT, &self.key, self.now())
            .unwrap();
        let callback = oidc::login(b, &start.authorize_url, user, &format!("{user}-password"))
            .await
            .unwrap();
        (callback, start.state_cookie_value)
    }

    async fn complete(
        &self,
        callback: &url::Url,
        cookies: &[&str],
    ) -> Result<CompletedLogin, LoginError> {
        self.oidc
            .complete_login(
                callback.query().unwrap_or_default(),
                cookies,
                REDIRECT,
                &self.key,
                self.now(),
            )
            .await
    }

    /// A full login of `user`, stored as a session.
    async fn session(&self, user: &str) -> Arc<Session> {
        let (callback, cookie) = self.authorize(&browser(), user).await;
        let done = self.complete(&callback, &[&cookie]).await.unwrap();
        let s = Arc::new(Session::create(done.new_session, self.now(), LIFE).unwrap());
        self.store.insert(s.clone()).await.unwrap();
        s
    }

    fn logins(&self, result: &str) -> u64 {
        metrics::LOGINS_TOTAL
            .with_label_values(&[&self.name, result])
            .get()
    }
}

fn refreshes(result: &str) -> u64 {
    metrics::TOKEN_REFRESH_TOTAL
        .with_label_values(&[result])
        .get()
}

#[tokio::test]
async fn a_login_yields_a_session_with_the_users_identity() {
    let s = Setup::start(Opts::new("login")).await;
    let start = s
        .oidc
        .begin_login("login", RETURN_TO, REDIRECT, &s.key, s.now())
        .unwrap();
    assert_eq!(start.state_cookie_max_age, LOGIN_STATE_TTL_SECS);
    let auth = url::Url::parse(&start.authorize_url).unwrap();
    assert!(auth.as_str().starts_with(&s.idp.url("/auth")));
    assert_eq!(
        query_param(&auth, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&auth, "redirect_uri").as_deref(),
        Some(REDIRECT)
    );
    assert_eq!(
        query_param(&auth, "scope").as_deref(),
        Some("openid email profile groups")
    );
    let state = query_param(&auth, "state").unwrap();
    assert!(state.len() >= 43 && query_param(&auth, "nonce").unwrap().len() >= 43);
    assert_eq!(
        start.state_cookie_base,
        warden_plugins::oidc::state_cookie_base(&state)
    );
    assert!(
        !start.state_cookie_value.contains(&state),
        "the state is sealed, not plain"
    );

    let ok_before = s.logins("ok");
    let b = browser();
    let callback = oidc::login(&b, &start.authorize_url, "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(
        warden_plugins::oidc::state_cookie_base_for_callback(callback.query().unwrap()),
        Some(start.state_cookie_base.clone())
    );
    let done = s
        .complete(&callback, &[&start.state_cookie_value])
        .await
        .unwrap();
    assert_eq!(done.return_to, RETURN_TO);
    assert_eq!(done.state_cookie_base, start.state_cookie_base);
    let n = &done.new_session;
    assert_eq!(&*n.provider, "login");
    assert_eq!(&*n.issuer_url, s.idp.issuer());
    assert_eq!(&*n.subject, "alice");
    assert_eq!(n.profile.email.as_deref(), Some("alice@example.com"));
    assert_eq!(n.profile.name.as_deref(), Some("Alice Example"));
    assert_eq!(n.profile.groups, ["eng", "sre"]);
    assert_eq!(
        n.profile.claims,
        json!({"email_verified": true}),
        "only kept claims"
    );
    let sids: serde_json::Value = reqwest::get(s.idp.url("/test/sessions/alice"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(n.sid.as_deref(), sids["warden"][0].as_str());
    assert!(n.tokens.refresh_token.is_some());
    assert!(n.tokens.access_token.is_some());
    assert_eq!(n.tokens.access_token_expires_at, Some(s.now() + 300));
    assert_eq!(s.logins("ok"), ok_before + 1);

    // The session built from it.
    let session = Session::create(done.new_session, s.now(), LIFE).unwrap();
    let id = session.identity();
    assert!(id.has_group("sre") && id.has_group("eng"));
    assert_eq!(id.claim("email_verified"), Some(&json!(true)));
    assert!(
        !format!("{session:?}").contains(session.state().refresh_token.as_ref().unwrap().expose())
    );
}

#[tokio::test]
async fn groups_can_come_from_userinfo() {
    let mut o = Opts::new("userinfo-groups");
    o.conf = json!({"groups_from": "userinfo"});
    let s = Setup::start(o).await;
    let session = s.session("bob").await;
    assert_eq!(
        &*session.identity().groups,
        ["eng".into()] as [std::sync::Arc<str>; 1]
    );
}

#[tokio::test]
async fn several_logins_can_run_at_once_in_one_browser() {
    let s = Setup::start(Opts::new("tabs")).await;
    let b = browser();
    let first = s
        .oidc
        .begin_login(
            "tabs",
            "https://app.example.test/one",
            REDIRECT,
            &s.key,
            s.now(),
        )
        .unwrap();
    let second = s
        .oidc
        .begin_login(
            "tabs",
            "https://app.example.test/two",
            REDIRECT,
            &s.key,
            s.now(),
        )
        .unwrap();
    assert_ne!(first.state_cookie_base, second.state_cookie_base);
    let cb2 = oidc::login(&b, &second.authorize_url, "carol", "carol-password")
        .await
        .unwrap();
    // The provider remembers the browser now: the first tab goes straight through.
    let cb1 = oidc::login(&b, &first.authorize_url, "carol", "carol-password")
        .await
        .unwrap();
    let both = [
        first.state_cookie_value.as_str(),
        &second.state_cookie_value,
    ];
    let done2 = s.complete(&cb2, &both).await.unwrap();
    let done1 = s.complete(&cb1, &both).await.unwrap();
    assert_eq!(done1.return_to, "https://app.example.test/one");
    assert_eq!(done2.return_to, "https://app.example.test/two");
}

#[tokio::test]
async fn callbacks_with_missing_replayed_expired_or_forged_state_are_refused() {
    let s = Setup::start(Opts::new("state")).await;

    // No cookie for this state, or no state at all.
    let (callback, _) = s.authorize(&browser(), "bob").await;
    let other = s
        .oidc
        .begin_login("state", RETURN_TO, REDIRECT, &s.key, s.now())
        .unwrap();
    let err = s
        .complete(&callback, &[&other.state_cookie_value])
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::StateMissing), "{err}");
    assert_eq!(err.status(), 400);
    let no_state = url::Url::parse(&format!("{REDIRECT}?code=abc")).unwrap();
    assert!(matches!(
        s.complete(&no_state, &[&other.state_cookie_value]).await,
        Err(LoginError::StateMissing)
    ));

    // A state is good once.
    let (callback, cookie) = s.authorize(&browser(), "bob").await;
    s.complete(&callback, &[&cookie]).await.unwrap();
    let replayed_before = s.logins("state_replayed");
    let err = s.complete(&callback, &[&cookie]).await.unwrap_err();
    assert!(matches!(err, LoginError::StateReplayed), "{err}");
    assert_eq!(s.logins("state_replayed"), replayed_before + 1);

    // Too slow: the login cookie expired.
    let (callback, cookie) = s.authorize(&browser(), "bob").await;
    s.clock.advance_secs(LOGIN_STATE_TTL_SECS + 1);
    let err = s.complete(&callback, &[&cookie]).await.unwrap_err();
    assert!(matches!(err, LoginError::StateExpired), "{err}");

    // A cookie sealed with another secret.
    let s = Setup::start(Opts::new("forged")).await;
    let forger = CookieSecret::new(&[9u8; 32])
        .unwrap()
        .key(purpose::LOGIN_STATE);
    let start = s
        .oidc
        .begin_login("forged", RETURN_TO, REDIRECT, &forger, s.now())
        .unwrap();
    let callback = oidc::login(&browser(), &start.authorize_url, "bob", "bob-password")
        .await
        .unwrap();
    let err = s
        .complete(&callback, &[&start.state_cookie_value])
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::StateInvalid), "{err}");

    // A callback arriving at another address than the login was started for.
    let (callback, cookie) = s.authorize(&browser(), "bob").await;
    let err = s
        .oidc
        .complete_login(
            callback.query().unwrap(),
            &[&cookie],
            "https://other.example.test/.warden/callback",
            &s.key,
            s.now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::StateInvalid), "{err}");
}

#[tokio::test]
async fn provider_errors_and_bad_codes_are_refused() {
    let s = Setup::start(Opts::new("errors")).await;
    let start = s
        .oidc
        .begin_login("errors", RETURN_TO, REDIRECT, &s.key, s.now())
        .unwrap();
    let callback = oidc::deny(&browser(), &start.authorize_url).await.unwrap();
    let err = s
        .complete(&callback, &[&start.state_cookie_value])
        .await
        .unwrap_err();
    match &err {
        LoginError::IdpError { error, .. } => assert_eq!(error, "access_denied"),
        other => panic!("{other}"),
    }
    assert_eq!((err.reason(), err.status()), ("idp_error", 403));

    // A made-up code, with a genuine state.
    let (callback, cookie) = s.authorize(&browser(), "alice").await;
    let callback = with_param(&callback, "code", "bogus");
    let err = s.complete(&callback, &[&cookie]).await.unwrap_err();
    assert!(matches!(err, LoginError::CodeExchangeFailed(_)), "{err}");
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    assert_eq!(err.status(), 400);

    // A callback naming another issuer (mix-up).
    let (callback, cookie) = s.authorize(&browser(), "alice").await;
    let callback = with_param(&callback, "iss", "https://evil.example");
    let err = s.complete(&callback, &[&cookie]).await.unwrap_err();
    assert!(matches!(err, LoginError::IssuerMismatch), "{err}");

    assert!(matches!(
        s.oidc
            .begin_login("nope", RETURN_TO, REDIRECT, &s.key, s.now()),
        Err(OidcError::UnknownProvider(_))
    ));
    assert!(matches!(
        s.oidc
            .begin_login("errors", "/relative", REDIRECT, &s.key, s.now()),
        Err(OidcError::InvalidUrl(_))
    ));
}

/// `url` with query parameter `name` set to `value`.
fn with_param(url: &url::Url, name: &str, value: &str) -> url::Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(&pairs);
    out
}

#[tokio::test]
async fn refresh_renews_the_access_token_and_rotated_refresh_token() {
    let mut o = Opts::new("refresh");
    o.idp.access_token_ttl = 120;
    let s = Setup::start(o).await;
    let session = s.session("alice").await;
    let before = session.state();
    assert!(!s.oidc.needs_refresh(&session, s.now()));
    s.clock.advance_secs(61);
    assert!(
        s.oidc.needs_refresh(&session, s.now()),
        "due a minute before expiry"
    );

    let ok_before = refreshes("ok");
    let outcome = s.oidc.refresh(&session, &*s.store, s.now()).await;
    assert_eq!(outcome, RefreshOutcome::Refreshed);
    let after = session.state();
    assert_eq!(after.access_token_expires_at, Some(s.now() + 120));
    assert_ne!(
        after.access_token.as_ref().unwrap().expose(),
        before.access_token.as_ref().unwrap().expose()
    );
    assert_ne!(
        after.refresh_token.as_ref().unwrap().expose(),
        before.refresh_token.as_ref().unwrap().expose(),
        "the provider rotates refresh tokens"
    );
    assert!(!s.oidc.needs_refresh(&session, s.now()));
    assert!(refreshes("ok") > ok_before);
    let stored = s.store.get(session.id(), s.now()).await.unwrap().unwrap();
    assert_eq!(
        stored.state().access_token_expires_at,
        after.access_token_expires_at
    );

    // Concurrent callers share one refresh: a rotated refresh token spent twice would be
    // refused (and the provider would revoke the grant).
    s.clock.advance_secs(61);
    let (a, b, c) = tokio::join!(
        s.oidc.refresh(&session, &*s.store, s.now()),
        s.oidc.refresh(&session, &*s.store, s.now()),
        s.oidc.refresh(&session, &*s.store, s.now()),
    );
    assert_eq!([a, b, c], [RefreshOutcome::Refreshed; 3]);
    s.clock.advance_secs(61);
    assert_eq!(
        s.oidc.refresh(&session, &*s.store, s.now()).await,
        RefreshOutcome::Refreshed,
        "the grant is still alive"
    );
}

#[tokio::test]
async fn groups_changed_at_the_provider_appear_after_a_refresh() {
    let mut o = Opts::new("groups");
    o.conf = json!({"userinfo_refresh": "1m"});
    let s = Setup::start(o).await;
    let session = s.session("bob").await;
    assert!(!session.identity().has_group("oncall"));
    s.idp.set_groups("bob", &["eng", "oncall"]).await;
    assert!(!s.oidc.needs_refresh(&session, s.now()));
    s.clock.advance_secs(60);
    assert!(s.oidc.needs_refresh(&session, s.now()), "userinfo is due");
    let token_before = session.state().access_token_expires_at;
    assert_eq!(
        s.oidc.refresh(&session, &*s.store, s.now()).await,
        RefreshOutcome::Refreshed
    );
    let id = session.identity();
    assert!(
        id.has_group("oncall") && id.has_group("eng"),
        "{:?}",
        id.groups
    );
    assert_eq!(
        session.state().access_token_expires_at,
        token_before,
        "only userinfo was read"
    );
    assert_eq!(session.state().groups_refreshed_at, s.now());

    // Groups also follow a token refresh (the refreshed ID token carries them).
    s.idp.set_groups("bob", &[]).await;
    s.clock.advance_secs(300);
    assert_eq!(
        s.oidc.refresh(&session, &*s.store, s.now()).await,
        RefreshOutcome::Refreshed
    );
    assert!(session.identity().groups.is_empty());
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session() {
    let s = Setup::start(Opts::new("refused")).await;
    let session = s.session("carol").await;
    let other = s.session("alice").await;
    assert!(s.idp.revoke_user("carol").await > 0);
    s.clock.advance_secs(300);
    let refused_before = refreshes("refused");
    assert_eq!(
        s.oidc.refresh(&session, &*s.store, s.now()).await,
        RefreshOutcome::Ended
    );
    assert!(refreshes("refused") > refused_before);
    assert!(s.store.get(session.id(), s.now()).await.unwrap().is_none());
    assert_eq!(
        s.oidc.refresh(&other, &*s.store, s.now()).await,
        RefreshOutcome::Refreshed,
        "other users are unaffected"
    );
    assert!(s.store.get(other.id(), s.now()).await.unwrap().is_some());
}

#[tokio::test]
async fn an_unreachable_provider_keeps_the_session_and_backs_off() {
    let mut s = Setup::start(Opts::new("down")).await;
    let session = s.session("alice").await;
    s.idp.stop();
    s.clock.advance_secs(300);
    assert!(s.oidc.needs_refresh(&session, s.now()));
    let before = session.state();
    assert_eq!(
        s.oidc.refresh(&session, &*s.store, s.now()).await,
        RefreshOutcome::Unavailable
    );
    assert!(Arc::ptr_eq(&before, &session.state()), "nothing changed");
    assert!(s.store.get(session.id(), s.now()).await.unwrap().is_some());
    assert!(
        !s.oidc.needs_refresh(&session, s.now()),
        "not asked again right away"
    );
    s.clock
        .advance_secs(warden_plugins::oidc::REFRESH_RETRY_SECS);
    assert!(s.oidc.needs_refresh(&session, s.now()));
}

#[tokio::test]
async fn backchannel_logout_tokens_from_the_provider_name_the_session() {
    let s = Setup::start(Opts::new("backchannel")).await;
    let session = s.session("alice").await;
    let delivered = s.idp.backchannel_logout("alice").await;
    assert_eq!(delivered.len(), 1);
    let body = s.sink.next().await;
    let logout = s.oidc.verify_logout_token(&body, s.now()).await.unwrap();
    assert_eq!(&*logout.provider, "backchannel");
    assert_eq!(logout.sid.as_deref(), session.sid().map(|x| &**x));
    assert_eq!(logout.sub.as_deref(), Some("alice"));
    // The gateway revokes by sid.
    let ended = s
        .store
        .revoke(
            &Selector::Sid {
                provider: logout.provider.to_string(),
                sid: logout.sid.clone().unwrap(),
            },
            warden_plugins::session::RevokeReason::Backchannel,
        )
        .await
        .unwrap();
    assert_eq!(ended, 1);
    // The same token again is a replay.
    assert!(matches!(
        s.oidc.verify_logout_token(&body, s.now()).await,
        Err(LogoutError::Replayed)
    ));
}

#[tokio::test]
async fn rp_initiated_logout_sends_the_browser_back_and_logs_out_on_the_back_channel() {
    let s = Setup::start(Opts::new("rp-logout")).await;
    let b = browser();
    let (callback, cookie) = s.authorize(&b, "bob").await;
    let done = s.complete(&callback, &[&cookie]).await.unwrap();
    let url = s
        .oidc
        .end_session_url("rp-logout", SIGNED_OUT, None)
        .unwrap();
    assert!(url.starts_with(&s.idp.url("/session/end?")), "{url}");
    let back = oidc::logout(&b, &url).await.unwrap();
    assert_eq!(back.as_str(), SIGNED_OUT);
    let body = s.sink.next().await;
    let logout = s.oidc.verify_logout_token(&body, s.now()).await.unwrap();
    assert_eq!(logout.sid.as_deref(), done.new_session.sid.as_deref());
    assert!(s.oidc.end_session_url("nope", SIGNED_OUT, None).is_none());
}

/// A logout token's claims as the provider would send them, for variations.
fn logout_claims(s: &Setup, sid: &str) -> serde_json::Value {
    json!({
        "iss": s.idp.issuer(),
        "aud": "warden",
        "iat": s.now(),
        "exp": s.now() + 120,
        "jti": format!("jti-{}", unique()),
        "sub": "alice",
        "sid": sid,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    })
}

/// A fresh random string.
fn unique() -> String {
    warden_tests::oidc::pkce_pair().0
}

fn form(token: &str) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", token)
        .finish()
        .into_bytes()
}

#[tokio::test]
async fn forged_or_wrong_logout_tokens_are_refused() {
    let s = Setup::start(Opts::new("forged-logout")).await;
    let typ = json!({"typ": "logout+jwt"});
    // Genuine, as a baseline.
    let good = s.idp.sign(logout_claims(&s, "sid-1"), typ.clone()).await;
    s.oidc
        .verify_logout_token(&form(&good), s.now())
        .await
        .unwrap();

    // Altered after signing.
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut claims = jwt_claims(&good);
    claims["sub"] = json!("bob");
    claims["jti"] = json!("another");
    parts[1] = base64_json(&claims);
    let err = s
        .oidc
        .verify_logout_token(&form(&parts.join(".")), s.now())
        .await
        .unwrap_err();
    assert!(matches!(err, LogoutError::BadSignature(_)), "{err}");

    // Claims the provider would never send.
    fn remove(c: &mut serde_json::Value, names: &[&str]) {
        let o = c.as_object_mut().unwrap();
        for n in names {
            o.remove(*n);
        }
    }
    type Change = fn(&mut serde_json::Value);
    let cases: [(&str, Change); 7] = [
        ("nonce", |c| c["nonce"] = json!("n")),
        ("no events", |c| remove(c, &["events"])),
        ("wrong event", |c| c["events"] = json!({"urn:other": {}})),
        ("no sid or sub", |c| remove(c, &["sid", "sub"])),
        ("old", |c| {
            c["iat"] = json!(c["iat"].as_i64().unwrap() - 3600)
        }),
        ("future", |c| {
            c["iat"] = json!(c["iat"].as_i64().unwrap() + 3600)
        }),
        ("no jti", |c| remove(c, &["jti"])),
    ];
    for (what, change) in &cases {
        let mut c = logout_claims(&s, "sid-2");
        change(&mut c);
        let token = s.idp.sign(c, typ.clone()).await;
        let err = s
            .oidc
            .verify_logout_token(&form(&token), s.now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, LogoutError::InvalidClaims(_)),
            "{what}: {err}"
        );
        assert_eq!(err.status(), 400);
    }
    let mut c = logout_claims(&s, "sid-3");
    c["aud"] = json!("someone-else");
    let err = s
        .oidc
        .verify_logout_token(&form(&s.idp.sign(c, typ.clone()).await), s.now())
        .await
        .unwrap_err();
    assert!(matches!(err, LogoutError::InvalidClaims(_)), "{err}");
    let mut c = logout_claims(&s, "sid-4");
    c["iss"] = json!("https://unknown.example");
    let err = s
        .oidc
        .verify_logout_token(&form(&s.idp.sign(c, typ.clone()).await), s.now())
        .await
        .unwrap_err();
    assert!(matches!(err, LogoutError::UnknownIssuer), "{err}");
    // An ID token is not a logout token.
    let err = s
        .oidc
        .verify_logout_token(
            &form(
                &s.idp
                    .sign(logout_claims(&s, "sid-5"), json!({"typ": "at+jwt"}))
                    .await,
            ),
            s.now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LogoutError::InvalidClaims(_)), "{err}");
    for body in [
        &b""[..],
        b"logout_token=",
        b"logout_token=a.b.c",
        b"other=1",
    ] {
        assert!(
            matches!(
                s.oidc.verify_logout_token(body, s.now()).await,
                Err(LogoutError::Malformed)
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

fn base64_json(v: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn keys_rotated_at_the_provider_are_fetched_when_a_token_names_them() {
    let s = Setup::start(Opts::new("rotation")).await;
    s.idp.rotate_keys().await;
    // Right after discovery the refetch is rate-limited: the new key is unknown.
    let (callback, cookie) = s.authorize(&browser(), "alice").await;
    let err = s.complete(&callback, &[&cookie]).await.unwrap_err();
    assert!(matches!(err, LoginError::IdTokenInvalid(_)), "{err}");
    s.clock
        .advance_secs(warden_plugins::oidc::JWKS_REFETCH_INTERVAL_SECS);
    let (callback, cookie) = s.authorize(&browser(), "alice").await;
    let done = s.complete(&callback, &[&cookie]).await.unwrap();
    assert_eq!(&*done.new_session.subject, "alice");
}

#[tokio::test]
async fn a_provider_down_at_start_is_retried_and_logins_wait_with_503() {
    let port = warden_tests::free_port();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "warden-secret").unwrap();
    let issuer = format!("http://127.0.0.1:{port}");
    let conf = provider_conf("late", &issuer, &secret, &json!({}));
    let clock = ManualClock::at_secs(SystemClock.now_secs());
    let oidc = OidcProviders::start(std::slice::from_ref(&conf), clock.clone(), None)
        .await
        .expect("Warden starts without its provider");
    assert!(!oidc.is_ready("late"));
    let key = cookie_key();
    let err = oidc
        .begin_login("late", RETURN_TO, REDIRECT, &key, clock.now_secs())
        .unwrap_err();
    assert!(matches!(err, OidcError::ProviderUnavailable(_)), "{err}");
    assert_eq!(err.status(), 503);
    assert_eq!(oidc.retry_discovery().await, 1);

    let sink = LogoutSink::start().await;
    let idp = OidcProvider::start(ProviderOpts {
        port: Some(port),
        clients: vec![web_client(&sink)],
        ..ProviderOpts::default()
    })
    .await;
    assert_eq!(oidc.retry_discovery().await, 0);
    assert!(oidc.is_ready("late"));
    let start = oidc
        .begin_login("late", RETURN_TO, REDIRECT, &key, clock.now_secs())
        .unwrap();
    let callback = oidc::login(&browser(), &start.authorize_url, "bob", "bob-password")
        .await
        .unwrap();
    let done = oidc
        .complete_login(
            callback.query().unwrap(),
            &[&start.state_cookie_value],
            REDIRECT,
            &key,
            clock.now_secs(),
        )
        .await
        .unwrap();
    assert_eq!(&*done.new_session.subject, "bob");

    // A reload with the same conf keeps the discovered provider even if the provider is down;
    // a changed conf starts over.
    drop(idp);
    let same = OidcProviders::start(std::slice::from_ref(&conf), clock.clone(), Some(&oidc))
        .await
        .unwrap();
    assert!(same.is_ready("late"));
    let mut changed_conf = conf.clone();
    changed_conf.scopes.push("groups".into());
    let changed = OidcProviders::start(&[changed_conf], clock.clone(), Some(&oidc))
        .await
        .unwrap();
    assert!(!changed.is_ready("late"));
}

#[tokio::test]
async fn start_reports_unreadable_secrets_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let conf = provider_conf(
        "nosecret",
        "http://127.0.0.1:9",
        &dir.path().join("missing"),
        &json!({}),
    );
    let err = OidcProviders::start(&[conf], Arc::new(SystemClock), None)
        .await
        .unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].path, "[0].client_secret_file");
    assert!(err[0].message.contains("missing"), "{}", err[0].message);
}
