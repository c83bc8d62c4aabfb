//! Ingresses to routes: hosts, paths, backends, TLS and the default backend, with a report
//! line for everything that does not carry over.

use super::annotations::{self, Effects, NGINX};
use super::manifest::{Backend, Ingress, Manifests, PathEntry, PortRef};
use crate::conf::validate::check_host_pattern;
use std::collections::{BTreeMap, HashMap};

/// Where TLS Secrets are expected to be mounted: one directory per Secret, holding the
/// `tls.crt` and `tls.key` keys of a `kubernetes.io/tls` Secret.
pub const TLS_DIR: &str = "/etc/warden/tls";

/// Placeholder host of routes that serve no host of their own (default backends, rules without
/// a host): `.invalid` never resolves, so only `default_route` reaches them.
pub const DEFAULT_BACKEND_HOST: &str = "default-backend.invalid";
pub const ANY_HOST: &str = "any-host.invalid";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
}

#[derive(Debug, Clone)]
pub struct RouteOut {
    /// Where it came from, for the comment above it.
    pub origin: String,
    pub name: String,
    pub host: String,
    pub path: PathMatch,
    pub upstream: String,
    pub rewrite_prefix: Option<String>,
    pub effects: Effects,
}

#[derive(Debug, Clone)]
pub struct CertOut {
    pub origin: String,
    pub hosts: Vec<String>,
    pub dir: String,
}

/// The conf to write, and the report.
#[derive(Debug, Default)]
pub struct Translation {
    pub https: bool,
    pub redirect_to_https: bool,
    pub certs: Vec<CertOut>,
    pub routes: Vec<RouteOut>,
    pub default_route: Option<String>,
    /// (Ingress id and file, its report lines), in input order.
    pub sections: Vec<(String, Vec<String>)>,
    /// Decisions about the conf as a whole.
    pub global: Vec<String>,
    pub skipped: Vec<String>,
}

const REGEX_META: &[char] = &[
    '(', ')', '[', ']', '{', '}', '*', '+', '?', '|', '^', '$', '\\',
];

/// A path Warden accepts as a prefix or exact match.
fn plain_path_ok(p: &str) -> bool {
    p.starts_with('/')
        && !p.contains("//")
        && !p.split('/').any(|s| s == "." || s == "..")
        && !p.contains(['?', '#', '%', ' '])
        && !p.contains(REGEX_META)
}

/// The regex paths ingress-nginx's rewrite examples use: `P(/|$)(.*)` (rest in `$2`),
/// `P/(.*)` and `P(/.*)` (rest in `$1`). Returns the literal prefix and the group of the rest.
fn regex_prefix(path: &str) -> Option<(String, u8)> {
    let p = path.strip_prefix('^').unwrap_or(path);
    for (suffix, group) in [
        ("(/|$)(.*)", 2u8),
        ("/(.*)", 1),
        ("(/.*)", 1),
        ("/?(.*)", 1),
    ] {
        if let Some(prefix) = p.strip_suffix(suffix) {
            if prefix.is_empty() || plain_path_ok(prefix) {
                return Some((prefix.to_string(), group));
            }
        }
    }
    None
}

/// The literal part of a regex path up to the last `/` before its first metacharacter.
fn literal_prefix(path: &str) -> String {
    let p = path.strip_prefix('^').unwrap_or(path);
    let lit = &p[..p.find(REGEX_META).unwrap_or(p.len())];
    match lit.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => lit[..i].to_string(),
    }
}

/// A route name: the Ingress's namespace and name, cut to fit, and a number.
fn route_base(ing: &Ingress) -> String {
    let clean: String = format!("{}-{}", ing.namespace, ing.name)
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    clean.chars().take(54).collect()
}

/// One route to add.
struct RouteSpec {
    host: String,
    path: PathMatch,
    rewrite: Option<String>,
    upstream: String,
    suffix: String,
}

struct Ctx<'a> {
    m: &'a Manifests,
    out: Translation,
    names: HashMap<String, usize>,
    /// (host, match) → route name.
    served: HashMap<(String, String), String>,
    /// (namespace, secret) → index in certs.
    certs: BTreeMap<(String, String), usize>,
    any_default_backend: bool,
}

impl Ctx<'_> {
    fn unique_name(&mut self, base: &str, suffix: &str) -> String {
        let mut name = format!("{base}-{suffix}");
        let n = self.names.entry(name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            name = format!("{name}-{n}");
        }
        name
    }

    fn upstream(
        &self,
        ing: &Ingress,
        b: &Backend,
        lines: &mut Vec<String>,
        what: &str,
    ) -> Option<String> {
        match b {
            Backend::Service {
                name,
                port: PortRef::Number(p),
            } => Some(format!("{name}.{}.svc.cluster.local:{p}", ing.namespace)),
            Backend::Service {
                name,
                port: PortRef::Name(pn),
            } => {
                let found = self
                    .m
                    .service_ports
                    .get(&(ing.namespace.clone(), name.clone()))
                    .and_then(|ports| ports.iter().find(|(n, _)| n == pn));
                match found {
                    Some((_, p)) => {
                        lines.push(format!(
                            "{what}: port `{pn}` of Service {}/{name} is {p} (read from the input)",
                            ing.namespace
                        ));
                        Some(format!("{name}.{}.svc.cluster.local:{p}", ing.namespace))
                    }
                    None => {
                        lines.push(format!(
                            "{what}: not generated: the backend names port `{pn}` of Service {}/{name}; Warden \
                             needs the port number (use `port.number`, or add the Service manifest to the input)",
                            ing.namespace
                        ));
                        None
                    }
                }
            }
            Backend::Resource => {
                lines.push(format!(
                    "{what}: not generated: resource backends have no Warden equivalent"
                ));
                None
            }
            Backend::Invalid(m) => {
                lines.push(format!("{what}: not generated: {m}"));
                None
            }
        }
    }

    /// The match and rewrite of one path, or why it cannot be expressed.
    fn path_match(
        &self,
        p: &PathEntry,
        e: &Effects,
        lines: &mut Vec<String>,
        what: &str,
    ) -> Option<(PathMatch, Option<String>)> {
        let target = e.rewrite_target.as_deref();
        let regex =
            e.use_regex || target.is_some_and(|t| t.contains('$')) || p.path.contains(REGEX_META);
        if p.path_type == "Exact" && !regex {
            if !plain_path_ok(&p.path) {
                lines.push(format!(
                    "{what}: not generated: `{}` is not a path Warden can match",
                    p.path
                ));
                return None;
            }
            if target.is_some() {
                lines.push(format!(
                    "{what}: rewrite-target not applied: Warden rewrites prefix routes only"
                ));
            }
            return Some((PathMatch::Exact(p.path.clone()), None));
        }
        if p.path_type == "ImplementationSpecific" && !regex {
            lines.push(format!(
                "{what}: pathType ImplementationSpecific is matched as a prefix, as ingress-nginx does"
            ));
        }
        if !regex {
            if !plain_path_ok(&p.path) {
                lines.push(format!(
                    "{what}: not generated: `{}` is not a path Warden can match",
                    p.path
                ));
                return None;
            }
            let rewrite = target.map(|t| {
                if p.path != "/" {
                    lines.push(format!(
                        "{what}: rewrite-target `{t}`: Warden replaces the matched prefix and keeps the rest \
                         (`{}/x` → `{}/x`); ingress-nginx 0.22+ replaces the whole path with `{t}`",
                        p.path.trim_end_matches('/'),
                        t.trim_end_matches('/')
                    ));
                }
                t.to_string()
            });
            return Some((PathMatch::Prefix(p.path.clone()), rewrite));
        }
        // A regex path.
        match (regex_prefix(&p.path), target) {
            (Some((prefix, group)), Some(t)) => {
                let prefix = if prefix.is_empty() {
                    "/".to_string()
                } else {
                    prefix
                };
                let rest = format!("${group}");
                match t.strip_suffix(&rest) {
                    Some(base) if base.ends_with('/') && !base.contains('$') => {
                        Some((PathMatch::Prefix(prefix), Some(base.to_string())))
                    }
                    _ if !t.contains('$') => {
                        lines.push(format!(
                            "{what}: rewrite-target `{t}` sends every path to one target; Warden replaces the prefix \
                             `{prefix}` with `{t}` and keeps the rest"
                        ));
                        Some((PathMatch::Prefix(prefix), Some(t.to_string())))
                    }
                    _ => {
                        lines.push(format!(
                            "{what}: rewrite-target `{t}` is not translated: only `/…/${group}` keeps the rest of \
                             this path; the route forwards paths unchanged"
                        ));
                        Some((PathMatch::Prefix(prefix), None))
                    }
                }
            }
            (Some((prefix, _)), None) => {
                let prefix = if prefix.is_empty() {
                    "/".to_string()
                } else {
                    prefix
                };
                lines.push(format!(
                    "{what}: regex path `{}` is matched as the prefix `{prefix}`",
                    p.path
                ));
                Some((PathMatch::Prefix(prefix), None))
            }
            (None, _) => {
                let lit = literal_prefix(&p.path);
                if lit == "/" || !plain_path_ok(&lit) {
                    lines.push(format!(
                        "{what}: not generated: regex path `{}` has no literal prefix Warden could match instead",
                        p.path
                    ));
                    return None;
                }
                lines.push(format!(
                    "{what}: regex path `{}` cannot be expressed; matched as the prefix `{lit}` (wider: check it){}",
                    p.path,
                    if target.is_some() { ", rewrite-target not applied" } else { "" }
                ));
                Some((PathMatch::Prefix(lit), None))
            }
        }
    }

    fn add_route(
        &mut self,
        ing: &Ingress,
        e: &Effects,
        spec: RouteSpec,
        lines: &mut Vec<String>,
        what: &str,
    ) -> Option<String> {
        let RouteSpec {
            host,
            path,
            rewrite,
            upstream,
            suffix,
        } = spec;
        if let Some(r) = &rewrite {
            if r != "/" && !plain_path_ok(r.trim_end_matches('/')) {
                lines.push(format!(
                    "{what}: rewrite-target `{r}` is not translated: Warden rewrites to a path prefix; the \
                     route forwards paths unchanged"
                ));
                return self.add_route(
                    ing,
                    e,
                    RouteSpec {
                        host,
                        path,
                        rewrite: None,
                        upstream,
                        suffix,
                    },
                    lines,
                    what,
                );
            }
        }
        let key = (
            host.to_ascii_lowercase(),
            match &path {
                PathMatch::Prefix(p) => format!("prefix:{}", p.trim_end_matches('/')),
                PathMatch::Exact(p) => format!("exact:{p}"),
            },
        );
        if let Some(other) = self.served.get(&key) {
            lines.push(format!(
                "{what}: not generated: route `{other}` already serves this host and path (ingress-nginx \
                 would merge them; the first one wins here)"
            ));
            return None;
        }
        let name = self.unique_name(&route_base(ing), &suffix);
        self.served.insert(key, name.clone());
        let shown = match &path {
            PathMatch::Prefix(p) | PathMatch::Exact(p) => p.clone(),
        };
        self.out.routes.push(RouteOut {
            origin: format!("{} ({}): {host} {shown}", ing.id(), ing.file),
            name: name.clone(),
            host,
            path,
            upstream,
            rewrite_prefix: rewrite,
            effects: e.clone(),
        });
        Some(name)
    }

    fn ingress(&mut self, ing: &Ingress) {
        let mut lines = Vec::new();
        if let Some(api) = &ing.legacy_api {
            lines.push(format!("apiVersion {api} was read as networking.k8s.io/v1"));
        }
        let class = ing
            .class
            .clone()
            .or_else(|| ing.annotations.get("kubernetes.io/ingress.class").cloned());
        if let Some(c) = class.filter(|c| !c.contains("nginx")) {
            lines.push(format!(
                "ingress class `{c}` is not ingress-nginx: its annotations were read as ingress-nginx's"
            ));
        }
        let e = annotations::read(ing, &mut lines);
        if e.canary || e.ssl_passthrough {
            self.out
                .sections
                .push((format!("{} ({})", ing.id(), ing.file), lines));
            return;
        }
        for (i, t) in ing.tls.iter().enumerate() {
            let what = format!("tls[{i}]");
            let Some(secret) = &t.secret else {
                lines.push(format!(
                    "{what}: not translated: no secretName (ingress-nginx would serve its default certificate)"
                ));
                continue;
            };
            if t.hosts.is_empty() {
                lines.push(format!(
                    "{what}: not translated: no hosts listed for Secret `{secret}`"
                ));
                continue;
            }
            let good: Vec<String> = t
                .hosts
                .iter()
                .filter(|h| {
                    let ok = check_host_pattern(h).is_ok();
                    if !ok {
                        lines.push(format!("{what}: host `{h}` is not a host name; left out"));
                    }
                    ok
                })
                .cloned()
                .collect();
            let key = (ing.namespace.clone(), secret.clone());
            match self.certs.get(&key) {
                Some(&idx) => {
                    let c = &mut self.out.certs[idx];
                    for h in good {
                        if !c.hosts.contains(&h) {
                            c.hosts.push(h);
                        }
                    }
                }
                None => {
                    let taken = self.certs.keys().any(|(_, s)| s == secret);
                    let dir = if taken {
                        lines.push(format!(
                            "{what}: another namespace has a Secret `{secret}` too: this one is expected at \
                             {TLS_DIR}/{}-{secret}",
                            ing.namespace
                        ));
                        format!("{TLS_DIR}/{}-{secret}", ing.namespace)
                    } else {
                        format!("{TLS_DIR}/{secret}")
                    };
                    self.certs.insert(key, self.out.certs.len());
                    self.out.certs.push(CertOut {
                        origin: format!("Secret {}/{secret} (from {})", ing.namespace, ing.id()),
                        hosts: good,
                        dir,
                    });
                }
            }
        }
        if let Some(b) = &ing.default_backend {
            let what = "defaultBackend".to_string();
            if let Some(up) = self.upstream(ing, b, &mut lines, &what) {
                if self.out.default_route.is_some() {
                    lines.push(format!(
                        "{what}: not generated: another Ingress's defaultBackend is already the default route"
                    ));
                } else if let Some(name) = self.add_route(
                    ing,
                    &e,
                    RouteSpec {
                        host: DEFAULT_BACKEND_HOST.into(),
                        path: PathMatch::Prefix("/".into()),
                        rewrite: None,
                        upstream: up,
                        suffix: "default".into(),
                    },
                    &mut lines,
                    &what,
                ) {
                    self.out.default_route = Some(name);
                }
            }
        }
        let mut n = 0;
        for (ri, rule) in ing.rules.iter().enumerate() {
            for p in &rule.paths {
                let what = format!(
                    "rules[{ri}] {} {}",
                    rule.host.as_deref().unwrap_or("(any host)"),
                    p.path
                );
                let Some(up) = self.upstream(ing, &p.backend, &mut lines, &what) else {
                    continue;
                };
                let Some((path, rewrite)) = self.path_match(p, &e, &mut lines, &what) else {
                    continue;
                };
                let host = match &rule.host {
                    Some(h) => {
                        if let Err(m) = check_host_pattern(h) {
                            lines.push(format!("{what}: not generated: {m}"));
                            continue;
                        }
                        h.clone()
                    }
                    None => ANY_HOST.to_string(),
                };
                let catch_all = rule.host.is_none()
                    && path == PathMatch::Prefix("/".into())
                    && !self.any_default_backend
                    && self.out.default_route.is_none();
                if rule.host.is_none() && !catch_all {
                    lines.push(format!(
                        "{what}: a rule without host serves every host in ingress-nginx; Warden routes name their \
                         hosts: set `host` on the generated route (it has the placeholder `{ANY_HOST}`)"
                    ));
                }
                n += 1;
                if let Some(name) = self.add_route(
                    ing,
                    &e,
                    RouteSpec {
                        host,
                        path,
                        rewrite,
                        upstream: up,
                        suffix: n.to_string(),
                    },
                    &mut lines,
                    &what,
                ) {
                    if catch_all {
                        lines.push(format!(
                            "{what}: a rule without host serves every host: route `{name}` is the conf's \
                             `default_route`, which serves requests no other route matches"
                        ));
                        self.out.default_route = Some(name);
                    }
                }
            }
        }
        self.out
            .sections
            .push((format!("{} ({})", ing.id(), ing.file), lines));
    }
}

/// Ids of the Ingresses whose ingress-nginx annotation `key` is `value` (ignoring case).
fn with_annotation(m: &Manifests, key: &str, value: &str) -> Vec<String> {
    m.ingresses
        .iter()
        .filter(|i| {
            i.annotations
                .get(&format!("{NGINX}{key}"))
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
        })
        .map(Ingress::id)
        .collect()
}

/// Translates everything read.
pub fn translate(m: &Manifests) -> Translation {
    let mut cx = Ctx {
        m,
        out: Translation::default(),
        names: HashMap::new(),
        served: HashMap::new(),
        certs: BTreeMap::new(),
        any_default_backend: m.ingresses.iter().any(|i| i.default_backend.is_some()),
    };
    for ing in &m.ingresses {
        cx.ingress(ing);
    }
    let mut out = cx.out;
    out.skipped = m.skipped.clone();
    out.https = !out.certs.is_empty();

    let opted_out = with_annotation(m, "ssl-redirect", "false");
    let forced = with_annotation(m, "force-ssl-redirect", "true");
    if out.https {
        out.global.push(format!(
            "an https listener on 0.0.0.0:8443 serves the {} certificate(s); mount each TLS Secret at its directory",
            out.certs.len()
        ));
        if opted_out.is_empty() {
            out.redirect_to_https = true;
            out.global.push(
                "listen.redirect_to_https: every plain-HTTP request is redirected (ingress-nginx's ssl-redirect \
                 default with TLS; in Warden it is one switch for all routes)"
                    .into(),
            );
        } else {
            out.global.push(format!(
                "listen.redirect_to_https is off because ssl-redirect is \"false\" on {}: Warden redirects all \
                 routes or none",
                opted_out.join(", ")
            ));
        }
    } else if !forced.is_empty() {
        out.global.push(format!(
            "force-ssl-redirect on {} not translated: redirecting needs an https listener, which needs certificates \
             (tls.certificates)",
            forced.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_paths() {
        assert_eq!(
            regex_prefix("/something(/|$)(.*)"),
            Some(("/something".into(), 2))
        );
        assert_eq!(regex_prefix("^/api/(.*)"), Some(("/api".into(), 1)));
        assert_eq!(regex_prefix("/(.*)"), Some(("".into(), 1)));
        assert_eq!(regex_prefix("/a(b|c)/(.*)"), None);
        assert_eq!(literal_prefix("/static/v[0-9]+/.*"), "/static");
        assert_eq!(literal_prefix("/.*\\.php$"), "/");
    }

    #[test]
    fn plain_paths() {
        assert!(plain_path_ok("/api/v1"));
        for bad in ["api", "/a//b", "/a/../b", "/a%20", "/a b", "/a(b)", "/a?x"] {
            assert!(!plain_path_ok(bad), "{bad}");
        }
    }
}
