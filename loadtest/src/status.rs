//! Outcomes of requests: responses by status class, failures by kind, and which statuses count
//! as expected (`--expect-status 200,204,3xx`).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response with this status.
    Response(u16),
    /// The TCP connection or the HTTP handshake failed.
    Connect,
    /// No complete response within the request timeout.
    Timeout,
    /// The connection failed after it was established (reset, protocol error).
    Request,
}

/// Responses by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    #[serde(rename = "1xx")]
    pub s1xx: u64,
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
}

/// Requests that failed, by kind. `unexpected_status` counts complete responses whose status is
/// not in the expected set; the others got no response at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    pub connect: u64,
    pub timeout: u64,
    pub request: u64,
    pub unexpected_status: u64,
}

impl ErrorCounts {
    /// All failures.
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.request + self.unexpected_status
    }
}

/// Counters for a set of requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub status: StatusCounts,
    pub errors: ErrorCounts,
}

impl Tally {
    /// Counts one outcome.
    pub fn add(&mut self, outcome: Outcome, expect: &ExpectStatus) {
        match outcome {
            Outcome::Response(code) => {
                let s = &mut self.status;
                match code {
                    100..=199 => s.s1xx += 1,
                    200..=299 => s.s2xx += 1,
                    300..=399 => s.s3xx += 1,
                    400..=499 => s.s4xx += 1,
                    _ => s.s5xx += 1,
                }
                if !expect.matches(code) {
                    self.errors.unexpected_status += 1;
                }
            }
            Outcome::Connect => self.errors.connect += 1,
            Outcome::Timeout => self.errors.timeout += 1,
            Outcome::Request => self.errors.request += 1,
        }
    }

    /// Adds another tally.
    pub fn merge(&mut self, o: &Tally) {
        let (s, e) = (&mut self.status, &mut self.errors);
        s.s1xx += o.status.s1xx;
        s.s2xx += o.status.s2xx;
        s.s3xx += o.status.s3xx;
        s.s4xx += o.status.s4xx;
        s.s5xx += o.status.s5xx;
        e.connect += o.errors.connect;
        e.timeout += o.errors.timeout;
        e.request += o.errors.request;
        e.unexpected_status += o.errors.unexpected_status;
    }

    /// Requests that got a complete response.
    pub fn responses(&self) -> u64 {
        let s = &self.status;
        s.s1xx + s.s2xx + s.s3xx + s.s4xx + s.s5xx
    }

    /// Every request counted.
    pub fn requests(&self) -> u64 {
        let e = &self.errors;
        self.responses() + e.connect + e.timeout + e.request
    }
}

/// One entry of an expected-status list: a code (`204`) or a class (`2xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusPattern {
    Code(u16),
    Class(u16),
}

/// The statuses that count as success; the default is any 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectStatus(pub Vec<StatusPattern>);

impl Default for ExpectStatus {
    fn default() -> Self {
        Self(vec![StatusPattern::Class(2)])
    }
}

impl ExpectStatus {
    /// Whether `code` is expected.
    pub fn matches(&self, code: u16) -> bool {
        self.0.iter().any(|p| match *p {
            StatusPattern::Code(c) => c == code,
            StatusPattern::Class(c) => code / 100 == c,
        })
    }
}

/// An expected-status list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a status: expected codes like `200` or classes like `2xx`, comma-separated")]
pub struct BadStatus(pub String);

impl FromStr for StatusPattern {
    type Err = BadStatus;

    fn from_str(s: &str) -> Result<Self, BadStatus> {
        let t = s.trim();
        let bad = || BadStatus(t.to_string());
        let b = t.as_bytes();
        if b.len() != 3 {
            return Err(bad());
        }
        if b[1..].eq_ignore_ascii_case(b"xx") {
            return match b[0] {
                c @ b'1'..=b'5' => Ok(StatusPattern::Class(u16::from(c - b'0'))),
                _ => Err(bad()),
            };
        }
        match t.parse::<u16>() {
            Ok(c) if (100..=599).contains(&c) => Ok(StatusPattern::Code(c)),
            _ => Err(bad()),
        }
    }
}

impl FromStr for ExpectStatus {
    type Err = BadStatus;

    fn from_str(s: &str) -> Result<Self, BadStatus> {
        let list = s
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(list))
    }
}

impl fmt::Display for ExpectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match p {
                StatusPattern::Code(c) => write!(f, "{c}")?,
                StatusPattern::Class(c) => write!(f, "{c}xx")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_counted_by_class_and_checked_against_the_expected_list() {
        let expect: ExpectStatus = "200,3xx".parse().unwrap();
        let mut t = Tally::default();
        for o in [
            Outcome::Response(200),
            Outcome::Response(204),
            Outcome::Response(302),
            Outcome::Response(401),
            Outcome::Response(503),
            Outcome::Connect,
            Outcome::Timeout,
            Outcome::Request,
        ] {
            t.add(o, &expect);
        }
        assert_eq!(
            (t.status.s2xx, t.status.s3xx, t.status.s4xx, t.status.s5xx),
            (2, 1, 1, 1)
        );
        // 204, 401 and 503 are not in the list.
        assert_eq!(t.errors.unexpected_status, 3);
        assert_eq!(t.errors.total(), 6);
        assert_eq!((t.responses(), t.requests()), (5, 8));
    }

    #[test]
    fn the_default_expects_any_2xx() {
        let d = ExpectStatus::default();
        assert!(d.matches(200) && d.matches(299));
        assert!(!d.matches(301) && !d.matches(500));
        assert_eq!(d.to_string(), "2xx");
    }

    #[test]
    fn bad_status_lists_name_the_bad_entry() {
        for bad in ["", "20", "2000", "6xx", "abc", "200,,204", "099"] {
            assert!(bad.parse::<ExpectStatus>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "200, 5XX".parse::<ExpectStatus>().map(|e| e.to_string()),
            Ok("200,5xx".to_string())
        );
        assert_eq!(
            "200,abc".parse::<ExpectStatus>().unwrap_err().to_string(),
            "`abc` is not a status: expected codes like `200` or classes like `2xx`, comma-separated"
        );
    }
}
