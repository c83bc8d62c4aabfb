#!/usr/bin/env bash
# Warden on one machine, doing its main job: deciding who is asking and whether access holds,
# in front of a local echo app. Nothing external: a local OpenID provider (the tests' node
# oidc-provider) signs people in, and a workload issuer's key and token are generated here.
# Ctrl-C stops everything.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

if ! command -v cmake >/dev/null; then      # pingora's zlib-ng builds with cmake
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq cmake
    else sudo apt-get update -qq && sudo apt-get install -y -qq cmake; fi
fi
command -v node >/dev/null || { echo "Node.js 20 is needed for the local OpenID provider"; exit 1; }
[ -d tests/oidc/node_modules/oidc-provider ] || (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
cargo build --release --locked --bin warden --bin warden-loadtest
bin="${CARGO_TARGET_DIR:-$root/target}/release"

state="$(mktemp -d "${TMPDIR:-/tmp}/warden-demo.XXXXXX")"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# An issuer key with its JWKS, and one token for alice (group dev), valid for a day.
"$bin/warden-loadtest" tokens --key "$state/issuer.p8" --jwks "$state/jwks.json" \
    --out "$state/alice.jwt" --issuer https://issuer.demo.localhost --audience warden \
    --subject-prefix alice --groups dev --count 1 --ttl 24h
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$state/admin-token"
head -c 48 /dev/urandom > "$state/cookie-secret"
secret="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$secret" > "$state/client-secret"
cat > "$state/idp.json" <<JSON
{ "users": [
    { "login": "alice", "password": "alice", "email": "alice@demo.localhost", "name": "Alice", "groups": ["dev"] },
    { "login": "bob", "password": "bob", "email": "bob@demo.localhost", "name": "Bob", "groups": ["sales"] } ],
  "clients": [ { "client_id": "warden", "client_secret": "$secret",
    "redirect_uris": ["http://app.localhost:8080/.warden/callback"],
    "post_logout_redirect_uris": ["http://app.localhost:8080/"] } ] }
JSON
sed "s#@STATE@#$state#g" conf/demo/warden.yaml > "$state/warden.yaml"

python3 conf/demo/echo.py 127.0.0.1:9000 & pids+=($!)
node tests/oidc/server.mjs --config "$state/idp.json" --port 9100 > "$state/idp.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do
    curl -fs http://127.0.0.1:9100/.well-known/openid-configuration >/dev/null && break
    sleep 0.1
done
"$bin/warden" run -c "$state/warden.yaml" 2> "$state/warden.log" & pids+=($!)
for _ in $(seq 100); do
    curl -fs http://127.0.0.1:9901/readyz >/dev/null && break
    kill -0 "${pids[2]}" 2>/dev/null || { cat "$state/warden.log"; exit 1; }
    sleep 0.1
done
curl -fs http://127.0.0.1:9901/readyz >/dev/null || { echo "warden did not get ready"; exit 1; }

cat <<MSG
Warden is serving on http://127.0.0.1:8080 (admin on 127.0.0.1:9901), state in $state

  # people: open http://app.localhost:8080/ in a browser and sign in as alice/alice (group dev:
  # allowed) or bob/bob (denied); /.warden/userinfo shows who you are, /.warden/sign_out ends it.
  curl -si -H 'Host: app.localhost' -H 'Accept: text/html' http://127.0.0.1:8080/   # 302 to sign in

  # public: anyone; a spoofed identity header never reaches the app
  curl -s -H 'Host: public.localhost' -H 'X-Warden-User: root' http://127.0.0.1:8080/

  # api: no token → 401 with a reason; alice's token → the app sees her identity and a signed assertion
  curl -si -H 'Host: api.localhost' http://127.0.0.1:8080/
  curl -s  -H 'Host: api.localhost' -H "Authorization: Bearer \$(cat $state/alice.jwt)" http://127.0.0.1:8080/hello

  # the policy denies /admin, also when disguised
  curl -si -H 'Host: api.localhost' -H "Authorization: Bearer \$(cat $state/alice.jwt)" 'http://127.0.0.1:8080/x/../%61dmin'

  # block alice everywhere, effective on the next request (admin API, token in $state/admin-token)
  curl -s -X POST -H "Authorization: Bearer \$(cat $state/admin-token)" http://127.0.0.1:9901/admin/blocks -d '{"subject":"alice0"}'

  # metrics, access and audit logs
  curl -s http://127.0.0.1:9901/metrics | grep '^warden_'
  tail $state/access.log $state/audit.log

Edit $state/warden.yaml and Warden reloads it (a broken edit is refused, the old conf keeps serving).
Ctrl-C stops the demo.
MSG
wait "${pids[2]}"
