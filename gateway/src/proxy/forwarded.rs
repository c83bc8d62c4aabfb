//! `X-Forwarded-*` and `X-Request-Id`: kept only when the direct peer is a trusted proxy,
//! otherwise overwritten from what Warden itself observed. Network location is never trusted
//! by default.

use std::net::IpAddr;

/// The client address for policy and hashing: the direct peer, or, behind trusted proxies,
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, xff: Option<&[u8]>, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let Some(list) = xff.and_then(|v| std::str::from_utf8(v).ok()) else {
        return peer;
    };
    let mut client = peer;
    for hop in list.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// The longest inbound `X-Request-Id` kept.
const MAX_REQUEST_ID: usize = 128;

/// A request's id, held inline: it is made for every request, and a heap string for it was
/// one more allocation each time.
pub type RequestId = arrayvec::ArrayString<MAX_REQUEST_ID>;

/// An inbound request id is kept (from trusted peers) only if it is short and printable.
pub fn valid_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.iter().all(|b| b.is_ascii_graphic())
}

/// The inbound id `v`, if it is one to keep (see [`valid_request_id`]).
pub fn inbound_request_id(v: &[u8]) -> Option<RequestId> {
    if !valid_request_id(v) {
        return None;
    }
    RequestId::from(std::str::from_utf8(v).ok()?).ok()
}

/// A fresh request id: 128 random bits as 32 hex digits. Not a secret, so a fast PRNG serves.
pub fn new_request_id() -> RequestId {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Filled as bytes and copied once: pushing 32 chars onto a String checked capacity and
    // encoding 32 times, a tenth of the request filter's own work.
    let mut hex = [b'0'; 32];
    for (pair, b) in hex
        .chunks_exact_mut(2)
        .zip(fastrand::u128(..).to_be_bytes())
    {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
    // Only hex digits were written, so this is valid UTF-8, and 32 bytes fit: the fallback
    // is never taken.
    std::str::from_utf8(&hex)
        .ok()
        .and_then(|s| RequestId::from(s).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let none = |_| false;
        assert_eq!(
            client_ip(ip("1.2.3.4"), Some(b"9.9.9.9"), none),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn trusted_chain_is_walked_from_the_right() {
        let trusted = |a: IpAddr| a.to_string().starts_with("10.");
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some(b"6.6.6.6, 7.7.7.7, 10.0.0.2"), trusted),
            ip("7.7.7.7")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), None, trusted), ip("10.0.0.1"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some(b"junk"), trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn request_ids() {
        let a = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(a, new_request_id());
        assert!(valid_request_id(b"abc-123"));
        assert!(!valid_request_id(b"a b"));
        assert!(!valid_request_id(&[b'a'; 129]));
        assert_eq!(inbound_request_id(b"abc-123").as_deref(), Some("abc-123"));
        let longest = [b'z'; 128];
        assert_eq!(inbound_request_id(&longest).map(|id| id.len()), Some(128));
        assert_eq!(inbound_request_id(&[b'z'; 129]), None);
        assert_eq!(inbound_request_id(b""), None);
        assert_eq!(inbound_request_id(b"a\tb"), None);
        assert_eq!(inbound_request_id("caf\u{e9}".as_bytes()), None);
    }
}
