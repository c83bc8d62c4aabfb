//! From conf to compiled policy: every value is checked and prepared once (interned groups,
//! case-folded sets, parsed networks, globs and time zones), and every mistake is reported, each
//! with its field path relative to the policy (`allow[1].and[0].groups`).

use super::conf::{
    ClaimConf, ClientCertConf, NamedPolicies, PolicyConf, PolicyRef, RuleConf, StringList,
};
use super::criteria::{ClaimOp, ClaimTest, Criterion, GroupSet, ServiceAccountName};
use super::glob::PathGlob;
use super::intern;
use super::schedule::{parse_instant, TimeWindow, Weekdays, Zone};
use crate::conf::{join_path, FieldError};
use ipnet::IpNet;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

/// A policy ready for evaluation; shared (`Arc`) by the routes that use it.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub(crate) allow: Box<[Rule]>,
    pub(crate) deny: Box<[Rule]>,
    /// Interner generation after this policy's groups were interned.
    pub(crate) group_generation: u32,
    pub(crate) uses_groups: bool,
    depends_on_time: bool,
}

/// A rule: all parts must hold.
#[derive(Debug)]
pub(crate) struct Rule {
    pub name: Option<Arc<str>>,
    pub parts: Box<[Node]>,
}

#[derive(Debug)]
pub(crate) enum Node {
    Leaf(Criterion),
    And(Box<[Rule]>),
    Or(Box<[Rule]>),
    Not(Box<Rule>),
}

pub(crate) const SOURCE_IP_ALONE: &str = "source_ip cannot grant access on its own: combine it with an identity criterion (network location is not identity)";

impl CompiledPolicy {
    /// Checks and compiles an inline policy.
    pub fn compile(conf: &PolicyConf) -> Result<Self, Vec<FieldError>> {
        let mut c = Compiler::default();
        if conf.allow.is_empty() && conf.deny.is_empty() {
            c.err(
                "",
                "a policy must allow something; use `public: true` on the route for an open route",
            );
        }
        let mut rule_names = HashSet::new();
        let mut top = |c: &mut Compiler, list: &[RuleConf], key: &str| -> Box<[Rule]> {
            list.iter()
                .enumerate()
                .map(|(i, r)| {
                    let path = format!("{key}[{i}]");
                    if let Some(n) = &r.name {
                        if !rule_names.insert(n.clone()) {
                            c.err(
                                &join_path(&path, "name"),
                                format!("another rule of this policy is already named `{n}`"),
                            );
                        }
                    }
                    c.rule(r, &path)
                })
                .collect()
        };
        let allow = top(&mut c, &conf.allow, "allow");
        let deny = top(&mut c, &conf.deny, "deny");
        for (i, r) in conf.allow.iter().enumerate() {
            if mentions_source_ip(r) && !requires_identity(r) {
                c.err(&format!("allow[{i}]"), SOURCE_IP_ALONE);
            }
        }
        if !c.errors.is_empty() {
            return Err(c.errors);
        }
        Ok(Self {
            allow,
            deny,
            group_generation: intern::generation(),
            uses_groups: c.uses_groups,
            depends_on_time: c.depends_on_time,
        })
    }

    /// Whether decisions can change with time alone (`valid_from`, `valid_until`,
    /// `days_of_week`, `time_of_day`): long-lived connections must then be re-checked.
    pub fn depends_on_time(&self) -> bool {
        self.depends_on_time
    }
}

/// Whether an allow rule cannot hold without an identity criterion holding: any own identity
/// criterion, any `and` child that requires one, or an `or` whose every child requires one.
/// `not` never counts (the absence of an identity fact is not identity).
fn requires_identity(r: &RuleConf) -> bool {
    r.authenticated == Some(true)
        || r.user.is_some()
        || r.sub.is_some()
        || r.email.is_some()
        || r.email_domain.is_some()
        || r.groups.is_some()
        || r.groups_all.is_some()
        || r.claim.is_some()
        || r.issuer.is_some()
        || r.provider.is_some()
        || r.namespace.is_some()
        || r.service_account.is_some()
        || r.client_certificate.is_some()
        || r.and.iter().flatten().any(requires_identity)
        || r.or
            .as_ref()
            .is_some_and(|o| !o.is_empty() && o.iter().all(requires_identity))
}

fn mentions_source_ip(r: &RuleConf) -> bool {
    r.source_ip.is_some()
        || r.and
            .iter()
            .chain(r.or.iter())
            .flatten()
            .any(mentions_source_ip)
        || r.not.as_deref().is_some_and(mentions_source_ip)
}

#[derive(Default)]
struct Compiler {
    errors: Vec<FieldError>,
    uses_groups: bool,
    depends_on_time: bool,
}

impl Compiler {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    /// Checks each value of a list criterion with `f`; `None` (after reporting) if the list is
    /// empty or any value is refused.
    fn each<T>(
        &mut self,
        path: &str,
        key: &str,
        list: &Option<StringList>,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Box<[T]>> {
        let list = list.as_ref()?;
        let at = join_path(path, key);
        if list.0.is_empty() {
            self.err(&at, "must list at least one value");
            return None;
        }
        let mut out = Vec::with_capacity(list.0.len());
        let mut ok = true;
        for v in list.iter() {
            let r = if v.trim().is_empty() {
                Err("values must not be empty".to_string())
            } else {
                f(v)
            };
            match r {
                Ok(t) => out.push(t),
                Err(m) => {
                    self.err(&at, m);
                    ok = false;
                }
            }
        }
        ok.then(|| out.into_boxed_slice())
    }

    fn rule(&mut self, r: &RuleConf, path: &str) -> Rule {
        let mut parts = Vec::new();
        let mut leaf = |c: Option<Criterion>| {
            if let Some(c) = c {
                parts.push(Node::Leaf(c));
            }
        };
        // Criteria that are lists of checked strings; request facts first (cheap and often
        // decisive), then the caller's.
        let string_lists: [StringCriterion<'_>; 10] = [
            ("method", &r.method, method, Criterion::Method),
            (
                "path_prefix",
                &r.path_prefix,
                conf_path,
                Criterion::PathPrefix,
            ),
            ("path_exact", &r.path_exact, conf_path, Criterion::PathExact),
            ("user", &r.user, text, |values| Criterion::Subject {
                key: "user",
                values,
            }),
            ("sub", &r.sub, text, |values| Criterion::Subject {
                key: "sub",
                values,
            }),
            ("email", &r.email, email, Criterion::Email),
            (
                "email_domain",
                &r.email_domain,
                domain,
                Criterion::EmailDomain,
            ),
            ("issuer", &r.issuer, text, Criterion::Issuer),
            ("provider", &r.provider, text, Criterion::Provider),
            ("namespace", &r.namespace, text, Criterion::Namespace),
        ];
        for (key, list, check, make) in string_lists {
            leaf(self.each(path, key, list, check).map(make));
        }
        leaf(
            self.each(path, "path_glob", &r.path_glob, glob)
                .map(Criterion::PathGlob),
        );
        leaf(r.cors_preflight.map(Criterion::CorsPreflight));
        leaf(r.authenticated.map(Criterion::Authenticated));
        leaf(
            self.groups(path, "groups", &r.groups)
                .map(Criterion::Groups),
        );
        leaf(
            self.groups(path, "groups_all", &r.groups_all)
                .map(Criterion::GroupsAll),
        );
        leaf(
            r.claim
                .as_ref()
                .and_then(|c| self.claim(c, &join_path(path, "claim"))),
        );
        leaf(
            self.each(path, "service_account", &r.service_account, service_account)
                .map(Criterion::ServiceAccount),
        );
        leaf(
            r.client_certificate
                .as_ref()
                .and_then(|c| self.client_certificate(c, &join_path(path, "client_certificate"))),
        );
        leaf(
            self.each(path, "source_ip", &r.source_ip, network)
                .map(Criterion::SourceIp),
        );
        for c in self.time(r, path) {
            leaf(Some(c));
        }
        self.depends_on_time |= parts
            .iter()
            .any(|p| matches!(p, Node::Leaf(c) if c.depends_on_time()));

        if let Some(name) = &r.name {
            if name.trim().is_empty() {
                self.err(&join_path(path, "name"), "a rule name must not be empty");
            }
        }
        if let Some(list) = &r.and {
            parts.push(Node::And(self.rules(list, path, "and")));
        }
        if let Some(list) = &r.or {
            parts.push(Node::Or(self.rules(list, path, "or")));
        }
        if let Some(not) = &r.not {
            parts.push(Node::Not(Box::new(self.rule(not, &join_path(path, "not")))));
        }
        let unnamed = RuleConf {
            name: None,
            ..r.clone()
        };
        if unnamed == RuleConf::default() {
            self.err(
                path,
                "a rule needs at least one criterion (an empty rule would match every request)",
            );
        }
        Rule {
            name: r.name.as_deref().map(Arc::from),
            parts: parts.into_boxed_slice(),
        }
    }

    fn rules(&mut self, list: &[RuleConf], path: &str, key: &str) -> Box<[Rule]> {
        let at = join_path(path, key);
        if list.is_empty() {
            self.err(&at, "must list at least one rule");
        }
        list.iter()
            .enumerate()
            .map(|(i, r)| self.rule(r, &format!("{at}[{i}]")))
            .collect()
    }

    fn groups(&mut self, path: &str, key: &str, list: &Option<StringList>) -> Option<GroupSet> {
        let names = self.each(path, key, list, text)?;
        self.uses_groups = true;
        let mut ids: Vec<u32> = names.iter().map(|n| intern::intern(n)).collect();
        ids.sort_unstable();
        ids.dedup();
        Some(GroupSet {
            ids: ids.into_boxed_slice(),
            names,
        })
    }

    fn claim(&mut self, c: &ClaimConf, path: &str) -> Option<Criterion> {
        let mut ok = true;
        if c.path.is_empty() || c.path.split('.').any(str::is_empty) {
            self.err(
                &join_path(path, "path"),
                format!(
                    "`{}` is not a claim path such as `tier` or `realm_access.roles`",
                    c.path
                ),
            );
            ok = false;
        }
        let op = match (&c.equals, &c.contains, &c.in_) {
            (Some(v), None, None) => Some(ClaimOp::Equals(v.clone())),
            (None, Some(v), None) => Some(ClaimOp::Contains(v.clone())),
            (None, None, Some(vs)) if vs.is_empty() => {
                self.err(&join_path(path, "in"), "must list at least one value");
                None
            }
            (None, None, Some(vs)) => Some(ClaimOp::In(vs.clone().into_boxed_slice())),
            _ => {
                self.err(path, "give exactly one of `equals`, `contains` and `in`");
                None
            }
        };
        let op = op.filter(|_| ok)?;
        Some(Criterion::Claim(ClaimTest {
            path: c.path.as_str().into(),
            segments: c.path.split('.').map(Box::from).collect(),
            op,
        }))
    }

    fn client_certificate(&mut self, c: &ClientCertConf, path: &str) -> Option<Criterion> {
        if c.fingerprint.is_none() && c.san.is_none() {
            self.err(path, "give `fingerprint`, `san` or both");
            return None;
        }
        let fingerprints = match &c.fingerprint {
            Some(_) => Some(self.each(path, "fingerprint", &c.fingerprint, fingerprint)?),
            None => None,
        };
        let sans = match &c.san {
            Some(_) => Some(self.each(path, "san", &c.san, text)?),
            None => None,
        };
        Some(Criterion::ClientCertificate {
            fingerprints: fingerprints.unwrap_or_default(),
            sans: sans.unwrap_or_default(),
        })
    }

    /// The time criteria of a rule; also checks that the window is not empty.
    fn time(&mut self, r: &RuleConf, path: &str) -> Vec<Criterion> {
        let mut out = Vec::new();
        let instant = |c: &mut Self, key: &str, v: &Option<String>| {
            v.as_deref().and_then(|s| match parse_instant(s) {
                Ok(t) => Some(t),
                Err(m) => {
                    c.err(&join_path(path, key), m);
                    None
                }
            })
        };
        let from = instant(self, "valid_from", &r.valid_from);
        let until = instant(self, "valid_until", &r.valid_until);
        if let (Some(f), Some(u)) = (from, until) {
            if f >= u {
                self.err(
                    &join_path(path, "valid_from"),
                    format!("valid_from ({f}) must be before valid_until ({u})"),
                );
            }
        }
        out.extend(from.map(Criterion::ValidFrom));
        out.extend(until.map(Criterion::ValidUntil));

        let zone = match &r.time_zone {
            None => Some(Zone::utc()),
            Some(name) => {
                if r.days_of_week.is_none() && r.time_of_day.is_none() {
                    self.err(
                        &join_path(path, "time_zone"),
                        "time_zone applies to days_of_week and time_of_day; give one of them or drop it",
                    );
                }
                match Zone::parse(name) {
                    Ok(z) => Some(z),
                    Err(m) => {
                        self.err(&join_path(path, "time_zone"), m);
                        None
                    }
                }
            }
        };
        if r.days_of_week.is_some() {
            let names = self.each(path, "days_of_week", &r.days_of_week, |s| Ok(s.to_string()));
            let days = names.and_then(|n| match Weekdays::parse(n.iter().map(String::as_str)) {
                Ok(d) => Some(d),
                Err(m) => {
                    self.err(&join_path(path, "days_of_week"), m);
                    None
                }
            });
            if let (Some(days), Some(zone)) = (days, &zone) {
                out.push(Criterion::DaysOfWeek {
                    days,
                    zone: zone.clone(),
                });
            }
        }
        if let Some(s) = &r.time_of_day {
            match TimeWindow::parse(s) {
                Ok(window) => {
                    if let Some(zone) = zone {
                        out.push(Criterion::TimeOfDay { window, zone });
                    }
                }
                Err(m) => self.err(&join_path(path, "time_of_day"), m),
            }
        }
        out
    }
}

/// Checks and prepares one value of a string criterion.
type Check = fn(&str) -> Result<Box<str>, String>;

/// A criterion given as a list of strings: its key, its values, their check, its constructor.
type StringCriterion<'c> = (
    &'static str,
    &'c Option<StringList>,
    Check,
    fn(Box<[Box<str>]>) -> Criterion,
);

fn text(s: &str) -> Result<Box<str>, String> {
    Ok(s.into())
}

/// HTTP method names are tokens (RFC 9110 §5.6.2); matched ignoring case.
fn method(s: &str) -> Result<Box<str>, String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if s.bytes().all(tchar) {
        Ok(s.to_ascii_uppercase().into())
    } else {
        Err(format!("`{s}` is not an HTTP method name"))
    }
}

/// Paths in the conf must be written normalised, as the requests they are compared to are.
fn conf_path(s: &str) -> Result<Box<str>, String> {
    match crate::path::normalize(s) {
        Ok(n) if n == s => Ok(s.into()),
        Ok(n) => Err(format!(
            "`{s}` is not a normalised path (requests are normalised before policy): write `{n}`"
        )),
        Err(e) => Err(format!("`{s}`: {e}")),
    }
}

fn glob(s: &str) -> Result<PathGlob, String> {
    let g = PathGlob::parse(s)?;
    conf_path(s)?;
    Ok(g)
}

fn email(s: &str) -> Result<Box<str>, String> {
    match s.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(s.to_ascii_lowercase().into())
        }
        _ => Err(format!("`{s}` is not an email address")),
    }
}

fn domain(s: &str) -> Result<Box<str>, String> {
    if s.contains('@') {
        Err(format!(
            "`{s}`: write the domain alone, without `@` (`example.com`)"
        ))
    } else if s.contains(char::is_whitespace) {
        Err(format!("`{s}` is not a domain"))
    } else {
        Ok(s.to_ascii_lowercase().into())
    }
}

fn service_account(s: &str) -> Result<ServiceAccountName, String> {
    match s.split_once('/') {
        None => Ok(ServiceAccountName {
            namespace: None,
            name: s.into(),
        }),
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ServiceAccountName {
                namespace: Some(ns.into()),
                name: name.into(),
            })
        }
        _ => Err(format!(
            "`{s}` is not a service account: write `name` or `namespace/name`"
        )),
    }
}

/// A CIDR range, or a single address; host bits must be clear.
fn network(s: &str) -> Result<IpNet, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = s.parse().map_err(|_| {
        format!("`{s}` is not an address range such as `10.0.0.0/8` or `2001:db8::/32`")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "`{s}` has host bits set: did you mean `{}`?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// A SHA-256 fingerprint in hex, colons optional.
fn fingerprint(s: &str) -> Result<[u8; 32], String> {
    let hexits: String = s.chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(&hexits, &mut out).map_err(|_| {
        format!("`{s}` is not a SHA-256 fingerprint (64 hex digits, colons optional)")
    })?;
    Ok(out)
}

/// Named policies compiled once and shared by every route that names them.
#[derive(Debug, Default)]
pub struct CompiledPolicies {
    by_name: HashMap<String, Arc<CompiledPolicy>>,
    /// Named policies that failed to compile (their errors were reported already).
    broken: BTreeSet<String>,
}

impl NamedPolicies {
    /// Compiles every named policy. Errors are addressed `policies.<name>.…`; the policies that
    /// compiled are returned either way, so routes can still be checked against them.
    pub fn compile(&self) -> (CompiledPolicies, Vec<FieldError>) {
        let mut out = CompiledPolicies::default();
        let mut errors = Vec::new();
        for (name, conf) in &self.0 {
            let prefix = format!("policies.{name}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                errors.push(FieldError::new(
                    &prefix,
                    "a policy name may use letters, digits, `-` and `_` only",
                ));
                out.broken.insert(name.clone());
                continue;
            }
            match CompiledPolicy::compile(conf) {
                Ok(p) => {
                    out.by_name.insert(name.clone(), Arc::new(p));
                }
                Err(es) => {
                    errors.extend(es.into_iter().map(|e| e.under(&prefix)));
                    out.broken.insert(name.clone());
                }
            }
        }
        (out, errors)
    }
}

impl CompiledPolicies {
    /// A named policy that compiled.
    pub fn get(&self, name: &str) -> Option<&Arc<CompiledPolicy>> {
        self.by_name.get(name)
    }

    /// The policy a route refers to: a named one (shared) or its inline one (compiled here).
    /// Errors are relative to the route's policy field.
    pub fn resolve(&self, r: &PolicyRef) -> Result<Arc<CompiledPolicy>, Vec<FieldError>> {
        match r {
            PolicyRef::Inline(conf) => CompiledPolicy::compile(conf).map(Arc::new),
            PolicyRef::Named(name) => {
                if let Some(p) = self.by_name.get(name) {
                    return Ok(Arc::clone(p));
                }
                let message = if self.broken.contains(name) {
                    format!("policy `{name}` has errors (reported under `policies.{name}`)")
                } else {
                    let mut known: Vec<&str> = self
                        .by_name
                        .keys()
                        .chain(self.broken.iter())
                        .map(String::as_str)
                        .collect();
                    known.sort_unstable();
                    if known.is_empty() {
                        format!("unknown policy `{name}`: no policies are defined under `policies`")
                    } else {
                        format!(
                            "unknown policy `{name}`: the named policies are {}",
                            known.join(", ")
                        )
                    }
                };
                Err(vec![FieldError::new("", message)])
            }
        }
    }
}
