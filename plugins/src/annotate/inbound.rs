//! Header hygiene: what a client sent that must never reach the upstream.
//!
//! - Every `X-Warden-*` and `Impersonate-*` header, and the names this route fills from claims,
//!   in any case and with `_` for `-` anywhere (`X_Warden_User`, `impersonate_user`,
//!   `X-Warden_User`): CGI-style frameworks and some proxies read `_` and `-` as the same
//!   character, so a spoofed `X_Warden_User` could otherwise pass for the real one. All values
//!   of each name go, whatever they contain.
//! - Warden's own cookies, out of every `Cookie` header (the other cookies stay).
//! - `Authorization` on session-authenticated requests, unless the route keeps it (the
//!   browser's credential is the cookie; an `Authorization` header then comes from somewhere
//!   else and would be taken upstream as the caller's).
//!
//! Identity headers are written after this, so an upstream only ever sees values Warden set.

use super::sink::HeaderSink;
use crate::identity::{AuthMethod, Identity};
use crate::session::cookie_header;
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};

/// True for names Warden owns: `x-warden`, `x-warden-…`, `impersonate-…`, with `_` read as `-`
/// and in any case.
pub fn is_identity_header(name: &str) -> bool {
    let b = name.as_bytes();
    let norm = |x: u8| {
        if x == b'_' {
            b'-'
        } else {
            x.to_ascii_lowercase()
        }
    };
    let starts = |p: &[u8]| b.len() >= p.len() && b.iter().zip(p).all(|(x, y)| norm(*x) == *y);
    (starts(b"x-warden") && b.get(8).is_none_or(|x| norm(*x) == b'-')) || starts(b"impersonate-")
}

/// `a` and `b` are the same name once `_` is read as `-` and case is ignored.
fn same_name(a: &str, b: &str) -> bool {
    let norm = |x: u8| {
        if x == b'_' {
            b'-'
        } else {
            x.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

/// What to do with the `Cookie` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieEdit {
    /// None of Warden's cookies is present.
    Keep,
    /// Only Warden's cookies were present: remove every `Cookie` header.
    Remove,
    /// Remove every `Cookie` header, then set this one (the other cookies, `; `-joined).
    Replace(HeaderValue),
}

/// The edits one request needs; empty (and allocation-free) when the client sent nothing of
/// Warden's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPlan {
    /// Header names to remove with all their values.
    pub remove: Vec<HeaderName>,
    pub cookie: CookieEdit,
}

impl InboundPlan {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.cookie == CookieEdit::Keep
    }

    pub fn apply<S: HeaderSink + ?Sized>(&self, sink: &mut S) {
        for n in &self.remove {
            sink.remove(n);
        }
        match &self.cookie {
            CookieEdit::Keep => {}
            CookieEdit::Remove => sink.remove(&COOKIE),
            CookieEdit::Replace(v) => sink.insert(&COOKIE, v),
        }
    }
}

/// A route's stripping rules.
#[derive(Debug, Clone, Default)]
pub struct InboundRules {
    cookie_names: Box<[Box<str>]>,
    keep_authorization: bool,
    /// Further names the route sets from identity (claim headers).
    owned: Box<[HeaderName]>,
}

impl InboundRules {
    /// Rules stripping Warden's cookies named `cookie_names` (the session and login cookies
    /// as the cookie conf names them; a name ending in `*` is a prefix).
    pub fn new<I, S>(cookie_names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        Self {
            cookie_names: cookie_names.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Pass `Authorization` upstream even on session-authenticated requests.
    pub fn keep_authorization(mut self, keep: bool) -> Self {
        self.keep_authorization = keep;
        self
    }

    /// Also strip these names (and their `_` variants): headers the route fills from claims,
    /// which a client must not be able to supply when the claim is absent.
    pub fn also_strip<'a>(mut self, names: impl IntoIterator<Item = &'a HeaderName>) -> Self {
        let mut v = self.owned.into_vec();
        v.extend(names.into_iter().cloned());
        self.owned = v.into_boxed_slice();
        self
    }

    fn strips(&self, name: &HeaderName) -> bool {
        is_identity_header(name.as_str())
            || self
                .owned
                .iter()
                .any(|o| same_name(o.as_str(), name.as_str()))
    }

    /// The edits `headers` need before identity headers are written. `identity` is the
    /// authenticated caller (`None` on public routes and anonymous requests).
    pub fn plan(&self, headers: &HeaderMap, identity: Option<&Identity>) -> InboundPlan {
        let mut remove: Vec<HeaderName> =
            headers.keys().filter(|n| self.strips(n)).cloned().collect();
        let session = matches!(
            identity.map(|i| &i.method),
            Some(AuthMethod::Session { .. })
        );
        if session && !self.keep_authorization && headers.contains_key(AUTHORIZATION) {
            remove.push(AUTHORIZATION);
        }
        InboundPlan {
            remove,
            cookie: self.cookie_edit(headers),
        }
    }

    fn cookie_edit(&self, headers: &HeaderMap) -> CookieEdit {
        if self.cookie_names.is_empty() {
            return CookieEdit::Keep;
        }
        let names: Vec<&str> = self.cookie_names.iter().map(|n| &**n).collect();
        let ours = |v: &HeaderValue| cookie_header::contains_any(v.as_bytes(), &names);
        if !headers.get_all(COOKIE).iter().any(ours) {
            return CookieEdit::Keep;
        }
        let mut joined: Vec<u8> = Vec::new();
        for v in headers.get_all(COOKIE) {
            if let Some(rest) = cookie_header::strip(v.as_bytes(), &names) {
                if !joined.is_empty() {
                    joined.extend_from_slice(b"; ");
                }
                joined.extend_from_slice(&rest);
            }
        }
        if joined.is_empty() {
            return CookieEdit::Remove;
        }
        // Bytes come from valid header values, minus whole cookie pairs: still valid.
        match HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)) {
            Ok(v) => CookieEdit::Replace(v),
            Err(_) => CookieEdit::Remove,
        }
    }

    /// Plans and applies in one step.
    pub fn apply<S: HeaderSink + ?Sized>(&self, sink: &mut S, identity: Option<&Identity>) {
        let plan = self.plan(sink.headers(), identity);
        plan.apply(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = "__Host-warden_session";
    const LOGIN: &str = "__Host-warden_login";

    fn cookies(h: &HeaderMap) -> Vec<std::borrow::Cow<'_, str>> {
        h.get_all(COOKIE)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect()
    }

    fn rules() -> InboundRules {
        InboundRules::new([SESSION, LOGIN])
    }

    fn bearer() -> Identity {
        Identity::new(
            "u",
            "https://idp",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
    }

    fn session() -> Identity {
        Identity::new(
            "u",
            "https://idp",
            AuthMethod::Session {
                provider: "corp".into(),
                session_id: "h".into(),
            },
        )
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names_left(h: &HeaderMap) -> Vec<String> {
        let mut v: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn spoofing_attempts_are_all_stripped() {
        // (sent name, sent value): every one must be gone, whatever the spelling or value.
        let attempts: &[(&str, &str)] = &[
            ("X-Warden-User", "root"),
            ("x-warden-user", "root"),
            ("X-WARDEN-USER", "root"),
            ("X-Warden-Email", "ceo@example.com"),
            ("X-Warden-Groups", "admins"),
            ("X-Warden-Jwt-Assertion", "eyJhbGciOiJub25lIn0.e30."),
            ("X_Warden_User", "root"),
            ("x_warden_groups", "admins"),
            ("X-Warden_User", "root"),
            ("X_Warden-Email", "root@example.com"),
            ("X-Warden", "bare"),
            ("X-Warden-Anything-New", "future header"),
            ("Impersonate-User", "system:admin"),
            ("impersonate-group", "system:masters"),
            ("IMPERSONATE-GROUP", "system:masters"),
            ("Impersonate-Uid", "0"),
            ("Impersonate-Extra-Scopes", "all"),
            ("impersonate_user", "system:admin"),
            ("Impersonate_Group", "system:masters"),
            ("impersonate-extra-acme.com%2fproject", "p"),
            ("X-Warden-User", "  padded\tvalue  "),
            ("X-Warden-User", ""),
        ];
        for (n, v) in attempts {
            let mut h = map(&[(n, v), ("accept", "*/*")]);
            rules().apply(&mut h, Some(&bearer()));
            assert_eq!(names_left(&h), ["accept"], "`{n}: {v}` survived");
        }
    }

    #[test]
    fn duplicates_and_mixed_spellings_all_go_at_once() {
        let mut h = map(&[
            ("x-warden-user", "a"),
            ("x-warden-user", "b"),
            ("X_WARDEN_USER", "c"),
            ("x-warden_user", "d"),
            ("impersonate-group", "g1"),
            ("impersonate-group", "g2"),
            ("accept", "*/*"),
        ]);
        let plan = rules().plan(&h, None);
        assert_eq!(
            plan.remove.len(),
            4,
            "each distinct name listed once: {plan:?}"
        );
        plan.apply(&mut h);
        assert_eq!(names_left(&h), ["accept"]);
    }

    #[test]
    fn near_misses_are_left_alone() {
        let keep = [
            "x-wardenx",
            "x-wardens-user",
            "xx-warden-user",
            "x-forwarded-user",
            "impersonate",
            "impersonates-user",
            "my-impersonate-user",
            "warden-user",
        ];
        for n in keep {
            assert!(!is_identity_header(n), "{n} is not Warden's");
            let h = map(&[(n, "v")]);
            assert!(rules().plan(&h, None).is_empty(), "{n}");
        }
    }

    #[test]
    fn claim_header_names_are_stripped_in_every_spelling() {
        let r = rules().also_strip([&HeaderName::from_static("x-tenant")]);
        for n in ["x-tenant", "X-Tenant", "x_tenant", "X_TENANT"] {
            let mut h = map(&[(n, "spoofed"), ("x-tenants", "kept")]);
            r.apply(&mut h, None);
            assert_eq!(names_left(&h), ["x-tenants"], "{n}");
        }
    }

    #[test]
    fn nothing_to_strip_allocates_nothing() {
        let h = map(&[("accept", "*/*"), ("cookie", "a=1; b=2")]);
        let plan = rules().plan(&h, Some(&bearer()));
        assert!(plan.is_empty());
        assert_eq!(plan.remove.capacity(), 0);
    }

    #[test]
    fn wardens_cookies_are_removed_and_others_kept() {
        let mut h = map(&[("cookie", "a=1; __Host-warden_session=secret; b=2")]);
        rules().apply(&mut h, None);
        assert_eq!(cookies(&h), ["a=1; b=2"]);

        // HTTP/2 clients may split cookies over several fields: joined into one.
        let mut h = map(&[
            ("cookie", "__Host-warden_session=s"),
            ("cookie", "a=1"),
            ("cookie", "__Host-warden_login=l; b=2"),
        ]);
        rules().apply(&mut h, None);
        assert_eq!(cookies(&h), ["a=1; b=2"]);

        let mut h = map(&[("cookie", "__Host-warden_session=s; __Host-warden_session=t")]);
        rules().apply(&mut h, None);
        assert!(cookies(&h).is_empty(), "only ours: the header goes");

        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2")]);
        rules().apply(&mut h, None);
        assert_eq!(cookies(&h), ["a=1", "b=2"], "untouched when none is ours");
    }

    #[test]
    fn authorization_is_stripped_on_session_requests_unless_kept() {
        let h = || map(&[("authorization", "Bearer abc")]);
        let left = |r: &InboundRules, id: Option<&Identity>| {
            let mut m = h();
            r.apply(&mut m, id);
            m.contains_key(AUTHORIZATION)
        };
        assert!(!left(&rules(), Some(&session())));
        assert!(left(&rules().keep_authorization(true), Some(&session())));
        assert!(
            left(&rules(), Some(&bearer())),
            "a bearer token is the caller's own"
        );
        assert!(left(&rules(), None));
    }
}
