//! Table tests of the policy language: every criterion and combinator, ordering, default deny,
//! anonymous callers, the `source_ip` rule, compile errors with their paths, time windows and
//! explain traces.

use super::compile::SOURCE_IP_ALONE;
use super::*;
use crate::identity::{AuthMethod, Identity, KubernetesIdentity};
use serde_json::{json, Value};
use std::net::IpAddr;

// ---------------------------------------------------------------- fixtures

/// A request, owned, from which `RequestFacts` are borrowed.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: &'static str,
    ip: IpAddr,
    cert: Option<ClientCert>,
    cors: bool,
    now: i64,
}

fn at(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_second()
}

/// GET / from 10.1.2.3 on Monday 2025-01-06 12:00 UTC.
fn req() -> Req {
    Req {
        method: "GET",
        path: "/",
        ip: "10.1.2.3".parse().unwrap(),
        cert: None,
        cors: false,
        now: at("2025-01-06T12:00:00Z"),
    }
}

impl Req {
    fn method(mut self, m: &'static str) -> Self {
        self.method = m;
        self
    }
    fn path(mut self, p: &'static str) -> Self {
        self.path = p;
        self
    }
    fn ip(mut self, ip: &str) -> Self {
        self.ip = ip.parse().unwrap();
        self
    }
    fn cert(mut self, c: ClientCert) -> Self {
        self.cert = Some(c);
        self
    }
    fn cors(mut self) -> Self {
        self.cors = true;
        self
    }
    fn now(mut self, t: &str) -> Self {
        self.now = at(t);
        self
    }
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: self.method,
            path: self.path,
            client_ip: self.ip,
            client_cert: self.cert.as_ref(),
            cors_preflight: self.cors,
            now_secs: self.now,
        }
    }
}

/// A browser user with a session from provider `corp`.
fn alice() -> Identity {
    Identity::new(
        "alice",
        "https://idp.example.com",
        AuthMethod::Session {
            provider: "corp".into(),
            session_id: "s1".into(),
        },
    )
    .with_email(Some("Alice@Example.com"))
    .with_groups(["eng", "sre", "staff"])
    .with_claims(json!({
        "tier": "gold",
        "level": 3,
        "team": "platform-core",
        "realm": {"roles": ["admin", "dev"]},
    }))
}

/// A Kubernetes workload with a bearer token from issuer `k8s`.
fn bot() -> Identity {
    Identity::new(
        "system:serviceaccount:ci:deployer",
        "https://kubernetes.default.svc",
        AuthMethod::Bearer {
            issuer: "k8s".into(),
        },
    )
    .with_kubernetes(Some(KubernetesIdentity {
        namespace: "ci".into(),
        service_account: "deployer".into(),
    }))
}

const FP_HEX: &str = "AB:CD:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd";

fn cert(san: &str) -> ClientCert {
    let mut fp = [0u8; 32];
    hex::decode_to_slice(FP_HEX.replace(':', ""), &mut fp).unwrap();
    ClientCert {
        sha256_fingerprint: fp,
        sans: vec![san.to_string()],
    }
}

fn other_cert() -> ClientCert {
    ClientCert {
        sha256_fingerprint: [7; 32],
        sans: vec!["other.example.com".into()],
    }
}

fn compile(policy: Value) -> Result<CompiledPolicy, Vec<crate::conf::FieldError>> {
    let conf: PolicyConf = serde_json::from_value(policy).expect("policy conf parses");
    CompiledPolicy::compile(&conf)
}

fn compiled(policy: Value) -> CompiledPolicy {
    match compile(policy.clone()) {
        Ok(p) => p,
        Err(e) => panic!("{policy} should compile: {e:?}"),
    }
}

/// Whether a policy with the single allow rule `rule` allows the request.
fn allows(rule: &Value, r: &Req, id: Option<&Identity>) -> bool {
    let p = compiled(json!({ "allow": [rule] }));
    let d = p.evaluate(&r.facts(), id);
    // `explain` must always agree with `evaluate`.
    assert_eq!(
        p.explain(&r.facts(), id).0,
        d,
        "explain disagrees for {rule}"
    );
    d.allowed
}

// ---------------------------------------------------------------- criteria

#[test]
fn every_criterion_matches_and_does_not() {
    let (a, b) = (alice(), bot());
    let (alice, bot) = (Some(&a), Some(&b));
    let none: Option<&Identity> = None;
    let r = req();
    let fingerprint = FP_HEX;
    let table: Vec<(Value, Req, Option<&Identity>, bool)> = vec![
        (json!({"authenticated": true}), r.clone(), alice, true),
        (json!({"authenticated": true}), r.clone(), none, false),
        (json!({"authenticated": false}), r.clone(), none, true),
        (json!({"authenticated": false}), r.clone(), alice, false),
        (json!({"user": ["bob", "alice"]}), r.clone(), alice, true),
        (json!({"user": "alice"}), r.clone(), bot, false),
        (json!({"user": "alice"}), r.clone(), none, false),
        (json!({"sub": "alice"}), r.clone(), alice, true),
        (json!({"sub": "ALICE"}), r.clone(), alice, false),
        (
            json!({"email": "alice@example.COM"}),
            r.clone(),
            alice,
            true,
        ),
        (
            json!({"email": ["bob@example.com"]}),
            r.clone(),
            alice,
            false,
        ),
        (json!({"email": "alice@example.com"}), r.clone(), bot, false),
        (
            json!({"email": "alice@example.com"}),
            r.clone(),
            none,
            false,
        ),
        (
            json!({"email_domain": "EXAMPLE.com"}),
            r.clone(),
            alice,
            true,
        ),
        (
            json!({"email_domain": ["other.org"]}),
            r.clone(),
            alice,
            false,
        ),
        (
            json!({"email_domain": "example.com"}),
            r.clone(),
            bot,
            false,
        ),
        (json!({"groups": ["nobody", "sre"]}), r.clone(), alice, true),
        (json!({"groups": "nobody"}), r.clone(), alice, false),
        (json!({"groups": "SRE"}), r.clone(), alice, false),
        (json!({"groups": "sre"}), r.clone(), none, false),
        (
            json!({"groups_all": ["eng", "sre"]}),
            r.clone(),
            alice,
            true,
        ),
        (
            json!({"groups_all": ["eng", "ops"]}),
            r.clone(),
            alice,
            false,
        ),
        (json!({"groups_all": ["eng"]}), r.clone(), none, false),
        (
            json!({"claim": {"path": "tier", "equals": "gold"}}),
            r.clone(),
            alice,
            true,
        ),
        (
            json!({"claim": {"path": "tier", "equals": "silver"}}),
            r.clone(),
            alice,
            false,
        ),
        (
            json!({"claim": {"path": "level", "equals": 3.0}}),
            r.clone(),
            alice,
            true,
        ),
        (
            json!({"claim": {"path": "level", "equals": "3"}}),
            r.clone(),
            alice,
            false,
        ),
        (
            json!({"claim": {"path": "realm.roles", "contains": "admin"}}),
            r.clone(),
            alice,
            true,
        ),
        (
            json!({"claim": {"path": "realm.roles", "contains": "ops"}}),
            r.clone(),
            alice,
            false,
        ),
        (
            json!({"claim": {"path": "team", "contains": "core"}}),
            r.clone(),
            alice,
            true,
        ),
        (
            json!({"claim": {"path": "team", "contains": "qa"}}),
            r.clone(),
            alice,
            false,
        ),
        (
            json!({"claim": {"path": "tier", "in": ["silver", "gold"]}}),
            r.clone(),
            alice,
            true,
        ),
        (
            json!({"claim": {"path": "tier", "in": ["silver"]}}),
            r.clone(),
            alice,
            false,
        ),
        (
            json!({"claim": {"path": "missing.x", "equals": null}}),
            r.clone(),
            alice,
            false,
        ),
        (
            json!({"claim": {"path": "tier", "equals": "gold"}}),
            r.clone(),
            none,
            false,
        ),
        (json!({"issuer": "k8s"}), r.clone(), bot, true),
        (json!({"issuer": "corp"}), r.clone(), alice, false),
        (json!({"provider": "corp"}), r.clone(), alice, true),
        (json!({"provider": "k8s"}), r.clone(), bot, false),
        (json!({"provider": "corp"}), r.clone(), none, false),
        (json!({"namespace": ["prod", "ci"]}), r.clone(), bot, true),
        (json!({"namespace": "ci"}), r.clone(), alice, false),
        (json!({"service_account": "deployer"}), r.clone(), bot, true),
        (
            json!({"service_account": "ci/deployer"}),
            r.clone(),
            bot,
            true,
        ),
        (
            json!({"service_account": "prod/deployer"}),
            r.clone(),
            bot,
            false,
        ),
        (json!({"service_account": "builder"}), r.clone(), bot, false),
        (json!({"method": ["get", "HEAD"]}), r.clone(), none, true),
        (
            json!({"method": "GET"}),
            r.clone().method("POST"),
            none,
            false,
        ),
        (
            json!({"path_prefix": "/admin"}),
            r.clone().path("/admin"),
            none,
            true,
        ),
        (
            json!({"path_prefix": "/admin"}),
            r.clone().path("/admin/users"),
            none,
            true,
        ),
        (
            json!({"path_prefix": "/admin"}),
            r.clone().path("/administrator"),
            none,
            false,
        ),
        (
            json!({"path_prefix": "/admin"}),
            r.clone().path("/adm"),
            none,
            false,
        ),
        (
            json!({"path_prefix": "/admin/"}),
            r.clone().path("/admin"),
            none,
            false,
        ),
        (
            json!({"path_prefix": "/admin/"}),
            r.clone().path("/admin/x"),
            none,
            true,
        ),
        (
            json!({"path_prefix": "/"}),
            r.clone().path("/anything"),
            none,
            true,
        ),
        (
            json!({"path_exact": ["/a", "/b"]}),
            r.clone().path("/b"),
            none,
            true,
        ),
        (
            json!({"path_exact": "/a"}),
            r.clone().path("/a/"),
            none,
            false,
        ),
        (
            json!({"path_glob": "/api/*/items"}),
            r.clone().path("/api/v1/items"),
            none,
            true,
        ),
        (
            json!({"path_glob": "/api/*/items"}),
            r.clone().path("/api/v1/x/items"),
            none,
            false,
        ),
        (
            json!({"path_glob": "/static/**"}),
            r.clone().path("/static/a/b.css"),
            none,
            true,
        ),
        (
            json!({"valid_from": "2025-01-06T12:00:00Z"}),
            r.clone(),
            none,
            true,
        ),
        (
            json!({"valid_from": "2025-01-06T12:00:01Z"}),
            r.clone(),
            none,
            false,
        ),
        (
            json!({"valid_until": "2025-01-06T12:00:01Z"}),
            r.clone(),
            none,
            true,
        ),
        (
            json!({"valid_until": "2025-01-06T12:00:00Z"}),
            r.clone(),
            none,
            false,
        ),
        (json!({"days_of_week": ["mon-fri"]}), r.clone(), none, true),
        (
            json!({"days_of_week": "mon"}),
            r.clone().now("2025-01-11T12:00:00Z"),
            none,
            false,
        ),
        (json!({"time_of_day": "09:00-17:30"}), r.clone(), none, true),
        (
            json!({"time_of_day": "09:00-17:30"}),
            r.clone().now("2025-01-06T17:30:00Z"),
            none,
            false,
        ),
        (
            json!({"client_certificate": {"fingerprint": fingerprint}}),
            r.clone().cert(cert("svc")),
            none,
            true,
        ),
        (
            json!({"client_certificate": {"fingerprint": fingerprint}}),
            r.clone().cert(other_cert()),
            none,
            false,
        ),
        (
            json!({"client_certificate": {"fingerprint": fingerprint}}),
            r.clone(),
            none,
            false,
        ),
        (
            json!({"client_certificate": {"san": ["a", "svc.example.com"]}}),
            r.clone().cert(cert("svc.example.com")),
            none,
            true,
        ),
        (
            json!({"client_certificate": {"san": "svc.example.com"}}),
            r.clone().cert(other_cert()),
            none,
            false,
        ),
        (
            json!({"client_certificate": {"fingerprint": fingerprint, "san": "x"}}),
            r.clone().cert(cert("svc")),
            none,
            false,
        ),
        (
            json!({"cors_preflight": true}),
            r.clone().method("OPTIONS").cors(),
            none,
            true,
        ),
        (
            json!({"cors_preflight": true}),
            r.clone().method("OPTIONS"),
            none,
            false,
        ),
        (json!({"cors_preflight": false}), r.clone(), none, true),
        (
            json!({"cors_preflight": false}),
            r.clone().cors(),
            none,
            false,
        ),
        (
            json!({"authenticated": true, "source_ip": "10.0.0.0/8"}),
            r.clone(),
            alice,
            true,
        ),
        (
            json!({"authenticated": true, "source_ip": "10.0.0.0/8"}),
            r.clone().ip("::ffff:10.9.9.9"),
            alice,
            true,
        ),
        (
            json!({"authenticated": true, "source_ip": "10.0.0.0/8"}),
            r.clone().ip("192.168.0.1"),
            alice,
            false,
        ),
        (
            json!({"authenticated": true, "source_ip": ["10.0.0.0/8", "2001:db8::/32"]}),
            r.clone().ip("2001:db8::1"),
            alice,
            true,
        ),
        (
            json!({"authenticated": true, "source_ip": "192.168.1.5"}),
            r.clone().ip("192.168.1.5"),
            alice,
            true,
        ),
        (
            json!({"authenticated": true, "source_ip": "192.168.1.5"}),
            r.clone().ip("192.168.1.6"),
            alice,
            false,
        ),
    ];
    for (rule, r, id, want) in table {
        assert_eq!(
            allows(&rule, &r, id),
            want,
            "{rule} on {} {} as {:?}",
            r.method,
            r.path,
            id.map(|i| &i.subject)
        );
    }
}

#[test]
fn combinators() {
    let a = alice();
    let alice = Some(&a);
    let r = req();
    let table: Vec<(Value, Req, bool)> = vec![
        // Implicit AND of criteria.
        (json!({"groups": "eng", "method": "GET"}), r.clone(), true),
        (
            json!({"groups": "eng", "method": "GET"}),
            r.clone().method("POST"),
            false,
        ),
        (
            json!({"and": [{"groups": "eng"}, {"method": "GET"}]}),
            r.clone(),
            true,
        ),
        (
            json!({"and": [{"groups": "eng"}, {"method": "GET"}]}),
            r.clone().method("PUT"),
            false,
        ),
        (
            json!({"or": [{"groups": "nobody"}, {"email_domain": "example.com"}]}),
            r.clone(),
            true,
        ),
        (
            json!({"or": [{"groups": "nobody"}, {"user": "bob"}]}),
            r.clone(),
            false,
        ),
        (
            json!({"authenticated": true, "not": {"groups": "nobody"}}),
            r.clone(),
            true,
        ),
        (
            json!({"authenticated": true, "not": {"groups": "eng"}}),
            r.clone(),
            false,
        ),
        // `not` of an implicit AND: holds unless every part holds.
        (
            json!({"groups": "eng", "not": {"groups": "sre", "method": "DELETE"}}),
            r.clone(),
            true,
        ),
        (
            json!({"groups": "eng", "not": {"groups": "sre", "method": "DELETE"}}),
            r.clone().method("DELETE"),
            false,
        ),
        // Criteria and combinators together, nested.
        (
            json!({"groups": "eng", "or": [
                {"method": "GET"},
                {"and": [{"method": "POST"}, {"not": {"path_prefix": "/admin"}}]}
            ]}),
            r.clone().method("POST").path("/api"),
            true,
        ),
        (
            json!({"groups": "eng", "or": [
                {"method": "GET"},
                {"and": [{"method": "POST"}, {"not": {"path_prefix": "/admin"}}]}
            ]}),
            r.clone().method("POST").path("/admin/x"),
            false,
        ),
    ];
    for (rule, r, want) in table {
        assert_eq!(
            allows(&rule, &r, alice),
            want,
            "{rule} on {} {}",
            r.method,
            r.path
        );
    }
}

// ---------------------------------------------------------------- ordering

fn the_example_policy() -> CompiledPolicy {
    compiled(json!({
        "allow": [
            { "groups": ["sre"] },
            { "name": "readonly-staff",
              "and": [{ "email_domain": "example.com" }, { "method": ["GET", "HEAD"] }] }
        ],
        "deny": [
            { "path_prefix": "/admin", "not": { "groups": ["admins"] } },
            { "name": "no-deletes", "method": "DELETE" }
        ]
    }))
}

fn carol() -> Identity {
    Identity::new(
        "carol",
        "https://idp.example.com",
        AuthMethod::Session {
            provider: "corp".into(),
            session_id: "s2".into(),
        },
    )
    .with_email(Some("carol@example.com"))
    .with_groups(["eng"])
}

#[test]
fn deny_wins_then_first_allow_then_default_deny() {
    let p = the_example_policy();
    let (a, c) = (alice(), carol());
    let rule = |kind, index, name: Option<&str>| RuleRef {
        kind,
        index,
        name: name.map(Into::into),
    };
    let allow = |index, name| Decision {
        allowed: true,
        rule: rule(RuleKind::Allow, index, name),
        reason: Reason::AllowRule,
    };
    let deny = |index, name| Decision {
        allowed: false,
        rule: rule(RuleKind::Deny, index, name),
        reason: Reason::DenyRule,
    };
    let cases: Vec<(Req, &Identity, Decision)> = vec![
        // sre may do anything outside /admin ...
        (req().method("POST").path("/x"), &a, allow(0, None)),
        // ... but the deny on /admin comes first.
        (req().path("/admin/x"), &a, deny(0, None)),
        // Both denies match: the first decides.
        (req().method("DELETE").path("/admin"), &a, deny(0, None)),
        (
            req().method("DELETE").path("/x"),
            &a,
            deny(1, Some("no-deletes")),
        ),
        // Staff reads via the named rule.
        (req().path("/docs"), &c, allow(1, Some("readonly-staff"))),
        // Nothing allows carol to write.
        (
            req().method("POST").path("/docs"),
            &c,
            Decision::default_deny(),
        ),
    ];
    for (r, id, want) in cases {
        let d = p.evaluate(&r.facts(), Some(id));
        assert_eq!(d, want, "{} {} as {}", r.method, r.path, id.subject);
    }
}

#[test]
fn without_identity_caller_criteria_do_not_match() {
    let p = the_example_policy();
    // `not: {groups: [admins]}` holds for an anonymous caller, so the deny applies.
    let d = p.evaluate(&req().path("/admin").facts(), None);
    assert_eq!(
        (d.allowed, d.rule.kind, d.reason),
        (false, RuleKind::Deny, Reason::DenyRule)
    );
    // Elsewhere nothing allows an anonymous caller.
    let d = p.evaluate(&req().path("/docs").facts(), None);
    assert_eq!(d, Decision::default_deny());
    assert_eq!(d.reason.as_str(), "no_matching_allow");
}

#[test]
fn reason_codes_and_display_are_stable() {
    assert_eq!(Reason::AllowRule.as_str(), "allow_rule");
    assert_eq!(Reason::DenyRule.as_str(), "deny_rule");
    assert_eq!(Reason::NoMatchingAllow.as_str(), "no_matching_allow");
    let p = the_example_policy();
    let d = p.evaluate(&req().path("/docs").facts(), Some(&carol()));
    assert_eq!(
        d.to_string(),
        "allow (allow_rule) by allow[1] `readonly-staff`"
    );
    let d = p.evaluate(&req().path("/docs").facts(), None);
    assert_eq!(d.to_string(), "deny (no_matching_allow) by default deny");
}

#[test]
fn deny_only_policy_denies_everything() {
    let p = compiled(json!({"deny": [{"method": "DELETE"}]}));
    assert_eq!(
        p.evaluate(&req().facts(), Some(&alice())).reason,
        Reason::NoMatchingAllow
    );
    assert_eq!(
        p.evaluate(&req().method("DELETE").facts(), Some(&alice()))
            .reason,
        Reason::DenyRule
    );
}

// ---------------------------------------------------------------- time

#[test]
fn time_bounded_access() {
    let p = compiled(json!({"allow": [{
        "groups": "eng",
        "valid_from": "2025-03-01T09:00:00+01:00",
        "valid_until": "2025-03-02T00:00:00Z"
    }]}));
    assert!(p.depends_on_time());
    let a = alice();
    for (now, want) in [
        ("2025-03-01T07:59:59Z", false),
        ("2025-03-01T08:00:00Z", true),
        ("2025-03-01T23:59:59Z", true),
        ("2025-03-02T00:00:00Z", false),
    ] {
        let r = req().now(now);
        assert_eq!(p.evaluate(&r.facts(), Some(&a)).allowed, want, "at {now}");
    }
}

#[test]
fn time_of_day_across_midnight_in_a_time_zone() {
    // New York is UTC-5 in January.
    let p = compiled(json!({"allow": [{
        "groups": "sre",
        "time_of_day": "22:00-06:00",
        "time_zone": "America/New_York"
    }]}));
    let a = alice();
    for (now, want) in [
        ("2025-01-07T02:59:59Z", false), // 21:59:59
        ("2025-01-07T03:00:00Z", true),  // 22:00
        ("2025-01-07T05:00:00Z", true),  // 00:00 local, next day
        ("2025-01-07T10:59:59Z", true),  // 05:59:59
        ("2025-01-07T11:00:00Z", false), // 06:00
        ("2025-01-07T17:00:00Z", false), // noon
    ] {
        assert_eq!(
            p.evaluate(&req().now(now).facts(), Some(&a)).allowed,
            want,
            "at {now}"
        );
    }
}

#[test]
fn days_of_week_follow_the_time_zone() {
    let p = compiled(json!({"allow": [{
        "groups": "sre",
        "days_of_week": ["mon-fri"],
        "time_of_day": "09:00-17:00",
        "time_zone": "Europe/Berlin"
    }]}));
    let a = alice();
    for (now, want) in [
        ("2025-01-06T07:59:00Z", false), // Monday 08:59 in Berlin
        ("2025-01-06T08:00:00Z", true),  // Monday 09:00
        ("2025-07-07T07:00:00Z", true),  // Monday 09:00 in summer (UTC+2)
        ("2025-01-10T15:59:00Z", true),  // Friday 16:59
        ("2025-01-11T10:00:00Z", false), // Saturday
        ("2025-01-05T23:30:00Z", false), // Monday 00:30 in Berlin: right day, wrong hour
    ] {
        assert_eq!(
            p.evaluate(&req().now(now).facts(), Some(&a)).allowed,
            want,
            "at {now}"
        );
    }
    // The day is the local one: Sunday 23:30 UTC is already Monday in Berlin.
    let p = compiled(json!({"allow": [{
        "groups": "sre", "days_of_week": "mon", "time_zone": "Europe/Berlin"
    }]}));
    assert!(
        p.evaluate(&req().now("2025-01-05T23:30:00Z").facts(), Some(&a))
            .allowed
    );
}

#[test]
fn depends_on_time_sees_every_time_criterion() {
    for rule in [
        json!({"groups": "eng", "valid_until": "2030-01-01T00:00:00Z"}),
        json!({"groups": "eng", "valid_from": "2020-01-01T00:00:00Z"}),
        json!({"groups": "eng", "days_of_week": "mon"}),
        json!({"groups": "eng", "or": [{"user": "x"}, {"time_of_day": "09:00-10:00"}]}),
    ] {
        assert!(
            compiled(json!({"allow": [rule]})).depends_on_time(),
            "{rule}"
        );
    }
    let in_deny = compiled(
        json!({"allow": [{"groups": "eng"}], "deny": [{"not": {"time_of_day": "09:00-17:00"}}]}),
    );
    assert!(in_deny.depends_on_time());
    assert!(!the_example_policy().depends_on_time());
}

// ---------------------------------------------------------------- source_ip

#[test]
fn source_ip_never_grants_access_alone() {
    let refused = [
        json!({"source_ip": "10.0.0.0/8"}),
        json!({"source_ip": "10.0.0.0/8", "method": "GET"}),
        json!({"source_ip": "10.0.0.0/8", "authenticated": false}),
        json!({"source_ip": "10.0.0.0/8", "not": {"groups": "blocked"}}),
        json!({"or": [{"source_ip": "10.0.0.0/8"}, {"groups": "eng"}]}),
        json!({"or": [{"groups": "eng"}, {"and": [{"source_ip": "10.0.0.0/8"}]}]}),
        json!({"and": [{"method": "GET"}, {"source_ip": "10.0.0.0/8"}]}),
        json!({"not": {"source_ip": "10.0.0.0/8"}}),
    ];
    for rule in refused {
        let e = compile(json!({"allow": [{"groups": "x"}, rule]})).unwrap_err();
        assert_eq!(e.len(), 1, "{rule}: {e:?}");
        assert_eq!(e[0].path, "allow[1]", "{rule}");
        assert_eq!(e[0].message, SOURCE_IP_ALONE, "{rule}");
    }
    let accepted = [
        json!({"source_ip": "10.0.0.0/8", "groups": "eng"}),
        json!({"source_ip": "10.0.0.0/8", "authenticated": true}),
        json!({"source_ip": "10.0.0.0/8", "client_certificate": {"san": "svc"}}),
        json!({"source_ip": "10.0.0.0/8", "and": [{"method": "GET"}, {"email_domain": "example.com"}]}),
        json!({"source_ip": "10.0.0.0/8", "or": [{"groups": "eng"}, {"claim": {"path": "a", "equals": 1}}]}),
        json!({"groups": "eng", "or": [{"source_ip": "10.0.0.0/8"}, {"method": "GET"}]}),
        json!({"and": [{"user": "alice"}, {"not": {"source_ip": "10.0.0.0/8"}}]}),
    ];
    for rule in accepted {
        assert!(
            compile(json!({"allow": [rule]})).is_ok(),
            "{rule} should be accepted"
        );
    }
    // Deny rules may use addresses alone: narrowing access is what they are for.
    assert!(compile(
        json!({"allow": [{"groups": "eng"}], "deny": [{"source_ip": "203.0.113.0/24"}]})
    )
    .is_ok());
}

// ---------------------------------------------------------------- compile errors

#[test]
fn every_compile_error_is_reported_with_its_path() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "", "a policy must allow something"),
        (json!({"allow": [], "deny": []}), "", "use `public: true`"),
        (json!({"allow": [{}]}), "allow[0]", "at least one criterion"),
        (
            json!({"allow": [{"name": "x"}]}),
            "allow[0]",
            "at least one criterion",
        ),
        (
            json!({"allow": [{"groups": []}]}),
            "allow[0].groups",
            "at least one value",
        ),
        (
            json!({"allow": [{"groups": [""]}]}),
            "allow[0].groups",
            "must not be empty",
        ),
        (
            json!({"allow": [{"groups": "a"}, {"and": [{"groups": []}]}]}),
            "allow[1].and[0].groups",
            "at least one value",
        ),
        (
            json!({"allow": [{"and": []}]}),
            "allow[0].and",
            "at least one rule",
        ),
        (
            json!({"allow": [{"or": []}]}),
            "allow[0].or",
            "at least one rule",
        ),
        (
            json!({"allow": [{"groups": "a", "not": {}}]}),
            "allow[0].not",
            "at least one criterion",
        ),
        (
            json!({"allow": [{"groups": "a", "or": [{"user": "x"}, {"not": {"method": "G T"}}]}]}),
            "allow[0].or[1].not.method",
            "not an HTTP method",
        ),
        (
            json!({"allow": [{"groups": "a", "source_ip": "10.0.0.0/33"}]}),
            "allow[0].source_ip",
            "not an address range",
        ),
        (
            json!({"allow": [{"groups": "a", "source_ip": "10.1.2.3/8"}]}),
            "allow[0].source_ip",
            "did you mean `10.0.0.0/8`",
        ),
        (
            json!({"allow": [{"groups": "a", "days_of_week": "mon", "time_zone": "Mars/Base"}]}),
            "allow[0].time_zone",
            "unknown time zone",
        ),
        (
            json!({"allow": [{"groups": "a", "time_zone": "UTC"}]}),
            "allow[0].time_zone",
            "applies to days_of_week and time_of_day",
        ),
        (
            json!({"allow": [{"groups": "a", "time_of_day": "9-5"}]}),
            "allow[0].time_of_day",
            "not a time window",
        ),
        (
            json!({"allow": [{"groups": "a", "time_of_day": "10:00-10:00"}]}),
            "allow[0].time_of_day",
            "starts where it ends",
        ),
        (
            json!({"allow": [{"groups": "a", "valid_from": "tomorrow"}]}),
            "allow[0].valid_from",
            "not an RFC 3339 timestamp",
        ),
        (
            json!({"allow": [{"groups": "a", "valid_until": "2025-01-01T00:00:00"}]}),
            "allow[0].valid_until",
            "not an RFC 3339 timestamp",
        ),
        (
            json!({"allow": [{"groups": "a", "valid_from": "2025-02-01T00:00:00Z", "valid_until": "2025-01-01T00:00:00Z"}]}),
            "allow[0].valid_from",
            "must be before valid_until",
        ),
        (
            json!({"allow": [{"groups": "a", "days_of_week": ["mon", "funday"]}]}),
            "allow[0].days_of_week",
            "`funday` is not a day",
        ),
        (
            json!({"allow": [{"groups": "a", "days_of_week": []}]}),
            "allow[0].days_of_week",
            "at least one value",
        ),
        (
            json!({"allow": [{"path_glob": "/a/**b"}]}),
            "allow[0].path_glob",
            "whole segment",
        ),
        (
            json!({"allow": [{"path_glob": "a/*"}]}),
            "allow[0].path_glob",
            "must start with '/'",
        ),
        (
            json!({"allow": [{"path_prefix": "admin"}]}),
            "allow[0].path_prefix",
            "must start with '/'",
        ),
        (
            json!({"allow": [{"path_prefix": "/a//b"}]}),
            "allow[0].path_prefix",
            "write `/a/b`",
        ),
        (
            json!({"allow": [{"path_exact": "/%61"}]}),
            "allow[0].path_exact",
            "write `/a`",
        ),
        (
            json!({"allow": [{"path_exact": "/a%zz"}]}),
            "allow[0].path_exact",
            "invalid percent-escape",
        ),
        (
            json!({"allow": [{"method": "GE T"}]}),
            "allow[0].method",
            "not an HTTP method",
        ),
        (
            json!({"allow": [{"email": "bob"}]}),
            "allow[0].email",
            "not an email address",
        ),
        (
            json!({"allow": [{"email_domain": "@example.com"}]}),
            "allow[0].email_domain",
            "without `@`",
        ),
        (
            json!({"allow": [{"service_account": "a/b/c"}]}),
            "allow[0].service_account",
            "namespace/name",
        ),
        (
            json!({"allow": [{"claim": {"path": "a", "equals": 1, "in": [1]}}]}),
            "allow[0].claim",
            "exactly one",
        ),
        (
            json!({"allow": [{"claim": {"path": "a"}}]}),
            "allow[0].claim",
            "exactly one",
        ),
        (
            json!({"allow": [{"claim": {"path": "a..b", "equals": 1}}]}),
            "allow[0].claim.path",
            "not a claim path",
        ),
        (
            json!({"allow": [{"claim": {"path": "a", "in": []}}]}),
            "allow[0].claim.in",
            "at least one value",
        ),
        (
            json!({"allow": [{"client_certificate": {}}]}),
            "allow[0].client_certificate",
            "`fingerprint`, `san` or both",
        ),
        (
            json!({"allow": [{"client_certificate": {"fingerprint": "zz"}}]}),
            "allow[0].client_certificate.fingerprint",
            "not a SHA-256 fingerprint",
        ),
        (
            json!({"allow": [{"client_certificate": {"san": []}}]}),
            "allow[0].client_certificate.san",
            "at least one value",
        ),
        (
            json!({"allow": [{"groups": "a", "name": " "}]}),
            "allow[0].name",
            "must not be empty",
        ),
        (
            json!({"allow": [{"groups": "a", "name": "x"}], "deny": [{"method": "GET", "name": "x"}]}),
            "deny[0].name",
            "already named `x`",
        ),
    ];
    for (policy, path, message) in cases {
        let errors = match compile(policy.clone()) {
            Ok(_) => panic!("{policy} should be refused"),
            Err(e) => e,
        };
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(message)),
            "{policy}: expected `{path}: …{message}…`, got {errors:?}"
        );
        assert_eq!(
            errors.len(),
            1,
            "{policy}: one mistake, one error: {errors:?}"
        );
    }
}

#[test]
fn all_errors_are_reported_at_once() {
    let errors = compile(json!({
        "allow": [
            {"groups": [], "method": "G T"},
            {"source_ip": "nope"}
        ],
        "deny": [{"time_of_day": "late"}]
    }))
    .unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "allow[0].method",
            "allow[0].groups",
            "allow[1].source_ip",
            "deny[0].time_of_day",
            "allow[1]"
        ],
        "{errors:?}"
    );
}

// ---------------------------------------------------------------- named policies

#[test]
fn named_policies_resolve_and_report_under_their_name() {
    let named: NamedPolicies = serde_json::from_value(json!({
        "engineers": {"allow": [{"groups": "eng"}]},
        "broken": {"allow": [{"groups": []}]},
        "bad.name": {"allow": [{"groups": "x"}]}
    }))
    .unwrap();
    let (set, errors) = named.compile();
    let got: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "policies.bad.name",
                "a policy name may use letters, digits, `-` and `_` only"
            ),
            (
                "policies.broken.allow[0].groups",
                "must list at least one value"
            ),
        ]
    );

    let a = alice();
    let p = set.resolve(&PolicyRef::Named("engineers".into())).unwrap();
    assert!(p.evaluate(&req().facts(), Some(&a)).allowed);
    // Routes naming the same policy share one compiled copy.
    let again = set.resolve(&PolicyRef::Named("engineers".into())).unwrap();
    assert!(std::sync::Arc::ptr_eq(&p, &again));
    assert!(set.get("engineers").is_some());

    let e = set
        .resolve(&PolicyRef::Named("engineer".into()))
        .unwrap_err();
    assert_eq!(e[0].path, "");
    assert_eq!(
        e[0].message,
        "unknown policy `engineer`: the named policies are bad.name, broken, engineers"
    );
    let e = set.resolve(&PolicyRef::Named("broken".into())).unwrap_err();
    assert!(e[0].message.contains("has errors"), "{e:?}");
    let e = CompiledPolicies::default()
        .resolve(&PolicyRef::Named("x".into()))
        .unwrap_err();
    assert!(e[0].message.contains("no policies are defined"), "{e:?}");

    let inline =
        PolicyRef::Inline(serde_json::from_value(json!({"allow": [{"user": "alice"}]})).unwrap());
    assert!(
        set.resolve(&inline)
            .unwrap()
            .evaluate(&req().facts(), Some(&a))
            .allowed
    );
    let bad_inline = PolicyRef::Inline(PolicyConf::default());
    assert_eq!(set.resolve(&bad_inline).unwrap_err()[0].path, "");
}

// ---------------------------------------------------------------- interner reload

#[test]
fn identities_learn_groups_added_by_a_reload() {
    let id = Identity::new(
        "dave",
        "https://idp",
        AuthMethod::Bearer {
            issuer: "ci".into(),
        },
    )
    .with_groups(["reload-test-first", "reload-test-second"]);
    let first = compiled(json!({"allow": [{"groups": "reload-test-first"}]}));
    assert!(first.evaluate(&req().facts(), Some(&id)).allowed);
    // A later conf names a group the interner has not seen; the identity's cached ids predate it.
    let second =
        compiled(json!({"allow": [{"groups_all": ["reload-test-second", "reload-test-first"]}]}));
    assert!(second.evaluate(&req().facts(), Some(&id)).allowed);
    assert!(first.evaluate(&req().facts(), Some(&id)).allowed);
    let third = compiled(json!({"allow": [{"groups": "reload-test-third"}]}));
    assert!(!third.evaluate(&req().facts(), Some(&id)).allowed);
}

// ---------------------------------------------------------------- explain

#[test]
fn explain_traces_every_test() {
    let p = the_example_policy();
    let (d, lines) = p.explain(&req().path("/docs").facts(), Some(&carol()));
    assert_eq!(d, p.evaluate(&req().path("/docs").facts(), Some(&carol())));
    let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "deny[0]: deny rule => no match",
            "  deny[0].path_prefix: path is at or below any of /admin => no match (path /docs)",
            "  deny[0].not: not all of => match",
            "    deny[0].not.groups: in any of groups admins => no match (caller is in none of them)",
            "deny[1]: deny rule `no-deletes` => no match",
            "  deny[1].method: method is any of DELETE => no match (method GET)",
            "allow[0]: allow rule => no match",
            "  allow[0].groups: in any of groups sre => no match (caller is in none of them)",
            "allow[1]: allow rule `readonly-staff` => match [decides]",
            "  allow[1].and: all of => match",
            "    allow[1].and[0]: rule => match",
            "      allow[1].and[0].email_domain: email domain is any of example.com => match (email `carol@example.com`)",
            "    allow[1].and[1]: rule => match",
            "      allow[1].and[1].method: method is any of GET, HEAD => match (method GET)",
        ]
    );
}

#[test]
fn explain_marks_rules_after_the_decision_and_the_default() {
    let p = the_example_policy();
    let (d, lines) = p.explain(&req().path("/admin").facts(), Some(&alice()));
    assert_eq!(d.reason, Reason::DenyRule);
    let top: Vec<(&str, bool, Option<&str>)> = lines
        .iter()
        .filter(|l| l.depth == 0)
        .map(|l| (l.path.as_str(), l.matched, l.note))
        .collect();
    let not_reached = Some(super::trace::NOT_REACHED);
    assert_eq!(
        top,
        [
            ("deny[0]", true, Some("decides")),
            ("deny[1]", false, not_reached),
            // Evaluated in full even though they cannot decide: alice would be allowed elsewhere.
            ("allow[0]", true, not_reached),
            ("allow[1]", true, not_reached),
        ]
    );
    assert!(lines.iter().any(|l| l.path == "deny[0].not.groups"
        && l.observed.as_deref() == Some("caller is in none of them")));

    let (d, lines) = p.explain(&req().path("/docs").facts(), None);
    assert_eq!(d.reason, Reason::NoMatchingAllow);
    let last = lines.last().unwrap();
    assert_eq!(
        last.to_string(),
        "default: no deny or allow rule matched: deny => match [decides]"
    );
    assert!(lines
        .iter()
        .any(|l| l.to_string()
            == "  allow[0].groups: in any of groups sre => no match (no identity)"));
}

#[test]
fn explain_shows_observed_values() {
    let p = compiled(json!({"allow": [{
        "name": "everything",
        "claim": {"path": "tier", "in": ["gold"]},
        "days_of_week": "mon",
        "time_zone": "Europe/Berlin",
        "authenticated": true,
        "source_ip": "10.0.0.0/8",
        "client_certificate": {"san": "svc"},
        "provider": "corp",
        "cors_preflight": false,
        "valid_until": "2030-01-01T00:00:00Z",
        "path_glob": "/**"
    }]}));
    let (d, lines) = p.explain(&req().cert(cert("svc")).facts(), Some(&alice()));
    assert!(d.allowed);
    let observed = |key: &str| {
        lines
            .iter()
            .find(|l| l.path == format!("allow[0].{key}"))
            .and_then(|l| l.observed.clone())
            .unwrap_or_else(|| panic!("no line for {key}"))
    };
    assert_eq!(observed("claim"), r#"claim is "gold""#);
    assert_eq!(
        observed("days_of_week"),
        "local time mon 2025-01-06 13:00:00 +01:00"
    );
    assert_eq!(observed("authenticated"), "caller `alice` via session");
    assert_eq!(observed("source_ip"), "client 10.1.2.3");
    assert!(observed("client_certificate").ends_with("with SANs [svc]"));
    assert_eq!(observed("provider"), "session from provider `corp`");
    assert_eq!(observed("cors_preflight"), "not a CORS preflight");
    assert_eq!(observed("valid_until"), "now 2025-01-06T12:00:00Z");
    assert_eq!(observed("path_glob"), "path /");
}
