//! Field paths such as `routes[2].policy.allow[0].groups`: map keys joined by `.`, sequence
//! indices in brackets.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

pub(super) fn render(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// Splits a rendered path back into segments. A bracket holding something other than a number
/// is kept as part of the key, so odd keys still round-trip as far as possible.
pub(super) fn parse(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        let mut indices = Vec::new();
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(close) = inner.find(']') else { break };
            let Ok(i) = inner[..close].parse::<usize>() else {
                break;
            };
            indices.push(Seg::Index(i));
            rest = &inner[close + 1..];
        }
        if rest.is_empty() {
            if !key.is_empty() {
                segs.push(Seg::Key(key.to_string()));
            }
            segs.extend(indices);
        } else {
            segs.push(Seg::Key(part.to_string()));
        }
    }
    segs
}

/// The path of the node being deserialized, as a chain of borrowed links so that descending
/// into a node costs nothing; it is rendered only when an error needs it.
#[derive(Clone, Copy)]
pub(super) enum Trail<'a> {
    Root,
    Key(&'a Trail<'a>, &'a str),
    Index(&'a Trail<'a>, usize),
}

impl Trail<'_> {
    pub fn segs(&self) -> Vec<Seg> {
        let mut segs = Vec::new();
        let mut link = self;
        loop {
            match link {
                Trail::Root => break,
                Trail::Key(parent, k) => {
                    segs.push(Seg::Key((*k).to_string()));
                    link = parent;
                }
                Trail::Index(parent, i) => {
                    segs.push(Seg::Index(*i));
                    link = parent;
                }
            }
        }
        segs.reverse();
        segs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let segs = vec![
            Seg::Key("routes".into()),
            Seg::Index(2),
            Seg::Key("policy".into()),
            Seg::Key("allow".into()),
            Seg::Index(0),
            Seg::Index(1),
        ];
        let text = render(&segs);
        assert_eq!(text, "routes[2].policy.allow[0][1]");
        assert_eq!(parse(&text), segs);
        assert_eq!(parse(""), Vec::<Seg>::new());
        assert_eq!(render(&[Seg::Index(3)]), "[3]");
        assert_eq!(parse("[3].a"), vec![Seg::Index(3), Seg::Key("a".into())]);
        assert_eq!(parse("a[x]"), vec![Seg::Key("a[x]".into())]);
    }
}
