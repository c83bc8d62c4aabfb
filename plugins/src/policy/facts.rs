//! What a policy may know about the request itself, gathered by the gateway before evaluation.

use std::net::IpAddr;

/// The request as policy sees it. Built once per request by the gateway; borrowing only.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    /// The normalised path (`crate::path::normalize`), without the query.
    pub path: &'a str,
    /// The address of the peer the gateway trusts as the client.
    pub client_ip: IpAddr,
    /// The certificate the client presented over mutual TLS, already verified.
    pub client_cert: Option<&'a ClientCert>,
    /// `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    pub cors_preflight: bool,
    /// The current time, Unix seconds (from the gateway's `Clock`).
    pub now_secs: i64,
}

/// A verified client certificate, reduced to what policy can test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub sha256_fingerprint: [u8; 32],
    /// DNS names, email addresses and URIs from the subject alternative name extension.
    pub sans: Vec<String>,
}
