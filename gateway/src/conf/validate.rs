//! Semantic checks that serde cannot express: references, address syntax, overlaps, limits.
//! Every problem is collected (never just the first) as a [`FieldError`] addressed by its field
//! path, which the loader turns into `file:line:column`.

use super::types::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use warden_plugins::conf::FieldError;

/// Upstream request headers Warden owns: conf may not set them (identity must not be spoofable
/// from conf either, and hop-by-hop headers are the proxy's business).
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
];

pub fn validate(c: &ConfFile) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut err = |path: String, msg: String| errs.push(FieldError::new(path, msg));

    // listeners
    if c.listen.http.is_none() && c.listen.https.is_none() {
        err(
            "listen".into(),
            "at least one of `http` and `https` is required".into(),
        );
    }
    for (field, addr) in [("http", &c.listen.http), ("https", &c.listen.https)] {
        if let Some(a) = addr {
            if let Err(m) = parse_listen(a) {
                err(format!("listen.{field}"), m);
            }
        }
    }
    if c.listen.https.is_some() && c.tls.certificates.is_empty() {
        err(
            "listen.https".into(),
            "the https listener needs at least one certificate in `tls.certificates`".into(),
        );
    }
    if c.tls.client_auth.is_some() && c.listen.https.is_none() {
        err(
            "tls.client_auth".into(),
            "client certificates need an `https` listener".into(),
        );
    }
    if c.listen.redirect_to_https && c.listen.https.is_none() {
        err(
            "listen.redirect_to_https".into(),
            "redirecting to HTTPS needs an `https` listener".into(),
        );
    }
    if let Err(m) = parse_listen(&c.admin.listen) {
        err("admin.listen".into(), m);
    }
    // Two listeners on one address would fail to bind at start, after `check` said ok.
    let listeners = [
        ("listen.http", c.listen.http.as_deref()),
        ("listen.https", c.listen.https.as_deref()),
        ("admin.listen", Some(c.admin.listen.as_str())),
    ];
    for (i, (field, addr)) in listeners.iter().enumerate() {
        let Some(Ok(a)) = addr.map(parse_listen) else {
            continue;
        };
        if let Some((other, _)) = listeners[..i]
            .iter()
            .find(|(_, o)| o.map(parse_listen) == Some(Ok(a)))
        {
            err(
                (*field).into(),
                format!("`{a}` is already the address of `{other}`: each listener needs its own"),
            );
        }
    }
    if c.server.threads == Some(0) {
        err("server.threads".into(), "must be at least 1".into());
    }
    if c.server.dns_refresh.get().is_zero() {
        err("server.dns_refresh".into(), "must be longer than 0s".into());
    }

    for (i, cert) in c.tls.certificates.iter().enumerate() {
        if cert.hosts.is_empty() {
            err(
                format!("tls.certificates[{i}].hosts"),
                "list at least one host name".into(),
            );
        }
        for (j, h) in cert.hosts.iter().enumerate() {
            if let Err(m) = check_host_pattern(h) {
                err(format!("tls.certificates[{i}].hosts[{j}]"), m);
            }
        }
    }

    for (i, p) in c.trusted_proxies.iter().enumerate() {
        if parse_net(p).is_none() {
            err(
                format!("trusted_proxies[{i}]"),
                format!("`{p}` is not an address or CIDR range (like `10.0.0.0/8`)"),
            );
        }
    }

    if c.access_log.target.is_empty() {
        err(
            "access_log.target".into(),
            "use `stdout`, `stderr` or a file path".into(),
        );
    }

    // routes
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut matches: HashMap<(String, String), usize> = HashMap::new();
    for (i, r) in c.routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        if let Err(m) = check_name(&r.name) {
            err(format!("{p}.name"), m);
        } else if let Some(first) = names.insert(&r.name, i) {
            err(
                format!("{p}.name"),
                format!("route name `{}` is already used by routes[{first}]", r.name),
            );
        }
        if r.host.as_slice().is_empty() {
            err(format!("{p}.host"), "list at least one host name".into());
        }
        let path_key = match (&r.path_prefix, &r.path_exact) {
            (Some(_), Some(_)) => {
                err(
                    format!("{p}.path_exact"),
                    "use either `path_prefix` or `path_exact`, not both".into(),
                );
                None
            }
            (Some(pp), None) => check_path(pp)
                .map_err(|m| err(format!("{p}.path_prefix"), m))
                .ok()
                .map(|_| format!("prefix:{}", pp.trim_end_matches('/'))),
            (None, Some(pe)) => check_path(pe)
                .map_err(|m| err(format!("{p}.path_exact"), m))
                .ok()
                .map(|_| format!("exact:{pe}")),
            (None, None) => Some("prefix:".to_string()),
        };
        for (j, h) in r.host.as_slice().iter().enumerate() {
            let hp = match &r.host {
                OneOrMany::One(_) => format!("{p}.host"),
                OneOrMany::Many(_) => format!("{p}.host[{j}]"),
            };
            if let Err(m) = check_host_pattern(h) {
                err(hp, m);
            } else if let Some(k) = &path_key {
                if let Some(first) = matches.insert((h.to_ascii_lowercase(), k.clone()), i) {
                    err(
                        hp,
                        format!("routes[{first}] already serves host `{h}` with the same path"),
                    );
                }
            }
        }
        if r.upstreams.is_empty() {
            err(
                format!("{p}.upstreams"),
                "list at least one upstream (`host:port`)".into(),
            );
        }
        for (j, u) in r.upstreams.iter().enumerate() {
            if let Err(m) = check_upstream_address(u.address()) {
                err(format!("{p}.upstreams[{j}]"), m);
            }
            if u.weight() == 0 || u.weight() > 1000 {
                err(
                    format!("{p}.upstreams[{j}].weight"),
                    "must be between 1 and 1000".into(),
                );
            }
        }
        if let LoadBalancing::ConsistentHash(h) = &r.lb {
            let n = h.header.is_some() as u8 + h.cookie.is_some() as u8 + h.client_address as u8;
            if n != 1 {
                err(
                    format!("{p}.lb.consistent_hash"),
                    "set exactly one of `header`, `cookie` or `client_address: true`".into(),
                );
            }
            if let Some(hn) = &h.header {
                if http::HeaderName::from_bytes(hn.as_bytes()).is_err() {
                    err(
                        format!("{p}.lb.consistent_hash.header"),
                        format!("`{hn}` is not a valid header name"),
                    );
                }
            }
        }
        if let Some(hc) = &r.health_check {
            if hc.interval.get().is_zero() {
                err(
                    format!("{p}.health_check.interval"),
                    "must be longer than 0s".into(),
                );
            }
            if hc.timeout.get().is_zero() {
                err(
                    format!("{p}.health_check.timeout"),
                    "must be longer than 0s".into(),
                );
            }
            if hc.healthy_threshold == 0 {
                err(
                    format!("{p}.health_check.healthy_threshold"),
                    "must be at least 1".into(),
                );
            }
            if hc.unhealthy_threshold == 0 {
                err(
                    format!("{p}.health_check.unhealthy_threshold"),
                    "must be at least 1".into(),
                );
            }
            if let Some(path) = &hc.path {
                if !path.starts_with('/') {
                    err(
                        format!("{p}.health_check.path"),
                        "must start with `/`".into(),
                    );
                }
            }
        }
        for (field, d) in [
            ("connect", r.timeouts.connect),
            ("read", r.timeouts.read),
            ("idle", r.timeouts.idle),
        ] {
            if d.get().is_zero() {
                err(
                    format!("{p}.timeouts.{field}"),
                    "must be longer than 0s".into(),
                );
            }
        }
        check_header_ops(
            &r.request_headers,
            &format!("{p}.request_headers"),
            &mut err,
        );
        check_header_ops(
            &r.response_headers,
            &format!("{p}.response_headers"),
            &mut err,
        );
        if let Some(rw) = &r.rewrite_prefix {
            if !rw.starts_with('/') {
                err(format!("{p}.rewrite_prefix"), "must start with `/`".into());
            }
            if r.path_exact.is_some() {
                err(
                    format!("{p}.rewrite_prefix"),
                    "applies to `path_prefix` routes only".into(),
                );
            }
        }
        if let Some(b) = r.max_body_size {
            if b.0 == 0 {
                err(format!("{p}.max_body_size"), "must be larger than 0".into());
            }
        }
        match (r.upstream_protocol, &r.upstream_tls) {
            (UpstreamProtocol::H2, None) => err(
                format!("{p}.upstream_protocol"),
                "`h2` negotiates HTTP/2 over TLS: add `upstream_tls`, or use `h2c` for plain-text HTTP/2".into(),
            ),
            (UpstreamProtocol::H2c, Some(_)) => err(
                format!("{p}.upstream_protocol"),
                "`h2c` is plain-text HTTP/2: remove `upstream_tls`, or use `h2`".into(),
            ),
            _ => {}
        }
        if let Some(t) = &r.upstream_tls {
            if let Some(sni) = &t.sni {
                if check_host_pattern(sni).is_err() || sni.starts_with('*') {
                    err(
                        format!("{p}.upstream_tls.sni"),
                        format!("`{sni}` is not a host name"),
                    );
                }
            }
        }
    }
    if let Some(d) = &c.default_route {
        if !c.routes.iter().any(|r| &r.name == d) {
            err("default_route".into(), format!("no route is named `{d}`"));
        }
    }
    validate_identity(c, &mut errs);
    errs
}

/// Identity sections and how routes refer to them.
fn validate_identity(c: &ConfFile, errs: &mut Vec<FieldError>) {
    let id = &c.identity;
    errs.extend(
        warden_plugins::jwt::BearerAuth::validate_conf(&id.jwt_issuers)
            .into_iter()
            .map(|e| e.under("identity.jwt_issuers")),
    );
    errs.extend(
        warden_plugins::oidc::validate_conf(&id.providers)
            .into_iter()
            .map(|e| e.under("identity.providers")),
    );
    if let Some(cookie) = &id.cookie {
        errs.extend(
            cookie
                .validate()
                .into_iter()
                .map(|e| e.under("identity.cookie")),
        );
        if cookie.insecure_dev_http && !plain_http_is_loopback_only(c) {
            errs.push(FieldError::new(
                "identity.cookie.insecure_dev_http",
                "cookies without `Secure` are for development on loopback only: listen (`http`, and `https` if set) \
                 on 127.0.0.1 or ::1 only, or remove `insecure_dev_http`",
            ));
        }
    }
    if let Some(a) = &id.assertion {
        errs.extend(
            a.validate()
                .into_iter()
                .map(|e| e.under("identity.assertion")),
        );
    }
    if id.token_cache_size == 0 {
        errs.push(FieldError::new(
            "identity.token_cache_size",
            "must be at least 1",
        ));
    }
    if id.max_authorization_size.0 < 1024 {
        errs.push(FieldError::new(
            "identity.max_authorization_size",
            "must be at least 1KiB",
        ));
    }
    if !(0.0..=1.0).contains(&c.audit.allow_sample_rate) {
        errs.push(FieldError::new(
            "audit.allow_sample_rate",
            "must be between 0 and 1",
        ));
    }
    if c.audit.target.is_empty() {
        errs.push(FieldError::new(
            "audit.target",
            "use `stdout`, `stderr` or a file path",
        ));
    }
    // Policies compile again when the snapshot is built; compiling here too lets `check`
    // report policy mistakes together with every other mistake.
    let (policies, perrs) = c.policies.compile();
    // Errors come addressed as `policies.<name>...` already.
    errs.extend(perrs);
    for (i, r) in c.routes.iter().enumerate() {
        for (field, pref) in [("policy", &r.policy), ("policy_shadow", &r.policy_shadow)] {
            if let Some(pr) = pref {
                if let Err(e) = policies.resolve(pr) {
                    errs.extend(
                        e.into_iter()
                            .map(|e| e.under(&format!("routes[{i}].{field}"))),
                    );
                }
            }
        }
    }
    errs.extend(
        c.sessions
            .memory
            .validate()
            .into_iter()
            .map(|e| e.under("sessions.memory")),
    );
    for (i, r) in c.routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        if let Some(ih) = &r.identity_headers {
            errs.extend(
                ih.validate()
                    .into_iter()
                    .map(|e| e.under(&format!("{p}.identity_headers"))),
            );
        }
        if let Some(k) = &r.kubernetes {
            errs.extend(
                k.validate()
                    .into_iter()
                    .map(|e| e.under(&format!("{p}.kubernetes"))),
            );
            if r.public {
                errs.push(FieldError::new(
                    format!("{p}.kubernetes"),
                    "a Kubernetes API route must authenticate its callers: remove `public: true`",
                ));
            }
        }
        if r.public {
            for (field, set) in [
                ("auth", r.auth.is_some()),
                ("policy", r.policy.is_some()),
                ("policy_shadow", r.policy_shadow.is_some()),
            ] {
                if set {
                    errs.push(FieldError::new(
                        format!("{p}.{field}"),
                        "a `public: true` route has no authentication or policy; remove `public` to protect the route",
                    ));
                }
            }
            continue;
        }
        let auth = r.auth.clone().unwrap_or_default();
        if auth.login.is_none() && auth.bearer.is_empty() {
            errs.push(FieldError::new(
                format!("{p}.auth"),
                "say how callers authenticate (`auth: { login: PROVIDER }` and/or `auth: { bearer: [ISSUER] }`), or set `public: true` to serve the route without authentication",
            ));
        }
        if r.policy.is_none() {
            errs.push(FieldError::new(
                format!("{p}.policy"),
                "every protected route needs a policy (default deny); set `public: true` to serve the route without one",
            ));
        }
        if let Some(login) = &auth.login {
            if !id.providers.iter().any(|x| &x.name == login) {
                errs.push(FieldError::new(
                    format!("{p}.auth.login"),
                    format!("no OIDC provider named `{login}` in `identity.providers`"),
                ));
            } else if id.cookie.is_none() {
                errs.push(FieldError::new(
                    format!("{p}.auth.login"),
                    "browser logins need a session cookie: add `identity.cookie` with a `secret_file`",
                ));
            }
        }
        for (j, b) in auth.bearer.iter().enumerate() {
            if !id.jwt_issuers.iter().any(|x| &x.name == b) {
                errs.push(FieldError::new(
                    format!("{p}.auth.bearer[{j}]"),
                    format!("no issuer named `{b}` in `identity.jwt_issuers`"),
                ));
            }
        }
    }
}

/// Whether Warden listens in plain HTTP, on loopback only (where `insecure_dev_http` is allowed).
fn plain_http_is_loopback_only(c: &ConfFile) -> bool {
    let loopback = |a: &str| {
        a.parse::<std::net::SocketAddr>()
            .is_ok_and(|s| s.ip().is_loopback())
            || a.strip_prefix("localhost:").is_some()
    };
    c.listen.http.as_deref().is_some_and(loopback) && c.listen.https.as_deref().is_none_or(loopback)
}

fn check_header_ops(ops: &HeaderOps, p: &str, err: &mut impl FnMut(String, String)) {
    for (k, v) in &ops.set {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            err(
                format!("{p}.set.{k}"),
                format!("`{k}` is not a valid header name"),
            );
        } else if is_reserved_header(k) {
            err(
                format!("{p}.set.{k}"),
                format!("`{k}` is managed by Warden and cannot be set"),
            );
        }
        if http::HeaderValue::from_str(v).is_err() {
            err(
                format!("{p}.set.{k}"),
                "the value has characters not allowed in a header".into(),
            );
        }
    }
    for (i, k) in ops.remove.iter().enumerate() {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            err(
                format!("{p}.remove[{i}]"),
                format!("`{k}` is not a valid header name"),
            );
        }
    }
}

fn is_reserved_header(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&l.as_str())
        || l.starts_with("x-warden-")
        || l.starts_with("impersonate-")
}

pub fn parse_listen(a: &str) -> Result<SocketAddr, String> {
    a.parse::<SocketAddr>()
        .map_err(|_| format!("`{a}` is not a listen address like `0.0.0.0:8080` or `[::]:8443`"))
}

pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

fn check_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 63 {
        return Err("a route name needs 1 to 63 characters".into());
    }
    if !n.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
    }) {
        return Err(format!(
            "`{n}` may only contain a-z, 0-9, `-`, `_` and `.` (it labels metrics)"
        ));
    }
    Ok(())
}

fn check_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("`{p}` must start with `/`"));
    }
    if p.contains("//")
        || p.split('/').any(|s| s == "." || s == "..")
        || p.contains(['?', '#', '%', ' '])
    {
        return Err(format!(
            "`{p}` must be a normalised path without `//`, dot segments, `%`, `?` or `#`"
        ));
    }
    Ok(())
}

/// An exact host name or a `*.suffix` wildcard (one leading label).
pub fn check_host_pattern(h: &str) -> Result<(), String> {
    let name = h.strip_prefix("*.").unwrap_or(h);
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "`{h}` is not a host name (like `app.example.com`) or a wildcard (like `*.example.com`); ports do not belong here"
        ));
    }
    Ok(())
}

/// `ip:port`, `[v6]:port` or `dns-name:port`.
pub fn check_upstream_address(a: &str) -> Result<(), String> {
    if a.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || {
        format!("`{a}` is not an upstream address like `10.0.0.5:8080` or `svc.ns.svc.cluster.local:80`")
    };
    let (host, port) = a.rsplit_once(':').ok_or_else(bad)?;
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    check_host_pattern(host).map_err(|_| bad())?;
    if host.starts_with('*') {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        for ok in ["a.example.com", "*.example.com", "localhost", "x-1.y"] {
            assert!(check_host_pattern(ok).is_ok(), "{ok}");
        }
        for bad in ["", "*.", "a..b", "-a.b", "a.b:80", "a.*.b", "*", "a b"] {
            assert!(check_host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn upstream_addresses() {
        for ok in [
            "127.0.0.1:80",
            "[::1]:8080",
            "svc.ns.svc.cluster.local:80",
            "localhost:1",
        ] {
            assert!(check_upstream_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "svc:0",
            "svc:http",
            "*.a:80",
            "http://a:80",
            "",
        ] {
            assert!(check_upstream_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert!(check_path("/api").is_ok());
        for bad in ["api", "/a//b", "/a/../b", "/a?b", "/%61"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
