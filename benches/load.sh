#!/usr/bin/env bash
# Load-run of the HTTP read endpoints with wrk: starts the given binary on loopback with a temp
# data dir, registers one user, creates one API key (scope databases:read), and runs wrk against
# /healthz, /v1/auth/me, the JWKS, and /v1/auth/verify with the API key (?scope=databases:read)
# and with the access token.
#
# Usage:   benches/load.sh target/release/cloudheed-auth
# Env:     PORT (default 18080), DURATION (10s), THREADS (2), CONNECTIONS (64),
#          RUST_LOG (server log level; default info, one line per request, to a file).
# Needs:   wrk (apt-get install -y wrk) and curl. Only ever targets 127.0.0.1.
set -euo pipefail

BIN=${1:?usage: $0 path/to/cloudheed-auth}
PORT=${PORT:-18080}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
BASE="http://127.0.0.1:${PORT}"

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
[[ -x $BIN ]] || { echo "not an executable: $BIN" >&2; exit 1; }
if curl -s -o /dev/null "$BASE/healthz"; then
    echo "something already listens on 127.0.0.1:$PORT; set PORT" >&2
    exit 1
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/config.toml" <<EOF
listen = "127.0.0.1:${PORT}"
data_dir = "${WORK}/data"

[passwords]
scrypt_log_n = 10

[rate_limits]
enabled = false
EOF

"$BIN" --config "$WORK/config.toml" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$BASE/healthz" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS -o /dev/null "$BASE/healthz"

RESPONSE=$(curl -fsS -X POST "$BASE/v1/auth/register" \
    -H 'Content-Type: application/json' \
    -d '{"email":"load@example.com","password":"load-test-password-91","name":"Load Test"}')
TOKEN=$(printf '%s' "$RESPONSE" | grep -o '"token":"[^"]*"' | head -n1 | cut -d'"' -f4)
[[ -n $TOKEN ]] || { echo "no token in register response: $RESPONSE" >&2; exit 1; }
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/v1/auth/me"
curl -fsS -o /dev/null "$BASE/.well-known/jwks.json"

RESPONSE=$(curl -fsS -X POST "$BASE/v1/auth/api-keys" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"load","scopes":["databases:read"]}')
API_KEY=$(printf '%s' "$RESPONSE" | grep -o '"api_key":"[^"]*"' | head -n1 | cut -d'"' -f4)
[[ -n $API_KEY ]] || { echo "no api_key in create response: $RESPONSE" >&2; exit 1; }
VERIFY_KEY_URL="$BASE/v1/auth/verify?scope=databases:read"
curl -fsS -o /dev/null -H "Authorization: Bearer $API_KEY" "$VERIFY_KEY_URL"
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/v1/auth/verify"

echo "server: $BIN ($(nproc) CPUs), wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
for target in healthz me jwks verify_api_key verify_access_token; do
    echo
    echo "=== GET $target ==="
    case $target in
        healthz) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$BASE/healthz" ;;
        me) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
                -H "Authorization: Bearer $TOKEN" "$BASE/v1/auth/me" ;;
        jwks) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
                "$BASE/.well-known/jwks.json" ;;
        verify_api_key) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
                -H "Authorization: Bearer $API_KEY" "$VERIFY_KEY_URL" ;;
        verify_access_token) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
                -H "Authorization: Bearer $TOKEN" "$BASE/v1/auth/verify" ;;
    esac
done
