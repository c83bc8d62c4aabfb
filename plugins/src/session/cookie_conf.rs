//! The `identity.cookie` conf section and the `Set-Cookie` strings it implies.
//!
//! ```yaml
//! cookie:
//!   secret_file: /etc/warden/cookie-secret   # ≥ 32 bytes; the same on every replica
//!   ttl: 12h               # absolute session lifetime
//!   idle_timeout: 1h       # a session unused this long ends
//!   domain: example.com    # optional: share the session across subdomains
//!   name: my_session       # optional: default `__Host-warden_session` (`warden_session`
//!                          #   with `domain` or `insecure_dev_http`)
//!   insecure_dev_http: false  # development only: cookies without `Secure`, for plain HTTP
//!                             #   on a loopback listener (the gateway refuses it elsewhere)
//! ```

use super::SessionLifetime;
use crate::conf::{Duration, FieldError};
use serde::Deserialize;
use std::fmt::Write;
use std::path::PathBuf;

/// The session cookie's name when the conf names none and the `__Host-` prefix is allowed.
pub const HOST_SESSION_COOKIE: &str = "__Host-warden_session";
/// The session cookie's name when `domain` or `insecure_dev_http` rules `__Host-` out.
pub const PLAIN_SESSION_COOKIE: &str = "warden_session";

const HOST_PREFIX: &str = "__Host-";
const SECURE_PREFIX: &str = "__Secure-";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieConf {
    #[serde(default)]
    pub name: Option<String>,
    pub secret_file: PathBuf,
    #[serde(default = "default_ttl")]
    pub ttl: Duration,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Duration,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub insecure_dev_http: bool,
}

fn default_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(3600)
}

impl CookieConf {
    /// A conf with the defaults and `secret_file`.
    pub fn new(secret_file: impl Into<PathBuf>) -> Self {
        Self {
            name: None,
            secret_file: secret_file.into(),
            ttl: default_ttl(),
            idle_timeout: default_idle_timeout(),
            domain: None,
            insecure_dev_http: false,
        }
    }

    /// Every problem, addressed by field (`ttl`, `name`, …).
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(name) = &self.name {
            if let Err(m) = check_cookie_name(name) {
                errors.push(FieldError::new("name", m));
            } else if name.starts_with(HOST_PREFIX) && self.domain.is_some() {
                errors.push(FieldError::new(
                    "name",
                    "a `__Host-` cookie cannot carry a Domain: remove `domain` or choose a name without the prefix",
                ));
            } else if self.insecure_dev_http
                && (name.starts_with(HOST_PREFIX) || name.starts_with(SECURE_PREFIX))
            {
                errors.push(FieldError::new(
                    "name",
                    "`__Host-` and `__Secure-` cookies need `Secure`, which `insecure_dev_http` turns off: choose a name without the prefix",
                ));
            }
        }
        if self.secret_file.as_os_str().is_empty() {
            errors.push(FieldError::new(
                "secret_file",
                "must name a file holding at least 32 secret bytes",
            ));
        }
        for (field, d) in [("ttl", self.ttl), ("idle_timeout", self.idle_timeout)] {
            if d.get() < std::time::Duration::from_secs(1) {
                errors.push(FieldError::new(field, "must be at least 1s"));
            }
        }
        if let Some(domain) = &self.domain {
            if let Err(m) = check_domain(domain) {
                errors.push(FieldError::new("domain", m));
            }
        }
        errors
    }

    /// Whether cookies carry `Secure`.
    pub fn secure(&self) -> bool {
        !self.insecure_dev_http
    }

    pub fn session_cookie_name(&self) -> &str {
        match &self.name {
            Some(n) => n,
            None if self.domain.is_some() || self.insecure_dev_http => PLAIN_SESSION_COOKIE,
            None => HOST_SESSION_COOKIE,
        }
    }

    pub fn lifetime(&self) -> SessionLifetime {
        SessionLifetime {
            ttl_secs: secs(self.ttl),
            idle_timeout_secs: secs(self.idle_timeout),
        }
    }

    /// `Set-Cookie` for a new session: lives for the session's ttl.
    pub fn set_session_cookie(&self, value: &str) -> String {
        set_cookie(
            self.session_cookie_name(),
            value,
            self.domain.as_deref(),
            secs(self.ttl),
            self.secure(),
        )
    }

    /// `Set-Cookie` that removes the session cookie (sign-out, refused session).
    pub fn clear_session_cookie(&self) -> String {
        set_cookie(
            self.session_cookie_name(),
            "",
            self.domain.as_deref(),
            0,
            self.secure(),
        )
    }

    /// The name of a host-only cookie Warden sets for itself (the login state: `base` =
    /// `warden_login`), with the `__Host-` prefix unless `insecure_dev_http` rules it out.
    pub fn host_cookie_name(&self, base: &str) -> String {
        if self.insecure_dev_http {
            base.to_string()
        } else {
            format!("{HOST_PREFIX}{base}")
        }
    }

    /// `Set-Cookie` for a host-only cookie (never a Domain) living `max_age_secs`.
    pub fn set_host_cookie(&self, name: &str, value: &str, max_age_secs: i64) -> String {
        set_cookie(name, value, None, max_age_secs, self.secure())
    }

    /// `Set-Cookie` that removes a host-only cookie.
    pub fn clear_host_cookie(&self, name: &str) -> String {
        set_cookie(name, "", None, 0, self.secure())
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn set_cookie(name: &str, value: &str, domain: Option<&str>, max_age: i64, secure: bool) -> String {
    let mut s = String::with_capacity(name.len() + value.len() + 96);
    s.push_str(name);
    s.push('=');
    s.push_str(value);
    s.push_str("; Path=/");
    if let Some(d) = domain {
        s.push_str("; Domain=");
        s.push_str(d);
    }
    // Writing to a String cannot fail.
    let _ = write!(s, "; Max-Age={max_age}; HttpOnly");
    if secure {
        s.push_str("; Secure");
    }
    s.push_str("; SameSite=Lax");
    s
}

/// RFC 6265 cookie-name: an RFC 7230 token.
fn check_cookie_name(name: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    match name.bytes().find(|b| !token(*b)) {
        Some(b) => Err(format!(
            "`{name}` is not a valid cookie name: `{}` is not allowed (use letters, digits, `-` and `_`)",
            b.escape_ascii()
        )),
        None => Ok(()),
    }
}

fn check_domain(domain: &str) -> Result<(), String> {
    if let Some(rest) = domain.strip_prefix('.') {
        return Err(format!("write `{rest}`, without the leading dot"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(format!(
            "`{domain}` is not a domain name such as `example.com` (no scheme, port or path)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> CookieConf {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults() {
        let c = conf(r#"{"secret_file": "/s"}"#);
        assert_eq!(c, CookieConf::new("/s"));
        assert!(c.validate().is_empty());
        assert_eq!(c.session_cookie_name(), "__Host-warden_session");
        assert_eq!(
            c.lifetime(),
            SessionLifetime {
                ttl_secs: 43_200,
                idle_timeout_secs: 3_600
            }
        );
        assert!(c.secure());
    }

    #[test]
    fn unknown_or_missing_fields_are_errors() {
        assert!(
            serde_json::from_str::<CookieConf>(r#"{"secret_file": "/s", "ttl_": "1h"}"#).is_err()
        );
        assert!(serde_json::from_str::<CookieConf>(r#"{"ttl": "1h"}"#).is_err());
        assert!(
            serde_json::from_str::<CookieConf>(r#"{"secret_file": "/s", "ttl": "1x"}"#).is_err()
        );
    }

    #[test]
    fn session_cookie_strings_are_exact() {
        let c = conf(r#"{"secret_file": "/s"}"#);
        assert_eq!(
            c.set_session_cookie("abc.def"),
            "__Host-warden_session=abc.def; Path=/; Max-Age=43200; HttpOnly; Secure; SameSite=Lax"
        );
        assert_eq!(
            c.clear_session_cookie(),
            "__Host-warden_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
        );

        let d = conf(r#"{"secret_file": "/s", "domain": "example.com", "ttl": "1h"}"#);
        assert_eq!(d.session_cookie_name(), "warden_session");
        assert_eq!(
            d.set_session_cookie("v"),
            "warden_session=v; Path=/; Domain=example.com; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"
        );
        assert_eq!(
            d.clear_session_cookie(),
            "warden_session=; Path=/; Domain=example.com; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
        );

        let dev = conf(r#"{"secret_file": "/s", "insecure_dev_http": true}"#);
        assert_eq!(
            dev.set_session_cookie("v"),
            "warden_session=v; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax"
        );

        let named = conf(r#"{"secret_file": "/s", "name": "sso"}"#);
        assert_eq!(named.session_cookie_name(), "sso");
    }

    #[test]
    fn host_cookie_strings_are_exact_and_never_carry_a_domain() {
        let c = conf(r#"{"secret_file": "/s", "domain": "example.com"}"#);
        let name = c.host_cookie_name("warden_login");
        assert_eq!(name, "__Host-warden_login");
        assert_eq!(
            c.set_host_cookie(&name, "x.1.y", 600),
            "__Host-warden_login=x.1.y; Path=/; Max-Age=600; HttpOnly; Secure; SameSite=Lax"
        );
        assert_eq!(
            c.clear_host_cookie(&name),
            "__Host-warden_login=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
        );
        let dev = conf(r#"{"secret_file": "/s", "insecure_dev_http": true}"#);
        assert_eq!(dev.host_cookie_name("warden_login"), "warden_login");
        assert_eq!(
            dev.set_host_cookie("warden_login", "v", 5),
            "warden_login=v; Path=/; Max-Age=5; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn validation_reports_every_problem() {
        let c = conf(
            r#"{"secret_file": "", "name": "bad name", "ttl": "0s", "idle_timeout": "500ms",
                "domain": "https://example.com"}"#,
        );
        let errors = c.validate();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["name", "secret_file", "ttl", "idle_timeout", "domain"],
            "{errors:?}"
        );
        assert!(errors[0].message.contains("` `"), "{}", errors[0].message);
    }

    #[test]
    fn prefixed_names_must_be_possible() {
        let host_with_domain =
            conf(r#"{"secret_file": "/s", "name": "__Host-x", "domain": "example.com"}"#);
        assert_eq!(host_with_domain.validate()[0].path, "name");
        for name in ["__Host-x", "__Secure-x"] {
            let insecure = conf(&format!(
                r#"{{"secret_file": "/s", "name": "{name}", "insecure_dev_http": true}}"#
            ));
            assert_eq!(insecure.validate().len(), 1, "{name}");
        }
        let secure_prefix_with_domain =
            conf(r#"{"secret_file": "/s", "name": "__Secure-x", "domain": "example.com"}"#);
        assert!(secure_prefix_with_domain.validate().is_empty());
    }

    #[test]
    fn domains_are_checked() {
        for ok in ["example.com", "a-b.example.co.uk", "localhost"] {
            assert!(check_domain(ok).is_ok(), "{ok}");
        }
        assert!(check_domain(".example.com")
            .unwrap_err()
            .contains("`example.com`"));
        for bad in [
            "",
            "example.com:443",
            "example.com/",
            "-a.com",
            "a..com",
            "exa mple.com",
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }
}
