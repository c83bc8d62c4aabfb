//! From a provider's claims (ID token, userinfo) to the [`Profile`] a session keeps: email,
//! name, groups and the few claims the conf asks to keep — nothing else of the tokens.

use super::conf::ClaimNames;
use crate::identity::Identity;
use crate::session::Profile;
use serde_json::{Map, Value};

/// Looks up a dotted claim path (`realm_access.roles`). A claim whose own name contains dots
/// (`https://example.com/groups`) is found too: the whole path is tried as one name first.
pub(crate) fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(claims, |v, seg| v.get(seg))
}

/// Sets in `profile` what `claims` hold: email, name and kept claims when present, and groups
/// when `with_groups` and the groups claim is present. Returns whether the groups claim was
/// present.
///
/// An email the provider marks `email_verified: false` is not taken: policies match emails
/// and their domains, and an unverified address proves nothing.
pub(crate) fn merge(
    profile: &mut Profile,
    claims: &Value,
    names: &ClaimNames,
    with_groups: bool,
) -> bool {
    if let Some(Value::String(email)) = claim(claims, &names.email) {
        let unverified = claims.get("email_verified") == Some(&Value::Bool(false));
        profile.email = (!unverified).then(|| email.clone());
    }
    if let Some(Value::String(name)) = claim(claims, &names.name) {
        profile.name = Some(name.clone());
    }
    for path in &names.keep {
        if let Some(v) = claim(claims, path) {
            insert_path(&mut profile.claims, path, v.clone());
        }
    }
    let groups = claim(claims, &names.groups);
    if with_groups {
        if let Some(g) = groups {
            profile.groups = groups_of(g);
        }
    }
    groups.is_some()
}

/// Group names from a claim: a list of strings (other entries skipped) or one string.
fn groups_of(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Stores `v` at a dotted path, creating objects on the way, so `Identity::claim(path)` finds
/// it where the provider had it.
fn insert_path(root: &mut Value, path: &str, v: Value) {
    if !root.is_object() {
        *root = Value::Object(Map::new());
    }
    let mut at = root;
    let mut segs = path.split('.').peekable();
    while let Some(seg) = segs.next() {
        let Value::Object(map) = at else { return };
        if segs.peek().is_none() {
            map.insert(seg.to_string(), v);
            return;
        }
        at = map
            .entry(seg.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
    }
}

/// The profile a session's identity currently carries, to update in place.
pub(crate) fn current(identity: &Identity) -> Profile {
    Profile {
        email: identity.email.as_deref().map(str::to_string),
        name: identity.name.as_deref().map(str::to_string),
        groups: identity.groups.iter().map(|g| g.to_string()).collect(),
        claims: identity.claims.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(groups: &str, keep: &[&str]) -> ClaimNames {
        ClaimNames {
            groups: groups.into(),
            keep: keep.iter().map(|k| k.to_string()).collect(),
            ..ClaimNames::default()
        }
    }

    #[test]
    fn standard_claims_map_to_the_profile() {
        let claims = json!({
            "sub": "u1", "email": "a@example.com", "name": "Ann",
            "groups": ["eng", 7, "sre"], "department": "ops", "secret_thing": "x",
        });
        let mut p = Profile::default();
        assert!(merge(
            &mut p,
            &claims,
            &names("groups", &["department"]),
            true
        ));
        assert_eq!(p.email.as_deref(), Some("a@example.com"));
        assert_eq!(p.name.as_deref(), Some("Ann"));
        assert_eq!(p.groups, ["eng", "sre"]);
        assert_eq!(p.claims, json!({"department": "ops"}), "only kept claims");
    }

    #[test]
    fn dotted_paths_walk_objects_and_are_kept_nested() {
        let claims = json!({
            "realm_access": {"roles": ["admin"], "other": 1},
            "https://example.com/tier": "gold",
        });
        let mut p = Profile::default();
        let n = names(
            "realm_access.roles",
            &["realm_access.roles", "https://example.com/tier"],
        );
        merge(&mut p, &claims, &n, true);
        assert_eq!(p.groups, ["admin"]);
        let id = Identity::new(
            "u1",
            "https://idp",
            crate::identity::AuthMethod::Bearer { issuer: "x".into() },
        )
        .with_claims(p.claims.clone());
        assert_eq!(id.claim("realm_access.roles"), Some(&json!(["admin"])));
        assert!(id.claim("realm_access.other").is_none());
    }

    #[test]
    fn absent_claims_leave_the_profile_as_it_was() {
        let mut p = Profile {
            email: Some("old@example.com".into()),
            name: Some("Old".into()),
            groups: vec!["g".into()],
            claims: Value::Null,
        };
        assert!(!merge(
            &mut p,
            &json!({"sub": "u1"}),
            &ClaimNames::default(),
            true
        ));
        assert_eq!(p.email.as_deref(), Some("old@example.com"));
        assert_eq!(p.groups, ["g"]);
        // Groups present but not wanted from this source.
        assert!(merge(
            &mut p,
            &json!({"groups": "solo"}),
            &ClaimNames::default(),
            false
        ));
        assert_eq!(p.groups, ["g"]);
        merge(
            &mut p,
            &json!({"groups": "solo"}),
            &ClaimNames::default(),
            true,
        );
        assert_eq!(p.groups, ["solo"]);
    }

    #[test]
    fn unverified_emails_are_dropped() {
        let mut p = Profile::default();
        merge(
            &mut p,
            &json!({"email": "ceo@example.com", "email_verified": false}),
            &ClaimNames::default(),
            true,
        );
        assert_eq!(p.email, None);
        merge(
            &mut p,
            &json!({"email": "me@example.com", "email_verified": true}),
            &ClaimNames::default(),
            true,
        );
        assert_eq!(p.email.as_deref(), Some("me@example.com"));
    }
}
