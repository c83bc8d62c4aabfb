//! Warden's gateway: conf loading, the Pingora proxy, routing, upstream pools, TLS, the admin
//! listener. Identity logic lives in `warden_plugins`.
#![deny(unsafe_code)]

pub mod admin;
pub mod allocator;
pub mod background;
pub mod check;
pub mod client_certs;
pub mod conf;
pub mod explain;
pub mod identity;
pub mod jsonlog;
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod proxy;
pub mod readiness;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod streams;
pub mod textfmt;
pub mod tls;
pub mod triggers;
pub mod upstream;
