//! The gateway's side of identity: what outlives conf versions (the session store, the block
//! list, the clock) and what each snapshot compiles (bearer issuers, cookie keys, policies, and
//! per route: which credentials count and which policy decides).

use crate::conf::types::{ConfFile, Route, SessionStoreKind};
use crate::proxy::oidc_endpoints::LoginHosts;
use crate::snapshot::BuildMode;
use std::sync::Arc;
use warden_plugins::annotate::{
    AssertionConf, AssertionSigner, RouteAnnotations, RouteAnnotationsConf,
};
use warden_plugins::conf::FieldError;
use warden_plugins::jwt::{BearerAuth, IssuerId};
use warden_plugins::oidc::OidcProviders;
use warden_plugins::policy::{CompiledPolicies, CompiledPolicy};
use warden_plugins::session::{
    cookie, BlockList, CookieConf, CookieKey, CookieSecret, MemoryStore, SessionStore,
};
use warden_plugins::SharedClock;

/// Identity state that survives reloads: sessions and blocks must not vanish with a conf edit.
pub struct Shared {
    pub sessions: Arc<dyn SessionStore>,
    pub memory: Option<Arc<MemoryStore>>,
    pub blocks: Arc<BlockList>,
    pub clock: SharedClock,
}

impl Shared {
    pub fn new(conf: &ConfFile, clock: SharedClock, run: bool) -> Self {
        let (sessions, memory): (Arc<dyn SessionStore>, Option<Arc<MemoryStore>>) =
            match conf.sessions.store {
                SessionStoreKind::Memory => {
                    let m = Arc::new(MemoryStore::new(&conf.sessions.memory, clock.clone()));
                    if run {
                        let _guard = crate::background::handle().enter();
                        m.spawn_sweeper(conf.sessions.memory.sweep_interval.get());
                    }
                    (m.clone(), Some(m))
                }
            };
        Self {
            sessions,
            memory,
            blocks: Arc::new(BlockList::new()),
            clock,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_secs()
    }
}

/// The session cookie's settings and keys.
pub struct CookieRt {
    pub conf: CookieConf,
    pub session_key: CookieKey,
    pub login_key: CookieKey,
}

/// Identity as one conf version sees it.
pub struct IdentityRt {
    pub bearer: Option<BearerAuth>,
    pub cookie: Option<CookieRt>,
    /// The OpenID providers of browser logins; discovery, used login states and logout-token
    /// ids carry over from the previous snapshot. `None` without providers or in `check`.
    pub oidc: Option<Arc<OidcProviders>>,
    /// Hosts with browser logins, where `/.warden/…` endpoints answer.
    pub login_hosts: LoginHosts,
    pub max_authorization: usize,
    pub policies: CompiledPolicies,
    /// Warden's assertion signer, kept across reloads while its conf is unchanged (cached
    /// assertions and, without configured keys, the generated key survive).
    pub signer: Option<(AssertionConf, Arc<AssertionSigner>)>,
    clock: SharedClock,
    mode: BuildMode,
}

/// A route's credentials, policy and annotations, compiled.
pub struct RouteIdentity {
    pub annotations: RouteAnnotations,
    pub login: Option<Arc<str>>,
    pub bearer: Vec<IssuerId>,
    pub policy: Option<Arc<CompiledPolicy>>,
    pub shadow: Option<Arc<CompiledPolicy>>,
    pub deny_detail: bool,
}

impl IdentityRt {
    pub async fn build(
        conf: &ConfFile,
        previous: Option<&IdentityRt>,
        clock: &SharedClock,
        mode: BuildMode,
    ) -> (IdentityRt, Vec<FieldError>) {
        let mut errs = Vec::new();
        let (policies, perrs) = conf.policies.compile();
        // Errors come addressed as `policies.<name>...` already.
        errs.extend(perrs);

        let cookie = match &conf.identity.cookie {
            None => None,
            Some(c) => match CookieSecret::from_file(&c.secret_file) {
                Ok(secret) => Some(CookieRt {
                    conf: c.clone(),
                    session_key: secret.key(cookie::purpose::SESSION),
                    login_key: secret.key(cookie::purpose::LOGIN_STATE),
                }),
                Err(e) => {
                    errs.push(FieldError::new(
                        "identity.cookie.secret_file",
                        e.to_string(),
                    ));
                    None
                }
            },
        };

        let bearer = if conf.identity.jwt_issuers.is_empty() || mode == BuildMode::Check {
            None
        } else {
            match BearerAuth::start(
                &conf.identity.jwt_issuers,
                conf.identity.token_cache_size,
                clock.clone(),
                previous.and_then(|p| p.bearer.as_ref()),
            )
            .await
            {
                Ok(b) => Some(b),
                Err(e) => {
                    errs.extend(e.into_iter().map(|e| e.under("identity.jwt_issuers")));
                    None
                }
            }
        };
        let oidc = if conf.identity.providers.is_empty() || mode == BuildMode::Check {
            None
        } else {
            match OidcProviders::start(
                &conf.identity.providers,
                clock.clone(),
                previous.and_then(|p| p.oidc.as_deref()),
            )
            .await
            {
                Ok(o) => Some(Arc::new(o)),
                Err(e) => {
                    errs.extend(e.into_iter().map(|e| e.under("identity.providers")));
                    None
                }
            }
        };
        let signer = match &conf.identity.assertion {
            None => None,
            Some(a) => match previous
                .and_then(|p| p.signer.as_ref())
                .filter(|(c, _)| c == a)
            {
                Some(kept) => Some(kept.clone()),
                None => match AssertionSigner::from_conf(a) {
                    Ok(s) => Some((a.clone(), Arc::new(s))),
                    Err(e) => {
                        errs.extend(e.into_iter().map(|e| e.under("identity.assertion")));
                        None
                    }
                },
            },
        };
        let rt = IdentityRt {
            bearer,
            cookie,
            oidc,
            login_hosts: LoginHosts::from_routes(&conf.routes),
            max_authorization: conf.identity.max_authorization_size.0 as usize,
            policies,
            signer,
            clock: clock.clone(),
            mode,
        };
        (rt, errs)
    }

    /// Warden's cookies, which never go upstream: the session cookie and every login-state
    /// cookie (a prefix pattern, `…warden_login_*`).
    pub fn cookie_names(&self) -> Vec<String> {
        self.cookie
            .iter()
            .flat_map(|c| {
                [
                    c.conf.session_cookie_name().to_string(),
                    format!(
                        "{}*",
                        c.conf
                            .host_cookie_name(warden_plugins::oidc::LOGIN_STATE_COOKIE_PREFIX)
                    ),
                ]
            })
            .collect()
    }

    /// Compiles route `i`'s auth, policy and annotations; errors are addressed under
    /// `routes[i]`. `None` when the route cannot be compiled (its errors are in `errs`).
    pub fn route(&self, i: usize, r: &Route, errs: &mut Vec<FieldError>) -> Option<RouteIdentity> {
        let p = format!("routes[{i}]");
        let host = r
            .host
            .as_slice()
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        let owned = self.cookie_names();
        let cookie_names: Vec<&str> = owned.iter().map(String::as_str).collect();
        let annotations = match RouteAnnotations::compile(
            RouteAnnotationsConf {
                identity_headers: r.identity_headers.as_ref(),
                kubernetes: r.kubernetes.as_ref(),
                host,
                cookie_names: &cookie_names,
            },
            self.signer.as_ref().map(|(_, s)| s),
            self.clock.clone(),
        ) {
            Ok(a) => a,
            Err(e) => {
                errs.extend(e.into_iter().map(|e| e.under(&p)));
                return None;
            }
        };
        if self.mode == BuildMode::Serve {
            if let Some(k) = annotations.kubernetes() {
                if let Err(e) = k.token_file().load() {
                    tracing::warn!(route = %r.name, error = %e, "service-account token not readable yet");
                }
            }
        }
        let mut resolve = |field: &str, pref: &Option<warden_plugins::policy::PolicyRef>| {
            pref.as_ref()
                .and_then(|pr| match self.policies.resolve(pr) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        errs.extend(e.into_iter().map(|e| e.under(&format!("{p}.{field}"))));
                        None
                    }
                })
        };
        let policy = resolve("policy", &r.policy);
        let shadow = resolve("policy_shadow", &r.policy_shadow);
        let auth = r.auth.clone().unwrap_or_default();
        Some(RouteIdentity {
            annotations,
            login: auth.login.as_deref().map(Into::into),
            bearer: auth
                .bearer
                .iter()
                .filter_map(|n| self.bearer.as_ref().and_then(|b| b.issuer_index(n)))
                .collect(),
            policy,
            shadow,
            deny_detail: r.deny_detail,
        })
    }
}
