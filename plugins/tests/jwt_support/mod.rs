//! Shared by the bearer-JWT integration tests.
#![allow(dead_code)]

pub mod keys;
pub mod server;
