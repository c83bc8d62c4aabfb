//! `warden check`: everything a start would verify, without starting anything.

use crate::conf;
use crate::snapshot::{BuildMode, Snapshot};
use std::path::Path;

/// All errors in the conf at `path`, located; empty when it is valid.
pub fn check(path: &Path) -> Vec<conf::ConfError> {
    let loaded = match conf::load(path) {
        Ok(l) => l,
        Err(errs) => return errs,
    };
    match crate::background::block_on(Snapshot::build(
        loaded.conf.clone(),
        0,
        None,
        &warden_plugins::clock::system(),
        BuildMode::Check,
    )) {
        Ok(_) => Vec::new(),
        Err(errs) => loaded.locate(errs),
    }
}
