//! Reading Warden's cookies out of `Cookie` request headers, and taking them out before the
//! request goes upstream (an upstream never sees the session cookie).
//!
//! Both work on one header value as bytes (HTTP/2 clients may send several `Cookie` fields:
//! call once per field). Neither allocates unless something must be removed.

use std::borrow::Cow;

/// `name=value` pairs of a `Cookie` header value: split on `;`, optional whitespace trimmed.
fn pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    header
        .split(|b| *b == b';')
        .map(trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|b| *b == b'=') {
            Some(eq) => (trim(&p[..eq]), Some(trim(&p[eq + 1..]))),
            None => (p, None),
        })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Every value of the cookie `name` in `header`, in order. A browser may send the same name
/// twice (a host cookie and a domain cookie): callers try each. A value in double quotes is
/// unquoted; values that are not UTF-8 are skipped.
pub fn find<'a>(header: &'a [u8], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pairs(header)
        .filter(move |(n, _)| *n == name.as_bytes())
        .filter_map(|(_, v)| {
            let v = v?;
            let v = match v {
                [b'"', inner @ .., b'"'] => inner,
                _ => v,
            };
            std::str::from_utf8(v).ok()
        })
}

/// Whether the cookie name `n` matches `pattern`: equal, or starting with what precedes a
/// trailing `*` (login-state cookies carry a per-login suffix).
fn matches(pattern: &str, n: &[u8]) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => n.starts_with(prefix.as_bytes()),
        None => pattern.as_bytes() == n,
    }
}

/// Whether `header` holds a cookie matching any of `patterns` (names, or prefixes ending `*`).
pub fn contains_any(header: &[u8], patterns: &[&str]) -> bool {
    pairs(header).any(|(n, _)| patterns.iter().any(|p| matches(p, n)))
}

/// `header` without the cookies matching `names` (names, or prefixes ending `*`): borrowed
/// when none of them is present, `None` when nothing else is left (the caller drops the header).
pub fn strip<'a>(header: &'a [u8], names: &[&str]) -> Option<Cow<'a, [u8]>> {
    let ours = |n: &[u8]| names.iter().any(|x| matches(x, n));
    if !pairs(header).any(|(n, _)| ours(n)) {
        return Some(Cow::Borrowed(header));
    }
    let mut out = Vec::with_capacity(header.len());
    for (n, v) in pairs(header).filter(|(n, _)| !ours(n)) {
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(n);
        if let Some(v) = v {
            out.push(b'=');
            out.extend_from_slice(v);
        }
    }
    (!out.is_empty()).then_some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_star_strips_every_cookie_with_that_prefix() {
        let h = b"warden_login_0a1b=x; keep=1; warden_login_ffee=y; warden_loginx=z";
        assert!(contains_any(h, &["warden_login_*"]));
        assert!(!contains_any(b"keep=1", &["warden_login_*"]));
        let out = strip(h, &["warden_login_*"]).unwrap();
        assert_eq!(&*out, b"keep=1; warden_loginx=z");
    }

    const N: &str = "__Host-warden_session";

    fn found<'a>(h: &'a str, name: &'a str) -> Vec<&'a str> {
        find(h.as_bytes(), name).collect()
    }

    #[test]
    fn finds_the_cookie_among_others() {
        assert_eq!(found("__Host-warden_session=abc", N), ["abc"]);
        assert_eq!(found("a=1; __Host-warden_session=abc; b=2", N), ["abc"]);
        assert_eq!(found("a=1;__Host-warden_session=abc;b=2", N), ["abc"]);
        assert_eq!(
            found("  a=1 ;\t__Host-warden_session = abc \t; ", N),
            ["abc"]
        );
        assert_eq!(found(r#"__Host-warden_session="abc""#, N), ["abc"]);
        assert_eq!(found("x=a=b; __Host-warden_session=a.b=", N), ["a.b="]);
    }

    #[test]
    fn duplicates_are_all_returned_in_order() {
        assert_eq!(
            found(
                "__Host-warden_session=old; a=1; __Host-warden_session=new",
                N
            ),
            ["old", "new"]
        );
    }

    #[test]
    fn near_misses_are_not_the_cookie() {
        assert!(found("", N).is_empty());
        assert!(found(";;", N).is_empty());
        assert!(
            found("__host-warden_session=abc", N).is_empty(),
            "names are case-sensitive"
        );
        assert!(found("x__Host-warden_session=abc", N).is_empty());
        assert!(found("__Host-warden_session_x=abc", N).is_empty());
        assert!(
            found("__Host-warden_session", N).is_empty(),
            "no `=`, no value"
        );
        let h = b"__Host-warden_session=\xff\xfe; __Host-warden_session=ok";
        assert_eq!(
            find(h, N).collect::<Vec<_>>(),
            ["ok"],
            "non-UTF-8 values are skipped"
        );
        assert_eq!(found("__Host-warden_session=", N), [""]);
    }

    #[test]
    fn strip_removes_only_wardens_cookies() {
        let names = [N, "__Host-warden_login"];
        let s = |h: &str| {
            strip(h.as_bytes(), &names).map(|c| String::from_utf8(c.into_owned()).unwrap())
        };
        assert_eq!(s("a=1; b=2").as_deref(), Some("a=1; b=2"));
        assert!(matches!(strip(b"a=1; b=2", &names), Some(Cow::Borrowed(_))));
        assert_eq!(
            s("a=1; __Host-warden_session=x; b=2").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(
            s("__Host-warden_login=s;a=1;__Host-warden_session=x;__Host-warden_session=y")
                .as_deref(),
            Some("a=1")
        );
        assert_eq!(s("__Host-warden_session=x; flag").as_deref(), Some("flag"));
        assert_eq!(s("__Host-warden_session=x"), None);
        assert_eq!(
            s(" __Host-warden_session=x ; __Host-warden_login=y ;"),
            None
        );
        assert_eq!(s("warden_session=x").as_deref(), Some("warden_session=x"));
    }
}
