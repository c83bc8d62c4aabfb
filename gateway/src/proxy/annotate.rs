//! What the upstream is told: inbound identity headers removed (any case, any duplicate, the
//! underscore spellings some servers read as dashes), Warden's own cookies and — on session
//! routes — the caller's `Authorization` removed, then identity added from what Warden verified.

use super::ctx::Ctx;
use crate::snapshot::RouteRt;
use pingora::http::RequestHeader;
use pingora::Result;

/// True for `X-Warden-*` and `Impersonate-*`, in any case, with `_` for `-`.
fn is_identity_header(name: &str) -> bool {
    let b = name.as_bytes();
    let starts = |prefix: &[u8]| {
        b.len() >= prefix.len()
            && b[..prefix.len()]
                .iter()
                .zip(prefix)
                .all(|(x, p)| x.to_ascii_lowercase() == *p || (*x == b'_' && *p == b'-'))
    };
    starts(b"x-warden-") || starts(b"impersonate-")
}

pub fn strip_inbound_identity(up: &mut RequestHeader) {
    let names: Vec<http::HeaderName> = up
        .headers
        .keys()
        .filter(|n| is_identity_header(n.as_str()))
        .cloned()
        .collect();
    for n in names {
        // `remove_header` removes every value of the name.
        up.remove_header(&n);
    }
}

/// Adds the caller's identity and removes what the upstream must not see.
pub fn apply(up: &mut RequestHeader, ctx: &Ctx, route: &RouteRt) -> Result<()> {
    if let Some(cookies) = ctx
        .snapshot
        .as_ref()
        .and_then(|s| s.identity.cookie.as_ref())
    {
        strip_warden_cookies(up, cookies.conf.session_cookie_name());
    }
    if ctx.session.is_some() && !route.auth.keep_authorization {
        up.remove_header(&http::header::AUTHORIZATION);
    }
    let Some(id) = &ctx.identity else {
        return Ok(());
    };
    up.insert_header("x-warden-user", header_value(&id.subject))?;
    if let Some(e) = &id.email {
        up.insert_header("x-warden-email", header_value(e))?;
    }
    if !id.groups.is_empty() {
        let joined = id.groups.iter().map(|g| &**g).collect::<Vec<_>>().join(",");
        up.insert_header("x-warden-groups", header_value(&joined))?;
    }
    Ok(())
}

/// Control characters cannot go into a header; they are dropped (identity values come from
/// verified tokens, so this only guards against a hostile issuer).
fn header_value(s: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(s).unwrap_or_else(|_| {
        let clean: String = s.chars().filter(|c| !c.is_control()).collect();
        http::HeaderValue::from_str(&clean).unwrap_or_else(|_| http::HeaderValue::from_static(""))
    })
}

fn strip_warden_cookies(up: &mut RequestHeader, session_cookie: &str) {
    let values: Vec<http::HeaderValue> = up
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .cloned()
        .collect();
    if values.is_empty() {
        return;
    }
    let mut kept = Vec::new();
    let mut changed = false;
    for v in &values {
        match warden_plugins::session::cookie_header::strip(v.as_bytes(), &[session_cookie]) {
            Some(std::borrow::Cow::Borrowed(b)) => {
                kept.push(http::HeaderValue::from_bytes(b).unwrap_or_else(|_| v.clone()))
            }
            Some(std::borrow::Cow::Owned(b)) => {
                changed = true;
                if let Ok(h) = http::HeaderValue::from_bytes(&b) {
                    kept.push(h);
                }
            }
            None => changed = true,
        }
    }
    if !changed {
        return;
    }
    up.remove_header(&http::header::COOKIE);
    for v in kept {
        let _ = up.append_header(http::header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_header_names_in_every_spelling() {
        for n in [
            "x-warden-user",
            "X-Warden-Email",
            "x_warden_groups",
            "X-WARDEN_user",
            "impersonate-user",
            "Impersonate_Group",
            "impersonate-extra-x",
        ] {
            assert!(is_identity_header(n), "{n}");
        }
        for n in [
            "x-wardenuser",
            "x-forwarded-for",
            "impersonator",
            "warden-user",
        ] {
            assert!(!is_identity_header(n), "{n}");
        }
    }

    #[test]
    fn strip_removes_all_duplicates() {
        let mut h = RequestHeader::build("GET", b"/", None).unwrap();
        h.append_header("X-Warden-User", "a").unwrap();
        h.append_header("x-warden-user", "b").unwrap();
        h.append_header("x_warden_email", "c").unwrap();
        h.append_header("Impersonate-Group", "d").unwrap();
        h.append_header("x-keep", "e").unwrap();
        strip_inbound_identity(&mut h);
        let names: Vec<&str> = h.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-keep"]);
    }
}
