//! Is every listener really bound? Pingora keeps running when one bind fails (the failing
//! service panics on its own thread), so `/readyz` checks the kernel's socket table for
//! listening sockets owned by this process.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Socket inodes of this process (from `/proc/self/fd`).
fn own_socket_inodes() -> HashSet<u64> {
    let mut out = HashSet::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                let t = target.to_string_lossy();
                if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    if let Ok(n) = n.parse() {
                        out.insert(n);
                    }
                }
            }
        }
    }
    out
}

fn parse_v4(hex: &str) -> Option<IpAddr> {
    let n = u32::from_str_radix(hex, 16).ok()?;
    // The kernel prints the address as a host-order (little-endian) word.
    Some(IpAddr::V4(Ipv4Addr::from(n.to_le_bytes())))
}

fn parse_v6(hex: &str) -> Option<IpAddr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for w in 0..4 {
        let word = u32::from_str_radix(&hex[w * 8..w * 8 + 8], 16).ok()?;
        bytes[w * 4..w * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

/// Listening sockets (address, port) of this process.
pub fn own_listeners() -> Vec<SocketAddr> {
    let inodes = own_socket_inodes();
    let mut out = Vec::new();
    for (file, v6) in [("/proc/self/net/tcp", false), ("/proc/self/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let Ok(inode) = f[9].parse::<u64>() else {
                continue;
            };
            if !inodes.contains(&inode) {
                continue;
            }
            let Some((ip, port)) = f[1].split_once(':') else {
                continue;
            };
            let ip = if v6 { parse_v6(ip) } else { parse_v4(ip) };
            if let (Some(ip), Ok(port)) = (ip, u16::from_str_radix(port, 16)) {
                out.push(SocketAddr::new(ip, port));
            }
        }
    }
    out
}

/// The configured addresses that no socket of ours listens on.
pub fn missing(expected: &[SocketAddr]) -> Vec<SocketAddr> {
    let have = own_listeners();
    expected
        .iter()
        .filter(|e| !have.contains(e))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_own_listener_only() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        assert!(
            missing(&[a]).is_empty(),
            "{a} should be found among {:?}",
            own_listeners()
        );
        drop(l);
        assert_eq!(missing(&[a]), vec![a]);
    }

    #[test]
    fn parses_kernel_hex() {
        assert_eq!(parse_v4("0100007F"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            parse_v6("00000000000000000000000001000000"),
            Some("::1".parse().unwrap())
        );
    }
}
