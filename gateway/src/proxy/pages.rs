//! The pages and JSON bodies Warden answers with when it refuses a request: a short HTML page
//! for browsers, JSON for everything else. Always with the request id; internal detail (the
//! deciding rule) only where the route asks for it.

use super::respond;
use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Result;

/// A top-level browser navigation: GET/HEAD that accepts HTML.
pub fn is_browser_navigation(session: &Session) -> bool {
    let req = session.req_header();
    (req.method == http::Method::GET || req.method == http::Method::HEAD)
        && req
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A refusal: `status`, an `error` code, a stable `reason`, a sentence for people, and
/// optionally the deciding rule.
pub struct Refusal<'a> {
    pub status: u16,
    pub error: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    pub rule: Option<&'a str>,
    pub request_id: &'a str,
}

pub async fn refuse(
    session: &mut Session,
    r: &Refusal<'_>,
    extra: &[(&'static str, &str)],
) -> Result<()> {
    let mut headers: Vec<(&'static str, &str)> = vec![("x-request-id", r.request_id)];
    headers.extend_from_slice(extra);
    if is_browser_navigation(session) && !respond::wants_json(session) {
        let rule = r
            .rule
            .map(|x| format!("<p>Rule: <code>{}</code></p>", html_escape(x)))
            .unwrap_or_default();
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\
             <body><h1>{title}</h1><p>{msg}</p>{rule}<p><small>Reason: <code>{reason}</code> · Request id: <code>{rid}</code></small></p></body></html>\n",
            status = r.status,
            title = respond::reason_phrase(r.status),
            msg = html_escape(r.message),
            reason = html_escape(r.reason),
            rid = html_escape(r.request_id),
        );
        return respond::write(
            session,
            r.status,
            "text/html; charset=utf-8",
            Bytes::from(body),
            &headers,
        )
        .await;
    }
    let mut v = serde_json::json!({
        "error": r.error,
        "reason": r.reason,
        "message": r.message,
        "request_id": r.request_id,
    });
    if let Some(rule) = r.rule {
        v["rule"] = serde_json::Value::from(rule);
    }
    let mut body = v.to_string();
    body.push('\n');
    respond::write(
        session,
        r.status,
        "application/json",
        Bytes::from(body),
        &headers,
    )
    .await
}
