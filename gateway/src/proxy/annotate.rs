//! Pingora's request header as a [`HeaderSink`] for `warden_plugins::annotate`: removals and
//! insertions go through `RequestHeader`'s methods so its header-case map stays in step.

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use warden_plugins::annotate::HeaderSink;

pub struct UpstreamHeaders<'a>(pub &'a mut RequestHeader);

impl HeaderSink for UpstreamHeaders<'_> {
    fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    fn remove(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }

    fn insert(&mut self, name: &HeaderName, value: &HeaderValue) {
        // Both are already valid header parts, so this cannot fail.
        let _ = self.0.insert_header(name.clone(), value.clone());
    }

    fn append(&mut self, name: &HeaderName, value: &HeaderValue) {
        let _ = self.0.append_header(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(req: &RequestHeader) -> String {
        let mut buf = Vec::new();
        req.header_to_h1_wire(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    /// The upstream request (vendored Pingora's `clone_without_case`) keeps no header-case
    /// map: names go out canonical, and inserts by parsed name touch one map.
    #[test]
    fn upstream_request_has_canonical_names_and_keeps_values() {
        let mut down = RequestHeader::build("GET", b"/a?b=1", None).unwrap();
        down.append_header("X-Custom-Thing", "1").unwrap();
        down.append_header("content-TYPE", "text/plain").unwrap();
        assert!(down.has_case());
        assert_eq!(
            wire(&down),
            "X-Custom-Thing: 1\r\ncontent-TYPE: text/plain\r\n"
        );

        let mut up = down.clone_without_case();
        assert!(!up.has_case());
        assert_eq!(up.uri, down.uri);
        up.reserve_headers(4);
        let mut sink = UpstreamHeaders(&mut up);
        sink.insert(
            &HeaderName::from_static("x-warden-user"),
            &HeaderValue::from_static("alice"),
        );
        sink.append(
            &HeaderName::from_static("x-custom-thing"),
            &HeaderValue::from_static("2"),
        );
        sink.remove(&http::header::CONTENT_TYPE);
        assert_eq!(
            wire(&up),
            "x-custom-thing: 1\r\nx-custom-thing: 2\r\nx-warden-user: alice\r\n"
        );
        // The downstream request is untouched.
        assert_eq!(down.headers.len(), 2);
    }

    /// The upstream copy Pingora makes with room (vendored `clone_without_case_with_room`)
    /// keeps every name and value in order, and takes the headers Warden adds without
    /// growing.
    #[test]
    fn upstream_copy_with_room_keeps_every_header_in_order() {
        let mut down = RequestHeader::build("POST", b"/a?b=1", None).unwrap();
        down.append_header("X-Custom-Thing", "1").unwrap();
        down.append_header("content-TYPE", "text/plain").unwrap();
        down.append_header("x-custom-thing", "2").unwrap();

        let up = down.clone_without_case_with_room(16);
        assert!(!up.has_case());
        assert_eq!(up.method, down.method);
        assert_eq!(up.uri, down.uri);
        assert_eq!(
            wire(&up),
            "x-custom-thing: 1\r\nx-custom-thing: 2\r\nContent-Type: text/plain\r\n"
        );
        assert_eq!(wire(&up), wire(&down.clone_without_case()));
        assert!(up.headers.capacity() >= up.headers.keys_len() + 16);
    }

    /// Where a case map is kept (the downstream request), inserts keep it in step.
    #[test]
    fn case_map_stays_in_step() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Custom-Thing", "1").unwrap();
        req.reserve_headers(2);
        let mut sink = UpstreamHeaders(&mut req);
        sink.insert(
            &HeaderName::from_static("x-warden-user"),
            &HeaderValue::from_static("alice"),
        );
        sink.remove(&HeaderName::from_static("x-custom-thing"));
        // Pingora titles only a few standard names; the rest go out as parsed.
        assert_eq!(wire(&req), "x-warden-user: alice\r\n");
    }
}
