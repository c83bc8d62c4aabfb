//! Continuous authorization for open upgraded streams (websockets, `kubectl exec`-style
//! upgrades): every such stream is registered while it is open, with what is needed to decide
//! its access again, and a duplicate of its upstream socket. A watcher re-checks every open
//! stream when a block or a revocation happens, when a reload swaps the snapshot, and at least
//! every second (session expiry, time-bounded rules); a stream whose access no longer holds is
//! ended by shutting its upstream socket down, which makes Pingora tear the whole request down.
//!
//! The duplicate (not the raw fd number, which the kernel may hand to another connection once
//! this one closes) keeps the socket alive until the registration is dropped, so a shutdown can
//! only ever hit this stream's connection.

use crate::snapshot::Snapshot;
use crate::state::State;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};
use warden_plugins::policy::{ClientCert, RequestFacts};
use warden_plugins::session::{BlockList, Session, SessionStore};
use warden_plugins::Identity;

/// Why an open stream was ended: the `reason` label of `warden_streams_terminated_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Termination {
    /// The stream's session was revoked (admin API, sign-out, back-channel logout).
    Revoked,
    /// The subject or email was blocked.
    Blocked,
    /// The route's policy (after a reload, or a time-bounded rule) no longer allows it.
    Policy,
    /// The stream's session reached its absolute expiry.
    Expired,
    /// A reload removed the route.
    RouteRemoved,
}

impl Termination {
    pub const ALL: [Termination; 5] = [
        Termination::Revoked,
        Termination::Blocked,
        Termination::Policy,
        Termination::Expired,
        Termination::RouteRemoved,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Termination::Revoked => "revoked",
            Termination::Blocked => "blocked",
            Termination::Policy => "policy",
            Termination::Expired => "expired",
            Termination::RouteRemoved => "route_removed",
        }
    }
}

/// Ends a stream's transport.
pub trait Terminate: Send + Sync {
    fn terminate(&self);
}

/// A duplicate of a stream's upstream socket.
pub struct UpstreamSocket(TcpStream);

impl UpstreamSocket {
    /// Duplicates the socket `fd`, which must be open for the duration of the call (Pingora's
    /// `connected_to_upstream` hands over the live upstream connection's fd).
    #[allow(unsafe_code)]
    pub fn duplicate(fd: RawFd) -> std::io::Result<Self> {
        // SAFETY: `fd` is the live upstream socket for the whole call; it is only borrowed to dup it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        Ok(Self(TcpStream::from(borrowed.try_clone_to_owned()?)))
    }
}

impl Terminate for UpstreamSocket {
    fn terminate(&self) {
        // `shutdown` acts on the socket, not on this descriptor: Pingora's copy sees the close.
        if let Err(e) = self.0.shutdown(Shutdown::Both) {
            tracing::debug!(error = %e, "shutting an upstream stream down failed");
        }
    }
}

/// An open stream and what its access was granted on.
pub struct OpenStream {
    /// The route's name: a reload is checked against the route of the same name.
    pub route: Arc<str>,
    pub identity: Option<Arc<Identity>>,
    pub session: Option<Arc<Session>>,
    pub method: String,
    /// The normalised path.
    pub path: String,
    pub client_ip: IpAddr,
    pub client_cert: Option<Arc<ClientCert>>,
    pub request_id: String,
    pub terminate: Box<dyn Terminate>,
}

/// What a re-check asks about current access (the live implementation reads the current
/// snapshot, the block list and the session store; tests give their own).
pub trait Access {
    fn now(&self) -> i64;
    fn is_blocked(&self, identity: &Identity) -> bool;
    /// Whether the session is still held (not revoked). An open stream is use of its session,
    /// so implementations may record it as activity.
    fn session_live(&self, session: &Session) -> bool;
    /// The decision of route `route`'s current policy on this request; `None` when the route
    /// no longer exists.
    fn allows(
        &self,
        route: &str,
        facts: &RequestFacts<'_>,
        identity: Option<&Identity>,
    ) -> Option<bool>;
}

/// The open streams of this process.
#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, OpenStream>>,
    watcher: OnceLock<()>,
}

/// Keeps a stream registered; dropping it (in `logging`, or with the request's context)
/// deregisters the stream and closes the socket duplicate.
pub struct Registration {
    id: u64,
    registry: Arc<Registry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.open.lock().remove(&self.id);
    }
}

static GLOBAL: LazyLock<Arc<Registry>> = LazyLock::new(|| Arc::new(Registry::default()));

impl Registry {
    /// The process's registry (the proxy registers, the watcher re-checks).
    pub fn global() -> &'static Arc<Registry> {
        &GLOBAL
    }

    pub fn register(self: &Arc<Self>, stream: OpenStream) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(id, stream);
        Registration {
            id,
            registry: self.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-checks every open stream; ends (and forgets) those whose access no longer holds, and
    /// counts them. Returns the ended streams' request ids with the reason.
    pub fn recheck(&self, access: &dyn Access) -> Vec<(String, Termination)> {
        let now = access.now();
        // Decide without holding the lock across policy evaluation and store lookups.
        let verdicts: Vec<(u64, Termination)> = {
            let open = self.open.lock();
            open.iter()
                .filter_map(|(id, s)| verdict(s, access, now).map(|t| (*id, t)))
                .collect()
        };
        let mut ended = Vec::with_capacity(verdicts.len());
        for (id, reason) in verdicts {
            let Some(stream) = self.open.lock().remove(&id) else {
                continue;
            };
            stream.terminate.terminate();
            crate::metrics::STREAMS_TERMINATED
                .with_label_values(&[reason.label()])
                .inc();
            tracing::info!(
                request_id = %stream.request_id,
                route = %stream.route,
                subject = stream.identity.as_ref().map(|i| &*i.subject),
                reason = reason.label(),
                "open stream ended: access no longer holds"
            );
            ended.push((stream.request_id, reason));
        }
        ended
    }

    /// Starts the watcher once, on the background runtime.
    pub fn ensure_watcher(self: &Arc<Self>, state: &Arc<State>) {
        self.watcher.get_or_init(|| {
            for t in Termination::ALL {
                crate::metrics::STREAMS_TERMINATED.with_label_values(&[t.label()]);
            }
            crate::background::spawn(watch(self.clone(), state.clone()));
        });
    }
}

/// Registers an upgrade request whose upstream connection is `fd` (from
/// `connected_to_upstream`). `None` when the request has no route or the socket cannot be
/// duplicated (logged: the stream then is not watched).
pub fn register(
    state: &Arc<State>,
    session: &pingora::proxy::Session,
    fd: RawFd,
    ctx: &crate::proxy::ctx::Ctx,
) -> Option<Registration> {
    let route = ctx.route.as_ref()?;
    let socket = match UpstreamSocket::duplicate(fd) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(request_id = %ctx.request_id, error = %e, "cannot watch an upgraded stream: duplicating its socket failed");
            return None;
        }
    };
    let req = session.req_header();
    let registry = Registry::global();
    registry.ensure_watcher(state);
    Some(
        registry.register(OpenStream {
            route: route.name.clone(),
            identity: ctx.identity.clone(),
            session: ctx.session.clone(),
            method: req.method.as_str().to_string(),
            path: ctx
                .normalized_path
                .clone()
                .unwrap_or_else(|| req.uri.path().to_string()),
            client_ip: ctx.client_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            client_cert: ctx.client_cert.clone(),
            request_id: ctx.request_id.to_string(),
            terminate: Box::new(socket),
        }),
    )
}

/// Why `s` must end now, if it must.
fn verdict(s: &OpenStream, access: &dyn Access, now: i64) -> Option<Termination> {
    if let Some(id) = &s.identity {
        if access.is_blocked(id) {
            return Some(Termination::Blocked);
        }
    }
    let mut identity = s.identity.clone();
    if let Some(session) = &s.session {
        if now >= session.expires_at() {
            return Some(Termination::Expired);
        }
        if !access.session_live(session) {
            return Some(Termination::Revoked);
        }
        // A refresh may have changed the session's groups: decide on the current ones.
        identity = Some(session.identity());
    }
    let facts = RequestFacts {
        method: &s.method,
        path: &s.path,
        client_ip: s.client_ip,
        client_cert: s.client_cert.as_deref(),
        cors_preflight: false,
        now_secs: now,
    };
    match access.allows(&s.route, &facts, identity.as_deref()) {
        None => Some(Termination::RouteRemoved),
        Some(false) => Some(Termination::Policy),
        Some(true) => None,
    }
}

/// Access as the running gateway sees it: the block list, the session store, and route
/// decisions from `decide` (the current snapshot's, in the watcher).
struct Live<'a, D> {
    sessions: &'a dyn SessionStore,
    blocks: &'a BlockList,
    decide: D,
    now: i64,
}

impl<D> Access for Live<'_, D>
where
    D: Fn(&str, &RequestFacts<'_>, Option<&Identity>) -> Option<bool>,
{
    fn now(&self) -> i64 {
        self.now
    }

    fn is_blocked(&self, identity: &Identity) -> bool {
        self.blocks.is_blocked(identity, self.now)
    }

    fn session_live(&self, session: &Session) -> bool {
        self.sessions.get_local(session.id(), self.now).is_some()
    }

    fn allows(
        &self,
        route: &str,
        facts: &RequestFacts<'_>,
        identity: Option<&Identity>,
    ) -> Option<bool> {
        (self.decide)(route, facts, identity)
    }
}

/// What the snapshot's route `name` decides now; `None` when it has no such route.
fn route_allows(
    snapshot: &Snapshot,
    name: &str,
    facts: &RequestFacts<'_>,
    identity: Option<&Identity>,
) -> Option<bool> {
    let r = snapshot.routes.iter().find(|r| &*r.name == name)?;
    if r.public {
        return Some(true);
    }
    Some(
        r.auth
            .policy
            .as_ref()
            .is_some_and(|p| p.evaluate(facts, identity).allowed),
    )
}

/// How often streams are re-checked without an event; also how soon a reload is noticed.
const TICK: Duration = Duration::from_millis(100);
/// Every stream is re-checked at least this often (expiry, time-bounded rules).
/// Half a second, so that access ending by the clock (`valid_until`, session expiry) closes
/// the stream well within a second; a re-check costs well under a microsecond per stream.
const FULL_RECHECK: Duration = Duration::from_millis(500);

async fn watch(registry: Arc<Registry>, state: Arc<State>) {
    let mut blocks = state.shared.blocks.epoch();
    let mut revocations = state.shared.sessions.revocation_epoch();
    let (mut blocks_open, mut revocations_open) = (true, true);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut generation = state.current().generation;
    let mut last = Instant::now();
    loop {
        tokio::select! {
            r = blocks.changed(), if blocks_open => blocks_open = r.is_ok(),
            r = revocations.changed(), if revocations_open => revocations_open = r.is_ok(),
            _ = tick.tick() => {
                let g = state.current().generation;
                if g == generation && last.elapsed() < FULL_RECHECK {
                    continue;
                }
            }
        }
        let snapshot = state.current();
        generation = snapshot.generation;
        last = Instant::now();
        if registry.is_empty() {
            continue;
        }
        let live = Live {
            sessions: state.shared.sessions.as_ref(),
            blocks: &state.shared.blocks,
            decide: |name: &str, facts: &RequestFacts<'_>, id: Option<&Identity>| {
                route_allows(&snapshot, name, facts, id)
            },
            now: state.shared.now(),
        };
        registry.recheck(&live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicBool;
    use warden_plugins::identity::AuthMethod;
    use warden_plugins::session::{NewSession, Profile, SessionLifetime, Tokens};

    const T0: i64 = 1_700_000_000;

    struct Flag(Arc<AtomicBool>);
    impl Terminate for Flag {
        fn terminate(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Access decided by sets the test edits.
    #[derive(Default)]
    struct Fake {
        now: i64,
        blocked: HashSet<String>,
        revoked: HashSet<String>,
        /// Route → allowed subjects (`*`: anyone).
        routes: HashMap<String, HashSet<String>>,
    }

    impl Access for Fake {
        fn now(&self) -> i64 {
            self.now
        }
        fn is_blocked(&self, identity: &Identity) -> bool {
            self.blocked.contains(&*identity.subject)
        }
        fn session_live(&self, session: &Session) -> bool {
            !self.revoked.contains(&session.handle().to_string())
        }
        fn allows(
            &self,
            route: &str,
            _facts: &RequestFacts<'_>,
            identity: Option<&Identity>,
        ) -> Option<bool> {
            let allowed = self.routes.get(route)?;
            Some(allowed.contains("*") || identity.is_some_and(|i| allowed.contains(&*i.subject)))
        }
    }

    fn bearer(subject: &str) -> Arc<Identity> {
        Arc::new(Identity::new(
            subject,
            "https://issuer",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        ))
    }

    fn session(subject: &str, ttl: i64) -> Arc<Session> {
        let new = NewSession {
            provider: "corp".into(),
            issuer_url: "https://idp".into(),
            subject: subject.into(),
            sid: None,
            profile: Profile::default(),
            tokens: Tokens {
                refresh_token: None,
                access_token: None,
                access_token_expires_at: None,
            },
        };
        let life = SessionLifetime {
            ttl_secs: ttl,
            idle_timeout_secs: ttl,
        };
        Arc::new(Session::create(new, T0, life).expect("random id"))
    }

    fn open(
        reg: &Arc<Registry>,
        route: &str,
        identity: Option<Arc<Identity>>,
        session: Option<Arc<Session>>,
        rid: &str,
    ) -> (Registration, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        let identity = identity.or_else(|| session.as_ref().map(|s| s.identity()));
        let r = reg.register(OpenStream {
            route: route.into(),
            identity,
            session,
            method: "GET".into(),
            path: "/ws".into(),
            client_ip: IpAddr::from([127, 0, 0, 1]),
            client_cert: None,
            request_id: rid.into(),
            terminate: Box::new(Flag(flag.clone())),
        });
        (r, flag)
    }

    fn fake() -> Fake {
        let mut f = Fake {
            now: T0,
            ..Fake::default()
        };
        f.routes.insert(
            "app".into(),
            ["ann", "bob"].into_iter().map(String::from).collect(),
        );
        f.routes
            .insert("public".into(), ["*".to_string()].into_iter().collect());
        f
    }

    #[test]
    fn streams_with_access_stay_open() {
        let reg = Arc::new(Registry::default());
        let (_a, fa) = open(&reg, "app", Some(bearer("ann")), None, "r1");
        let (_p, fp) = open(&reg, "public", None, None, "r2");
        assert!(reg.recheck(&fake()).is_empty());
        assert!(!fa.load(Ordering::SeqCst) && !fp.load(Ordering::SeqCst));
        assert_eq!(reg.len(), 2);
    }

    #[test]
    fn a_block_ends_only_that_subjects_streams() {
        let reg = Arc::new(Registry::default());
        let (_a, fa) = open(&reg, "app", Some(bearer("ann")), None, "ann-1");
        let (_b, fb) = open(&reg, "app", Some(bearer("bob")), None, "bob-1");
        let mut access = fake();
        access.blocked.insert("ann".into());
        assert_eq!(
            reg.recheck(&access),
            [("ann-1".to_string(), Termination::Blocked)]
        );
        assert!(fa.load(Ordering::SeqCst));
        assert!(!fb.load(Ordering::SeqCst));
        assert_eq!(reg.len(), 1);
        assert!(
            reg.recheck(&access).is_empty(),
            "an ended stream is not ended twice"
        );
    }

    #[test]
    fn a_revoked_session_ends_its_streams() {
        let reg = Arc::new(Registry::default());
        let s = session("ann", 3600);
        let (_a, fa) = open(&reg, "app", None, Some(s.clone()), "s1");
        let mut access = fake();
        assert!(reg.recheck(&access).is_empty());
        access.revoked.insert(s.handle().to_string());
        assert_eq!(
            reg.recheck(&access),
            [("s1".to_string(), Termination::Revoked)]
        );
        assert!(fa.load(Ordering::SeqCst));
    }

    #[test]
    fn an_expired_session_ends_its_streams() {
        let reg = Arc::new(Registry::default());
        let (_a, fa) = open(&reg, "app", None, Some(session("ann", 60)), "s1");
        let mut access = fake();
        access.now = T0 + 59;
        assert!(reg.recheck(&access).is_empty());
        access.now = T0 + 60;
        assert_eq!(
            reg.recheck(&access),
            [("s1".to_string(), Termination::Expired)]
        );
        assert!(fa.load(Ordering::SeqCst));
    }

    #[test]
    fn a_policy_change_or_a_removed_route_ends_streams() {
        let reg = Arc::new(Registry::default());
        let (_a, fa) = open(&reg, "app", Some(bearer("ann")), None, "ann-1");
        let (_b, fb) = open(&reg, "app", Some(bearer("bob")), None, "bob-1");
        let (_p, fp) = open(&reg, "public", None, None, "pub-1");
        let mut access = fake();
        access.routes.insert(
            "app".into(),
            ["bob".to_string()].into_iter().collect::<HashSet<_>>(),
        );
        access.routes.remove("public");
        let mut ended = reg.recheck(&access);
        ended.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            ended,
            [
                ("ann-1".to_string(), Termination::Policy),
                ("pub-1".to_string(), Termination::RouteRemoved)
            ]
        );
        assert!(fa.load(Ordering::SeqCst) && fp.load(Ordering::SeqCst));
        assert!(!fb.load(Ordering::SeqCst));
    }

    #[test]
    fn dropping_a_registration_deregisters() {
        let reg = Arc::new(Registry::default());
        let (r, flag) = open(&reg, "app", Some(bearer("ann")), None, "r1");
        assert_eq!(reg.len(), 1);
        drop(r);
        assert!(reg.is_empty());
        let mut access = fake();
        access.blocked.insert("ann".into());
        assert!(reg.recheck(&access).is_empty());
        assert!(!flag.load(Ordering::SeqCst));
    }

    #[test]
    fn shutting_the_duplicate_down_closes_the_connection() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        let dup = UpstreamSocket::duplicate(client.as_raw_fd()).expect("dup");
        dup.terminate();
        let mut buf = [0u8; 1];
        assert_eq!(server.read(&mut buf).expect("read"), 0, "the peer sees EOF");
        drop(client);
    }

    /// The live access rules over a real session store and block list: revocation through the
    /// store and a block through the list end exactly the streams they concern.
    #[tokio::test]
    async fn live_access_follows_the_session_store_and_the_block_list() {
        use warden_plugins::clock::ManualClock;
        use warden_plugins::session::{MemoryStore, RevokeReason, Selector};
        let store = MemoryStore::with_capacity(10, ManualClock::at_secs(T0));
        let blocks = BlockList::new();
        let ann = session("ann", 3600);
        let bob = session("bob", 3600);
        store.insert(ann.clone()).await.expect("insert");
        store.insert(bob.clone()).await.expect("insert");
        let reg = Arc::new(Registry::default());
        let (_a, fa) = open(&reg, "app", None, Some(ann.clone()), "ann-ws");
        let (_b, fb) = open(&reg, "app", None, Some(bob.clone()), "bob-ws");
        let (_c, fc) = open(&reg, "app", Some(bearer("cy")), None, "cy-ws");
        let live = |now| Live {
            sessions: &store,
            blocks: &blocks,
            decide: |_: &str, _: &RequestFacts<'_>, _: Option<&Identity>| Some(true),
            now,
        };
        assert!(reg.recheck(&live(T0 + 10)).is_empty());
        assert_eq!(
            ann.last_seen(),
            T0 + 10,
            "an open stream is use of its session"
        );

        let mut epoch = store.revocation_epoch();
        let n = store
            .revoke(&Selector::Subject("ann".into()), RevokeReason::Admin)
            .await
            .expect("revoke");
        assert_eq!(n, 1);
        assert!(epoch.has_changed().expect("open"), "the watcher wakes up");
        epoch.borrow_and_update();
        assert_eq!(
            reg.recheck(&live(T0 + 11)),
            [("ann-ws".to_string(), Termination::Revoked)]
        );
        blocks.block("cy", None);
        assert_eq!(
            reg.recheck(&live(T0 + 12)),
            [("cy-ws".to_string(), Termination::Blocked)]
        );
        assert_eq!(
            reg.recheck(&live(T0 + 3600)),
            [("bob-ws".to_string(), Termination::Expired)]
        );
        assert!(
            fa.load(Ordering::SeqCst) && fb.load(Ordering::SeqCst) && fc.load(Ordering::SeqCst)
        );
        assert!(reg.is_empty());
    }

    #[test]
    fn reasons_are_bounded_labels() {
        let labels: HashSet<&str> = Termination::ALL.iter().map(|t| t.label()).collect();
        assert_eq!(labels.len(), Termination::ALL.len());
    }
}
