//! The policy language as written in the conf: what serde reads, before any checking.
//!
//! Everything here is plain data; `compile` turns it into the evaluated form and reports every
//! mistake at once.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// One policy: deny rules, checked first, then allow rules; nothing matching means deny.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConf {
    #[serde(default)]
    pub allow: Vec<RuleConf>,
    #[serde(default)]
    pub deny: Vec<RuleConf>,
}

/// A rule: every criterion present must hold (implicit AND), together with its `and`, `or`
/// and `not` combinators. `name` labels the rule in decisions, audit events and traces.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConf {
    pub name: Option<String>,

    pub and: Option<Vec<RuleConf>>,
    pub or: Option<Vec<RuleConf>>,
    pub not: Option<Box<RuleConf>>,

    /// `true`: the caller has an identity; `false`: the caller has none.
    pub authenticated: Option<bool>,
    /// The subject equals any of these (`user` and `sub` are synonyms).
    pub user: Option<StringList>,
    pub sub: Option<StringList>,
    /// The email equals any of these, ignoring case.
    pub email: Option<StringList>,
    /// The domain after the email's `@` equals any of these, ignoring case.
    pub email_domain: Option<StringList>,
    /// The caller is in any of these groups.
    pub groups: Option<StringList>,
    /// The caller is in all of these groups.
    pub groups_all: Option<StringList>,
    pub claim: Option<ClaimConf>,
    /// Conf name of the `jwt_issuers` entry that verified the bearer token.
    pub issuer: Option<StringList>,
    /// Conf name of the OIDC provider that established the session.
    pub provider: Option<StringList>,
    /// Kubernetes service account namespace.
    pub namespace: Option<StringList>,
    /// Kubernetes service account, as `name` or `namespace/name`.
    pub service_account: Option<StringList>,

    /// HTTP method, ignoring case.
    pub method: Option<StringList>,
    /// Segment-aware prefix of the normalised path.
    pub path_prefix: Option<StringList>,
    pub path_exact: Option<StringList>,
    /// `*` matches within one segment, `**` any number of whole segments.
    pub path_glob: Option<StringList>,

    /// RFC 3339 timestamps: access holds from `valid_from` (inclusive) until `valid_until`
    /// (exclusive).
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    /// `mon`..`sun` (or full names, or ranges such as `mon-fri`), in `time_zone`.
    pub days_of_week: Option<StringList>,
    /// `HH:MM-HH:MM`, start inclusive, end exclusive; a start after the end spans midnight.
    pub time_of_day: Option<String>,
    /// IANA time zone for `days_of_week` and `time_of_day`; UTC when absent.
    pub time_zone: Option<String>,

    pub client_certificate: Option<ClientCertConf>,
    /// `true`: the request is a CORS preflight (OPTIONS with `Origin` and
    /// `Access-Control-Request-Method`); `false`: it is not.
    pub cors_preflight: Option<bool>,
    /// The client address is in any of these CIDR ranges (or single addresses). Never grants
    /// access on its own: see `compile`.
    pub source_ip: Option<StringList>,
}

/// A test on one claim of the verified token or session: exactly one of `equals`, `contains`
/// and `in`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimConf {
    /// Dotted path into the claims (`realm_access.roles`).
    pub path: String,
    #[serde(default, deserialize_with = "present_value")]
    pub equals: Option<serde_json::Value>,
    /// An element of an array claim, or a substring of a string claim.
    #[serde(default, deserialize_with = "present_value")]
    pub contains: Option<serde_json::Value>,
    #[serde(default, rename = "in", deserialize_with = "value_list")]
    pub in_: Option<Vec<serde_json::Value>>,
}

/// The client certificate presented over mutual TLS: every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertConf {
    /// SHA-256 fingerprints of the certificate (hex, colons optional), any of.
    pub fingerprint: Option<StringList>,
    /// A DNS, email or URI subject alternative name, any of.
    pub san: Option<StringList>,
}

/// A route's policy: the name of an entry in `policies`, or a policy written in place.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyRef {
    Named(String),
    Inline(PolicyConf),
}

/// The conf's `policies` section: named policies routes refer to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct NamedPolicies(pub BTreeMap<String, PolicyConf>);

/// A list of strings that may also be written as a single string (`groups: eng`). Numbers are
/// read as their decimal text (`groups: [1001]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl StringList {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<const N: usize> From<[&str; N]> for StringList {
    fn from(v: [&str; N]) -> Self {
        Self(v.iter().map(|s| s.to_string()).collect())
    }
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Item(String);
        struct ItemVisitor;
        impl Visitor<'_> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
                Ok(Item(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item, E> {
                Ok(Item(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
                Ok(Item(v.to_string()))
            }
        }
        impl<'de> Deserialize<'de> for Item {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ItemVisitor)
            }
        }

        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(Item(s)) = seq.next_element()? {
                    v.push(s);
                }
                Ok(StringList(v))
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

/// `equals: null` means "equals null", not "absent".
fn present_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// `in: [a, b]`, or `in: a` for a single value.
fn value_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<serde_json::Value>>, D::Error> {
    Ok(Some(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(v) => v,
        v => vec![v],
    }))
}

impl<'de> Deserialize<'de> for PolicyRef {
    // Hand-written rather than `#[serde(untagged)]` so that a mistake inside an inline policy
    // is reported as itself, not as "did not match any variant".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PolicyRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the name of a policy in `policies`, or a policy `{ allow: [...], deny: [...] }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PolicyRef, E> {
                Ok(PolicyRef::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PolicyRef, A::Error> {
                PolicyConf::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(PolicyRef::Inline)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_accept_a_single_scalar() {
        let r: RuleConf = serde_json::from_value(json!({
            "groups": "eng", "method": ["GET", "HEAD"], "user": 1001
        }))
        .unwrap();
        assert_eq!(r.groups, Some(StringList::from(["eng"])));
        assert_eq!(r.method, Some(StringList::from(["GET", "HEAD"])));
        assert_eq!(r.user, Some(StringList::from(["1001"])));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_value::<RuleConf>(json!({"group": ["eng"]})).unwrap_err();
        assert!(e.to_string().contains("unknown field `group`"), "{e}");
        let e = serde_json::from_value::<PolicyConf>(json!({"alow": []})).unwrap_err();
        assert!(e.to_string().contains("unknown field `alow`"), "{e}");
    }

    #[test]
    fn claim_values_keep_null_and_single_in() {
        let c: ClaimConf =
            serde_json::from_value(json!({"path": "a", "equals": null, "in": "x"})).unwrap();
        assert_eq!(c.equals, Some(serde_json::Value::Null));
        assert_eq!(c.in_, Some(vec![json!("x")]));
        assert_eq!(c.contains, None);
    }

    #[test]
    fn policy_ref_is_a_name_or_a_policy() {
        let r: PolicyRef = serde_json::from_value(json!("engineers")).unwrap();
        assert_eq!(r, PolicyRef::Named("engineers".into()));
        let r: PolicyRef = serde_json::from_value(json!({"allow": [{"groups": ["sre"]}]})).unwrap();
        let PolicyRef::Inline(p) = r else {
            panic!("expected inline")
        };
        assert_eq!(p.allow[0].groups, Some(StringList::from(["sre"])));
        // Errors inside an inline policy are reported precisely.
        let e =
            serde_json::from_value::<PolicyRef>(json!({"allow": [{"gropus": []}]})).unwrap_err();
        assert!(e.to_string().contains("unknown field `gropus`"), "{e}");
    }

    #[test]
    fn named_policies_are_a_map() {
        let n: NamedPolicies =
            serde_json::from_value(json!({"engineers": {"allow": [{"groups": "eng"}]}})).unwrap();
        assert_eq!(n.0["engineers"].allow.len(), 1);
    }
}
