#!/usr/bin/env bash
# Runs keyway the way ../shared/peer/run.sh expects a product to run, so that its `check` and
# `bench` measure keyway beside nginx and HAProxy on the same machine and day.
#
#   loadtest/peer/keyway-peer.sh start [public|keyed] [SHARDS]   # default: keyed 1
#   loadtest/peer/keyway-peer.sh stop
#
# Variants of `keyed` (environment):
#   KEYWAY_PEER_SCOPES=10    the plan has 10 scopes, the benchmark's match being the last
#   KEYWAY_PEER_LIMITS=off   the benchmark key's own rate limit removed (no limiter call)
#   KEYWAY_BIN=PATH          run that keyway binary instead of target/release/keyway
#
# keyed:  the peer's 100,000 keys imported from $PEER_WORK/gen/keys.tsv (run.sh setup makes
#         it), identity headers named x-key-id / x-tenant as the peer's upstream expects.
# public: one public route, no key (the gateway-core benchmark).
# keyway listens on 127.0.0.1:18090 (admin 18091) and forwards to the peer upstream on 18080.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEER_WORK=${PEER_WORK:-/tmp/peer-bench}
WORK=${KEYWAY_PEER_WORK:-/tmp/keyway-peer}
PORT=${KEYWAY_PORT:-18090}
ADMIN=${KEYWAY_ADMIN_PORT:-18091}
# KEYWAY_BIN: another build to run instead (bench-matrix's keyway-base entries: the build
# before a change, measured in the same session as the change).
BIN=${KEYWAY_BIN:-$ROOT/target/release/keyway}

die() { echo "keyway-peer: $*" >&2; exit 1; }

start() {
    local mode=${1:-keyed} shards=${2:-1}
    [[ -x $BIN ]] || (cd "$ROOT" && cargo build --release --bin keyway)
    stop >/dev/null 2>&1 || true
    rm -rf "$WORK" && mkdir -p "$WORK/state"
    local routes
    if [[ $mode == public ]]; then
        routes=$'[[routes]]\npath_prefix = "/"\nupstream = "peer"\npublic = true'
    else
        [[ -f $PEER_WORK/gen/keys.tsv ]] || die "no $PEER_WORK/gen/keys.tsv: run ../shared/peer/run.sh setup first"
        routes=$'[[routes]]\npath_prefix = "/"\nupstream = "peer"'
    fi
    cat >"$WORK/keyway.toml" <<CONF
[server]
listen = "127.0.0.1:$PORT"
admin_listen = "127.0.0.1:$ADMIN"
shards = $shards
state_dir = "$WORK/state"

[identity]
key_id_header = "x-key-id"
tenant_header = "x-tenant"

[upstreams.peer]
servers = ["127.0.0.1:18080"]
pool_size = 128

$routes
CONF
    if [[ $mode != public ]]; then
        local t0=$(date +%s.%N)
        local scopes=(--scope '* /**')
        if [[ ${KEYWAY_PEER_SCOPES:-1} == 10 ]]; then
            scopes=()
            for i in 1 2 3 4 5 6 7 8 9; do scopes+=(--scope "GET /nope$i/**"); done
            scopes+=(--scope '* /**')
        fi
        "$BIN" --config "$WORK/keyway.toml" plans set peer "${scopes[@]}" >/dev/null
        "$BIN" --config "$WORK/keyway.toml" keys import --format tsv --plan peer "$PEER_WORK/gen/keys.tsv"
        if [[ ${KEYWAY_PEER_LIMITS:-on} == off ]]; then
            "$BIN" --config "$WORK/keyway.toml" keys update k000000 --limit none >/dev/null
        fi
        local t1=$(date +%s.%N)
        "$BIN" --config "$WORK/keyway.toml" snapshot build
        local t2=$(date +%s.%N)
        echo "import $(echo "$t1 - $t0" | bc) s, snapshot build $(echo "$t2 - $t1" | bc) s" >&2
    fi
    (ulimit -l unlimited 2>/dev/null || true; exec "$BIN" serve --config "$WORK/keyway.toml" \
        >"$WORK/stdout" 2>"$WORK/stderr") &
    for _ in $(seq 1 100); do
        grep -q "listening on" "$WORK/stdout" 2>/dev/null && break
        sleep 0.1
    done
    grep -q "listening on" "$WORK/stdout" || { cat "$WORK/stderr" >&2; die "keyway did not start"; }
    cat "$WORK/stdout"
    echo "pid $(cat "$WORK/state/keyway.pid")"
}

stop() {
    [[ -f $WORK/state/keyway.pid ]] || { echo "not running"; return 0; }
    local pid
    pid=$(cat "$WORK/state/keyway.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped $pid"
}

case ${1:-} in
    start) shift; start "$@" ;;
    stop) stop ;;
    *) die "usage: $0 start [public|keyed] [SHARDS] | stop" ;;
esac
