//! Identity values as header values.
//!
//! `X-Warden-*` values are **percent-encoded UTF-8** wherever they hold anything but printable
//! ASCII: every byte outside `!`..`~`, every `%`, a space at either end, and (inside lists such
//! as `X-Warden-Groups`) every `,` becomes `%XX`. So `José` is sent as `Jos%C3%A9`, a group
//! `a,b` as `a%2Cb`, and a CR or LF can never reach the upstream. Plain ASCII values without
//! `%` (nearly all subjects, emails and group names) are sent unchanged; upstreams that may see
//! other values decode each list item with any standard percent-decoder.
//!
//! Kubernetes reads impersonation values as they are, so those are sent raw (UTF-8 is allowed)
//! and refused when they hold control characters ([`raw_value`]).

use super::AnnotateError;
use http::HeaderValue;
use serde_json::Value;

/// Appends `s` percent-encoded as described in the module docs; `list_item` also escapes `,`.
pub(crate) fn encode_into(out: &mut String, s: &str, list_item: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let last = s.len().saturating_sub(1);
    for (i, b) in s.bytes().enumerate() {
        let raw = match b {
            b'%' => false,
            b',' => !list_item,
            b' ' => i != 0 && i != last,
            0x21..=0x7e => true,
            _ => false,
        };
        if raw {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
}

/// `s` encoded as a header value.
pub fn encoded_value(s: &str) -> HeaderValue {
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s, false);
    ascii_value(out)
}

/// A value made only of printable ASCII and interior spaces by [`encode_into`].
pub(crate) fn ascii_value(s: String) -> HeaderValue {
    // Every byte is 0x20..=0x7e (spaces only inside), which `HeaderValue` always accepts; the
    // fallback is unreachable and would only send an empty value.
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Appends a claim as header text: strings as they are (encoded), numbers and booleans as their
/// JSON text, arrays as comma-joined items (each encoded as a list item, nested values as JSON),
/// objects as compact JSON. Returns false, appending nothing, for `null` and empty arrays.
pub(crate) fn claim_text(v: &Value, out: &mut String) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => {
            encode_into(out, s, false);
            true
        }
        Value::Number(_) | Value::Bool(_) => {
            out.push_str(&v.to_string());
            true
        }
        Value::Object(_) => {
            encode_into(out, &v.to_string(), false);
            true
        }
        Value::Array(items) => {
            let mut any = false;
            for item in items.iter().filter(|i| !i.is_null()) {
                if any {
                    out.push(',');
                }
                any = true;
                match item {
                    Value::String(s) => encode_into(out, s, true),
                    Value::Number(_) | Value::Bool(_) => out.push_str(&item.to_string()),
                    _ => encode_into(out, &item.to_string(), true),
                }
            }
            any
        }
    }
}

/// The plain strings a claim holds, for headers repeated once per value (Kubernetes extras):
/// a string, each item of an array, numbers and booleans as text, objects as JSON.
pub(crate) fn claim_values(v: &Value) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

/// `s` as it is, for Kubernetes; refused when empty or holding control characters (CR, LF,
/// NUL, DEL, tabs: nothing a user name or group may contain).
pub(crate) fn raw_value(s: &str, what: &'static str) -> Result<HeaderValue, AnnotateError> {
    if s.is_empty() || s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(AnnotateError::InvalidValue { what });
    }
    HeaderValue::from_bytes(s.as_bytes()).map_err(|_| AnnotateError::InvalidValue { what })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enc(s: &str, list: bool) -> String {
        let mut o = String::new();
        encode_into(&mut o, s, list);
        o
    }

    #[test]
    fn ascii_values_pass_unchanged() {
        for s in [
            "alice",
            "alice@example.com",
            "CN=Alice Smith,O=Acme",
            "a:b/c+d=e",
        ] {
            assert_eq!(enc(s, false), s);
        }
    }

    #[test]
    fn everything_else_is_percent_encoded() {
        assert_eq!(enc("José", false), "Jos%C3%A9");
        assert_eq!(enc("50%", false), "50%25");
        assert_eq!(
            enc("a\r\nX-Warden-User: root", false),
            "a%0D%0AX-Warden-User: root"
        );
        assert_eq!(enc("\0\t\x7f", false), "%00%09%7F");
        assert_eq!(enc(" padded ", false), "%20padded%20");
        assert_eq!(enc("a,b", true), "a%2Cb");
        assert_eq!(enc("a,b", false), "a,b");
    }

    #[test]
    fn encoded_values_are_valid_headers() {
        let v = encoded_value("Zoë\r\n");
        assert_eq!(v.to_str().unwrap(), "Zo%C3%AB%0D%0A");
    }

    #[test]
    fn claims_become_text() {
        let t = |v: Value| {
            let mut o = String::new();
            claim_text(&v, &mut o).then_some(o)
        };
        assert_eq!(t(json!("gold")).as_deref(), Some("gold"));
        assert_eq!(t(json!(42)).as_deref(), Some("42"));
        assert_eq!(t(json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(t(json!(true)).as_deref(), Some("true"));
        assert_eq!(
            t(json!(["a", "b,c", 3, null])).as_deref(),
            Some("a,b%2Cc,3")
        );
        assert_eq!(t(json!({"k": "v"})).as_deref(), Some(r#"{"k":"v"}"#));
        assert_eq!(
            t(json!([{"k": 1}])).as_deref(),
            Some(r#"{"k":1}"#),
            "nested objects as JSON"
        );
        assert_eq!(t(json!(null)), None);
        assert_eq!(t(json!([])), None);
        assert_eq!(t(json!([null])), None);
    }

    #[test]
    fn claim_values_split_arrays() {
        assert_eq!(claim_values(&json!(["view", "dev"])), ["view", "dev"]);
        assert_eq!(claim_values(&json!("x")), ["x"]);
        assert_eq!(claim_values(&json!(7)), ["7"]);
        assert!(claim_values(&json!(null)).is_empty());
    }

    #[test]
    fn raw_values_refuse_control_characters_and_emptiness() {
        assert_eq!(
            raw_value("jane@example.com", "user").unwrap(),
            "jane@example.com"
        );
        assert_eq!(
            raw_value("Zoë", "user").unwrap().as_bytes(),
            "Zoë".as_bytes()
        );
        for bad in ["", "a\r\nb", "a\nb", "a\0", "a\tb", "\x7f"] {
            assert_eq!(
                raw_value(bad, "user"),
                Err(AnnotateError::InvalidValue { what: "user" }),
                "{bad:?}"
            );
        }
    }
}
