#!/usr/bin/env bash
# Every scenario the harness can run, cut to a few seconds each (`--smoke`): fails on a broken
# correctness assertion, never on a timing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
export LOADTEST_BIN="$target/release/warden-loadtest" WARDEN_BIN="$target/release/warden"
# The same build as `cargo test --release --workspace` (same features, so nothing rebuilds
# after the tests); it includes both binaries.
cargo test --release --workspace --locked --no-run
"$root/loadtest/prepare.sh"
status=0
for s in upstream-alone steady-bearer steady-session policy-reload upstream-flaps \
    revocation-churn login-churn key-rotation; do
    echo "--- scenario $s (smoke)"
    "$LOADTEST_BIN" scenario --smoke "$root/loadtest/scenarios/$s.yaml" || status=1
done
echo "--- 2,000 sessions through the stub provider (sessions-rss.sh)"
COUNT=2000 "$root/loadtest/sessions-rss.sh" || status=1
exit $status
