//! `groups_filter`: which of the caller's groups a route passes on. Each pattern is a group name
//! in which `*` matches any run of characters (`team-*` is a prefix, `*-admins` a suffix,
//! `sre` exact); a group passes when any pattern matches it.

use crate::conf::FieldError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(Box<str>),
    Prefix(Box<str>),
    /// Literal pieces between `*`s; the pattern starts and ends with a `*` unless the first or
    /// last piece is non-empty.
    Glob(Box<[Box<str>]>),
}

impl Pattern {
    fn parse(p: &str) -> Self {
        match p.find('*') {
            None => Pattern::Exact(p.into()),
            Some(i) if i == p.len() - 1 => Pattern::Prefix(p[..i].into()),
            Some(_) => Pattern::Glob(p.split('*').map(Into::into).collect()),
        }
    }

    fn matches(&self, g: &str) -> bool {
        match self {
            Pattern::Exact(e) => **e == *g,
            Pattern::Prefix(p) => g.starts_with(&**p),
            Pattern::Glob(pieces) => glob_matches(pieces, g),
        }
    }
}

/// `pieces` are the literals between `*`s: the first anchors the start, the last the end, and
/// the middle ones are found left to right (leftmost placement is always safe for `*`).
fn glob_matches(pieces: &[Box<str>], g: &str) -> bool {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return true;
    };
    if pieces.len() == 1 {
        return **first == *g;
    }
    let Some(mut rest) = g.strip_prefix(&**first) else {
        return false;
    };
    for mid in &pieces[1..pieces.len() - 1] {
        match rest.find(&**mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(&**last)
}

/// A compiled `groups_filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFilter {
    patterns: Box<[Pattern]>,
}

impl GroupFilter {
    /// Compiles patterns; errors are addressed `[i]` relative to the list.
    pub fn compile(patterns: &[String]) -> Result<Self, Vec<FieldError>> {
        let mut errs = Vec::new();
        if patterns.is_empty() {
            errs.push(FieldError::new(
                "",
                "list at least one group pattern, or leave groups_filter out to pass every group",
            ));
        }
        for (i, p) in patterns.iter().enumerate() {
            if p.is_empty() || p.bytes().any(|b| b < 0x20 || b == 0x7f) {
                errs.push(FieldError::new(
                    format!("[{i}]"),
                    "a group pattern must be non-empty text without control characters",
                ));
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            patterns: patterns.iter().map(|p| Pattern::parse(p)).collect(),
        })
    }

    pub fn matches(&self, group: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(group))
    }
}

/// Applies an optional filter.
pub(crate) fn passes(filter: Option<&GroupFilter>, group: &str) -> bool {
    filter.is_none_or(|f| f.matches(group))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(p: &[&str]) -> GroupFilter {
        GroupFilter::compile(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn patterns_match_as_documented() {
        let cases: &[(&str, &[(&str, bool)])] = &[
            ("sre", &[("sre", true), ("sre-x", false), ("xsre", false)]),
            (
                "team-*",
                &[
                    ("team-a", true),
                    ("team-", true),
                    ("team", false),
                    ("a-team-b", false),
                ],
            ),
            (
                "*-admins",
                &[("k8s-admins", true), ("-admins", true), ("admins", false)],
            ),
            (
                "k8s:*:admin",
                &[
                    ("k8s:prod:admin", true),
                    ("k8s::admin", true),
                    ("k8s:prod:admins", false),
                ],
            ),
            (
                "a*b*c",
                &[
                    ("abc", true),
                    ("aXbYc", true),
                    ("abcbc", true),
                    ("acb", false),
                    ("ab", false),
                ],
            ),
            ("*", &[("anything", true), ("", true)]),
            ("a*a", &[("a", false), ("aa", true), ("aba", true)]),
        ];
        for (p, groups) in cases {
            let filter = f(&[p]);
            for (g, want) in *groups {
                assert_eq!(filter.matches(g), *want, "{p} vs {g}");
            }
        }
    }

    #[test]
    fn any_pattern_suffices() {
        let filter = f(&["sre", "team-*"]);
        assert!(filter.matches("sre") && filter.matches("team-x") && !filter.matches("dev"));
        assert!(passes(None, "dev"));
        assert!(!passes(Some(&filter), "dev"));
    }

    #[test]
    fn bad_patterns_are_reported() {
        let errs = GroupFilter::compile(&["ok".into(), "".into(), "a\nb".into()]).unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["[1]", "[2]"]);
        assert_eq!(GroupFilter::compile(&[]).unwrap_err().len(), 1);
    }
}
