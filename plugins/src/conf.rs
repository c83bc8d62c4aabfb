//! Building blocks shared by every conf section: human durations (`5s`), sizes (`1MiB`) and
//! the field-addressed errors that `warden check` turns into `file:line:column` messages.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// A problem found in a conf section after it was parsed, addressed by its field path relative
/// to the section (`allow[0].groups`); the conf loader prefixes the section path and resolves it
/// to a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Re-addresses the error under `prefix` (`routes[2].policy` + `allow[0]`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = join_path(prefix, &self.path);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Joins field paths: `a` + `b` = `a.b`, `a` + `[0]` = `a[0]`, `` + `b` = `b`.
pub fn join_path(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else if rest.is_empty() {
        prefix.to_string()
    } else if rest.starts_with('[') {
        format!("{prefix}{rest}")
    } else {
        format!("{prefix}.{rest}")
    }
}

thread_local! {
    static BASE_DIR: std::cell::RefCell<Option<std::path::PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a conf parse) with relative [`ConfPath`]s resolved against `dir`, the directory
/// of the conf file: `cert: tls/app.crt` next to the conf works wherever Warden is started.
pub fn with_base_dir<T>(dir: &std::path::Path, f: impl FnOnce() -> T) -> T {
    let prev = BASE_DIR.with(|b| b.replace(Some(dir.to_path_buf())));
    let out = f();
    BASE_DIR.with(|b| *b.borrow_mut() = prev);
    out
}

/// A file path in conf; relative paths are relative to the conf file's directory. Messages
/// show the path as written, so they read the same on every machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfPath {
    resolved: std::path::PathBuf,
    written: String,
}

impl ConfPath {
    pub fn new(written: impl Into<String>) -> Self {
        let written = written.into();
        Self {
            resolved: written.clone().into(),
            written,
        }
    }

    /// The path to open.
    pub fn path(&self) -> &std::path::Path {
        &self.resolved
    }

    /// The path as the conf wrote it.
    pub fn display(&self) -> &str {
        &self.written
    }
}

impl std::fmt::Display for ConfPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl AsRef<std::path::Path> for ConfPath {
    fn as_ref(&self) -> &std::path::Path {
        &self.resolved
    }
}

impl<'de> Deserialize<'de> for ConfPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(de::Error::custom("a file path cannot be empty"));
        }
        let p = std::path::PathBuf::from(&s);
        let resolved = if p.is_absolute() {
            p
        } else {
            BASE_DIR.with(|b| match &*b.borrow() {
                Some(base) => base.join(&p),
                None => p,
            })
        };
        Ok(ConfPath {
            resolved,
            written: s,
        })
    }
}

/// A duration written as `250ms`, `5s`, `10m`, `12h`, `7d` or a sum like `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    pub fn get(self) -> std::time::Duration {
        self.0
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

pub const DURATION_EXPECTED: &str =
    "a duration such as `250ms`, `5s`, `10m`, `12h`, `7d` or `1h30m`";

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not {DURATION_EXPECTED}");
        let s = s.trim();
        if s.is_empty() {
            return Err(bad());
        }
        let mut total: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit_ms: u128 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total = n
                .checked_mul(unit_ms)
                .and_then(|v| total.checked_add(v))
                .filter(|v| *v <= u64::MAX as u128)
                .ok_or_else(|| format!("`{s}` is too long a duration"))?;
        }
        Ok(Duration(std::time::Duration::from_millis(total as u64)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A size written as `512`, `64KiB`, `1MiB`, `2GiB` (binary) or `10kB`, `5MB` (decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

pub const SIZE_EXPECTED: &str = "a size such as `512`, `64KiB`, `1MiB`, `2GiB`, `10kB` or `5MB`";

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not {SIZE_EXPECTED}");
        let t = s.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = t[..digits].parse().map_err(|_| bad())?;
        let mult: u64 = match t[digits..].trim_start() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(SIZE_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let d = |s: &str| s.parse::<Duration>().map(|d| d.0.as_millis());
        assert_eq!(d("250ms"), Ok(250));
        assert_eq!(d("5s"), Ok(5000));
        assert_eq!(d("10m"), Ok(600_000));
        assert_eq!(d("1h30m"), Ok(5_400_000));
        assert_eq!(d("7d"), Ok(604_800_000));
        for bad in ["", "5", "s", "5x", "-5s", "5 s", "1.5s"] {
            assert!(d(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn sizes_parse() {
        let s = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(s("512"), Ok(512));
        assert_eq!(s("64KiB"), Ok(65_536));
        assert_eq!(s("1MiB"), Ok(1_048_576));
        assert_eq!(s("10kB"), Ok(10_000));
        assert!(s("1XB").is_err());
        assert!(s("MiB").is_err());
        assert!(s("99999999999999GiB").is_err());
    }

    #[test]
    fn conf_paths_are_relative_to_the_conf_dir() {
        let parse = |s: &str| {
            serde_json::from_value::<ConfPath>(serde_json::json!(s)).map(|p| p.path().to_path_buf())
        };
        let base = std::path::Path::new("/etc/warden");
        assert_eq!(
            with_base_dir(base, || parse("tls/a.crt")).ok(),
            Some(base.join("tls/a.crt"))
        );
        assert_eq!(
            with_base_dir(base, || parse("/abs/a.crt")).ok(),
            Some("/abs/a.crt".into())
        );
        assert!(parse("").is_err());
        let p = with_base_dir(base, || {
            serde_json::from_value::<ConfPath>(serde_json::json!("tls/a.crt"))
        })
        .unwrap();
        assert_eq!(p.to_string(), "tls/a.crt");
    }

    #[test]
    fn paths_join() {
        assert_eq!(join_path("routes[1]", "policy"), "routes[1].policy");
        assert_eq!(join_path("routes", "[1]"), "routes[1]");
        assert_eq!(join_path("", "x"), "x");
        assert_eq!(
            FieldError::new("allow[0]", "m")
                .under("routes[2].policy")
                .path,
            "routes[2].policy.allow[0]"
        );
    }
}
