//! `X-Warden-User`, `X-Warden-Email`, `X-Warden-Groups` and claim headers: computed once per
//! (identity, route settings) and copied into each request from a cache.

use super::cache::IdentityCache;
use super::conf::IdentityHeadersConf;
use super::groups::{passes, GroupFilter};
use super::sink::HeaderSet;
use super::value::{ascii_value, claim_text, encode_into, encoded_value};
use super::{
    AnnotateError, DEFAULT_CACHE_CAPACITY, X_WARDEN_EMAIL, X_WARDEN_GROUPS, X_WARDEN_USER,
};
use crate::conf::FieldError;
use crate::identity::Identity;
use http::HeaderName;
use std::sync::Arc;

type Built = Result<Arc<HeaderSet>, AnnotateError>;

/// A route's identity header settings, checked and ready.
pub struct CompiledIdentityHeaders {
    enabled: bool,
    filter: Option<GroupFilter>,
    max_groups_bytes: usize,
    claims: Box<[(Box<str>, HeaderName)]>,
    cache: IdentityCache<Built>,
}

impl std::fmt::Debug for CompiledIdentityHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledIdentityHeaders")
            .field("enabled", &self.enabled)
            .field("filter", &self.filter)
            .field("max_groups_bytes", &self.max_groups_bytes)
            .field("claims", &self.claims)
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl CompiledIdentityHeaders {
    /// Checks and compiles the section; errors are relative to it.
    pub fn compile(conf: &IdentityHeadersConf) -> Result<Self, Vec<FieldError>> {
        let errs = conf.validate();
        if !errs.is_empty() {
            return Err(errs);
        }
        let filter = match &conf.groups_filter {
            Some(g) => Some(GroupFilter::compile(g)?),
            None => None,
        };
        let claims = conf
            .claims
            .iter()
            .map(|(path, name)| {
                HeaderName::from_bytes(name.as_bytes())
                    .map(|h| (path.as_str().into(), h))
                    .map_err(|_| {
                        vec![FieldError::new(
                            format!("claims.{path}"),
                            "invalid header name",
                        )]
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            enabled: conf.enabled,
            filter,
            max_groups_bytes: usize::try_from(conf.max_groups_bytes.0).unwrap_or(usize::MAX),
            claims,
            cache: IdentityCache::new(DEFAULT_CACHE_CAPACITY),
        })
    }

    /// Bounds the per-route cache (default [`DEFAULT_CACHE_CAPACITY`] identities).
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = IdentityCache::new(capacity);
        self
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Header names filled from claims: the inbound rules strip them too.
    pub fn claim_header_names(&self) -> impl Iterator<Item = &HeaderName> {
        self.claims.iter().map(|(_, h)| h)
    }

    /// The headers for `id`, computed now (no cache).
    pub fn build(&self, id: &Identity) -> Result<HeaderSet, AnnotateError> {
        if !self.enabled {
            return Ok(HeaderSet::default());
        }
        let mut fields = Vec::with_capacity(3 + self.claims.len());
        fields.push((X_WARDEN_USER, encoded_value(&id.subject)));
        if let Some(e) = &id.email {
            fields.push((X_WARDEN_EMAIL, encoded_value(e)));
        }
        let mut groups = String::new();
        for g in id.groups.iter().filter(|g| passes(self.filter.as_ref(), g)) {
            if !groups.is_empty() {
                groups.push(',');
            }
            encode_into(&mut groups, g, true);
        }
        if groups.len() > self.max_groups_bytes {
            return Err(AnnotateError::GroupsTooLarge {
                size: groups.len(),
                max: self.max_groups_bytes,
            });
        }
        if !groups.is_empty() {
            fields.push((X_WARDEN_GROUPS, ascii_value(groups)));
        }
        for (path, name) in self.claims.iter() {
            let mut text = String::new();
            if id.claim(path).is_some_and(|v| claim_text(v, &mut text)) {
                fields.push((name.clone(), ascii_value(text)));
            }
        }
        Ok(HeaderSet::new(fields))
    }

    /// The headers for `id`, from the cache when this identity was seen on this route before.
    /// Refusals (`groups_too_large`) are cached as well.
    pub fn headers(&self, id: &Arc<Identity>, now: i64) -> Result<Arc<HeaderSet>, AnnotateError> {
        self.cache
            .get_or_build(id, now, || self.build(id).map(Arc::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::ByteSize;
    use crate::identity::AuthMethod;
    use serde_json::json;

    fn identity() -> Identity {
        Identity::new(
            "248289761001",
            "https://idp.example.com",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_email(Some("jane@example.com"))
        .with_name(Some("Jane Doe"))
        .with_groups(["team-a", "sre", "a,b", "Zoë"])
        .with_claims(json!({
            "tenant": "acme",
            "level": 3,
            "admin": false,
            "realm_access": {"roles": ["view", "edit"]},
            "address": {"country": "FR"},
            "empty": [],
            "nothing": null
        }))
    }

    fn compile(conf: serde_json::Value) -> CompiledIdentityHeaders {
        CompiledIdentityHeaders::compile(&serde_json::from_value(conf).unwrap()).unwrap()
    }

    fn get<'a>(set: &'a HeaderSet, name: &'a str) -> Vec<&'a str> {
        set.get_all(name).map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn user_email_groups_and_claims() {
        let c = compile(json!({
            "claims": {
                "tenant": "X-Tenant",
                "level": "X-Level",
                "admin": "X-Admin",
                "realm_access.roles": "X-Roles",
                "address": "X-Address",
                "empty": "X-Empty",
                "nothing": "X-Nothing",
                "missing.path": "X-Missing"
            }
        }));
        let set = c.build(&identity()).unwrap();
        assert_eq!(get(&set, "x-warden-user"), ["248289761001"]);
        assert_eq!(get(&set, "x-warden-email"), ["jane@example.com"]);
        assert_eq!(get(&set, "x-warden-groups"), ["Zo%C3%AB,a%2Cb,sre,team-a"]);
        assert_eq!(get(&set, "x-tenant"), ["acme"]);
        assert_eq!(get(&set, "x-level"), ["3"]);
        assert_eq!(get(&set, "x-admin"), ["false"]);
        assert_eq!(get(&set, "x-roles"), ["view,edit"]);
        assert_eq!(get(&set, "x-address"), [r#"{"country":"FR"}"#]);
        for absent in ["x-empty", "x-nothing", "x-missing"] {
            assert!(get(&set, absent).is_empty(), "{absent}");
        }
        let names: Vec<_> = c.claim_header_names().map(|h| h.as_str()).collect();
        assert!(names.contains(&"x-tenant") && names.len() == 8);
    }

    #[test]
    fn groups_filter_and_absent_fields() {
        let c = compile(json!({"groups_filter": ["team-*", "ops"]}));
        let set = c.build(&identity()).unwrap();
        assert_eq!(get(&set, "x-warden-groups"), ["team-a"]);

        let c = compile(json!({"groups_filter": ["nobody"]}));
        let bare = Identity::new(
            "u",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_groups(["x"]);
        let set = c.build(&bare).unwrap();
        assert!(
            get(&set, "x-warden-groups").is_empty(),
            "no group passes: no header"
        );
        assert!(get(&set, "x-warden-email").is_empty());
        assert_eq!(get(&set, "x-warden-user"), ["u"]);
    }

    #[test]
    fn hostile_values_cannot_inject_headers() {
        let c = compile(json!({"claims": {"note": "X-Note"}}));
        let evil = Identity::new(
            "root\r\nX-Warden-Groups: admins",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_email(Some("a@b\n"))
        .with_groups(["g\r\n"])
        .with_claims(json!({"note": "x\r\ny"}));
        let set = c.build(&evil).unwrap();
        assert_eq!(
            get(&set, "x-warden-user"),
            ["root%0D%0AX-Warden-Groups: admins"]
        );
        assert_eq!(get(&set, "x-warden-email"), ["a@b%0A"]);
        assert_eq!(get(&set, "x-warden-groups"), ["g%0D%0A"]);
        assert_eq!(get(&set, "x-note"), ["x%0D%0Ay"]);
    }

    #[test]
    fn too_many_groups_is_an_error_never_a_truncation() {
        let conf = IdentityHeadersConf {
            max_groups_bytes: ByteSize(20),
            ..IdentityHeadersConf::default()
        };
        let c = CompiledIdentityHeaders::compile(&conf).unwrap();
        let fits = Identity::new(
            "u",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_groups(["aaaaaaaaa", "bbbbbbbbbb"]); // 9 + 1 + 10 = 20
        assert!(c.build(&fits).is_ok());
        let over = Identity::new(
            "u",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_groups(["aaaaaaaaa", "bbbbbbbbbbb"]);
        assert_eq!(
            c.build(&over).unwrap_err(),
            AnnotateError::GroupsTooLarge { size: 21, max: 20 }
        );
        // The default 8 KiB cap.
        let c = CompiledIdentityHeaders::compile(&IdentityHeadersConf::default()).unwrap();
        let many = Identity::new(
            "u",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_groups((0..1000).map(|i| format!("group-number-{i:04}")));
        let e = c.build(&many).unwrap_err();
        assert_eq!(e.code(), "groups_too_large");
    }

    #[test]
    fn disabled_sends_nothing() {
        let c = compile(json!(false));
        assert!(!c.is_enabled());
        assert!(c.build(&identity()).unwrap().is_empty());
    }

    #[test]
    fn headers_are_cached_per_identity() {
        let c = compile(json!(true));
        let id = Arc::new(identity());
        let a = c.headers(&id, 0).unwrap();
        let b = c.headers(&id, 0).unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second request copies the cached set"
        );
        let other = Arc::new(identity());
        assert!(!Arc::ptr_eq(&a, &c.headers(&other, 0).unwrap()));

        let conf = IdentityHeadersConf {
            max_groups_bytes: ByteSize(1),
            ..IdentityHeadersConf::default()
        };
        let c = CompiledIdentityHeaders::compile(&conf).unwrap();
        assert!(c.headers(&id, 0).is_err() && c.headers(&id, 0).is_err());
    }
}
