//! The deserializer's error: a message plus, once known, the node it belongs to.

use super::message::{did_you_mean, expected, one_of, unexpected};
use super::path::Seg;
use super::Location;
use serde::de::{self, Expected, Unexpected};
use std::fmt;

#[derive(Debug)]
pub(super) struct Error {
    pub message: String,
    /// Set by `missing_field`, so the retry loop can tell a consequence of its own pruning.
    pub missing_field: Option<&'static str>,
    /// The failing node. Errors made by `Deserialize` impls (`de::Error::custom` and friends)
    /// start without one; the innermost deserializer they pass through fills it in.
    pub at: Option<At>,
}

#[derive(Debug, Clone)]
pub(super) struct At {
    pub loc: Location,
    pub path: Vec<Seg>,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            missing_field: None,
            at: None,
        }
    }

    /// "unknown field `x`, expected one of `a`, `b` (did you mean `a`?)"
    pub fn unknown_field_message(field: &str, expected: &[&str]) -> String {
        if expected.is_empty() {
            format!("unknown field `{field}`; this map takes no fields")
        } else {
            format!(
                "unknown field `{field}`, expected {}{}",
                one_of(expected),
                did_you_mean(field, expected)
            )
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error::new(format!(
            "expected {}, found {}",
            expected(&Show(exp)),
            unexpected(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error::invalid_type(unexp, exp)
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        Error::new(format!(
            "expected {}, found {len} item{}",
            expected(&Show(exp)),
            if len == 1 { "" } else { "s" }
        ))
    }

    fn unknown_variant(variant: &str, names: &'static [&'static str]) -> Self {
        Error::new(format!(
            "expected {}, found `{variant}`{}",
            one_of(names),
            did_you_mean(variant, names)
        ))
    }

    fn unknown_field(field: &str, names: &'static [&'static str]) -> Self {
        Error::new(Error::unknown_field_message(field, names))
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            message: format!("missing field `{field}`"),
            missing_field: Some(field),
            at: None,
        }
    }

    fn duplicate_field(field: &'static str) -> Self {
        Error::new(format!("duplicate field `{field}`"))
    }
}

/// Adapts `&dyn Expected` to `Display`.
struct Show<'a>(&'a dyn Expected);

impl fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
