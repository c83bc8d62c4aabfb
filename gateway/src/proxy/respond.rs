//! Responses Warden writes itself (errors, redirects). Short bodies, JSON when the client asks
//! for JSON, and written with explicit header/body calls so keep-alive connections survive
//! (Pingora's `respond_error` closes them).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

pub fn wants_json(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") || a.contains("+json"))
}

pub fn reason_phrase(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// Writes a complete error response: `{"error": code, "message": ..., "request_id": ...}` for
/// JSON clients, one line of text otherwise.
pub async fn error(
    session: &mut Session,
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
    extra: &[(&'static str, &str)],
) -> Result<()> {
    let json = wants_json(session);
    let body = if json {
        serde_json::json!({"error": code, "message": message, "request_id": request_id}).to_string()
            + "\n"
    } else {
        format!(
            "{status} {}: {message} (request id {request_id})\n",
            reason_phrase(status)
        )
    };
    let ctype = if json {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    write(session, status, ctype, Bytes::from(body), extra).await
}

/// Writes a response with a body and the given extra headers.
pub async fn write(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Bytes,
    extra: &[(&'static str, &str)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, content_type)?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    for (k, v) in extra {
        resp.insert_header(*k, *v)?;
    }
    let head = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head || body.is_empty())
        .await?;
    if !head && !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// A redirect without a body.
pub async fn redirect(
    session: &mut Session,
    status: u16,
    location: &str,
    extra: &[(&'static str, &str)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(3 + extra.len()))?;
    resp.insert_header(http::header::LOCATION, location)?;
    resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    for (k, v) in extra {
        resp.append_header(*k, *v)?;
    }
    session.write_response_header(Box::new(resp), true).await
}
