//! The compiled route index: host (exact, then `*.suffix` wildcard) and path (exact, then the
//! longest segment-wise prefix), answered with a handful of hash lookups, never a scan over
//! routes.

use ahash::RandomState;
use std::collections::HashMap;

type Map<V> = HashMap<Box<str>, V, RandomState>;

/// How a route matches paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Segment-wise prefix: `/api` matches `/api` and `/api/x`, not `/apix`. `/` matches all.
    Prefix(String),
    Exact(String),
}

#[derive(Debug, Default)]
struct PathTable {
    exact: Map<usize>,
    /// Prefixes stored without a trailing slash; `/` is stored as the empty string.
    prefixes: Map<usize>,
    /// Most segments in any stored prefix: deeper candidates need not be looked up.
    max_depth: usize,
}

impl PathTable {
    fn insert(&mut self, m: &PathMatch, route: usize) {
        match m {
            PathMatch::Exact(p) => {
                self.exact.entry(p.as_str().into()).or_insert(route);
            }
            PathMatch::Prefix(p) => {
                let key = p.trim_end_matches('/');
                self.max_depth = self.max_depth.max(key.matches('/').count());
                self.prefixes.entry(key.into()).or_insert(route);
            }
        }
    }

    fn lookup(&self, path: &str) -> Option<usize> {
        if let Some(r) = self.exact.get(path) {
            return Some(*r);
        }
        if self.prefixes.is_empty() {
            return None;
        }
        // Candidate prefixes end at a segment boundary: the whole path (minus a trailing
        // slash), then before each '/', from the longest to the root.
        let trimmed = path.trim_end_matches('/');
        let bytes = trimmed.as_bytes();
        let mut depth = bytes.iter().filter(|b| **b == b'/').count();
        let mut end = bytes.len();
        loop {
            if depth <= self.max_depth {
                if let Some(r) = self.prefixes.get(&trimmed[..end]) {
                    return Some(*r);
                }
            }
            if end == 0 {
                return None;
            }
            match bytes[..end].iter().rposition(|b| *b == b'/') {
                Some(slash) => {
                    end = slash;
                    depth = depth.saturating_sub(1);
                }
                None => return None,
            }
        }
    }
}

/// Routes indexed by host and path; values are indices into the snapshot's route list.
#[derive(Debug, Default)]
pub struct Router {
    exact_hosts: Map<PathTable>,
    /// Keyed by the suffix after `*.`; a wildcard covers exactly one leading label.
    wildcard_hosts: Map<PathTable>,
    default_route: Option<usize>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route for a host pattern; the first route inserted for a (host, path) pair wins
    /// (conf validation refuses duplicates anyway).
    pub fn insert(&mut self, host_pattern: &str, path: &PathMatch, route: usize) {
        let host = host_pattern.to_ascii_lowercase();
        let table = match host.strip_prefix("*.") {
            Some(suffix) => self.wildcard_hosts.entry(suffix.into()).or_default(),
            None => self.exact_hosts.entry(host.into_boxed_str()).or_default(),
        };
        table.insert(path, route);
    }

    pub fn set_default(&mut self, route: Option<usize>) {
        self.default_route = route;
    }

    /// Finds the route for a lowercase host (without port) and a normalised path. An exact
    /// host whose paths do not match falls through to a matching wildcard host.
    pub fn lookup(&self, host: &str, path: &str) -> Option<usize> {
        if let Some(r) = self.exact_hosts.get(host).and_then(|t| t.lookup(path)) {
            return Some(r);
        }
        if !self.wildcard_hosts.is_empty() {
            if let Some((_, suffix)) = host.split_once('.') {
                if let Some(r) = self.wildcard_hosts.get(suffix).and_then(|t| t.lookup(path)) {
                    return Some(r);
                }
            }
        }
        self.default_route
    }

    /// Whether any route serves this host (for the open-redirect check after login).
    pub fn serves_host(&self, host: &str) -> bool {
        self.exact_hosts.contains_key(host)
            || host
                .split_once('.')
                .is_some_and(|(_, s)| self.wildcard_hosts.contains_key(s))
    }
}

/// Lowercases a Host header value and strips its port, without allocating when it is already
/// lowercase. Returns `None` for an empty or malformed host.
pub fn normalize_host(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    // Every request's Host goes through here, so each branch reads it once.
    let (host, scan) = if raw.starts_with('[') {
        // IPv6 literal: keep the brackets' content, drop the port.
        let end = raw.find(']')?;
        let host = &raw[..=end];
        (host, scan_host(host))
    } else {
        // A port is digits only, neither disallowed nor upper case, so the flags of the whole
        // value hold for the host alone.
        let scan = scan_host(raw);
        let host = match scan.colon {
            Some(i) if raw.as_bytes()[i + 1..].iter().all(u8::is_ascii_digit) => &raw[..i],
            Some(_) => return None,
            None => raw,
        };
        (host, scan)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || scan.bad {
        return None;
    }
    if scan.upper {
        Some(std::borrow::Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(std::borrow::Cow::Borrowed(host))
    }
}

/// What one pass over a Host value finds: where its last `:` is, whether any byte is not
/// allowed in a host, whether any is upper case.
struct Scan {
    colon: Option<usize>,
    bad: bool,
    upper: bool,
}

fn scan_host(s: &str) -> Scan {
    let mut scan = Scan {
        colon: None,
        bad: false,
        upper: false,
    };
    for (i, &b) in s.as_bytes().iter().enumerate() {
        match b {
            b':' => scan.colon = Some(i),
            b'A'..=b'Z' => scan.upper = true,
            0..=b' ' | b'/' | b'@' | 0x7f.. => scan.bad = true,
            _ => {}
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let mut r = Router::new();
        r.insert("app.example.com", &PathMatch::Prefix("/".into()), 0);
        r.insert("app.example.com", &PathMatch::Prefix("/api".into()), 1);
        r.insert("app.example.com", &PathMatch::Prefix("/api/v2/".into()), 2);
        r.insert("app.example.com", &PathMatch::Exact("/api/login".into()), 3);
        r.insert("*.example.com", &PathMatch::Prefix("/".into()), 4);
        r.insert("only.example.com", &PathMatch::Prefix("/x".into()), 5);
        r
    }

    #[test]
    fn longest_prefix_and_exact_win() {
        let r = router();
        assert_eq!(r.lookup("app.example.com", "/"), Some(0));
        assert_eq!(r.lookup("app.example.com", "/apix"), Some(0));
        assert_eq!(r.lookup("app.example.com", "/api"), Some(1));
        assert_eq!(r.lookup("app.example.com", "/api/"), Some(1));
        assert_eq!(r.lookup("app.example.com", "/api/v1/users"), Some(1));
        assert_eq!(r.lookup("app.example.com", "/api/v2"), Some(2));
        assert_eq!(r.lookup("app.example.com", "/api/v2/users"), Some(2));
        assert_eq!(r.lookup("app.example.com", "/api/login"), Some(3));
        assert_eq!(r.lookup("app.example.com", "/api/login/x"), Some(1));
    }

    #[test]
    fn wildcards_cover_one_label_and_exact_falls_through() {
        let r = router();
        assert_eq!(r.lookup("other.example.com", "/z"), Some(4));
        assert_eq!(r.lookup("a.b.example.com", "/z"), None);
        assert_eq!(r.lookup("example.com", "/"), None);
        assert_eq!(r.lookup("only.example.com", "/x/1"), Some(5));
        assert_eq!(r.lookup("only.example.com", "/y"), Some(4));
        assert_eq!(r.lookup("nothing.test", "/"), None);
    }

    #[test]
    fn default_route_catches_the_rest() {
        let mut r = router();
        r.set_default(Some(9));
        assert_eq!(r.lookup("nothing.test", "/"), Some(9));
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(
            normalize_host("App.Example.COM:8443").as_deref(),
            Some("app.example.com")
        );
        assert_eq!(
            normalize_host("a.example.com.").as_deref(),
            Some("a.example.com")
        );
        assert_eq!(normalize_host("[::1]:80").as_deref(), Some("[::1]"));
        assert!(matches!(
            normalize_host("a.b"),
            Some(std::borrow::Cow::Borrowed(_))
        ));
        assert_eq!(normalize_host(""), None);
        assert_eq!(normalize_host("a:b:c"), None);
        assert_eq!(normalize_host("evil.com/x"), None);
        assert_eq!(normalize_host("evil.com:80/x"), None);
        assert_eq!(normalize_host("a@b.com"), None);
        assert_eq!(normalize_host("a.com:"), Some("a.com".into()));
        assert_eq!(normalize_host(":80"), None);
        assert_eq!(normalize_host("[::1]:80x").as_deref(), Some("[::1]"));
        assert_eq!(normalize_host("[::A]:80").as_deref(), Some("[::a]"));
        assert_eq!(normalize_host("[::1 ]"), None);
    }
}
