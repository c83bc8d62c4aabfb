//! Allocation-free text for every request's access-log line and X-Forwarded-For: `Display` for
//! addresses and a full timestamp printer cost more than the rest of the line together.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `ip` as `Display` would write it.
pub fn push_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                buf.extend_from_slice(digits.format(octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(buf, "{v6}");
        }
    }
}

/// Appends `addr` as `Display` would write it.
pub fn push_socket_addr(buf: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            push_ip(buf, IpAddr::V4(*a.ip()));
            buf.push(b':');
            buf.extend_from_slice(itoa::Buffer::new().format(a.port()).as_bytes());
        }
        SocketAddr::V6(a) => {
            use std::io::Write;
            let _ = write!(buf, "{a}");
        }
    }
}

/// Appends `v` in decimal, zero-padded to `width` digits.
pub fn push_padded(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let s = digits.format(v);
    buf.extend(std::iter::repeat_n(b'0', width.saturating_sub(s.len())));
    buf.extend_from_slice(s.as_bytes());
}

thread_local! {
    /// The last second printed on this thread and its `YYYY-MM-DDTHH:MM:SS`: calendar maths
    /// once a second instead of once a request.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// Appends the current time as RFC 3339 UTC with microseconds: `2026-11-27T03:55:01.512501Z`.
pub fn push_now(buf: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    push_time(buf, now.as_secs(), now.subsec_micros());
}

fn push_time(buf: &mut Vec<u8>, secs: u64, micros: u32) {
    let (cached, mut text) = SECOND.get();
    if cached != secs {
        let printed = i64::try_from(secs)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
            .unwrap_or_default();
        if printed.len() == text.len() {
            text.copy_from_slice(printed.as_bytes());
            SECOND.set((secs, text));
        } else {
            // Outside years 0000–9999: not cached, printed whole.
            buf.extend_from_slice(printed.as_bytes());
            buf.push(b'.');
            push_padded(buf, micros.into(), 6);
            buf.push(b'Z');
            return;
        }
    }
    buf.extend_from_slice(&text);
    buf.push(b'.');
    push_padded(buf, micros.into(), 6);
    buf.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut b = Vec::new();
        f(&mut b);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn addresses_print_as_display_does() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(text(|b| push_ip(b, ip)), ip.to_string());
        }
        for a in ["127.0.0.1:8080", "10.0.0.1:1", "[::1]:443"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(text(|b| push_socket_addr(b, a)), a.to_string());
        }
    }

    #[test]
    fn times_are_rfc3339_with_microseconds() {
        assert_eq!(
            text(|b| push_time(b, 1_795_751_701, 512_501)),
            "2026-11-27T03:55:01.512501Z"
        );
        // The cached second is reused, and replaced when the second changes.
        assert_eq!(
            text(|b| push_time(b, 1_795_751_701, 7)),
            "2026-11-27T03:55:01.000007Z"
        );
        assert_eq!(
            text(|b| push_time(b, 1_795_751_702, 0)),
            "2026-11-27T03:55:02.000000Z"
        );
        let now = text(push_now);
        assert!(now.parse::<jiff::Timestamp>().is_ok(), "{now}");
    }

    #[test]
    fn padding() {
        assert_eq!(text(|b| push_padded(b, 7, 3)), "007");
        assert_eq!(text(|b| push_padded(b, 1234, 3)), "1234");
    }
}
