//! Verified claims → [`Identity`]: the configured claim paths, and the service-account
//! attributes of Kubernetes tokens.

use super::conf::{ClaimPaths, IssuerKind};
use super::error::BearerError;
use super::verify::claim_at;
use crate::identity::{AuthMethod, Identity, KubernetesIdentity};
use serde_json::Value;
use std::sync::Arc;

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// How one issuer's claims become an identity.
#[derive(Debug, Clone)]
pub(crate) struct IdentityMapping {
    pub issuer_name: Arc<str>,
    pub kind: IssuerKind,
    pub paths: ClaimPaths,
}

fn string_at<'v>(claims: &'v Value, path: &str) -> Option<&'v str> {
    claim_at(claims, path).and_then(Value::as_str)
}

/// Groups may be a list of strings or a single string; anything else is ignored.
fn groups_at(claims: &Value, path: &str) -> Vec<String> {
    match claim_at(claims, path) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads the namespace and service account of a Kubernetes token. `sub` must name a service
/// account; when the token also carries `kubernetes.io` attributes they must agree with it.
fn kubernetes_identity(subject: &str, claims: &Value) -> Result<KubernetesIdentity, BearerError> {
    let rest = subject
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .ok_or(BearerError::MissingClaim)?;
    let (namespace, name) = rest.split_once(':').ok_or(BearerError::Malformed)?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return Err(BearerError::Malformed);
    }
    // "kubernetes.io" contains a dot: walk it by key, not by dotted path.
    if let Some(k8s) = claims.get("kubernetes.io") {
        let ns = k8s.get("namespace").and_then(Value::as_str);
        let sa = k8s
            .get("serviceaccount")
            .and_then(|s| s.get("name"))
            .and_then(Value::as_str);
        if ns != Some(namespace) || sa != Some(name) {
            return Err(BearerError::Malformed);
        }
    }
    Ok(KubernetesIdentity {
        namespace: namespace.into(),
        service_account: name.into(),
    })
}

impl IdentityMapping {
    /// Builds the identity of a verified token (whose claims passed the issuer's rules).
    pub(crate) fn identity(&self, claims: Value, exp: i64) -> Result<Identity, BearerError> {
        let p = &self.paths;
        let subject = string_at(&claims, &p.subject).ok_or(BearerError::MissingClaim)?;
        let issuer_url = string_at(&claims, "iss").unwrap_or_default();
        let mut groups = groups_at(&claims, &p.groups);
        let kubernetes = match self.kind {
            IssuerKind::Generic => None,
            IssuerKind::Kubernetes => {
                let k = kubernetes_identity(subject, &claims)?;
                // The groups the Kubernetes authenticator gives every service account.
                groups.push("system:serviceaccounts".into());
                groups.push(format!("system:serviceaccounts:{}", k.namespace));
                Some(k)
            }
        };
        let identity = Identity::new(
            subject,
            issuer_url,
            AuthMethod::Bearer {
                issuer: self.issuer_name.clone(),
            },
        )
        .with_email(string_at(&claims, &p.email))
        .with_name(string_at(&claims, &p.name))
        .with_groups(groups)
        .with_kubernetes(kubernetes)
        .with_expiry(exp);
        Ok(identity.with_claims(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(kind: IssuerKind) -> IdentityMapping {
        IdentityMapping {
            issuer_name: "ci".into(),
            kind,
            paths: ClaimPaths::default(),
        }
    }

    #[test]
    fn generic_claims_map_through_paths() {
        let claims = json!({"iss": "https://i", "sub": "u1", "email": "u@x", "name": "U",
                            "groups": ["b", "a", 3]});
        let id = mapping(IssuerKind::Generic)
            .identity(claims.clone(), 99)
            .unwrap();
        assert_eq!(&*id.subject, "u1");
        assert_eq!(id.email.as_deref(), Some("u@x"));
        assert_eq!(id.name.as_deref(), Some("U"));
        assert_eq!(
            &*id.groups,
            &["a".into(), "b".into()] as &[std::sync::Arc<str>]
        );
        assert_eq!(&*id.issuer_url, "https://i");
        assert_eq!(id.method.source_name(), "ci");
        assert_eq!(id.method.kind(), "bearer");
        assert_eq!(id.expires_at, 99);
        assert_eq!(id.claims, claims);
        assert!(id.kubernetes.is_none());
    }

    #[test]
    fn custom_paths_and_a_single_group_string() {
        let mut m = mapping(IssuerKind::Generic);
        m.paths.subject = "client.id".into();
        m.paths.groups = "realm.roles".into();
        let id = m
            .identity(
                json!({"client": {"id": "c9"}, "realm": {"roles": "ops"}}),
                1,
            )
            .unwrap();
        assert_eq!(&*id.subject, "c9");
        assert!(id.has_group("ops"));
        assert_eq!(
            m.identity(json!({"sub": "x"}), 1).unwrap_err(),
            BearerError::MissingClaim
        );
        assert_eq!(
            m.identity(json!({"client": {"id": 7}}), 1).unwrap_err(),
            BearerError::MissingClaim
        );
    }

    #[test]
    fn kubernetes_tokens_name_a_service_account() {
        let claims = json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": "system:serviceaccount:ci:builder",
            "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder", "uid": "u"}}
        });
        let id = mapping(IssuerKind::Kubernetes).identity(claims, 5).unwrap();
        let k = id.kubernetes.as_ref().unwrap();
        assert_eq!((&*k.namespace, &*k.service_account), ("ci", "builder"));
        assert!(id.has_group("system:serviceaccounts"));
        assert!(id.has_group("system:serviceaccounts:ci"));
        // Legacy tokens without the kubernetes.io claim are read from sub.
        let legacy = json!({"sub": "system:serviceaccount:default:app"});
        let id = mapping(IssuerKind::Kubernetes).identity(legacy, 5).unwrap();
        assert_eq!(&*id.kubernetes.unwrap().service_account, "app");
    }

    #[test]
    fn kubernetes_tokens_that_are_not_service_accounts_or_disagree_are_refused() {
        let m = mapping(IssuerKind::Kubernetes);
        let refuse = |claims: Value| m.identity(claims, 5).unwrap_err();
        assert_eq!(refuse(json!({"sub": "alice"})), BearerError::MissingClaim);
        assert_eq!(
            refuse(json!({"sub": "system:serviceaccount:ci"})),
            BearerError::Malformed
        );
        assert_eq!(
            refuse(json!({"sub": "system:serviceaccount:ci:a:b"})),
            BearerError::Malformed
        );
        assert_eq!(
            refuse(json!({"sub": "system:serviceaccount:ci:builder",
                          "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "builder"}}})),
            BearerError::Malformed
        );
    }
}
