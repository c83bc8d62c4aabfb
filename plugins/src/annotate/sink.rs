//! Where annotations are written: the upstream request's headers. The gateway implements
//! [`HeaderSink`] for Pingora's `RequestHeader` (through a newtype: `remove_header`,
//! `insert_header`, `append_header` keep its case map in step); `http::HeaderMap` implements it
//! here, for tests and for users of plain `http` types.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers of a request about to go upstream.
pub trait HeaderSink {
    /// The headers as they are now (read to decide what to strip).
    fn headers(&self) -> &HeaderMap;
    /// Removes every value of `name`.
    fn remove(&mut self, name: &HeaderName);
    /// Replaces every value of `name` with `value`.
    fn insert(&mut self, name: &HeaderName, value: &HeaderValue);
    /// Adds `value` as one more value of `name` (its own field line).
    fn append(&mut self, name: &HeaderName, value: &HeaderValue);
}

impl HeaderSink for HeaderMap {
    fn headers(&self) -> &HeaderMap {
        self
    }

    fn remove(&mut self, name: &HeaderName) {
        HeaderMap::remove(self, name);
    }

    fn insert(&mut self, name: &HeaderName, value: &HeaderValue) {
        HeaderMap::insert(self, name.clone(), value.clone());
    }

    fn append(&mut self, name: &HeaderName, value: &HeaderValue) {
        HeaderMap::append(self, name.clone(), value.clone());
    }
}

/// Ready header fields, written in order: the first field of a name replaces whatever the
/// request had, later fields of the same name are appended (one `Impersonate-Group` line per
/// group). Built once per identity and route, shared by every request through an `Arc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderSet {
    fields: Box<[(HeaderName, HeaderValue)]>,
}

impl HeaderSet {
    /// Fields of the same name must be adjacent (they are written as one group).
    pub(crate) fn new(fields: Vec<(HeaderName, HeaderValue)>) -> Self {
        Self {
            fields: fields.into_boxed_slice(),
        }
    }

    pub fn fields(&self) -> &[(HeaderName, HeaderValue)] {
        &self.fields
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a HeaderValue> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.as_str() == name)
            .map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Writes the fields into `sink`.
    pub fn write_to<S: HeaderSink + ?Sized>(&self, sink: &mut S) {
        let mut prev: Option<&HeaderName> = None;
        for (n, v) in self.fields.iter() {
            if prev == Some(n) {
                sink.append(n, v);
            } else {
                sink.insert(n, v);
            }
            prev = Some(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_field_replaces_later_ones_append() {
        let g = HeaderName::from_static("impersonate-group");
        let u = HeaderName::from_static("impersonate-user");
        let set = HeaderSet::new(vec![
            (u.clone(), HeaderValue::from_static("jane")),
            (g.clone(), HeaderValue::from_static("dev")),
            (g.clone(), HeaderValue::from_static("ops")),
        ]);
        let mut h = HeaderMap::new();
        h.insert(u.clone(), HeaderValue::from_static("mallory"));
        h.insert(g.clone(), HeaderValue::from_static("system:masters"));
        set.write_to(&mut h);
        assert_eq!(h.get_all(&u).iter().collect::<Vec<_>>(), ["jane"]);
        assert_eq!(h.get_all(&g).iter().collect::<Vec<_>>(), ["dev", "ops"]);
        assert_eq!(set.get_all("impersonate-group").count(), 2);
    }
}
