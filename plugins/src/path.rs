//! Request path normalisation: the one spelling of a path that routing, policy and the upstream
//! all see, so that `/x/../admin`, `/%61dmin` and `//admin` cannot slip past a rule written for
//! `/admin`.
//!
//! The rules, applied to the path part of the request target (no query):
//! - it must start with `/` (the `*` target of `OPTIONS` is the caller's business);
//! - `%XX` escapes of unreserved characters (ALPHA, DIGIT, `-._~`) are decoded, every other
//!   escape keeps its encoding with uppercase hex (an encoded slash stays `%2F`, so it can never
//!   become a segment boundary);
//! - invalid escapes and `%00` (or a raw NUL) are refused: the gateway answers 400;
//! - repeated slashes collapse, then `.` and `..` segments are resolved as in RFC 3986
//!   `remove_dot_segments` (`..` above the root stays at the root; a path ending in a dot
//!   segment keeps a trailing slash).
//!
//! A path that is already normal is returned borrowed, without allocating.

use std::borrow::Cow;

/// Why a request path cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path must start with '/'")]
    NotAbsolute,
    #[error("the request path has an invalid percent-escape (expected '%' and two hex digits)")]
    InvalidEscape,
    #[error("the request path contains a NUL character")]
    Nul,
}

/// Normalises the path part of a request target; see the module documentation for the rules.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(raw)? {
        Ok(Cow::Borrowed(raw))
    } else {
        rebuild(raw).map(Cow::Owned)
    }
}

/// The byte a valid `%XX` escape at `bytes[i]` stands for.
fn escape_at(bytes: &[u8], i: usize) -> Result<u8, PathError> {
    let hex = |b: Option<&u8>| match b {
        Some(b) => (*b as char).to_digit(16).ok_or(PathError::InvalidEscape),
        None => Err(PathError::InvalidEscape),
    };
    let v = (hex(bytes.get(i + 1))? << 4 | hex(bytes.get(i + 2))?) as u8;
    if v == 0 {
        return Err(PathError::Nul);
    }
    Ok(v)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether `raw` (starting with `/`) is already in normal form. Errors found on the way are
/// returned; the scan stops at the first abnormality, so `rebuild` checks again.
fn is_normal(raw: &str) -> Result<bool, PathError> {
    let bytes = raw.as_bytes();
    // Start of the current segment (just after its '/').
    let mut seg_start = 1;
    let mut i = 1;
    while i <= bytes.len() {
        let b = bytes.get(i).copied();
        match b {
            None | Some(b'/') => {
                let seg = &bytes[seg_start..i];
                let last = b.is_none();
                // An empty segment is only normal as the final one ("/" or "/a/").
                if (seg.is_empty() && !last) || seg == b"." || seg == b".." {
                    return Ok(false);
                }
                seg_start = i + 1;
            }
            Some(b'%') => {
                let v = escape_at(bytes, i)?;
                if is_unreserved(v) || bytes[i + 1].is_ascii_lowercase() {
                    return Ok(false);
                }
                if bytes[i + 2].is_ascii_lowercase() {
                    return Ok(false);
                }
                i += 2;
            }
            Some(0) => return Err(PathError::Nul),
            Some(_) => {}
        }
        i += 1;
    }
    Ok(true)
}

/// Builds the normal form of `raw` (which starts with `/`).
fn rebuild(raw: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(raw.len());
    // Whether the result ends with a slash: an empty final segment or a final dot segment.
    let mut trailing_slash = false;
    for seg in raw[1..].split('/') {
        if seg.is_empty() {
            trailing_slash = true;
            continue;
        }
        let mark = out.len();
        out.push('/');
        decode_segment_into(seg, &mut out)?;
        match &out[mark + 1..] {
            "." => {
                out.truncate(mark);
                trailing_slash = true;
            }
            ".." => {
                out.truncate(mark);
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
                trailing_slash = true;
            }
            _ => trailing_slash = false,
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Appends `seg` with unreserved escapes decoded and the others in uppercase hex.
fn decode_segment_into(seg: &str, out: &mut String) -> Result<(), PathError> {
    let bytes = seg.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push_str(&seg[run_start..i]);
                let v = escape_at(bytes, i)?;
                if is_unreserved(v) {
                    out.push(v as char);
                } else {
                    out.push('%');
                    out.push(hex_upper(v >> 4));
                    out.push(hex_upper(v & 0xf));
                }
                i += 3;
                run_start = i;
            }
            0 => return Err(PathError::Nul),
            _ => i += 1,
        }
    }
    out.push_str(&seg[run_start..]);
    Ok(())
}

fn hex_upper(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0xf)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed() {
        for p in [
            "/",
            "/admin",
            "/admin/",
            "/a/b/c.txt",
            "/a/%2F/b",
            "/files/%C3%A9t%C3%A9",
            "/a/.b/..c/...",
            "/caf\u{e9}",
            "/q%20x",
        ] {
            match normalize(p) {
                Ok(Cow::Borrowed(b)) => assert_eq!(b, p),
                other => panic!("{p}: expected borrowed, got {other:?}"),
            }
        }
    }

    #[test]
    fn abnormal_paths_are_rewritten() {
        let table = [
            ("/x/../admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("//admin", "/admin"),
            ("/admin/./", "/admin/"),
            ("/admin/.", "/admin/"),
            ("/%2e%2e/admin", "/admin"),
            ("/%2E%2E/admin", "/admin"),
            ("/a/%2e/b", "/a/b"),
            ("/a/%2F/b", "/a/%2F/b"),
            ("/a/%2f/b", "/a/%2F/b"),
            ("/a%3a%3Ab", "/a%3A%3Ab"),
            ("/%7e%41%5F%2D", "/~A_-"),
            ("/%c3%a9", "/%C3%A9"),
            ("/..", "/"),
            ("/../..", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/b/..", "/a/"),
            ("/a/b/../", "/a/"),
            ("/a/b/../c", "/a/c"),
            ("/a//b///c", "/a/b/c"),
            ("/a//../b", "/b"),
            ("///", "/"),
            ("/./", "/"),
            ("/.", "/"),
            ("/a/./b/../../c/", "/c/"),
            ("/admin/..%2F", "/admin/..%2F"),
        ];
        for (raw, want) in table {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "normalize({raw:?})");
            // The normal form is a fixed point.
            assert!(
                matches!(normalize(want), Ok(Cow::Borrowed(_))),
                "{want} should already be normal"
            );
        }
    }

    #[test]
    fn bad_paths_are_refused() {
        let table = [
            ("", PathError::NotAbsolute),
            ("admin", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("/a%00b", PathError::Nul),
            ("//a/%00", PathError::Nul),
            ("/a\0b", PathError::Nul),
            ("/%", PathError::InvalidEscape),
            ("/%4", PathError::InvalidEscape),
            ("/%zz", PathError::InvalidEscape),
            ("/%g1/x", PathError::InvalidEscape),
            // The error is found after an abnormality that sends us down the slow path.
            ("/./%2", PathError::InvalidEscape),
        ];
        for (raw, want) in table {
            assert_eq!(normalize(raw), Err(want), "normalize({raw:?})");
        }
    }
}
