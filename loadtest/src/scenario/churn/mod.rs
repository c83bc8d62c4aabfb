//! The churn drivers and the OpenID provider process: what the churn scenarios do to Warden
//! while load runs, and how each judges the assertions it can see.
//!
//! - `reload_conf_alternating` ([`reload`]): swaps conf files, waits for the new generation,
//!   probes that the decision follows the conf in force.
//! - `kill_restart_upstream` ([`flap`]): stops a backend, waits for Warden to eject it,
//!   starts it again and measures how long Warden takes to send it traffic again.
//! - `login_new_sessions` and `revoke_sessions` ([`sessions`]): browser logins through the
//!   real provider, and revocations through the admin API checked right after the call.
//! - `rotate_keys` ([`keys`]): publishes a new signing key in the issuer's JWKS and retires
//!   the previous one, probing both.

pub mod flap;
pub mod keys;
pub mod probe;
pub mod reload;
pub mod sessions;

use super::driver::{DriverError, Registry, RunContext};
use super::spec::{ChurnAction, ChurnSpec, ProcessKind};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Registers every churn driver and the `oidc` process kind.
pub fn register(r: &mut Registry) {
    r.register_process(ProcessKind::Oidc, |spec, _| {
        Ok(Box::new(sessions::OidcProcess::from_spec(spec)?))
    });
    r.register_churn(ChurnAction::ReloadConfAlternating, |spec, ctx| {
        Ok(Box::new(reload::ReloadConfs::from_spec(spec, ctx)?))
    });
    r.register_churn(ChurnAction::KillRestartUpstream, |spec, _| {
        Ok(Box::new(flap::Flap::from_spec(spec)?))
    });
    r.register_churn(ChurnAction::LoginNewSessions, |spec, ctx| {
        Ok(Box::new(sessions::LoginNew::from_spec(spec, ctx)?))
    });
    r.register_churn(ChurnAction::RevokeSessions, |spec, ctx| {
        Ok(Box::new(sessions::Revoke::from_spec(spec, ctx)?))
    });
    r.register_churn(ChurnAction::RotateKeys, |spec, ctx| {
        Ok(Box::new(keys::RotateKeys::from_spec(spec, ctx)?))
    });
}

/// The action's `params`, as its driver's own strict type.
pub(crate) fn params<T: DeserializeOwned>(spec: &ChurnSpec) -> Result<T, DriverError> {
    let v = serde_json::Value::Object(spec.params.clone().into_iter().collect());
    serde_json::from_value(v)
        .map_err(|e| DriverError::failed(spec.action.name(), format!("params: {e}")))
}

/// `p` relative to the scenario's directory.
pub(crate) fn at(ctx: &RunContext, p: &Path) -> PathBuf {
    ctx.dir.join(p)
}

/// Replaces `path`'s contents at once (write, then rename), as editors and ConfigMaps do:
/// Warden's watcher never sees half a file.
pub(crate) fn replace_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// The first non-empty line of a credentials file (a whole `Authorization` or `Cookie` value).
pub(crate) fn first_line(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("{} is empty", path.display()))
}
