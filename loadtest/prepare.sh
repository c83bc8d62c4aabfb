#!/usr/bin/env bash
# Writes what the bearer scenarios need into loadtest/scenarios/generated/ (git-ignored): an
# ES256 key, its JWKS (the conf's jwks_file) and 1,000 `Authorization: Bearer` values valid for a day.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${LOADTEST_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/warden-loadtest}"
out="$root/loadtest/scenarios/generated"
mkdir -p "$out"
"$bin" tokens --key "$out/key.p8" --jwks "$out/jwks.json" --out "$out/bearer-tokens.txt" \
    --issuer https://issuer.loadtest.test --audience warden --groups loadtest --count 1000 --ttl 24h
# The generator sends each line as the whole header value.
sed -i 's/^/Bearer /' "$out/bearer-tokens.txt"
