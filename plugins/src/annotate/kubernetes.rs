//! Kubernetes routes: the API server learns who the caller is either by impersonation
//! (Warden's service account token in `Authorization`, plus `Impersonate-User`, one
//! `Impersonate-Group` line per group — the API server reads each line as one group, so they
//! are never comma-joined — and `Impersonate-Extra-<key>` lines), or by verifying Warden's
//! signed assertion sent as the bearer token (`mode: assertion`).
//!
//! Names Kubernetes reserves are never produced from an identity: a user name starting with
//! `system:` is refused, and groups starting with `system:` (`system:masters`!) are dropped
//! unless a `group_prefix` puts them in Warden's own namespace.

use super::cache::IdentityCache;
use super::conf::{ImpersonateUser, KubernetesConf, KubernetesMode};
use super::groups::{passes, GroupFilter};
use super::sink::HeaderSet;
use super::value::{claim_values, raw_value};
use super::{AnnotateError, DEFAULT_CACHE_CAPACITY, IMPERSONATE_GROUP, IMPERSONATE_USER};
use crate::clock::SharedClock;
use crate::conf::FieldError;
use crate::identity::Identity;
use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// How often, at most, the token file is looked at (one `stat`; a read only when it changed).
const TOKEN_CHECK_INTERVAL_MS: i64 = 1_000;

/// What identifies one version of the token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            modified: m.modified().ok(),
            len: m.len(),
            inode,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct TokenState {
    /// `Bearer <token>`, marked sensitive.
    header: Option<HeaderValue>,
    stamp: Option<Stamp>,
    checked_ms: i64,
    error: Option<String>,
}

/// A service account token file, re-read when the kubelet rotates it: requests read the current
/// value from memory; at most once a second one of them checks the file's metadata, and reads
/// it only when it changed. A failed read keeps the previous token (it stays valid for a while).
pub struct TokenFile {
    path: PathBuf,
    state: ArcSwap<TokenState>,
    refreshing: Mutex<()>,
    clock: SharedClock,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.load();
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .field("loaded", &s.header.is_some())
            .field("error", &s.error)
            .finish()
    }
}

impl TokenFile {
    /// Nothing is read yet: call [`Self::load`] at start (the first request would otherwise).
    pub fn new(path: impl Into<PathBuf>, clock: SharedClock) -> Self {
        Self {
            path: path.into(),
            state: ArcSwap::from_pointee(TokenState {
                checked_ms: i64::MIN,
                ..TokenState::default()
            }),
            refreshing: Mutex::new(()),
            clock,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file now; the error says why no token is available.
    pub fn load(&self) -> Result<(), String> {
        let _guard = self.refreshing.lock();
        self.refresh(self.clock.now_millis());
        match &self.state.load().header {
            Some(_) => Ok(()),
            None => Err(self.state.load().error.clone().unwrap_or_default()),
        }
    }

    /// `Bearer <token>` for the `Authorization` header.
    pub fn authorization(&self) -> Result<HeaderValue, AnnotateError> {
        let now = self.clock.now_millis();
        if now.saturating_sub(self.state.load().checked_ms) >= TOKEN_CHECK_INTERVAL_MS {
            // One request checks; the others go on with the value they have.
            if let Some(_guard) = self.refreshing.try_lock() {
                if now.saturating_sub(self.state.load().checked_ms) >= TOKEN_CHECK_INTERVAL_MS {
                    self.refresh(now);
                }
            }
        }
        let s = self.state.load();
        s.header.clone().ok_or_else(|| {
            AnnotateError::TokenUnavailable(
                s.error.clone().unwrap_or_else(|| "not read yet".into()),
            )
        })
    }

    fn refresh(&self, now: i64) {
        let old = self.state.load_full();
        let mut next = TokenState {
            checked_ms: now,
            ..(*old).clone()
        };
        match std::fs::metadata(&self.path) {
            Err(e) => next.error = Some(format!("cannot read `{}`: {e}", self.path.display())),
            Ok(m) => {
                let stamp = Stamp::of(&m);
                if old.header.is_none() || old.stamp != Some(stamp) {
                    match read_token(&self.path) {
                        Ok(h) => {
                            next.header = Some(h);
                            next.stamp = Some(stamp);
                            next.error = None;
                        }
                        Err(e) => next.error = Some(e),
                    }
                }
            }
        }
        self.state.store(Arc::new(next));
    }
}

fn read_token(path: &Path) -> Result<HeaderValue, String> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let token = raw.trim();
    if token.is_empty() {
        return Err(format!("`{}` is empty", path.display()));
    }
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| format!("`{}` does not hold a token", path.display()))?;
    v.set_sensitive(true);
    Ok(v)
}

/// `Impersonate-Extra-<key>` with `key` percent-encoded as kube-apiserver decodes it: bytes
/// that are not header-name characters, and `%`, become `%XX`.
pub fn extra_header_name(key: &str) -> Result<HeaderName, String> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b);
    let mut name = String::from("impersonate-extra-");
    for b in key.bytes() {
        if tchar(b) {
            name.push(b.to_ascii_lowercase() as char);
        } else {
            name.push('%');
            name.push(HEX[(b >> 4) as usize] as char);
            name.push(HEX[(b & 0xf) as usize] as char);
        }
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{key}` cannot be an extra key"))
}

type Built = Result<Arc<HeaderSet>, AnnotateError>;

/// A route's `kubernetes` section, checked and ready.
pub struct CompiledKubernetes {
    mode: KubernetesMode,
    user: ImpersonateUser,
    user_prefix: Box<str>,
    group_prefix: Box<str>,
    filter: Option<GroupFilter>,
    extra: Box<[(Box<str>, HeaderName)]>,
    token: Arc<TokenFile>,
    audience: Option<Box<str>>,
    cache: IdentityCache<Built>,
}

impl std::fmt::Debug for CompiledKubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledKubernetes")
            .field("mode", &self.mode)
            .field("user", &self.user)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl CompiledKubernetes {
    /// Checks and compiles the section (errors relative to it). The token file is not read:
    /// call `token_file().load()` when serving.
    pub fn compile(conf: &KubernetesConf, clock: SharedClock) -> Result<Self, Vec<FieldError>> {
        let mut errs = conf.validate();
        let mut extra = Vec::with_capacity(conf.extra.len());
        for (path, key) in &conf.extra {
            match extra_header_name(key) {
                Ok(h) => extra.push((path.as_str().into(), h)),
                Err(m) => errs.push(FieldError::new(format!("extra.{path}"), m)),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let filter = match &conf.groups_filter {
            Some(g) => Some(GroupFilter::compile(g)?),
            None => None,
        };
        Ok(Self {
            mode: conf.mode,
            user: conf.impersonate_user,
            user_prefix: conf.user_prefix.as_str().into(),
            group_prefix: conf.group_prefix.as_str().into(),
            filter,
            extra: extra.into_boxed_slice(),
            token: Arc::new(TokenFile::new(
                conf.service_account_token_file.path(),
                clock,
            )),
            audience: conf.audience.as_deref().map(Into::into),
            cache: IdentityCache::new(DEFAULT_CACHE_CAPACITY),
        })
    }

    pub fn mode(&self) -> KubernetesMode {
        self.mode
    }

    /// The `audience` set for `mode: assertion`, if any.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// Warden's service account token (used in `impersonate` mode).
    pub fn token_file(&self) -> &Arc<TokenFile> {
        &self.token
    }

    /// The `Impersonate-*` headers for `id`, computed now.
    pub fn impersonation(&self, id: &Identity) -> Result<HeaderSet, AnnotateError> {
        let base = match self.user {
            ImpersonateUser::Email => id.email.as_deref().ok_or(AnnotateError::MissingEmail)?,
            ImpersonateUser::Subject => &id.subject,
        };
        let user = format!("{}{base}", self.user_prefix);
        if user.starts_with("system:") {
            return Err(AnnotateError::ReservedKubernetesName { name: user });
        }
        let mut fields = vec![(IMPERSONATE_USER, raw_value(&user, "user name")?)];
        for g in id.groups.iter().filter(|g| passes(self.filter.as_ref(), g)) {
            let group = format!("{}{g}", self.group_prefix);
            if g.is_empty() || group.starts_with("system:") {
                continue;
            }
            fields.push((IMPERSONATE_GROUP, raw_value(&group, "group")?));
        }
        for (path, name) in self.extra.iter() {
            for v in id.claim(path).map(claim_values).unwrap_or_default() {
                if !v.is_empty() {
                    fields.push((name.clone(), raw_value(&v, "extra value")?));
                }
            }
        }
        Ok(HeaderSet::new(fields))
    }

    /// [`Self::impersonation`], cached per identity.
    pub fn impersonation_headers(&self, id: &Arc<Identity>, now: i64) -> Built {
        self.cache
            .get_or_build(id, now, || self.impersonation(id).map(Arc::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::identity::AuthMethod;
    use serde_json::json;

    fn identity() -> Identity {
        Identity::new(
            "sub-1",
            "https://idp",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_email(Some("jane.doe@example.com"))
        .with_groups(["developers", "admins", "system:masters", "a,b"])
        .with_claims(json!({"scopes": ["view", "development"], "dn": "cn=jane,ou=eng", "acr": 2}))
    }

    fn compile(conf: serde_json::Value) -> CompiledKubernetes {
        let conf: KubernetesConf = serde_json::from_value(conf).unwrap();
        CompiledKubernetes::compile(&conf, ManualClock::at_secs(0)).unwrap()
    }

    fn values<'a>(set: &'a HeaderSet, name: &'a str) -> Vec<&'a [u8]> {
        set.get_all(name).map(|v| v.as_bytes()).collect()
    }

    #[test]
    fn one_group_per_line_and_extras() {
        let k = compile(json!({
            "extra": {"scopes": "scopes", "dn": "dn", "acr": "acme.com/acr"}
        }));
        let set = k.impersonation(&identity()).unwrap();
        assert_eq!(
            values(&set, "impersonate-user"),
            [b"jane.doe@example.com".as_slice()]
        );
        assert_eq!(
            values(&set, "impersonate-group"),
            [b"a,b".as_slice(), b"admins", b"developers"],
            "one line each, never comma-joined; system:masters dropped"
        );
        assert_eq!(
            values(&set, "impersonate-extra-scopes"),
            [b"view".as_slice(), b"development"]
        );
        assert_eq!(
            values(&set, "impersonate-extra-dn"),
            [b"cn=jane,ou=eng".as_slice()]
        );
        assert_eq!(
            values(&set, "impersonate-extra-acme.com%2facr"),
            [b"2".as_slice()]
        );
        // Fields of one name are adjacent, as HeaderSet requires.
        let names: Vec<_> = set.fields().iter().map(|(n, _)| n.as_str()).collect();
        let mut dedup = names.clone();
        dedup.dedup();
        let mut uniq = dedup.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(dedup.len(), uniq.len(), "{names:?}");
    }

    #[test]
    fn subject_prefixes_and_filters() {
        let k = compile(json!({
            "impersonate_user": "subject",
            "user_prefix": "warden:",
            "group_prefix": "warden:",
            "groups_filter": ["admins", "system:*"]
        }));
        let set = k.impersonation(&identity()).unwrap();
        assert_eq!(
            values(&set, "impersonate-user"),
            [b"warden:sub-1".as_slice()]
        );
        assert_eq!(
            values(&set, "impersonate-group"),
            [b"warden:admins".as_slice(), b"warden:system:masters"],
            "with a prefix a system: group is Warden's own name"
        );
    }

    #[test]
    fn refusals() {
        let k = compile(json!({}));
        let no_email = Identity::new(
            "s",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        );
        assert_eq!(k.impersonation(&no_email), Err(AnnotateError::MissingEmail));
        let k = compile(json!({"impersonate_user": "subject"}));
        let sys = Identity::new(
            "system:admin",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        );
        assert_eq!(
            k.impersonation(&sys),
            Err(AnnotateError::ReservedKubernetesName {
                name: "system:admin".into()
            })
        );
        let sa = Identity::new(
            "system:serviceaccount:kube-system:admin",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        );
        assert_eq!(
            k.impersonation(&sa).unwrap_err().code(),
            "reserved_kubernetes_name"
        );
        let empty = Identity::new(
            "",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        );
        assert_eq!(
            k.impersonation(&empty),
            Err(AnnotateError::InvalidValue { what: "user name" }),
            "an empty Impersonate-User would make the request Warden's own"
        );
        let evil = Identity::new(
            "s",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_groups(["ok", "bad\r\nImpersonate-Group: system:masters"]);
        assert_eq!(
            k.impersonation(&evil),
            Err(AnnotateError::InvalidValue { what: "group" })
        );
    }

    #[test]
    fn extra_keys_are_percent_encoded_like_client_go() {
        let n = |k: &str| extra_header_name(k).unwrap().as_str().to_string();
        assert_eq!(n("scopes"), "impersonate-extra-scopes");
        assert_eq!(
            n("acme.com/project"),
            "impersonate-extra-acme.com%2fproject"
        );
        assert_eq!(n("a%b"), "impersonate-extra-a%25b");
        assert_eq!(n("ключ"), "impersonate-extra-%d0%ba%d0%bb%d1%8e%d1%87");
        assert_eq!(n("a b:c"), "impersonate-extra-a%20b%3ac");
    }

    #[test]
    fn impersonation_is_cached_per_identity() {
        let k = compile(json!({}));
        let id = Arc::new(identity());
        let a = k.impersonation_headers(&id, 0).unwrap();
        assert!(Arc::ptr_eq(&a, &k.impersonation_headers(&id, 0).unwrap()));
    }

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("warden-k8s-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("token")
    }

    fn write(path: &Path, content: &str, mtime_secs: u64) {
        std::fs::write(path, content).unwrap();
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(mtime_secs))
            .unwrap();
    }

    #[test]
    fn the_token_is_reread_when_it_changes_at_most_once_a_second() {
        let path = temp_file("rotate");
        write(&path, "token-one\n", 1_000);
        let clock = ManualClock::at_secs(100);
        let t = TokenFile::new(&path, clock.clone());
        t.load().unwrap();
        let v = t.authorization().unwrap();
        assert_eq!(v, "Bearer token-one");
        assert!(v.is_sensitive(), "never logged by header dumps");

        write(&path, "token-two", 2_000);
        assert_eq!(
            t.authorization().unwrap(),
            "Bearer token-one",
            "checked under a second ago"
        );
        clock.advance_secs(1);
        assert_eq!(t.authorization().unwrap(), "Bearer token-two");

        // A rotation that fails half-way (empty file) keeps the last good token.
        write(&path, "", 3_000);
        clock.advance_secs(1);
        assert_eq!(t.authorization().unwrap(), "Bearer token-two");
        std::fs::remove_file(&path).unwrap();
        clock.advance_secs(1);
        assert_eq!(t.authorization().unwrap(), "Bearer token-two");
        assert!(format!("{t:?}").contains("cannot read"));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_missing_token_is_a_503_not_a_panic() {
        let path = temp_file("missing");
        let t = TokenFile::new(&path, ManualClock::at_secs(0));
        assert!(t.load().unwrap_err().contains("cannot read"));
        let e = t.authorization().unwrap_err();
        assert_eq!((e.code(), e.status().as_u16()), ("token_unavailable", 503));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
