//! ingress-nginx annotations: what each becomes in Warden's conf, or why it does not.

use super::manifest::Ingress;
use std::collections::BTreeMap;

pub const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// How a route balances over its upstream's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lb {
    Cookie(String),
    Header(String),
    ClientAddress,
}

/// What an Ingress's annotations ask of every route made from it.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub rewrite_target: Option<String>,
    pub use_regex: bool,
    pub upstream_protocol: Option<&'static str>,
    pub upstream_tls: bool,
    pub max_body_size: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub lb: Option<Lb>,
    pub retries: Option<usize>,
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub ssl_redirect: Option<bool>,
    pub force_ssl_redirect: bool,
    /// A canary Ingress: its routes would collide with the main Ingress's; not migrated.
    pub canary: bool,
    pub ssl_passthrough: bool,
}

/// The value of the ingress-nginx annotation `k` (without its prefix).
fn annotation<'a>(a: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    a.get(&format!("{NGINX}{k}")).map(String::as_str)
}

fn is_true(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("true")
}

/// nginx sizes (`8m`, `512k`, `1g`, `1024`) as a Warden size; `None` for `0` (no limit).
pub fn nginx_size(v: &str) -> Result<Option<String>, String> {
    let v = v.trim();
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = v[..digits]
        .parse()
        .map_err(|_| format!("`{v}` is not a size like `8m`"))?;
    let unit = match &v[digits..] {
        "" => "",
        "k" | "K" => "KiB",
        "m" | "M" => "MiB",
        "g" | "G" => "GiB",
        _ => return Err(format!("`{v}` is not a size like `8m`")),
    };
    Ok((n > 0).then(|| format!("{n}{unit}")))
}

/// Seconds (`60`, or `60s`) as a Warden duration.
pub fn nginx_seconds(v: &str) -> Result<String, String> {
    let t = v.trim();
    let t = t.strip_suffix('s').unwrap_or(t);
    match t.parse::<u64>() {
        Ok(n) if n > 0 => Ok(format!("{n}s")),
        _ => Err(format!("`{v}` is not a number of seconds")),
    }
}

/// `$http_x_user_id` → header `X-User-Id`; `$cookie_sid` → cookie; `$remote_addr` → client.
fn hash_by(v: &str) -> Option<Lb> {
    let v = v.trim();
    if v == "$remote_addr" || v == "$binary_remote_addr" {
        return Some(Lb::ClientAddress);
    }
    if let Some(c) = v.strip_prefix("$cookie_") {
        return (!c.is_empty()).then(|| Lb::Cookie(c.to_string()));
    }
    let h = v.strip_prefix("$http_")?;
    if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let name = h
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-");
    Some(Lb::Header(name))
}

/// Reads `ing`'s annotations; every one not carried over gets a report line.
pub fn read(ing: &Ingress, report: &mut Vec<String>) -> Effects {
    let mut e = Effects::default();
    let a = &ing.annotations;
    let get = |k: &str| annotation(a, k);
    // "partly: …" marks a translation that differs from ingress-nginx in a way worth knowing.
    let mut not = |key: &str, why: &str| match why.strip_prefix("partly: ") {
        Some(rest) => report.push(format!("{key}: partly translated: {rest}")),
        None => report.push(format!("{key}: not translated: {why}")),
    };

    for (key, value) in a {
        let Some(k) = key.strip_prefix(NGINX) else {
            match key.as_str() {
                "kubernetes.io/ingress.class" => {}
                k if k.starts_with("cert-manager.io/") => not(
                    key,
                    "cert-manager keeps issuing the Secret; mount it into Warden at the path in tls.certificates",
                ),
                _ => not(key, "not an ingress-nginx annotation"),
            }
            continue;
        };
        match k {
            "rewrite-target" => e.rewrite_target = Some(value.clone()),
            "use-regex" => e.use_regex = is_true(value),
            "ssl-redirect" => e.ssl_redirect = Some(is_true(value)),
            "force-ssl-redirect" => e.force_ssl_redirect = is_true(value),
            "backend-protocol" => match value.trim().to_ascii_uppercase().as_str() {
                "HTTP" => {}
                "HTTPS" => {
                    e.upstream_tls = true;
                    not(
                        key,
                        "partly: `upstream_tls` is set, and Warden verifies the backend's certificate \
                         (ingress-nginx does not by default): add `ca_file`, or `verify: false` deliberately",
                    );
                }
                "GRPC" | "H2C" => e.upstream_protocol = Some("h2c"),
                "GRPCS" => {
                    e.upstream_protocol = Some("h2");
                    e.upstream_tls = true;
                }
                other => not(key, &format!("`{other}` backends are not supported by Warden")),
            },
            "proxy-body-size" => match nginx_size(value) {
                Ok(s) => e.max_body_size = s,
                Err(m) => not(key, &m),
            },
            "proxy-connect-timeout" => match nginx_seconds(value) {
                Ok(s) => e.connect_timeout = Some(s),
                Err(m) => not(key, &m),
            },
            "proxy-read-timeout" => match nginx_seconds(value) {
                Ok(s) => e.read_timeout = Some(s),
                Err(m) => not(key, &m),
            },
            "proxy-send-timeout" => not(
                key,
                "Warden has no separate send timeout; `timeouts.read` bounds waiting on the upstream",
            ),
            "affinity" => {
                if value.trim() == "cookie" {
                    let name = get("session-cookie-name").unwrap_or("INGRESSCOOKIE");
                    e.lb = Some(Lb::Cookie(name.to_string()));
                    not(
                        key,
                        "partly: `lb: { consistent_hash: { cookie } }` keeps a client on one backend while it \
                         sends the cookie, but Warden does not issue the cookie as ingress-nginx does",
                    );
                } else {
                    not(key, &format!("affinity `{value}` is not supported"));
                }
            }
            "session-cookie-name" => {
                if get("affinity").map(str::trim) != Some("cookie") {
                    not(key, "used only with `affinity: cookie`");
                }
            }
            "upstream-hash-by" => match (hash_by(value), &e.lb) {
                (_, Some(_)) => not(key, "`affinity: cookie` already decides the backend"),
                (Some(lb), None) => e.lb = Some(lb),
                (None, None) => not(
                    key,
                    "only `$remote_addr`, `$http_<name>` and `$cookie_<name>` have a Warden equivalent",
                ),
            },
            "proxy-next-upstream-tries" => match value.trim().parse::<usize>() {
                Ok(n) if n >= 1 => e.retries = Some(n - 1),
                _ => not(key, "not a number of tries"),
            },
            "x-forwarded-prefix" => e
                .request_headers
                .push(("X-Forwarded-Prefix".into(), value.clone())),
            "enable-cors" => {
                if is_true(value) {
                    cors(&mut e, a, &mut not, key);
                }
            }
            k if k.starts_with("cors-") => {
                if !get("enable-cors").is_some_and(is_true) {
                    not(key, "used only with `enable-cors: \"true\"`");
                }
            }
            "auth-url" | "auth-signin" | "auth-type" | "auth-secret" | "auth-secret-type"
            | "auth-realm" | "auth-response-headers" | "auth-request-redirect" | "auth-snippet"
            | "auth-method" | "auth-cache-key" | "auth-cache-duration" | "auth-always-set-cookie"
            | "auth-proxy-set-headers" | "auth-keepalive" | "auth-tls-secret"
            | "auth-tls-verify-client" | "auth-tls-verify-depth" | "auth-tls-pass-certificate-to-upstream"
            | "auth-tls-error-page" | "enable-global-auth" => not(
                key,
                "Warden authenticates callers itself: give the route `auth` (OIDC login or bearer \
                 issuers) and a `policy`; identity reaches the upstream as X-Warden-* headers",
            ),
            "whitelist-source-range" | "allowlist-source-range" | "denylist-source-range" => not(
                key,
                "network location is not identity and is not carried over by itself: write a policy \
                 rule with `source_ip` combined with an identity criterion (groups, email, …)",
            ),
            "configuration-snippet" | "server-snippet" | "stream-snippet" => {
                not(key, "raw nginx configuration cannot be translated")
            }
            "canary" => {
                if is_true(value) {
                    e.canary = true;
                    not(
                        key,
                        "Warden does not split traffic between Ingresses: this canary's routes are not generated",
                    );
                }
            }
            k if k.starts_with("canary-") => {
                not(key, "Warden does not split traffic between Ingresses")
            }
            "ssl-passthrough" => {
                if is_true(value) {
                    e.ssl_passthrough = true;
                    not(
                        key,
                        "Warden terminates TLS to see identity; passthrough routes are not generated",
                    );
                }
            }
            "permanent-redirect" | "permanent-redirect-code" | "temporal-redirect"
            | "temporal-redirect-code" | "app-root" | "from-to-www-redirect" => {
                not(key, "Warden routes proxy; redirects are not expressible")
            }
            "limit-rps" | "limit-rpm" | "limit-connections" | "limit-burst-multiplier"
            | "limit-rate" | "limit-rate-after" | "limit-whitelist" | "limit-allowlist" => {
                not(key, "Warden has no rate limiting")
            }
            "upstream-vhost" => not(
                key,
                "Warden forwards the client's Host; `Host` cannot be overridden in conf",
            ),
            "service-upstream" => not(
                key,
                "Warden always sends to the Service's DNS name (its cluster IP), as `service-upstream: true` does",
            ),
            "load-balance" => not(key, "Warden balances round robin (or by consistent hash)"),
            "ssl-ciphers" | "ssl-prefer-server-ciphers" | "proxy-ssl-secret" | "proxy-ssl-verify"
            | "proxy-ssl-verify-depth" | "proxy-ssl-name" | "proxy-ssl-server-name"
            | "proxy-ssl-protocols" | "proxy-ssl-ciphers" => not(
                key,
                "backend TLS is set with the route's `upstream_tls` (`verify`, `sni`, `ca_file`)",
            ),
            _ => not(key, "no Warden equivalent"),
        }
    }
    e
}

/// `enable-cors: "true"`: the CORS response headers ingress-nginx adds, where one fixed value
/// expresses them.
fn cors(
    e: &mut Effects,
    a: &BTreeMap<String, String>,
    not: &mut impl FnMut(&str, &str),
    key: &str,
) {
    let get = |k: &str| annotation(a, k);
    let origin = get("cors-allow-origin").unwrap_or("*").trim();
    if origin.contains(',') {
        not(
            key,
            "several origins need the request's Origin echoed, which response headers cannot do; \
             no CORS headers were generated",
        );
        return;
    }
    let mut set = |name: &str, value: &str| {
        e.response_headers
            .push((name.to_string(), value.trim().to_string()))
    };
    set("Access-Control-Allow-Origin", origin);
    set(
        "Access-Control-Allow-Methods",
        get("cors-allow-methods").unwrap_or("GET, PUT, POST, DELETE, PATCH, OPTIONS"),
    );
    set(
        "Access-Control-Allow-Headers",
        get("cors-allow-headers").unwrap_or(
            "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization",
        ),
    );
    set(
        "Access-Control-Allow-Credentials",
        get("cors-allow-credentials").unwrap_or("true"),
    );
    set(
        "Access-Control-Max-Age",
        get("cors-max-age").unwrap_or("1728000"),
    );
    if let Some(x) = get("cors-expose-headers") {
        set("Access-Control-Expose-Headers", x);
    }
    not(
        key,
        "partly: the CORS response headers are set, but preflight OPTIONS requests now reach the \
         upstream (ingress-nginx answered them itself); allow them in the policy with `cors_preflight: true`",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_seconds() {
        assert_eq!(nginx_size("8m"), Ok(Some("8MiB".into())));
        assert_eq!(nginx_size("512K"), Ok(Some("512KiB".into())));
        assert_eq!(nginx_size("1g"), Ok(Some("1GiB".into())));
        assert_eq!(nginx_size("1024"), Ok(Some("1024".into())));
        assert_eq!(nginx_size("0"), Ok(None));
        assert!(nginx_size("8mb").is_err() && nginx_size("").is_err());
        assert_eq!(nginx_seconds("600"), Ok("600s".into()));
        assert_eq!(nginx_seconds("5s"), Ok("5s".into()));
        assert!(nginx_seconds("0").is_err() && nginx_seconds("1m").is_err());
    }

    #[test]
    fn hash_keys() {
        assert_eq!(hash_by("$remote_addr"), Some(Lb::ClientAddress));
        assert_eq!(
            hash_by("$http_x_user_id"),
            Some(Lb::Header("X-User-Id".into()))
        );
        assert_eq!(hash_by("$cookie_sid"), Some(Lb::Cookie("sid".into())));
        assert_eq!(hash_by("$request_uri"), None);
        assert_eq!(hash_by("$http_"), None);
    }
}
