//! Compiled criteria: each a single test on the request, the caller or the clock, prepared at
//! compile time so that matching neither parses nor allocates.
//!
//! Criteria about the caller (subject, email, groups, claims, issuer, provider, Kubernetes
//! attributes) never match without an identity; so `not: { groups: [x] }` *does* match an
//! anonymous request. `authenticated: false` is the way to ask for "no identity".

use super::glob::PathGlob;
use super::intern::{contains_all, contains_any};
use super::schedule::{TimeWindow, Weekdays, Zone};
use super::RequestFacts;
use crate::identity::{AuthMethod, Identity};
use ipnet::IpNet;
use jiff::Timestamp;
use serde_json::Value;
use std::fmt::{self, Write as _};

/// What one evaluation looks at.
pub(crate) struct Ctx<'a> {
    pub facts: &'a RequestFacts<'a>,
    pub identity: Option<&'a Identity>,
    /// The identity's interned group ids (empty without identity or when the policy has no
    /// group criteria).
    pub group_ids: &'a [u32],
}

/// Groups as interned ids (sorted) for matching and names for traces.
#[derive(Debug, Clone)]
pub(crate) struct GroupSet {
    pub ids: Box<[u32]>,
    pub names: Box<[Box<str>]>,
}

#[derive(Debug, Clone)]
pub(crate) enum ClaimOp {
    Equals(Value),
    Contains(Value),
    In(Box<[Value]>),
}

#[derive(Debug, Clone)]
pub(crate) struct ClaimTest {
    pub path: Box<str>,
    pub segments: Box<[Box<str>]>,
    pub op: ClaimOp,
}

impl ClaimTest {
    fn lookup<'i>(&self, identity: &'i Identity) -> Option<&'i Value> {
        self.segments
            .iter()
            .try_fold(&identity.claims, |v, seg| v.get(&**seg))
    }

    fn matches(&self, claim: &Value) -> bool {
        match &self.op {
            ClaimOp::Equals(v) => json_eq(claim, v),
            ClaimOp::In(vs) => vs.iter().any(|v| json_eq(claim, v)),
            ClaimOp::Contains(v) => match (claim, v) {
                (Value::Array(items), v) => items.iter().any(|i| json_eq(i, v)),
                (Value::String(s), Value::String(sub)) => s.contains(sub.as_str()),
                _ => false,
            },
        }
    }
}

/// JSON equality where `1` and `1.0` are the same number (YAML and token issuers disagree on
/// how numbers are spelled).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || ((x.is_f64() || y.is_f64()) && x.as_f64() == y.as_f64())
        }
        _ => a == b,
    }
}

/// `name` (any namespace) or `namespace/name`.
#[derive(Debug, Clone)]
pub(crate) struct ServiceAccountName {
    pub namespace: Option<Box<str>>,
    pub name: Box<str>,
}

impl fmt::Display for ServiceAccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Criterion {
    Authenticated(bool),
    /// `key` is `user` or `sub`, as written.
    Subject {
        key: &'static str,
        values: Box<[Box<str>]>,
    },
    /// Lowercased.
    Email(Box<[Box<str>]>),
    /// Lowercased.
    EmailDomain(Box<[Box<str>]>),
    Groups(GroupSet),
    GroupsAll(GroupSet),
    Claim(ClaimTest),
    Issuer(Box<[Box<str>]>),
    Provider(Box<[Box<str>]>),
    Namespace(Box<[Box<str>]>),
    ServiceAccount(Box<[ServiceAccountName]>),
    /// Uppercased.
    Method(Box<[Box<str>]>),
    PathPrefix(Box<[Box<str>]>),
    PathExact(Box<[Box<str>]>),
    PathGlob(Box<[PathGlob]>),
    ValidFrom(Timestamp),
    ValidUntil(Timestamp),
    DaysOfWeek {
        days: Weekdays,
        zone: Zone,
    },
    TimeOfDay {
        window: TimeWindow,
        zone: Zone,
    },
    ClientCertificate {
        fingerprints: Box<[[u8; 32]]>,
        sans: Box<[Box<str>]>,
    },
    CorsPreflight(bool),
    SourceIp(Box<[IpNet]>),
}

fn any_eq(values: &[Box<str>], x: &str) -> bool {
    values.iter().any(|v| **v == *x)
}

fn any_eq_ignore_case(values: &[Box<str>], x: &str) -> bool {
    values.iter().any(|v| v.eq_ignore_ascii_case(x))
}

/// Segment-aware: `/admin` covers `/admin` and `/admin/x` but not `/administrator`; a prefix
/// ending in `/` covers what is below it.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/')
            || path.len() == prefix.len()
            || path.as_bytes()[prefix.len()] == b'/')
}

fn email_domain(email: &str) -> Option<&str> {
    email.rsplit_once('@').map(|(_, d)| d)
}

impl Criterion {
    /// The conf key this criterion was written as, for trace paths.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Criterion::Authenticated(_) => "authenticated",
            Criterion::Subject { key, .. } => key,
            Criterion::Email(_) => "email",
            Criterion::EmailDomain(_) => "email_domain",
            Criterion::Groups(_) => "groups",
            Criterion::GroupsAll(_) => "groups_all",
            Criterion::Claim(_) => "claim",
            Criterion::Issuer(_) => "issuer",
            Criterion::Provider(_) => "provider",
            Criterion::Namespace(_) => "namespace",
            Criterion::ServiceAccount(_) => "service_account",
            Criterion::Method(_) => "method",
            Criterion::PathPrefix(_) => "path_prefix",
            Criterion::PathExact(_) => "path_exact",
            Criterion::PathGlob(_) => "path_glob",
            Criterion::ValidFrom(_) => "valid_from",
            Criterion::ValidUntil(_) => "valid_until",
            Criterion::DaysOfWeek { .. } => "days_of_week",
            Criterion::TimeOfDay { .. } => "time_of_day",
            Criterion::ClientCertificate { .. } => "client_certificate",
            Criterion::CorsPreflight(_) => "cors_preflight",
            Criterion::SourceIp(_) => "source_ip",
        }
    }

    pub(crate) fn depends_on_time(&self) -> bool {
        matches!(
            self,
            Criterion::ValidFrom(_)
                | Criterion::ValidUntil(_)
                | Criterion::DaysOfWeek { .. }
                | Criterion::TimeOfDay { .. }
        )
    }

    pub(crate) fn matches(&self, ctx: &Ctx<'_>) -> bool {
        let facts = ctx.facts;
        let id = ctx.identity;
        match self {
            Criterion::Authenticated(want) => id.is_some() == *want,
            Criterion::Subject { values, .. } => id.is_some_and(|i| any_eq(values, &i.subject)),
            Criterion::Email(values) => id
                .and_then(|i| i.email.as_deref())
                .is_some_and(|e| any_eq_ignore_case(values, e)),
            Criterion::EmailDomain(values) => id
                .and_then(|i| i.email.as_deref())
                .and_then(email_domain)
                .is_some_and(|d| any_eq_ignore_case(values, d)),
            Criterion::Groups(g) => id.is_some() && contains_any(ctx.group_ids, &g.ids),
            Criterion::GroupsAll(g) => id.is_some() && contains_all(ctx.group_ids, &g.ids),
            Criterion::Claim(c) => id.and_then(|i| c.lookup(i)).is_some_and(|v| c.matches(v)),
            Criterion::Issuer(values) => id.is_some_and(|i| match &i.method {
                AuthMethod::Bearer { issuer } => any_eq(values, issuer),
                AuthMethod::Session { .. } => false,
            }),
            Criterion::Provider(values) => id.is_some_and(|i| match &i.method {
                AuthMethod::Session { provider, .. } => any_eq(values, provider),
                AuthMethod::Bearer { .. } => false,
            }),
            Criterion::Namespace(values) => id
                .and_then(|i| i.kubernetes.as_ref())
                .is_some_and(|k| any_eq(values, &k.namespace)),
            Criterion::ServiceAccount(values) => {
                id.and_then(|i| i.kubernetes.as_ref()).is_some_and(|k| {
                    values.iter().any(|sa| {
                        *sa.name == *k.service_account
                            && sa.namespace.as_deref().is_none_or(|ns| *ns == *k.namespace)
                    })
                })
            }
            Criterion::Method(values) => any_eq_ignore_case(values, facts.method),
            Criterion::PathPrefix(values) => values.iter().any(|p| prefix_matches(p, facts.path)),
            Criterion::PathExact(values) => any_eq(values, facts.path),
            Criterion::PathGlob(globs) => globs.iter().any(|g| g.matches(facts.path)),
            Criterion::ValidFrom(t) => facts.now_secs >= t.as_second(),
            Criterion::ValidUntil(t) => facts.now_secs < t.as_second(),
            Criterion::DaysOfWeek { days, zone } => days.contains(zone.local(facts.now_secs).0),
            Criterion::TimeOfDay { window, zone } => window.contains(zone.local(facts.now_secs).1),
            Criterion::ClientCertificate { fingerprints, sans } => {
                facts.client_cert.is_some_and(|c| {
                    (fingerprints.is_empty() || fingerprints.contains(&c.sha256_fingerprint))
                        && (sans.is_empty() || c.sans.iter().any(|s| any_eq(sans, s)))
                })
            }
            Criterion::CorsPreflight(want) => facts.cors_preflight == *want,
            Criterion::SourceIp(nets) => {
                let ip = facts.client_ip.to_canonical();
                nets.iter().any(|n| n.contains(&ip))
            }
        }
    }

    /// What the request, caller or clock showed for this criterion, for traces.
    pub(crate) fn observed(&self, ctx: &Ctx<'_>) -> String {
        let facts = ctx.facts;
        let no_identity = || "no identity".to_string();
        match self {
            Criterion::Authenticated(_) => match ctx.identity {
                Some(i) => format!("caller `{}` via {}", i.subject, i.method.kind()),
                None => no_identity(),
            },
            Criterion::Subject { .. } => ctx
                .identity
                .map_or_else(no_identity, |i| format!("subject `{}`", i.subject)),
            Criterion::Email(_) | Criterion::EmailDomain(_) => {
                ctx.identity.map_or_else(no_identity, |i| match &i.email {
                    Some(e) => format!("email `{e}`"),
                    None => "no email".to_string(),
                })
            }
            Criterion::Groups(g) | Criterion::GroupsAll(g) => {
                let Some(i) = ctx.identity else {
                    return no_identity();
                };
                let held: Vec<&str> = g
                    .names
                    .iter()
                    .filter(|n| i.has_group(n))
                    .map(|n| &**n)
                    .collect();
                if held.is_empty() {
                    "caller is in none of them".to_string()
                } else {
                    format!("caller is in {}", held.join(", "))
                }
            }
            Criterion::Claim(c) => match ctx.identity {
                None => no_identity(),
                Some(i) => match c.lookup(i) {
                    Some(v) => format!("claim is {v}"),
                    None => "claim absent".to_string(),
                },
            },
            Criterion::Issuer(_) | Criterion::Provider(_) => {
                ctx.identity.map_or_else(no_identity, |i| match &i.method {
                    AuthMethod::Bearer { issuer } => format!("bearer token from issuer `{issuer}`"),
                    AuthMethod::Session { provider, .. } => {
                        format!("session from provider `{provider}`")
                    }
                })
            }
            Criterion::Namespace(_) | Criterion::ServiceAccount(_) => {
                ctx.identity
                    .map_or_else(no_identity, |i| match &i.kubernetes {
                        Some(k) => format!("service account {}/{}", k.namespace, k.service_account),
                        None => "not a Kubernetes service account".to_string(),
                    })
            }
            Criterion::Method(_) => format!("method {}", facts.method),
            Criterion::PathPrefix(_) | Criterion::PathExact(_) | Criterion::PathGlob(_) => {
                format!("path {}", facts.path)
            }
            Criterion::ValidFrom(_) | Criterion::ValidUntil(_) => {
                match Timestamp::from_second(facts.now_secs) {
                    Ok(t) => format!("now {t}"),
                    Err(_) => format!("now {} (out of range)", facts.now_secs),
                }
            }
            Criterion::DaysOfWeek { zone, .. } | Criterion::TimeOfDay { zone, .. } => {
                zone.describe(facts.now_secs)
            }
            Criterion::ClientCertificate { .. } => match facts.client_cert {
                None => "no client certificate".to_string(),
                Some(c) => format!(
                    "certificate {} with SANs [{}]",
                    hex::encode(c.sha256_fingerprint),
                    c.sans.join(", ")
                ),
            },
            Criterion::CorsPreflight(_) => if facts.cors_preflight {
                "a CORS preflight"
            } else {
                "not a CORS preflight"
            }
            .to_string(),
            Criterion::SourceIp(_) => format!("client {}", facts.client_ip.to_canonical()),
        }
    }
}

/// `label` followed by the items, comma-separated.
fn list(
    out: &mut fmt::Formatter<'_>,
    label: &str,
    items: impl IntoIterator<Item = impl fmt::Display>,
) -> fmt::Result {
    out.write_str(label)?;
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        write!(out, "{item}")?;
    }
    Ok(())
}

/// The test as a human reads it (`groups: any of eng, sre`).
impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Criterion::Authenticated(true) => f.write_str("caller is authenticated"),
            Criterion::Authenticated(false) => f.write_str("caller is anonymous"),
            Criterion::Subject { values, .. } => list(f, "subject is any of ", values.iter()),
            Criterion::Email(v) => list(f, "email is any of ", v.iter()),
            Criterion::EmailDomain(v) => list(f, "email domain is any of ", v.iter()),
            Criterion::Groups(g) => list(f, "in any of groups ", g.names.iter()),
            Criterion::GroupsAll(g) => list(f, "in all of groups ", g.names.iter()),
            Criterion::Claim(c) => match &c.op {
                ClaimOp::Equals(v) => write!(f, "claim {} equals {v}", c.path),
                ClaimOp::Contains(v) => write!(f, "claim {} contains {v}", c.path),
                ClaimOp::In(vs) => {
                    write!(f, "claim {} ", c.path)?;
                    list(f, "is any of ", vs.iter())
                }
            },
            Criterion::Issuer(v) => list(f, "bearer token from issuer any of ", v.iter()),
            Criterion::Provider(v) => list(f, "session from provider any of ", v.iter()),
            Criterion::Namespace(v) => list(f, "Kubernetes namespace is any of ", v.iter()),
            Criterion::ServiceAccount(v) => {
                list(f, "Kubernetes service account is any of ", v.iter())
            }
            Criterion::Method(v) => list(f, "method is any of ", v.iter()),
            Criterion::PathPrefix(v) => list(f, "path is at or below any of ", v.iter()),
            Criterion::PathExact(v) => list(f, "path is any of ", v.iter()),
            Criterion::PathGlob(v) => list(f, "path matches any of ", v.iter()),
            Criterion::ValidFrom(t) => write!(f, "now is at or after {t}"),
            Criterion::ValidUntil(t) => write!(f, "now is before {t}"),
            Criterion::DaysOfWeek { days, zone } => write!(f, "day is any of {days} in {zone}"),
            Criterion::TimeOfDay { window, zone } => write!(f, "time of day is in {window} {zone}"),
            Criterion::ClientCertificate { fingerprints, sans } => {
                f.write_str("client certificate")?;
                if !fingerprints.is_empty() {
                    list(
                        f,
                        " with fingerprint any of ",
                        fingerprints.iter().map(hex::encode),
                    )?;
                }
                if !sans.is_empty() {
                    if !fingerprints.is_empty() {
                        f.write_char(',')?;
                    }
                    list(f, " with SAN any of ", sans.iter())?;
                }
                Ok(())
            }
            Criterion::CorsPreflight(true) => f.write_str("request is a CORS preflight"),
            Criterion::CorsPreflight(false) => f.write_str("request is not a CORS preflight"),
            Criterion::SourceIp(nets) => list(f, "client address in any of ", nets.iter()),
        }
    }
}
