//! `rotate_keys`: the issuer's JWKS file (the conf's `jwks_file`) always publishes the key the
//! load's tokens are signed with (`anchor_key`), plus one rotating key. Each tick replaces the
//! rotating key with a new one and, straight away, probes a token signed by the new key: it
//! must be accepted (the unknown `kid` makes Warden re-read the keys; a 401 is a false 401).
//! A token signed by the key just retired must then be refused; if it is accepted the tick
//! fails.
//!
//! Warden re-reads keys for an unknown `kid` at most once per 30 s per issuer, as an
//! attacker-proof bound, so a realistic `every` is longer than that; smoke mode runs one tick.

use super::probe::{ProbeSpec, Prober};
use super::{at, params, replace_file};
use crate::scenario::driver::{Churn, ChurnContext, ChurnEvent, DriverError, RunContext, Verdict};
use crate::scenario::spec::{Assertions, ChurnAction, ChurnSpec};
use crate::tokens::{self, SigningKey, TokenSpec};
use async_trait::async_trait;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Instant;

const NAME: &str = "rotate_keys";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The JWKS file Warden reads; rewritten by this driver.
    jwks: PathBuf,
    /// The ES256 key (PKCS#8 DER) of the load's tokens, and its `kid`.
    anchor_key: PathBuf,
    #[serde(default = "default_kid")]
    anchor_kid: String,
    /// What the probe tokens claim: the issuer's `iss`, an accepted `aud`, groups the route
    /// allows.
    issuer: String,
    audience: String,
    #[serde(default)]
    groups: Vec<String>,
    probe: ProbeSpec,
}

fn default_kid() -> String {
    "loadtest-1".into()
}

pub struct RotateKeys {
    jwks: PathBuf,
    anchor: serde_json::Value,
    token: TokenSpec,
    prober: Prober,
    previous: Option<(String, SigningKey)>,
    rotations: u64,
    refused: Vec<String>,
}

impl RotateKeys {
    /// Loads the anchor key and publishes it alone.
    pub fn from_spec(spec: &ChurnSpec, ctx: &RunContext) -> Result<Self, DriverError> {
        let p: Params = params(spec)?;
        let fail = |m: String| DriverError::failed(NAME, m);
        let anchor = SigningKey::load("ES256", &at(ctx, &p.anchor_key))
            .map_err(|e| fail(format!("{e:#}")))?;
        let anchor = anchor.jwks(&p.anchor_kid)["keys"][0].clone();
        let jwks = at(ctx, &p.jwks);
        let me = Self {
            jwks,
            anchor,
            token: TokenSpec {
                issuer: p.issuer,
                audience: p.audience,
                subject_prefix: "key-rotation-probe-".into(),
                groups: p.groups,
                count: 1,
                ttl_secs: 600,
                kid: String::new(),
            },
            prober: Prober::new(p.probe).map_err(fail)?,
            previous: None,
            rotations: 0,
            refused: Vec::new(),
        };
        me.publish(None).map_err(fail)?;
        Ok(me)
    }

    fn publish(&self, rotating: Option<serde_json::Value>) -> Result<(), String> {
        let mut keys = vec![self.anchor.clone()];
        keys.extend(rotating);
        let text = serde_json::json!({ "keys": keys }).to_string();
        replace_file(&self.jwks, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.jwks.display()))
    }

    async fn probe_with(&self, kid: &str, key: &SigningKey) -> Result<u16, String> {
        let spec = TokenSpec {
            kid: kid.to_string(),
            ..self.token.clone()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs() as i64;
        let token = tokens::mint(key, &spec, now).map_err(|e| format!("{e:#}"))?;
        self.prober
            .status("authorization", &format!("Bearer {}", token.trim()))
            .await
    }
}

#[async_trait]
impl Churn for RotateKeys {
    async fn tick(&mut self, _ctx: &mut ChurnContext<'_>) -> Result<ChurnEvent, DriverError> {
        let fail = |m: String| DriverError::failed(NAME, m);
        let at = Instant::now();
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| fail("cannot generate a P-256 key".into()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
            .map_err(|_| fail("cannot load the new key".into()))?;
        self.rotations += 1;
        let kid = format!("rotated-{}-{}", std::process::id(), self.rotations);
        let key = SigningKey::Es256(pair);
        self.publish(Some(key.jwks(&kid)["keys"][0].clone()))
            .map_err(fail)?;
        let new = self.probe_with(&kid, &key).await.map_err(fail)?;
        if new != 200 {
            self.refused.push(format!(
                "a token of the newly published key `{kid}` got {new}"
            ));
        }
        let mut detail = format!("published `{kid}`: its token got {new}");
        if let Some((old_kid, old)) = &self.previous {
            let got = self.probe_with(old_kid, old).await.map_err(fail)?;
            if got != 401 {
                return Err(fail(format!(
                    "a token of the retired key `{old_kid}` got {got}, not 401"
                )));
            }
            detail.push_str(&format!("; retired `{old_kid}`: its token got {got}"));
        }
        self.previous = Some((kid, key));
        Ok(ChurnEvent {
            at,
            action: ChurnAction::RotateKeys,
            detail,
        })
    }

    fn judge(&self, a: &Assertions) -> Vec<(&'static str, Verdict)> {
        if !a.no_false_401 || self.rotations == 0 {
            return Vec::new();
        }
        let v = if self.refused.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(self.refused.join("; "))
        };
        vec![("no_false_401", v)]
    }
}
