//! Compact JWS verification: bounded parsing, signature check with a [`KeySet`], claim rules.
//!
//! Order matters for cost: the size caps come before any decoding, the header (needed to pick
//! a key) is parsed under its own cap, and serde_json's recursion limit refuses nesting bombs.

use super::algorithm::{Algorithm, AlgorithmSet};
use super::error::BearerError;
use super::jwk::{KeySet, VerifyingKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Decoded JOSE headers longer than this are refused before parsing.
pub const MAX_HEADER_LEN: usize = 8 * 1024;
/// Headers are flat objects (an embedded `jwk` adds a level); deeper nesting is refused.
const MAX_HEADER_DEPTH: usize = 4;

/// What a token's claims must satisfy, besides a good signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationRules {
    /// The exact `iss`.
    pub issuer: String,
    /// `aud` must name at least one of these; an empty list accepts no token.
    pub audiences: Vec<String>,
    pub algorithms: AlgorithmSet,
    /// Tolerance for `exp`, `nbf` and `iat`, in seconds.
    pub clock_skew_secs: i64,
    /// Claims (dotted paths) that must be present and not null. `exp` is always required.
    pub required_claims: Vec<String>,
}

impl ValidationRules {
    /// Rules with the default algorithms, 30 s of skew and no further required claims.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            algorithms: Algorithm::DEFAULT.into_iter().collect(),
            clock_skew_secs: 30,
            required_claims: Vec::new(),
        }
    }
}

/// A token whose signature and claims were verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// The whole payload (a JSON object).
    pub claims: Value,
    pub exp: i64,
    pub kid: Option<Box<str>>,
    /// The header's `typ` (`logout+jwt` for back-channel logout tokens).
    pub typ: Option<Box<str>>,
    /// The key that verified the signature.
    pub(crate) key_fingerprint: u64,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<IgnoredAny>,
}

/// A token split and decoded whose signature has not been checked yet.
pub(crate) struct Parsed<'t> {
    signing_input: &'t str,
    /// `None` for an `alg` Warden never verifies (`none`, HMAC, unknown): refused when the
    /// signature is checked, after the issuer is known, so refusals are counted per issuer.
    alg: Option<Algorithm>,
    kid: Option<String>,
    typ: Option<String>,
    pub(crate) claims: Value,
    signature: Vec<u8>,
}

/// Whether JSON text nests at most `max` levels. serde_json skips unknown header members
/// without its recursion limit, so the header's depth is bounded here first.
fn nesting_within(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

fn b64(part: &str) -> Result<Vec<u8>, BearerError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| BearerError::Malformed)
}

/// Splits and decodes a compact JWS. Refuses oversize input, anything but three base64url
/// parts, deep or non-object JSON, and `crit` headers.
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, BearerError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(BearerError::TokenTooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BearerError::Malformed);
    };
    // base64 turns 4 characters into 3 bytes: bound the decoded header before decoding it.
    if h.len() / 4 * 3 > MAX_HEADER_LEN {
        return Err(BearerError::TokenTooLarge);
    }
    let header = b64(h)?;
    if !nesting_within(&header, MAX_HEADER_DEPTH) {
        return Err(BearerError::Malformed);
    }
    let header: Header = serde_json::from_slice(&header).map_err(|_| BearerError::Malformed)?;
    if header.crit.is_some() {
        // Critical extensions must be understood to be honoured; Warden understands none.
        return Err(BearerError::Malformed);
    }
    let alg = Algorithm::from_name(&header.alg.ok_or(BearerError::Malformed)?);
    let claims: Value = serde_json::from_slice(&b64(p)?).map_err(|_| BearerError::Malformed)?;
    if !claims.is_object() {
        return Err(BearerError::Malformed);
    }
    let signature = b64(s)?;
    Ok(Parsed {
        signing_input: &token[..h.len() + 1 + p.len()],
        alg,
        kid: header.kid,
        typ: header.typ,
        claims,
        signature,
    })
}

impl Parsed<'_> {
    pub(crate) fn iss(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Checks the signature with the key of `keys` the header designates.
    pub(crate) fn verify_signature<'k>(
        &self,
        keys: &'k KeySet,
        allowed: AlgorithmSet,
    ) -> Result<&'k VerifyingKey, BearerError> {
        let alg = self
            .alg
            .filter(|a| allowed.contains(*a))
            .ok_or(BearerError::UnsupportedAlgorithm)?;
        let key = keys.find(self.kid.as_deref(), alg)?;
        key.verify(alg, self.signing_input.as_bytes(), &self.signature)?;
        Ok(key)
    }

    /// Checks the claims; on success the token is verified.
    pub(crate) fn into_verified(
        self,
        key: &VerifyingKey,
        rules: &ValidationRules,
        now: i64,
    ) -> Result<VerifiedToken, BearerError> {
        let exp = check_claims(&self.claims, rules, now)?;
        Ok(VerifiedToken {
            claims: self.claims,
            exp,
            kid: self.kid.map(Into::into),
            typ: self.typ.map(Into::into),
            key_fingerprint: key.fingerprint(),
        })
    }
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional.
fn numeric_date(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    if v.as_u64().is_some() {
        return Some(i64::MAX);
    }
    // Float to int casts saturate; NaN (not representable in JSON anyway) would become 0.
    v.as_f64()
        .filter(|f| f.is_finite())
        .map(|f| f.floor() as i64)
}

/// Looks up a claim by a dotted path (`realm_access.roles`).
pub(crate) fn claim_at<'v>(claims: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(claims, |v, seg| v.get(seg))
        .filter(|v| !v.is_null())
}

/// Applies the claim rules at time `now` (Unix seconds); returns `exp`.
pub(crate) fn check_claims(
    claims: &Value,
    rules: &ValidationRules,
    now: i64,
) -> Result<i64, BearerError> {
    let skew = rules.clock_skew_secs;
    let exp = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or(BearerError::MissingExp)?;
    if now >= exp.saturating_add(skew) {
        return Err(BearerError::Expired);
    }
    for time_claim in ["nbf", "iat"] {
        match claims.get(time_claim) {
            None => {}
            Some(v) => match numeric_date(v) {
                Some(t) if t.saturating_sub(skew) > now => return Err(BearerError::NotYetValid),
                Some(_) => {}
                None => return Err(BearerError::Malformed),
            },
        }
    }
    if claims.get("iss").and_then(Value::as_str) != Some(rules.issuer.as_str()) {
        return Err(BearerError::BadIssuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => rules.audiences.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| rules.audiences.iter().any(|x| x == a)),
        _ => false,
    };
    if !audience_ok {
        return Err(BearerError::BadAudience);
    }
    if rules
        .required_claims
        .iter()
        .any(|path| claim_at(claims, path).is_none())
    {
        return Err(BearerError::MissingClaim);
    }
    Ok(exp)
}

/// Verifies a compact JWS against a key set and rules at time `now` (Unix seconds), as used
/// for OIDC back-channel logout tokens with the provider's JWKS.
pub fn verify_with_keys(
    token: &str,
    keys: &KeySet,
    rules: &ValidationRules,
    now: i64,
) -> Result<VerifiedToken, BearerError> {
    let parsed = parse(token)?;
    let key = parsed.verify_signature(keys, rules.algorithms)?;
    parsed.into_verified(key, rules, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn rules() -> ValidationRules {
        let mut r = ValidationRules::new("https://issuer.test", vec!["warden".into()]);
        r.required_claims = vec!["sub".into()];
        r
    }

    fn good() -> Value {
        json!({"iss": "https://issuer.test", "aud": "warden", "sub": "u1", "exp": NOW + 60})
    }

    fn check_at(claims: Value, clock: &ManualClock) -> Result<i64, BearerError> {
        check_claims(&claims, &rules(), clock.now_secs())
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        v[key] = value;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        v.as_object_mut().unwrap().remove(key);
        v
    }

    #[test]
    fn good_claims_pass_and_return_exp() {
        let clock = ManualClock::at_secs(NOW);
        assert_eq!(check_at(good(), &clock), Ok(NOW + 60));
    }

    #[test]
    fn exp_is_required_and_numeric() {
        let clock = ManualClock::at_secs(NOW);
        assert_eq!(
            check_at(without(good(), "exp"), &clock),
            Err(BearerError::MissingExp)
        );
        assert_eq!(
            check_at(with(good(), "exp", json!("tomorrow")), &clock),
            Err(BearerError::MissingExp)
        );
        assert_eq!(
            check_at(with(good(), "exp", json!((NOW + 60) as f64 + 0.5)), &clock),
            Ok(NOW + 60)
        );
    }

    #[test]
    fn exp_honours_skew_then_expires() {
        let clock = ManualClock::at_secs(NOW);
        let claims = with(good(), "exp", json!(NOW));
        // 29 s past exp is within the 30 s skew; 30 s past is not.
        clock.advance_secs(29);
        assert_eq!(check_at(claims.clone(), &clock), Ok(NOW));
        clock.advance_secs(1);
        assert_eq!(check_at(claims, &clock), Err(BearerError::Expired));
    }

    #[test]
    fn nbf_and_iat_in_the_future_beyond_skew_are_not_yet_valid() {
        let clock = ManualClock::at_secs(NOW);
        for claim in ["nbf", "iat"] {
            assert_eq!(
                check_at(with(good(), claim, json!(NOW + 30)), &clock),
                Ok(NOW + 60)
            );
            assert_eq!(
                check_at(with(good(), claim, json!(NOW + 31)), &clock),
                Err(BearerError::NotYetValid),
                "{claim}"
            );
            assert_eq!(
                check_at(with(good(), claim, json!("soon")), &clock),
                Err(BearerError::Malformed)
            );
        }
        let clock = ManualClock::at_secs(NOW + 1);
        assert_eq!(
            check_at(with(good(), "nbf", json!(NOW + 31)), &clock),
            Ok(NOW + 60)
        );
    }

    #[test]
    fn iss_must_match_exactly() {
        let clock = ManualClock::at_secs(NOW);
        for iss in [
            json!("https://issuer.test/"),
            json!("https://ISSUER.test"),
            json!(1),
        ] {
            assert_eq!(
                check_at(with(good(), "iss", iss), &clock),
                Err(BearerError::BadIssuer)
            );
        }
        assert_eq!(
            check_at(without(good(), "iss"), &clock),
            Err(BearerError::BadIssuer)
        );
    }

    #[test]
    fn aud_may_be_a_string_or_a_list_naming_a_configured_audience() {
        let clock = ManualClock::at_secs(NOW);
        assert!(check_at(with(good(), "aud", json!(["other", "warden"])), &clock).is_ok());
        for aud in [
            json!("other"),
            json!(["other"]),
            json!([]),
            json!(7),
            json!([["warden"]]),
        ] {
            assert_eq!(
                check_at(with(good(), "aud", aud.clone()), &clock),
                Err(BearerError::BadAudience),
                "{aud}"
            );
        }
        assert_eq!(
            check_at(without(good(), "aud"), &clock),
            Err(BearerError::BadAudience)
        );
        let mut no_audiences = rules();
        no_audiences.audiences.clear();
        assert_eq!(
            check_claims(&good(), &no_audiences, NOW),
            Err(BearerError::BadAudience)
        );
    }

    #[test]
    fn required_claims_must_be_present_and_not_null() {
        let clock = ManualClock::at_secs(NOW);
        assert_eq!(
            check_at(without(good(), "sub"), &clock),
            Err(BearerError::MissingClaim)
        );
        assert_eq!(
            check_at(with(good(), "sub", Value::Null), &clock),
            Err(BearerError::MissingClaim)
        );
        let mut nested = rules();
        nested.required_claims = vec!["org.team".into()];
        assert_eq!(
            check_claims(&good(), &nested, NOW),
            Err(BearerError::MissingClaim)
        );
        let claims = with(good(), "org", json!({"team": "sre"}));
        assert!(check_claims(&claims, &nested, NOW).is_ok());
    }

    fn enc(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn parse_refuses_shapes_that_are_not_compact_jws() {
        let h = enc(&json!({"alg": "RS256"}));
        let p = enc(&good());
        let cases = [
            format!("{h}.{p}"),
            format!("{h}.{p}.sig.extra"),
            format!("{h}.{p}.c2ln=="),
            format!("{h}.{p}.c2ln+/"),
            format!("{h}.e30=.c2ln"),
            format!("{}.{p}.c2ln", enc(&json!("just a string"))),
            format!("{h}.{}.c2ln", enc(&json!([1, 2]))),
            format!("{}.{p}.c2ln", enc(&json!({"kid": "k"}))),
            format!(
                "{}.{p}.c2ln",
                enc(&json!({"alg": "RS256", "crit": ["exp"]}))
            ),
            format!(
                "{}.{p}.c2ln",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","alg":"none"}"#)
            ),
        ];
        for t in cases {
            assert_eq!(parse(&t).err(), Some(BearerError::Malformed), "{t}");
        }
    }

    #[test]
    fn none_and_hmac_are_refused_before_looking_for_keys() {
        let p = enc(&good());
        let all = Algorithm::ALL.into_iter().collect();
        for alg in ["none", "None", "HS256", "HS512", "RSA-OAEP"] {
            let t = format!("{}.{p}.", enc(&json!({"alg": alg})));
            let parsed = parse(&t).unwrap();
            assert_eq!(parsed.alg, None);
            assert_eq!(
                parsed.verify_signature(&KeySet::default(), all).err(),
                Some(BearerError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
        // Supported in general but not allowed by these rules.
        let t = format!("{}.{p}.", enc(&json!({"alg": "PS256"})));
        assert_eq!(
            verify_with_keys(&t, &KeySet::default(), &rules(), NOW).err(),
            Some(BearerError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn size_caps_come_before_decoding() {
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(parse(&huge).err(), Some(BearerError::TokenTooLarge));
        let big_header = format!("{}.e30.c2ln", "A".repeat(MAX_HEADER_LEN / 3 * 4 + 8));
        assert_eq!(parse(&big_header).err(), Some(BearerError::TokenTooLarge));
    }

    #[test]
    fn nesting_bombs_are_refused_by_the_recursion_limit() {
        let bomb = format!("{}{}", "[".repeat(3000), "]".repeat(3000));
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","x":{bomb}}}"#));
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"x":{bomb}}}"#));
        let plain = enc(&json!({"alg": "RS256"}));
        assert_eq!(
            parse(&format!("{header}.e30.c2ln")).err(),
            Some(BearerError::Malformed)
        );
        assert_eq!(
            parse(&format!("{plain}.{payload}.c2ln")).err(),
            Some(BearerError::Malformed)
        );
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert!(nesting_within(br#"{"a":{"b":[1]}}"#, 3));
        assert!(!nesting_within(br#"{"a":{"b":[1]}}"#, 2));
        assert!(nesting_within(br#"{"a":"[[[[[\"[[["}"#, 1));
    }

    #[test]
    fn parse_keeps_the_signing_input_and_header_fields() {
        let h = enc(&json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}));
        let p = enc(&good());
        let t = format!("{h}.{p}.c2ln");
        let parsed = parse(&t).unwrap();
        assert_eq!(parsed.signing_input, format!("{h}.{p}"));
        assert_eq!(parsed.alg, Some(Algorithm::ES256));
        assert_eq!(parsed.kid(), Some("k1"));
        assert_eq!(parsed.iss(), Some("https://issuer.test"));
        assert_eq!(parsed.signature, b"sig");
    }
}
