//! The verified identity of a caller, however it was established (session or bearer token).
//!
//! An `Identity` is built once, when a session is created or a token is verified, and then
//! shared (`Arc`) by every request that presents the same credential: the hot path reads it,
//! never rebuilds it.

use std::sync::Arc;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A Warden session established by OIDC login with `provider` (the conf name).
    Session {
        provider: Arc<str>,
        session_id: Arc<str>,
    },
    /// A bearer JWT verified against `issuer` (the conf name of the `jwt_issuers` entry).
    Bearer { issuer: Arc<str> },
}

impl AuthMethod {
    /// The label used in metrics and logs: `session` or `bearer`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthMethod::Session { .. } => "session",
            AuthMethod::Bearer { .. } => "bearer",
        }
    }

    /// The conf name of the provider or issuer that vouched for the identity.
    pub fn source_name(&self) -> &str {
        match self {
            AuthMethod::Session { provider, .. } => provider,
            AuthMethod::Bearer { issuer } => issuer,
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        match self {
            AuthMethod::Session { session_id, .. } => Some(session_id),
            AuthMethod::Bearer { .. } => None,
        }
    }
}

/// Kubernetes service-account attributes, present for tokens from a `kubernetes` issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesIdentity {
    pub namespace: Box<str>,
    pub service_account: Box<str>,
}

/// A verified caller.
#[derive(Debug)]
pub struct Identity {
    /// `sub` (or the configured subject claim).
    pub subject: Box<str>,
    pub email: Option<Box<str>>,
    pub name: Option<Box<str>>,
    /// Group names, sorted and de-duplicated; shared between identities (`group_names`).
    pub groups: Box<[Arc<str>]>,
    /// The `iss` the credential was issued by.
    pub issuer_url: Box<str>,
    pub method: AuthMethod,
    /// Verified claims, for `claim` policy criteria and claim-to-header mappings. For sessions
    /// only the claims the conf asks for are kept, never the raw ID token.
    pub claims: serde_json::Value,
    pub kubernetes: Option<KubernetesIdentity>,
    /// When the credential stops being valid (Unix seconds): token `exp` or session expiry.
    pub expires_at: i64,
    /// Interned ids of `groups` for policy evaluation, computed lazily by the policy module;
    /// leave it at its default.
    pub policy_group_ids: crate::policy::GroupIdCache,
}

impl Identity {
    pub fn new(
        subject: impl Into<Box<str>>,
        issuer_url: impl Into<Box<str>>,
        method: AuthMethod,
    ) -> Self {
        Self {
            subject: subject.into(),
            email: None,
            name: None,
            groups: Box::new([]),
            issuer_url: issuer_url.into(),
            method,
            claims: serde_json::Value::Null,
            kubernetes: None,
            expires_at: i64::MAX,
            policy_group_ids: Default::default(),
        }
    }

    pub fn with_email(mut self, email: Option<impl Into<Box<str>>>) -> Self {
        self.email = email.map(Into::into);
        self
    }

    pub fn with_name(mut self, name: Option<impl Into<Box<str>>>) -> Self {
        self.name = name.map(Into::into);
        self
    }

    /// Sets the groups, sorting and de-duplicating them.
    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut v: Vec<Arc<str>> = groups
            .into_iter()
            .map(|g| crate::group_names::shared(g.as_ref()))
            .collect();
        v.sort_unstable();
        v.dedup();
        self.groups = v.into_boxed_slice();
        self
    }

    pub fn with_claims(mut self, claims: serde_json::Value) -> Self {
        self.claims = claims;
        self
    }

    pub fn with_kubernetes(mut self, k: Option<KubernetesIdentity>) -> Self {
        self.kubernetes = k;
        self
    }

    pub fn with_expiry(mut self, expires_at: i64) -> Self {
        self.expires_at = expires_at;
        self
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.binary_search_by(|g| (**g).cmp(group)).is_ok()
    }

    /// Looks up a claim by a dotted path (`realm_access.roles`).
    pub fn claim(&self, path: &str) -> Option<&serde_json::Value> {
        path.split('.').try_fold(&self.claims, |v, seg| v.get(seg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_sorted_and_searchable() {
        let id = Identity::new(
            "u1",
            "https://idp",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_groups(["b", "a", "b", "c"]);
        assert_eq!(
            &*id.groups,
            &["a".into(), "b".into(), "c".into()] as &[Arc<str>]
        );
        assert!(id.has_group("b"));
        assert!(!id.has_group("d"));
    }

    #[test]
    fn claim_paths_walk_objects() {
        let id = Identity::new(
            "u1",
            "https://idp",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_claims(serde_json::json!({"realm": {"roles": ["x"]}, "tier": "gold"}));
        assert_eq!(id.claim("tier"), Some(&serde_json::json!("gold")));
        assert_eq!(id.claim("realm.roles"), Some(&serde_json::json!(["x"])));
        assert_eq!(id.claim("realm.missing"), None);
    }
}
