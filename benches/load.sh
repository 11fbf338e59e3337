#!/usr/bin/env bash
# Load run for the targets of issue 11 ("Hot paths at the hardware limit"): one run measures every
# row of its table with wrk on loopback and prints each ratio against its target, PASS/FAIL.
#
#   verify with an API key           >= 0.75 x /healthz
#   /me with an access token         >= 0.5  x /healthz   (token already seen)
#   verify with an access token      >= 0.5  x /healthz
#   refresh, CONNECTIONS clients     >= 4    x refresh, 1 client
#   refresh, users with 100 sessions >= 0.8  x refresh, users with 1 session
#   p99 of /me at CONNECTIONS        <= 5 ms
# (the JWKS is measured too, for reference, without a target)
#
# It starts the given binary on 127.0.0.1 with a temp data dir, scrypt_log_n = 10 and rate limits
# off, prepares users, sessions and an API key, runs wrk per row, and always exits 0 once the runs
# are done: it is a measurement, and a FAIL row is a finding, not an error.
#
# Usage:   benches/load.sh target/release/cloudheed-auth
# Env:     PORT (default 18080), DURATION (8s per run), THREADS (2), CONNECTIONS (64),
#          SESSION_CLIENTS (4: concurrent chains in the 1-vs-100-sessions rows),
#          RUST_LOG (server log level; default info, one line per request),
#          SERVER_LOG (where those lines go; default /dev/null: a file grows by about a
#          gigabyte per run, and the kernel then throttles the server's writes, which skews every
#          later row; set a path to keep them for the diagnostics at the end),
#          STORE (redb, the default, or postgres: the script then starts a throwaway PostgreSQL of
#          its own on a free 127.0.0.1 port in a temp dir, creates a database, points the server
#          at it with [store] backend = "postgres", pool_size = PG_POOL_SIZE (32), and stops and
#          removes it on exit; its log is printed if it fails to start).
# Needs:   wrk (apt-get install -y wrk), curl, python3. Only ever targets 127.0.0.1.
#          With STORE=postgres also Debian's postgresql package (/usr/lib/postgresql/*/bin), and
#          root (initdb and pg_ctl run as the postgres user through runuser) or to be run as a user
#          who may run them.
# Takes:   about 9 x DURATION plus ~10 s of setup.
set -euo pipefail

BIN=${1:?usage: $0 path/to/cloudheed-auth}
PORT=${PORT:-18080}
DURATION=${DURATION:-8s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
SESSION_CLIENTS=${SESSION_CLIENTS:-4}
STORE=${STORE:-redb}
PG_POOL_SIZE=${PG_POOL_SIZE:-32}
BASE="http://127.0.0.1:${PORT}"
BENCHES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PASSWORD=load-test-password-91
# tokens.max_sessions_per_user defaults to 100: a user at the default cap.
MANY_SESSIONS=100

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }
[[ -x $BIN ]] || { echo "not an executable: $BIN" >&2; exit 1; }
case $STORE in
    redb | postgres) ;;
    *) echo "STORE must be redb or postgres, not $STORE" >&2; exit 1 ;;
esac
if ((THREADS > CONNECTIONS)); then
    echo "THREADS ($THREADS) must not exceed CONNECTIONS ($CONNECTIONS)" >&2
    exit 1
fi
if curl -s -o /dev/null "$BASE/healthz"; then
    echo "something already listens on 127.0.0.1:$PORT; set PORT" >&2
    exit 1
fi

# All load comes from one address, and wrk's connections from one run may still be closing when
# the next run opens its own: at the default per-address cap (64) a run at CONNECTIONS = 64 gets
# some connections refused, and in a refresh run each refusal ends a chain.
CONNECTION_CAP=$((2 * CONNECTIONS + 16))

WORK=$(mktemp -d)
SERVER_PID=
PG_DIR= PG_BIN= PG_STARTED= PG_PID=
# as_postgres TOOL ARGS...: runs a PostgreSQL tool as the postgres user (initdb refuses root).
as_postgres() {
    local tool=$1
    shift
    if ((EUID == 0)); then
        runuser -u postgres -- "$PG_BIN/$tool" "$@"
    else
        "$PG_BIN/$tool" "$@"
    fi
}
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n $PG_STARTED ]]; then
        as_postgres pg_ctl -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    [[ -z $PG_DIR ]] || rm -rf "$PG_DIR"
    rm -rf "$WORK"
}
trap cleanup EXIT

STORE_SECTION=
if [[ $STORE == postgres ]]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [[ -n $PG_BIN && -x $PG_BIN/initdb ]] ||
        { echo "PostgreSQL not found: apt-get install -y postgresql" >&2; exit 1; }
    # A dir of its own: $WORK is private to this user, and the server runs as postgres.
    PG_DIR=$(mktemp -d /tmp/cloudheed-load-pg.XXXXXX)
    ((EUID != 0)) || chown postgres "$PG_DIR"
    PG_PORT=$(python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
')
    PG_DB=cloudheed_load
    as_postgres initdb -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; exit 1; }
    PG_STARTED=1
    as_postgres pg_ctl -D "$PG_DIR/data" -l "$PG_DIR/pg.log" -w \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null ||
        { echo "PostgreSQL did not start:" >&2; cat "$PG_DIR/pg.log" >&2; exit 1; }
    as_postgres createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres "$PG_DB"
    # The postmaster, whose CPU (and its backends') is counted apart from "other" below.
    PG_PID=$(head -n1 "$PG_DIR/data/postmaster.pid")
    STORE_SECTION="
[store]
backend = \"postgres\"
url = \"postgres://postgres@127.0.0.1:${PG_PORT}/${PG_DB}\"
pool_size = ${PG_POOL_SIZE}"
fi

cat >"$WORK/config.toml" <<EOF
listen = "127.0.0.1:${PORT}"
data_dir = "${WORK}/data"

[passwords]
scrypt_log_n = 10

[rate_limits]
enabled = false

[limits]
max_connections = $((CONNECTION_CAP > 1024 ? CONNECTION_CAP : 1024))
max_connections_per_address = ${CONNECTION_CAP}
${STORE_SECTION}
EOF

SERVER_LOG=${SERVER_LOG:-/dev/null}
"$BIN" --config "$WORK/config.toml" serve >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$BASE/healthz" && break
    kill -0 "$SERVER_PID" 2>/dev/null || {
        echo "the server exited; rerun with SERVER_LOG=/tmp/server.log to see why" >&2
        exit 1
    }
    sleep 0.1
done
curl -fsS -o /dev/null "$BASE/healthz"
# Memory budget (DESIGN: idle <= 15 MiB; <= 64 MiB under load with full caches).
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; }
RSS_IDLE=$(rss_kib)

# json_field FIELD: FIELD of the JSON object on stdin, or a message and failure.
json_field() {
    python3 -c '
import json, sys
field = sys.argv[1]
text = sys.stdin.read()
try:
    print(json.loads(text)[field])
except (ValueError, KeyError, TypeError):
    sys.exit(f"no {field!r} in response: {text[:300]}")
' "$1"
}

# post_all DIR: POSTs every request listed in DIR/requests ("path<TAB>json body" lines) with one
# curl doing a few at a time -- hundreds of logins would spend more time spawning curls than
# hashing -- and prints the refresh_token and access token of response i as line i
# ("refresh<TAB>access"). Fails on any response without them.
post_all() {
    local dir=$1 n=0 path body
    : >"$dir/curl.cfg"
    while IFS=$'\t' read -r path body; do
        ((n++ == 0)) || echo next >>"$dir/curl.cfg"
        printf 'url = "%s%s"\nheader = "Content-Type: application/json"\ndata = "%s"\noutput = "%s"\n' \
            "$BASE" "$path" "${body//\"/\\\"}" "$dir/$n.json" >>"$dir/curl.cfg"
    done <"$dir/requests"
    curl --no-progress-meter --parallel --parallel-max 4 -K "$dir/curl.cfg"
    python3 -c '
import json, sys
directory, count = sys.argv[1], int(sys.argv[2])
for i in range(1, count + 1):
    text = ""
    try:
        with open(f"{directory}/{i}.json") as f:
            text = f.read()
        r = json.loads(text)
        refresh, access = r["refresh_token"], r["token"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"request {i} in {directory} failed ({e!r}): {text[:300]}")
    print(refresh + "\t" + access)
' "$dir" "$n"
}

# new_users NAME COUNT SESSIONS: registers COUNT users, logs each in until it holds SESSIONS
# sessions, checks that it does, and leaves in $WORK/NAME.tokens one refresh token per user
# (from its registration) for refresh.lua to start a chain from.
new_users() {
    local name=$1 count=$2 sessions=$3 dir="$WORK/$1" i round
    mkdir -p "$dir/register" "$dir/login"
    for ((i = 1; i <= count; i++)); do
        printf '/v1/auth/register\t{"email":"%s-%d@load.test","password":"%s","name":"Load %s %d"}\n' \
            "$name" "$i" "$PASSWORD" "$name" "$i"
    done >"$dir/register/requests"
    post_all "$dir/register" >"$dir/register/pairs"
    cut -f1 "$dir/register/pairs" >"$WORK/$name.tokens"
    ((sessions > 1)) || return 0
    # Round by round, so that parallel logins are mostly of different users.
    for ((round = 2; round <= sessions; round++)); do
        for ((i = 1; i <= count; i++)); do
            printf '/v1/auth/login\t{"email":"%s-%d@load.test","password":"%s"}\n' \
                "$name" "$i" "$PASSWORD"
        done
    done >"$dir/login/requests"
    post_all "$dir/login" >/dev/null
    local access held
    while IFS=$'\t' read -r _ access; do
        held=$(curl -fsS -H "Authorization: Bearer $access" "$BASE/v1/auth/sessions" |
            python3 -c 'import json, sys; print(len(json.load(sys.stdin)["sessions"]))')
        if ((held != sessions)); then
            echo "a $name user holds $held sessions, expected $sessions" >&2
            exit 1
        fi
    done <"$dir/register/pairs"
}

RESPONSE=$(curl -fsS -X POST "$BASE/v1/auth/register" \
    -H 'Content-Type: application/json' \
    -d "{\"email\":\"load@example.com\",\"password\":\"$PASSWORD\",\"name\":\"Load Test\"}")
TOKEN=$(printf '%s' "$RESPONSE" | json_field token)
# The token's first use is its signature check; the /me row measures a token already seen.
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/v1/auth/me"
curl -fsS -o /dev/null "$BASE/.well-known/jwks.json"

RESPONSE=$(curl -fsS -X POST "$BASE/v1/auth/api-keys" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"load","scopes":["databases:read"]}')
API_KEY=$(printf '%s' "$RESPONSE" | json_field api_key)
VERIFY_KEY_URL="$BASE/v1/auth/verify?scope=databases:read"
curl -fsS -o /dev/null -H "Authorization: Bearer $API_KEY" "$VERIFY_KEY_URL"
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/v1/auth/verify"

SESSION_THREADS=$((THREADS < SESSION_CLIENTS ? THREADS : SESSION_CLIENTS))
# Every refresh run gets sessions nobody has rotated yet, one user per chain (so that a per-user
# lineage lock cannot be what limits concurrency), plus one spare per wrk thread (see
# refresh.lua). All are made before any run so that the runs see the same store.
echo "preparing users and sessions..."
SETUP_START=$SECONDS
new_users one-client 2 1
new_users many-clients $((CONNECTIONS + THREADS)) 1
new_users one-session $((SESSION_CLIENTS + SESSION_THREADS)) 1
new_users many-sessions $((SESSION_CLIENTS + SESSION_THREADS)) "$MANY_SESSIONS"
echo "prepared in $((SECONDS - SETUP_START)) s"

declare -A OK BAD ERRS SECS P50 P99 STATUSES STARVED RATE OTHER PGCPU

# run NAME wrk-args...: runs wrk, shows its report, and keeps the RESULT line's fields under NAME.
run() {
    local name=$1 out line kv arg shown=()
    shift
    for arg in "$@"; do
        [[ $arg == "Authorization: Bearer "* ]] && arg="${arg:0:32}..."
        shown+=("$arg")
    done
    echo
    echo "=== $name: wrk ${shown[*]} ==="
    read -r BUSY0 ALL0 SERVER0 CHILDREN0 PG0 < <(cpu_ticks | xargs)
    out=$(wrk "$@")
    read -r BUSY1 ALL1 SERVER1 CHILDREN1 PG1 < <(cpu_ticks | xargs)
    OTHER[$name]=$((100 * (BUSY1 - BUSY0 - (SERVER1 - SERVER0) - (CHILDREN1 - CHILDREN0) - (PG1 - PG0)) / (ALL1 - ALL0 + 1)))
    PGCPU[$name]=$((100 * (PG1 - PG0) / (ALL1 - ALL0 + 1)))
    # Tick sampling makes this a few percent either way; below zero is noise.
    ((OTHER[$name] > 0)) || OTHER[$name]=0
    printf '%s\n' "$out" | grep -v '^RESULT ' || true
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n1) ||
        { echo "no RESULT line from wrk for $name" >&2; exit 1; }
    STATUSES[$name]=- STARVED[$name]=0
    for kv in ${line#RESULT }; do
        case ${kv%%=*} in
            ok) OK[$name]=${kv#*=} ;;
            bad) BAD[$name]=${kv#*=} ;;
            errors) ERRS[$name]=${kv#*=} ;;
            seconds) SECS[$name]=${kv#*=} ;;
            p50_us) P50[$name]=${kv#*=} ;;
            p99_us) P99[$name]=${kv#*=} ;;
            statuses) STATUSES[$name]=${kv#*=} ;;
            starved) STARVED[$name]=${kv#*=} ;;
        esac
    done
    RATE[$name]=$(awk -v n="${OK[$name]}" -v s="${SECS[$name]}" 'BEGIN { printf "%.0f", n / s }')
}

read_run() {
    local name=$1
    shift
    run "$name" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$BENCHES/stats.lua" "$@"
}

refresh_run() {
    local name=$1 tokens=$2 threads=$3 connections=$4
    run "$name" -t"$threads" -c"$connections" -d"$DURATION" --latency \
        -s "$BENCHES/refresh.lua" "$BASE/v1/auth/refresh" -- "$WORK/$tokens.tokens" "$threads"
}

# The rows are ratios of runs made a minute apart on shared cores: anything else running skews
# them, so say how busy the machine was just before (the load average lags by minutes), and per
# run how much CPU went to anything but the server and wrk.
# cpu_ticks: busy ticks of the whole machine, all its ticks, and the ticks of the server and of
# this shell's finished children (wrk among them), and with STORE=postgres those of the
# PostgreSQL it started (the postmaster, its finished children and its live backends; 0
# otherwise). Busy includes irq and softirq because a process's own times include the
# interrupts that arrived while it ran.
cpu_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
    awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"
    awk '{ print $16 + $17 }' "/proc/$$/stat"
    pg_ticks
}
pg_ticks() {
    [[ -n $PG_PID ]] || { echo 0; return; }
    local pid stats=("/proc/$PG_PID/stat")
    for pid in $(cat "/proc/$PG_PID/task/$PG_PID/children" 2>/dev/null); do
        stats+=("/proc/$pid/stat")
    done
    # The postmaster's own and reaped children's times, then each live backend's own.
    awk -v pm="/proc/$PG_PID/stat" '
        { t += $14 + $15; if (FILENAME == pm) t += $16 + $17 }
        END { print t + 0 }' "${stats[@]}" 2>/dev/null || echo 0
}
read -r BUSY0 ALL0 SERVER0 CHILDREN0 PG0 < <(cpu_ticks | xargs)
sleep 1
read -r BUSY1 ALL1 _ _ PG1 < <(cpu_ticks | xargs)
# Our own PostgreSQL (checkpointing after the setup, say) is not "something else".
BUSY=$((100 * (BUSY1 - BUSY0 - (PG1 - PG0)) / (ALL1 - ALL0 + 1)))
echo "server: $BIN (built $(date -r "$BIN" '+%F %T')), store $STORE, $(nproc) CPUs, wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
echo "CPU busy in the second before the runs: ${BUSY}%"
((BUSY < 20)) || echo "WARNING: something else is using the CPU; every row will be skewed"
read_run healthz "$BASE/healthz"
read_run me -H "Authorization: Bearer $TOKEN" "$BASE/v1/auth/me"
read_run jwks "$BASE/.well-known/jwks.json"
read_run verify_api_key -H "Authorization: Bearer $API_KEY" "$VERIFY_KEY_URL"
read_run verify_access_token -H "Authorization: Bearer $TOKEN" "$BASE/v1/auth/verify"
refresh_run refresh_1_client one-client 1 1
refresh_run refresh_${CONNECTIONS}_clients many-clients "$THREADS" "$CONNECTIONS"
refresh_run refresh_1_session one-session "$SESSION_THREADS" "$SESSION_CLIENTS"
refresh_run refresh_${MANY_SESSIONS}_sessions many-sessions "$SESSION_THREADS" "$SESSION_CLIENTS"

row() { printf '%-50s %26s  %6s  %-8s %s\n' "$@"; }
FAILS=0
# ratio_row LABEL NUM DEN TARGET: one summary line, rate of run NUM over rate of run DEN >= TARGET.
ratio_row() {
    local label=$1 num=$2 den=$3 target=$4 ratio verdict
    ratio=$(awk -v a="${RATE[$num]}" -v b="${RATE[$den]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print (r >= t ? "PASS" : "FAIL") }')
    [[ $verdict == PASS ]] || FAILS=$((FAILS + 1))
    row "$label" "${RATE[$num]}/s vs ${RATE[$den]}/s" "$ratio" ">= $target" "$verdict"
}

echo
echo "=== summary (127.0.0.1, store $STORE, $(nproc) CPUs, ${BUSY}% busy before, wrk -t$THREADS -c$CONNECTIONS" \
    "-d$DURATION; refresh rows count only 200s) ==="
row row measured ratio target result
ratio_row "verify (API key) / healthz" verify_api_key healthz 0.75
ratio_row "me (access token, seen) / healthz" me healthz 0.5
ratio_row "verify (access token) / healthz" verify_access_token healthz 0.5
ratio_row "refresh: $CONNECTIONS clients / 1 client" "refresh_${CONNECTIONS}_clients" refresh_1_client 4
ratio_row "refresh: $MANY_SESSIONS-session users / 1-session users" \
    "refresh_${MANY_SESSIONS}_sessions" refresh_1_session 0.8
P99_MS=$(awk -v us="${P99[me]}" 'BEGIN { printf "%.2f", us / 1000 }')
VERDICT=$(awk -v ms="$P99_MS" 'BEGIN { print (ms <= 5 ? "PASS" : "FAIL") }')
[[ $VERDICT == PASS ]] || FAILS=$((FAILS + 1))
row "p99 of /me at $CONNECTIONS connections" "$P99_MS ms" - "<= 5 ms" "$VERDICT"
echo "$((6 - FAILS)) of 6 rows PASS"

echo
echo "=== runs ==="
# With STORE=postgres, a pg% column: the CPU of the PostgreSQL the script started.
PG_HEAD= PG_FMT=
[[ $STORE != postgres ]] || PG_HEAD=pg% PG_FMT=' %4s'
printf "%-22s %10s %8s %10s %10s %6s %7s %7s${PG_FMT} %s\n" run "ok/s" bad "p50 ms" "p99 ms" errors \
    starved "other%" ${PG_HEAD} statuses
PROBLEMS=0 CONTENDED=0
for name in healthz me jwks verify_api_key verify_access_token refresh_1_client \
    "refresh_${CONNECTIONS}_clients" refresh_1_session "refresh_${MANY_SESSIONS}_sessions"; do
    printf "%-22s %10s %8s %10s %10s %6s %7s %7s${PG_FMT} %s\n" "$name" "${RATE[$name]}" \
        "${BAD[$name]}" \
        "$(awk -v us="${P50[$name]}" 'BEGIN { printf "%.2f", us / 1000 }')" \
        "$(awk -v us="${P99[$name]}" 'BEGIN { printf "%.2f", us / 1000 }')" \
        "${ERRS[$name]}" "${STARVED[$name]}" "${OTHER[$name]}" \
        ${PG_HEAD:+"${PGCPU[$name]}"} "${STATUSES[$name]}"
    ((BAD[$name] + ERRS[$name] + STARVED[$name] == 0)) || PROBLEMS=$((PROBLEMS + 1))
    ((OTHER[$name] < 10)) || CONTENDED=$((CONTENDED + 1))
done
echo "(other% = CPU used by anything but the server and wrk${PG_HEAD:+ and PostgreSQL} during the" \
    "run, of all $(nproc) CPUs, give or take 5${PG_HEAD:+; pg% = the share of that PostgreSQL, likewise})"
echo "server memory: idle ${RSS_IDLE} KiB RSS; after the runs $(rss_kib) KiB RSS," \
    "peak $(awk '/^VmHWM/ { print $2 }' "/proc/$SERVER_PID/status") KiB"
if ((CONTENDED > 0)); then
    echo "WARNING: $CONTENDED run(s) shared the CPUs with other work (other% >= 10); rerun when idle"
fi
if ((PROBLEMS > 0)); then
    echo "WARNING: $PROBLEMS run(s) had refused responses or socket errors (see bad/errors/statuses" \
        "above); their rates count only successful responses"
    # wrk cannot tell which statuses the read runs got without slowing itself down; the server's
    # per-request log lines can (at RUST_LOG=info, the default).
    echo "non-2xx responses in the server log, by route:"
    { grep -o 'route="[^"]*" status=[0-9]*' "$SERVER_LOG" || true; } |
        { grep -v 'status=2' || true; } | sort | uniq -c | sed 's/^/  /'
    echo "connections the server refused, by limit:"
    { grep -o 'connection refused.*limit="[^"]*"' "$SERVER_LOG" || true; } |
        sed 's/connection refused.*limit=//' | sort | uniq -c | sed 's/^/  /'
    echo "first warnings and errors in the server log:"
    { grep -E '^\S+ +(WARN|ERROR) ' "$SERVER_LOG" || true; } | head -n 10 | sed 's/^/  /'
fi
exit 0
