#!/usr/bin/env bash
# Writes what the scenarios need into loadtest/scenarios/generated/ (git-ignored):
# - an ES256 key, its JWKS (the bearer confs' jwks_file) and 1,000 `Authorization: Bearer`
#   values valid for a day;
# - two assertion signing keys (PKCS#8 PEM) for key-rotation;
# - the cookie secret, admin token and OIDC client secret of the session scenarios.
# Conf files the churn drivers swap (policy-active.yaml, key-rotation-active.yaml) and the
# session cookies (sessions-*.txt) are written by the scenarios themselves.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${LOADTEST_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/warden-loadtest}"
out="$root/loadtest/scenarios/generated"
mkdir -p "$out"
"$bin" tokens --key "$out/key.p8" --jwks "$out/jwks.json" --out "$out/bearer-tokens.txt" \
    --issuer https://issuer.loadtest.test --audience warden --groups loadtest --count 1000 --ttl 24h
# The generator sends each line as the whole header value.
sed -i 's/^/Bearer /' "$out/bearer-tokens.txt"
for k in a b; do
    if [ ! -s "$out/assert-$k.pem" ]; then
        # A P-256 key made by the harness (PKCS#8 DER), wrapped as PEM.
        "$bin" tokens --key "$out/assert-$k.p8" --jwks /dev/null --out /dev/null \
            --issuer https://warden.loadtest.test --audience unused --count 1 --ttl 1m
        { echo "-----BEGIN PRIVATE KEY-----"; base64 -w 64 "$out/assert-$k.p8"; echo "-----END PRIVATE KEY-----"; } \
            >"$out/assert-$k.pem"
    fi
done
secret() { [ -s "$1" ] || head -c 32 /dev/urandom | base64 | tr -d '\n=' >"$1"; }
secret "$out/cookie-secret"
secret "$out/admin-token"
# The client secret the `oidc` process kind gives its `warden` client.
printf 'warden-secret\n' >"$out/oidc-secret"
