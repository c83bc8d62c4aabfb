#!/usr/bin/env bash
# Warden's resident memory with COUNT live browser sessions (default 1,000,000; issue 7's goal
# is under 2 GiB for a million). Each session is a real login through Warden: its redirect and
# state cookie, a code exchange with `warden-loadtest oidc-stub` (an OpenID provider that signs
# every user in at once, since the node test provider manages ~100 logins/s), ES256 ID-token
# verification, the session store, the session cookie. Every user has an email, a name, an OP
# `sid`, ten groups, an access and a refresh token, as in the store's memory test.
# Prints Warden's VmRSS before and after, the growth per session, and warden_sessions; fails
# when a login fails or a session is missing, never on a memory figure.
# Env: COUNT, PARALLEL (default 32), CARGO_TARGET_DIR.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CARGO_TARGET_DIR:-$root/target}/release"
count="${COUNT:-1000000}"
parallel="${PARALLEL:-32}"
[ -x "$bin/warden-loadtest" ] && [ -x "$bin/warden" ] || (cd "$root" && cargo test --release --workspace --locked --no-run)

work="$(mktemp -d "${TMPDIR:-/tmp}/warden-rss.XXXXXX")"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
head -c 32 /dev/urandom | base64 | tr -d '\n=' > "$work/cookie-secret"
printf 'stub-secret\n' > "$work/oidc-secret"
capacity=$((count + count / 10 + 10))
cat > "$work/warden.yaml" <<YAML
listen: { http: "127.0.0.1:28780" }
admin: { listen: "127.0.0.1:28791" }
access_log: { enabled: false }
identity:
  cookie: { secret_file: $work/cookie-secret, insecure_dev_http: true }
  providers:
    - name: stub
      issuer: "http://127.0.0.1:28782"
      client_id: warden
      client_secret_file: $work/oidc-secret
sessions: { store: memory, memory: { capacity: $capacity } }
routes:
  - name: app
    host: app.rss.test
    upstreams: ["127.0.0.1:28781"]
    auth: { login: stub }
    policy: { allow: [{ groups: [team-00-engineering] }] }
YAML

wait_url() { for _ in $(seq 400); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "$1 never answered" >&2; return 1; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

"$bin/warden-loadtest" upstream --listen 127.0.0.1:28781 > "$work/upstream.log" 2>&1 &
pids+=($!)
"$bin/warden-loadtest" oidc-stub --listen 127.0.0.1:28782 --key "$work/stub.p8" > "$work/stub.log" 2>&1 &
pids+=($!)
wait_url http://127.0.0.1:28782/.well-known/openid-configuration
"$bin/warden" run -c "$work/warden.yaml" > "$work/warden.log" 2>&1 &
warden=$!
pids+=("$warden")
wait_url http://127.0.0.1:28791/readyz

# One login first, so the baseline includes what the first login allocates once (the provider's
# keys, connection pools), not only an idle process.
"$bin/warden-loadtest" sessions-fill --start http://app.rss.test:28780/ --connect 127.0.0.1:28780 --count 1 --parallel 1 > /dev/null
before=$(rss_kib "$warden")
"$bin/warden-loadtest" sessions-fill --start http://app.rss.test:28780/ --connect 127.0.0.1:28780 \
    --count "$count" --parallel "$parallel"
after=$(rss_kib "$warden")
live=$(curl -fsS http://127.0.0.1:28791/metrics | awk '$1 == "warden_sessions" { print $2 }')
echo "warden_sessions: $live"
echo "VmRSS: $((before / 1024)) MiB with 1 session, $((after / 1024)) MiB with $live sessions"
echo "growth: $(( (after - before) * 1024 / count )) bytes per session"
# Every login must have left a live session (the one before the fill included).
if [ "$live" != "$((count + 1))" ]; then
    echo "expected $((count + 1)) live sessions, warden_sessions says $live" >&2
    exit 1
fi
