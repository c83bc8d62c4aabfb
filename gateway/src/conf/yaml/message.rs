//! How values and expectations are named in messages: in the words a YAML author uses ("a list",
//! "integer `5`"), never serde's ("a sequence", "u16").

use super::tree::{Kind, Node};
use serde::de::Unexpected;
use std::fmt::Display;

/// Scalars longer than this are cut in messages.
const SHOWN_CHARS: usize = 60;

/// A scalar as the YAML 1.2 core schema reads it. Quoted and block scalars are always strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
}

pub(super) fn resolve(text: &str, plain: bool) -> Scalar<'_> {
    if !plain {
        return Scalar::Str(text);
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    if let Some(int) = int(text) {
        return Scalar::Int(int);
    }
    if is_float(text) {
        if let Ok(f) = text.parse::<f64>() {
            return Scalar::Float(f);
        }
    }
    Scalar::Str(text)
}

/// `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`; None beyond 128 bits too.
fn int(text: &str) -> Option<i128> {
    let radix = |digits: &str, radix: u32| {
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            None
        } else {
            i128::from_str_radix(digits, radix).ok()
        }
    };
    if let Some(hex) = text.strip_prefix("0x") {
        return radix(hex, 16);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return radix(oct, 8);
    }
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = radix(digits, 10)?;
    Some(if negative { -magnitude } else { magnitude })
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let whole = digits(&mut i);
    let mut fraction = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        fraction = digits(&mut i);
    } else if whole == 0 {
        return false;
    }
    if whole == 0 && fraction == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Cuts long text for display.
pub(super) fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// What a node is, as in "found …".
pub(super) fn describe(node: &Node) -> String {
    match &node.kind {
        Kind::Map(entries) if entries.is_empty() => "an empty map".into(),
        Kind::Map(_) => "a map".into(),
        Kind::Seq(items) if items.is_empty() => "an empty list".into(),
        Kind::Seq(_) => "a list".into(),
        Kind::Scalar { text, plain } => match resolve(text, *plain) {
            Scalar::Null if text.is_empty() => "an empty value".into(),
            Scalar::Null => format!("null `{text}`"),
            Scalar::Bool(_) => format!("boolean `{text}`"),
            Scalar::Int(_) => format!("integer `{}`", shown(text)),
            Scalar::Float(_) => format!("number `{}`", shown(text)),
            Scalar::Str(_) => format!("string `{}`", shown(text)),
        },
    }
}

/// serde's description of an unexpected value, in YAML words.
pub(super) fn unexpected(u: &Unexpected<'_>) -> String {
    match u {
        Unexpected::Bool(b) => format!("boolean `{b}`"),
        Unexpected::Unsigned(n) => format!("integer `{n}`"),
        Unexpected::Signed(n) => format!("integer `{n}`"),
        Unexpected::Float(f) => format!("number `{f}`"),
        Unexpected::Char(c) => format!("string `{c}`"),
        Unexpected::Str(s) => format!("string `{}`", shown(s)),
        Unexpected::Bytes(_) => "bytes".into(),
        Unexpected::Unit => "null".into(),
        Unexpected::Option => "an optional value".into(),
        Unexpected::NewtypeStruct => "a single value".into(),
        Unexpected::Seq => "a list".into(),
        Unexpected::Map => "a map".into(),
        Unexpected::Enum => "a choice".into(),
        Unexpected::UnitVariant => "a bare choice".into(),
        Unexpected::NewtypeVariant | Unexpected::TupleVariant | Unexpected::StructVariant => {
            "a choice with settings".into()
        }
        Unexpected::Other(other) => (*other).to_string(),
    }
}

/// serde's description of what a visitor expects, in YAML words.
pub(super) fn expected(exp: &dyn Display) -> String {
    let exp = exp.to_string();
    match exp.as_str() {
        "a sequence" => return "a list".into(),
        "a borrowed string" | "a string" | "a char" | "a character" => return "a string".into(),
        "a boolean" => return "`true` or `false`".into(),
        "unit" => return "an empty value".into(),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
            return "a non-negative integer".into();
        }
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => return "an integer".into(),
        "f32" | "f64" => return "a number".into(),
        _ => {}
    }
    if exp.starts_with("struct ") || exp.starts_with("a map") {
        return "a map".into();
    }
    // Tuples and arrays: "tuple variant Lb::Weighted with 2 elements", "a tuple of size 2",
    // "an array of length 2".
    for marker in [" with ", " of size ", " of length "] {
        if let Some((_, rest)) = exp.split_once(marker) {
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !n.is_empty() {
                let s = if n == "1" { "" } else { "s" };
                return format!("a list of {n} item{s}");
            }
        }
    }
    if exp.starts_with("tuple") {
        return "a list".into();
    }
    exp
}

/// "`a`" or "one of `a`, `b`, `c`".
pub(super) fn one_of(names: &[&str]) -> String {
    let quoted = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match names.len() {
        0 => "nothing".into(),
        1 => quoted,
        _ => format!("one of {quoted}"),
    }
}

/// " (did you mean `x`?)" when a candidate is within edit distance 2 of `word`.
pub(super) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// The candidate nearest to `word`, if within edit distance 2.
pub(super) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema_scalars() {
        assert_eq!(resolve("", true), Scalar::Null);
        assert_eq!(resolve("~", true), Scalar::Null);
        assert_eq!(resolve("null", false), Scalar::Str("null"));
        assert_eq!(resolve("True", true), Scalar::Bool(true));
        assert_eq!(resolve("yes", true), Scalar::Str("yes"));
        assert_eq!(resolve("-12", true), Scalar::Int(-12));
        assert_eq!(resolve("+7", true), Scalar::Int(7));
        assert_eq!(resolve("0x1F", true), Scalar::Int(31));
        assert_eq!(resolve("0o17", true), Scalar::Int(15));
        assert_eq!(resolve("8080", false), Scalar::Str("8080"));
        assert_eq!(resolve("1.10", true), Scalar::Float(1.1));
        assert_eq!(resolve(".5", true), Scalar::Float(0.5));
        assert_eq!(resolve("1e3", true), Scalar::Float(1000.0));
        assert_eq!(resolve("-.inf", true), Scalar::Float(f64::NEG_INFINITY));
        for s in ["1.2.3", "inf", "NaN", "1e", ".", "-", "0x", "12ab", "1_000"] {
            assert_eq!(resolve(s, true), Scalar::Str(s), "{s}");
        }
    }

    #[test]
    fn suggestions_within_two_edits() {
        let fields = ["upstreams", "host", "path_prefix"];
        assert_eq!(
            did_you_mean("upstream", &fields),
            " (did you mean `upstreams`?)"
        );
        assert_eq!(did_you_mean("hots", &fields), " (did you mean `host`?)");
        assert_eq!(did_you_mean("timeouts", &fields), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }

    #[test]
    fn serde_expectations_use_yaml_words() {
        let cases = [
            ("a sequence", "a list"),
            ("struct Route", "a map"),
            (
                "tuple variant Lb::Weighted with 2 elements",
                "a list of 2 items",
            ),
            ("a tuple of size 3", "a list of 3 items"),
            ("an array of length 1", "a list of 1 item"),
            ("u16", "a non-negative integer"),
            ("a boolean", "`true` or `false`"),
            ("a duration such as `5s`", "a duration such as `5s`"),
        ];
        for (serde, ours) in cases {
            assert_eq!(expected(&serde), ours);
        }
    }

    #[test]
    fn long_text_is_cut() {
        let long = "x".repeat(100);
        assert_eq!(shown(&long).chars().count(), SHOWN_CHARS + 1);
        assert_eq!(shown("short"), "short");
    }
}
