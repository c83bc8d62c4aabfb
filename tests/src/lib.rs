//! Test support for Warden's end-to-end tests: the real `warden` binary, real upstream servers
//! and real certificates, all on 127.0.0.1 with ports the OS picks.

pub mod certs;
pub mod oidc;
pub mod upstream;
pub mod warden;

pub use oidc::OidcProvider;
pub use upstream::Upstream;
pub use warden::Warden;

/// A port that was free a moment ago (bind to 0, read, release). Warden needs concrete
/// addresses in its conf, so this tiny race is unavoidable; ports come from the OS's ephemeral
/// range and are not reused immediately.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// An HTTP client that never follows redirects, so tests see what Warden answered.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}
