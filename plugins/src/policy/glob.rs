//! `path_glob` patterns: `*` matches zero or more characters within one segment, a `**` segment
//! matches zero or more whole segments (so `/static/**` covers `/static` itself and everything
//! below it). Every other character is literal. Patterns are compiled to segments once; matching
//! walks the path's segments without allocating, backtracking only to the latest `**` (the
//! classic wildcard algorithm, linear in practice).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    /// Contains at least one `*`.
    Wildcard(Box<str>),
    AnyDepth,
}

impl Segment {
    fn matches(&self, seg: &str) -> bool {
        match self {
            Segment::Literal(l) => **l == *seg,
            Segment::Wildcard(p) => wildcard_matches(p.as_bytes(), seg.as_bytes()),
            Segment::AnyDepth => true,
        }
    }
}

/// A compiled `path_glob`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathGlob {
    source: Box<str>,
    segments: Box<[Segment]>,
}

impl PathGlob {
    /// Compiles a pattern; the error says what is wrong with it.
    pub(crate) fn parse(pattern: &str) -> Result<Self, String> {
        let Some(rest) = pattern.strip_prefix('/') else {
            return Err(format!("`{pattern}` must start with '/'"));
        };
        let mut segments = Vec::new();
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let seg = match *part {
                "**" => Segment::AnyDepth,
                p if p.contains("**") => {
                    return Err(format!(
                        "`{pattern}`: `**` must be a whole segment (`/a/**/b`); use `*` within a segment"
                    ))
                }
                "" if !last => {
                    return Err(format!(
                        "`{pattern}` has an empty segment; request paths never contain `//`"
                    ))
                }
                "." | ".." => {
                    return Err(format!(
                        "`{pattern}` has a `.` or `..` segment; request paths are normalised and never contain them"
                    ))
                }
                p if p.contains('*') => Segment::Wildcard(p.into()),
                p => Segment::Literal(p.into()),
            };
            segments.push(seg);
        }
        Ok(Self {
            source: pattern.into(),
            segments: segments.into_boxed_slice(),
        })
    }

    /// Whether the normalised `path` matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let pat = &self.segments;
        let mut p = 0;
        let mut segs = rest.split('/');
        // Where to resume when a segment fails: the pattern index after the latest `**`, and
        // the path position that `**` has absorbed up to.
        let mut resume: Option<(usize, std::str::Split<'_, char>)> = None;
        loop {
            let mut after = segs.clone();
            let Some(seg) = after.next() else {
                return pat[p..].iter().all(|s| *s == Segment::AnyDepth);
            };
            match pat.get(p) {
                Some(Segment::AnyDepth) => {
                    p += 1;
                    resume = Some((p, segs.clone()));
                    continue;
                }
                Some(s) if s.matches(seg) => {
                    p += 1;
                    segs = after;
                    continue;
                }
                _ => {}
            }
            match &mut resume {
                Some((rp, absorbed)) => {
                    // The `**` takes one more segment and we try again after it.
                    absorbed.next();
                    p = *rp;
                    segs = absorbed.clone();
                }
                None => return false,
            }
        }
    }
}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// `*` matches any run of bytes (a segment has no '/'); everything else is literal.
fn wildcard_matches(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if pat.get(p) == Some(&b'*') {
            star = Some((p + 1, i));
            p += 1;
        } else if pat.get(p) == Some(&s[i]) {
            p += 1;
            i += 1;
        } else if let Some((sp, si)) = star {
            p = sp;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match() {
        let table: &[(&str, &str, bool)] = &[
            ("/api/*/items", "/api/v1/items", true),
            ("/api/*/items", "/api/v1/v2/items", false),
            ("/api/*/items", "/api/items", false),
            ("/api/v*", "/api/v2", true),
            ("/api/v*", "/api/x2", false),
            ("/*.js", "/app.min.js", true),
            ("/*.js", "/app.css", false),
            ("/*.js", "/a/app.js", false),
            ("/a*b*c", "/aXbYbZc", true),
            ("/a*b*c", "/aXbYbZ", false),
            ("/static/**", "/static", true),
            ("/static/**", "/static/", true),
            ("/static/**", "/static/a/b/c.css", true),
            ("/static/**", "/statics/a", false),
            ("/**/secret", "/secret", true),
            ("/**/secret", "/a/b/secret", true),
            ("/**/secret", "/a/b/secret/x", false),
            ("/**/secret/**", "/a/secret/b/c", true),
            ("/a/**/b/*.txt", "/a/x/y/b/z.txt", true),
            ("/a/**/b/*.txt", "/a/b/z.txt", true),
            ("/a/**/b/*.txt", "/a/b/b/z.txt", true),
            ("/a/**/b/*.txt", "/a/b/z.png", false),
            ("/**", "/", true),
            ("/**", "/anything/at/all", true),
            ("/", "/", true),
            ("/", "/a", false),
            ("/exact", "/exact", true),
            ("/exact", "/exact/", false),
            ("/dir/", "/dir/", true),
            ("/dir/", "/dir", false),
        ];
        for (pattern, path, want) in table {
            let g = PathGlob::parse(pattern).unwrap();
            assert_eq!(g.matches(path), *want, "{pattern} vs {path}");
        }
    }

    #[test]
    fn bad_globs_are_refused() {
        for bad in ["api/*", "", "/a/**b", "/a/***", "/a//b", "/a/../b", "/./a"] {
            assert!(PathGlob::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
