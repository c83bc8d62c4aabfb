//! The admin API proper (behind the bearer token): sessions and blocks. JSON in, JSON out;
//! errors as `{"error": code, "message": …}` with a 4xx status saying what was wrong.
//!
//! | endpoint | body / query | answer |
//! |---|---|---|
//! | `GET /admin/sessions` | `?user=SUB` or `?email=E` | `{"sessions": [summary…]}` |
//! | `POST /admin/sessions/revoke` | `{"session": H}`, `{"user": SUB}`, `{"email": E}` or `{"all": true}` | `{"revoked": n}` |
//! | `GET /admin/blocks` | | `{"blocks": [{"subject", "until"}…]}` |
//! | `POST /admin/blocks` | `{"subject": SUB_OR_EMAIL, "until": RFC3339?}` | `{"blocked", "until"}` |
//! | `DELETE /admin/blocks/{subject}` | | `{"unblocked": subject}` |
//!
//! Session summaries carry the public session handle, never the session id, a token or a
//! cookie value.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use warden_plugins::session::{
    BlockList, RevokeReason, Selector, SessionHandle, SessionStore, StoreError,
};

/// An answer: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
        }
    }

    pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"error": code, "message": message.into()}),
        }
    }
}

impl From<StoreError> for Reply {
    fn from(e: StoreError) -> Self {
        Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "session_store_unavailable",
            e.to_string(),
        )
    }
}

/// What the sessions and blocks endpoints act on.
pub struct Api<'a> {
    pub sessions: &'a dyn SessionStore,
    pub blocks: &'a BlockList,
    /// Unix seconds.
    pub now: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    session: Option<String>,
    user: Option<String>,
    email: Option<String>,
    all: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    subject: String,
    until: Option<String>,
}

fn method_not_allowed(allowed: &str) -> Reply {
    Reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this endpoint accepts {allowed}"),
    )
}

fn parse_json<'de, T: Deserialize<'de>>(body: &'de [u8], example: &str) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body must be JSON like {example}: {e}"),
        )
    })
}

/// Decodes one percent-encoded path segment (`+` stays a plus).
fn decode_segment(s: &str) -> String {
    let escaped = s.replace('+', "%2B");
    url::form_urlencoded::parse(format!("v={escaped}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn rfc3339(unix: Option<i64>) -> Value {
    unix.and_then(|u| jiff::Timestamp::from_second(u).ok())
        .map_or(Value::Null, |t| Value::String(t.to_string()))
}

impl Api<'_> {
    /// Answers `method path?query` with `body`; `None` when the path is not one of these
    /// endpoints.
    pub async fn handle(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        body: &[u8],
    ) -> Option<Reply> {
        let reply = match path {
            "/admin/sessions" => match method {
                "GET" => self.list_sessions(query).await,
                _ => method_not_allowed("GET"),
            },
            "/admin/sessions/revoke" => match method {
                "POST" => self.revoke(body).await,
                _ => method_not_allowed("POST"),
            },
            "/admin/blocks" => match method {
                "GET" => self.list_blocks(),
                "POST" => self.block(body),
                _ => method_not_allowed("GET or POST"),
            },
            p => {
                let subject = p.strip_prefix("/admin/blocks/")?;
                match method {
                    "DELETE" => self.unblock(&decode_segment(subject)),
                    _ => method_not_allowed("DELETE"),
                }
            }
        };
        Some(reply)
    }

    async fn list_sessions(&self, query: Option<&str>) -> Reply {
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let selector = match params.as_slice() {
            [(k, v)] if k == "user" && !v.is_empty() => Selector::Subject(v.clone()),
            [(k, v)] if k == "email" && !v.is_empty() => Selector::Email(v.clone()),
            _ => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "missing_selector",
                    "give exactly one of ?user=SUBJECT or ?email=EMAIL",
                )
            }
        };
        match self.sessions.list(&selector).await {
            Ok(list) => Reply::ok(json!({ "sessions": list })),
            Err(e) => e.into(),
        }
    }

    async fn revoke(&self, body: &[u8]) -> Reply {
        const EXAMPLE: &str =
            r#"{"session": HANDLE}, {"user": SUBJECT}, {"email": EMAIL} or {"all": true}"#;
        let b: RevokeBody = match parse_json(body, EXAMPLE) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let selector = match (b.session, b.user, b.email, b.all) {
            (Some(h), None, None, None) => match h.parse::<SessionHandle>() {
                Ok(h) => Selector::Handle(h),
                Err(m) => return Reply::error(StatusCode::BAD_REQUEST, "invalid_session", m),
            },
            (None, Some(u), None, None) if !u.is_empty() => Selector::Subject(u),
            (None, None, Some(e), None) if !e.is_empty() => Selector::Email(e),
            (None, None, None, Some(true)) => Selector::All,
            _ => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "invalid_selector",
                    format!("give exactly one of {EXAMPLE}"),
                )
            }
        };
        let n = match self.sessions.revoke(&selector, RevokeReason::Admin).await {
            Ok(n) => n,
            Err(e) => return e.into(),
        };
        tracing::info!(selector = ?selector_kind(&selector), revoked = n, "admin: sessions revoked");
        if n == 0 && matches!(selector, Selector::Handle(_)) {
            return Reply::error(
                StatusCode::NOT_FOUND,
                "no_such_session",
                "no live session has this handle",
            );
        }
        Reply::ok(json!({ "revoked": n }))
    }

    fn list_blocks(&self) -> Reply {
        let blocks: Vec<Value> = self
            .blocks
            .list(self.now)
            .into_iter()
            .map(|b| json!({"subject": b.subject, "until": rfc3339(b.until)}))
            .collect();
        Reply::ok(json!({ "blocks": blocks }))
    }

    fn block(&self, body: &[u8]) -> Reply {
        let b: BlockBody = match parse_json(
            body,
            r#"{"subject": "SUBJECT_OR_EMAIL", "until": "2030-01-01T00:00:00Z"}"#,
        ) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let subject = b.subject.trim();
        if subject.is_empty() {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "invalid_subject",
                "`subject` must name a subject or an email",
            );
        }
        let until = match b.until.as_deref().map(str::parse::<jiff::Timestamp>) {
            None => None,
            Some(Ok(t)) if t.as_second() > self.now => Some(t.as_second()),
            Some(Ok(_)) => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "until_in_past",
                    "`until` must be in the future",
                )
            }
            Some(Err(e)) => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "invalid_until",
                    format!("`until` must be an RFC 3339 time like 2030-01-01T00:00:00Z: {e}"),
                )
            }
        };
        self.blocks.block(subject, until);
        tracing::info!(subject, until = ?until, "admin: subject blocked");
        Reply::ok(json!({"blocked": subject, "until": rfc3339(until)}))
    }

    fn unblock(&self, subject: &str) -> Reply {
        if self.blocks.unblock(subject) {
            tracing::info!(subject, "admin: subject unblocked");
            Reply::ok(json!({ "unblocked": subject }))
        } else {
            Reply::error(
                StatusCode::NOT_FOUND,
                "not_blocked",
                format!("`{subject}` is not blocked"),
            )
        }
    }
}

/// What a selector selects by, for logs (never the values of ids).
fn selector_kind(s: &Selector) -> &'static str {
    match s {
        Selector::Id(_) | Selector::Handle(_) => "session",
        Selector::Subject(_) => "user",
        Selector::Email(_) => "email",
        Selector::Sid { .. } => "sid",
        Selector::All => "all",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use warden_plugins::clock::ManualClock;
    use warden_plugins::identity::AuthMethod;
    use warden_plugins::session::{
        MemoryStore, NewSession, Profile, Session, SessionLifetime, Tokens,
    };
    use warden_plugins::Identity;

    const T0: i64 = 1_700_000_000;

    struct Fixture {
        store: MemoryStore,
        blocks: BlockList,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                store: MemoryStore::with_capacity(100, ManualClock::at_secs(T0)),
                blocks: BlockList::new(),
            }
        }

        fn api(&self) -> Api<'_> {
            Api {
                sessions: &self.store,
                blocks: &self.blocks,
                now: T0,
            }
        }

        async fn call(&self, method: &str, path: &str, body: &str) -> Reply {
            let (path, query) = match path.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (path, None),
            };
            self.api()
                .handle(method, path, query, body.as_bytes())
                .await
                .expect("an admin endpoint")
        }

        async fn login(&self, subject: &str, email: &str) -> Arc<Session> {
            let new = NewSession {
                provider: "corp".into(),
                issuer_url: "https://idp".into(),
                subject: subject.into(),
                sid: None,
                profile: Profile {
                    email: Some(email.into()),
                    ..Profile::default()
                },
                tokens: Tokens {
                    refresh_token: Some(warden_plugins::session::Secret::new(
                        "refresh-secret-value",
                    )),
                    access_token: None,
                    access_token_expires_at: None,
                },
            };
            let life = SessionLifetime {
                ttl_secs: 3600,
                idle_timeout_secs: 3600,
            };
            let s = Arc::new(Session::create(new, T0, life).expect("random"));
            self.store.insert(s.clone()).await.expect("insert");
            s
        }
    }

    fn who(subject: &str) -> Identity {
        Identity::new(
            subject,
            "https://issuer",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
    }

    #[tokio::test]
    async fn sessions_are_listed_by_user_or_email_without_secrets() {
        let f = Fixture::new();
        let ann = f.login("ann", "Ann@Example.com").await;
        f.login("ann", "ann@example.com").await;
        f.login("bob", "bob@example.com").await;
        let r = f.call("GET", "/admin/sessions?user=ann", "").await;
        assert_eq!(r.status, 200);
        let list = r.body["sessions"].as_array().expect("a list");
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|s| s["subject"] == "ann"));
        let text = r.body.to_string();
        assert!(text.contains(&ann.handle().to_string()));
        assert!(!text.contains("refresh-secret-value"), "{text}");
        assert!(!text.contains(&format!("{:?}", ann.id())), "{text}");

        let r = f
            .call("GET", "/admin/sessions?email=BOB@example.com", "")
            .await;
        assert_eq!(r.body["sessions"][0]["subject"], "bob");
        for bad in [
            "/admin/sessions",
            "/admin/sessions?user=",
            "/admin/sessions?x=1",
        ] {
            let r = f.call("GET", bad, "").await;
            assert_eq!(
                (r.status, &r.body["error"]),
                (StatusCode::BAD_REQUEST, &json!("missing_selector")),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn revocation_by_session_user_email_and_all() {
        let f = Fixture::new();
        let a1 = f.login("ann", "ann@example.com").await;
        let a2 = f.login("ann", "ann@example.com").await;
        f.login("bob", "bob@example.com").await;
        f.login("cy", "cy@example.com").await;
        f.login("dee", "dee@example.com").await;
        let epoch = f.store.revocation_epoch();

        let body = json!({"session": a1.handle().to_string()}).to_string();
        let r = f.call("POST", "/admin/sessions/revoke", &body).await;
        assert_eq!(r, Reply::ok(json!({"revoked": 1})));
        assert!(epoch.has_changed().expect("open"), "streams are re-checked");
        assert!(f.store.get_local(a1.id(), T0).is_none());
        assert!(f.store.get_local(a2.id(), T0).is_some());
        let r = f.call("POST", "/admin/sessions/revoke", &body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "already gone");

        let r = f
            .call("POST", "/admin/sessions/revoke", r#"{"user": "ann"}"#)
            .await;
        assert_eq!(r.body, json!({"revoked": 1}));
        let r = f
            .call(
                "POST",
                "/admin/sessions/revoke",
                r#"{"email": "BOB@example.com"}"#,
            )
            .await;
        assert_eq!(r.body, json!({"revoked": 1}));
        let r = f
            .call("POST", "/admin/sessions/revoke", r#"{"all": true}"#)
            .await;
        assert_eq!(r.body, json!({"revoked": 2}));
        assert_eq!(f.store.len(), 0);
    }

    #[tokio::test]
    async fn malformed_revocations_are_refused_with_a_reason() {
        let f = Fixture::new();
        f.login("ann", "ann@example.com").await;
        for (body, code) in [
            ("", "invalid_body"),
            ("{", "invalid_body"),
            (r#"{"users": "ann"}"#, "invalid_body"),
            ("{}", "invalid_selector"),
            (r#"{"user": "ann", "all": true}"#, "invalid_selector"),
            (r#"{"all": false}"#, "invalid_selector"),
            (r#"{"user": ""}"#, "invalid_selector"),
            (r#"{"session": "not-a-handle"}"#, "invalid_session"),
        ] {
            let r = f.call("POST", "/admin/sessions/revoke", body).await;
            assert_eq!(
                (r.status, r.body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some(code)),
                "{body}"
            );
        }
        assert_eq!(f.store.len(), 1, "nothing was revoked");
        let r = f.call("GET", "/admin/sessions/revoke", "").await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn blocks_are_added_listed_and_lifted() {
        let f = Fixture::new();
        let epoch = f.blocks.epoch();
        let r = f
            .call("POST", "/admin/blocks", r#"{"subject": "mallory"}"#)
            .await;
        assert_eq!(r, Reply::ok(json!({"blocked": "mallory", "until": null})));
        assert!(epoch.has_changed().expect("open"));
        assert!(f.blocks.is_blocked(&who("mallory"), T0));
        let r = f
            .call(
                "POST",
                "/admin/blocks",
                r#"{"subject": "eve@example.com", "until": "2100-01-01T00:00:00Z"}"#,
            )
            .await;
        assert_eq!(r.body["until"], "2100-01-01T00:00:00Z");

        let r = f.call("GET", "/admin/blocks", "").await;
        assert_eq!(
            r.body,
            json!({"blocks": [
                {"subject": "eve@example.com", "until": "2100-01-01T00:00:00Z"},
                {"subject": "mallory", "until": null},
            ]})
        );
        let r = f
            .call("DELETE", "/admin/blocks/eve%40example.com", "")
            .await;
        assert_eq!(r.body, json!({"unblocked": "eve@example.com"}));
        let r = f.call("DELETE", "/admin/blocks/mallory", "").await;
        assert_eq!(r.status, 200);
        assert!(!f.blocks.is_blocked(&who("mallory"), T0));
        let r = f.call("DELETE", "/admin/blocks/mallory", "").await;
        assert_eq!(
            (r.status, &r.body["error"]),
            (StatusCode::NOT_FOUND, &json!("not_blocked"))
        );
    }

    #[tokio::test]
    async fn malformed_blocks_are_refused() {
        let f = Fixture::new();
        for (body, code) in [
            ("{}", "invalid_body"),
            (r#"{"subject": "  "}"#, "invalid_subject"),
            (r#"{"subject": "a", "until": "tomorrow"}"#, "invalid_until"),
            (
                r#"{"subject": "a", "until": "2001-01-01T00:00:00Z"}"#,
                "until_in_past",
            ),
        ] {
            let r = f.call("POST", "/admin/blocks", body).await;
            assert_eq!(
                (r.status, r.body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some(code)),
                "{body}"
            );
        }
        assert!(f.blocks.is_empty());
        assert_eq!(
            f.call("PUT", "/admin/blocks", "").await.status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert!(f
            .api()
            .handle("GET", "/admin/other", None, b"")
            .await
            .is_none());
    }

    #[test]
    fn path_segments_decode_without_turning_plus_into_space() {
        assert_eq!(decode_segment("a%40b.c"), "a@b.c");
        assert_eq!(decode_segment("a+b"), "a+b");
        assert_eq!(
            decode_segment("system%3Aserviceaccount%3Ans%3Asa"),
            "system:serviceaccount:ns:sa"
        );
    }
}
