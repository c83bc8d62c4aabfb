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
