//! Server-side sessions: what Warden remembers about a signed-in browser, where it keeps it,
//! how the browser proves which session is its own (a signed cookie), and how an operator ends
//! access at once (revocation, blocks).
//!
//! - [`Session`] holds only what requests need (identity, the OP session id for back-channel
//!   logout, the refresh token) — never the raw ID token.
//! - [`SessionStore`] is the store contract; [`MemoryStore`] is the one-replica implementation.
//! - [`cookie`] signs and checks cookie values; [`cookie_conf`] is the `identity.cookie` conf
//!   section and the `Set-Cookie` strings; [`cookie_header`] reads and strips `Cookie` headers.
//! - [`blocks`] refuses chosen subjects or emails on every request, sessions and tokens alike.

pub mod blocks;
pub mod cookie;
pub mod cookie_conf;
pub mod cookie_header;
mod id;
mod ids;
mod memory;
mod record;
mod secret;
mod store;

pub use blocks::{Block, BlockList};
pub use cookie::{CookieError, CookieKey, CookieKeyError, CookieSecret};
pub use cookie_conf::CookieConf;
pub use id::{IdHashBuilder, RandomError, SessionHandle, SessionId, SESSION_ID_LEN};
pub use memory::{MemoryStore, MemoryStoreConf};
pub use record::{NewSession, Profile, Session, SessionLifetime, SessionState, Tokens};
pub use secret::Secret;
pub use store::{RevokeReason, Selector, SessionStore, SessionSummary, StoreError};

use std::borrow::Cow;

/// The form under which emails are compared, indexed and blocked: lowercase. Borrows when the
/// email is already lowercase ASCII (the common case), so hot paths do not allocate.
pub fn email_key(email: &str) -> Cow<'_, str> {
    if email.is_ascii() {
        if email.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(email.to_ascii_lowercase())
        } else {
            Cow::Borrowed(email)
        }
    } else {
        Cow::Owned(email.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_keys_are_lowercase_and_borrow_when_they_can() {
        assert!(matches!(email_key("ann@example.com"), Cow::Borrowed(_)));
        assert_eq!(email_key("Ann@Example.COM"), "ann@example.com");
        assert_eq!(email_key("ÄNN@example.com"), "änn@example.com");
    }
}
