#!/usr/bin/env bash
# Slow attackers beside keyed load, on keyway and on nginx doing the same job (the peer job of
# ../shared/peer: 100,000 keys, the peer's nginx upstream), interleaved: does the attack cost
# keyway's keyed p99 more than it costs nginx's on the same machine?
#
#   loadtest/peer/attack-peer.sh            # REPS=3 RUN_S=15 RATE=12000 LOCKSTEP=0|1
#
# Per repetition and gateway (1 worker / 1 shard): open-loop keyed load at RATE for RUN_S
# (`keyway-loadtest run --rate`, 64 connections) alone, then beside TRICKLE head-trickle and
# SLOW_BODY slow-body connections from 127.0.0.2-9 (`keyway-loadtest attack`, with the
# benchmark key so slow bodies pass authentication). No slow readers: the peer upstream's
# answer is 13 bytes. Each gateway keeps its own defaults (nginx: 60 s header and body
# timeouts; keyway: 10 s head deadline, 1 KiB/s body rate after 10 s).
# Prints each pair and the median p99 ratio (under attack ÷ alone) per gateway.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PEER=${PEER_DIR:-$ROOT/../shared/peer}
PEER_WORK=${PEER_WORK:-/tmp/peer-bench}
REPS=${REPS:-3}
RUN_S=${RUN_S:-15}
RATE=${RATE:-12000}
TRICKLE=${TRICKLE:-300}
SLOW_BODY=${SLOW_BODY:-150}
LT=$ROOT/target/release/keyway-loadtest
(cd "$ROOT" && cargo build --release -p keyway -p keyway-loadtest >/dev/null 2>&1) ||
    { echo "attack-peer.sh: release build failed; run cargo build --release to see why" >&2; exit 1; }
(cd "$PEER" && ./run.sh setup >/dev/null && ./run.sh start upstream >/dev/null 2>&1) || true
# shellcheck disable=SC1091
source "$PEER_WORK/gen/bench.env"
lockstep=()
[[ ${LOCKSTEP:-0} == 1 ]] && lockstep=(--lockstep)

load() { # PORT -> p99 µs and share of 200s
    "$LT" run --target "127.0.0.1:$1" --connections 64 --duration "${RUN_S}s" --warmup 1s \
        --cpus 1 -H "x-api-key: $BENCH_KEY" --rate "$RATE" --json |
        python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["latency_us"]["p99"], round(100*v["status"]["2xx"]/max(1,v["requests"]+v["errors"]["total"]),2))'
}

start() {
    case $1 in
        nginx) (cd "$PEER" && ./run.sh start nginx 1 >/dev/null); echo 18081 ;;
        keyway) "$HERE/keyway-peer.sh" start keyed 1 >/dev/null 2>&1; echo 18090 ;;
    esac
}
stop() {
    case $1 in
        nginx) (cd "$PEER" && ./run.sh stop nginx >/dev/null) ;;
        keyway) "$HERE/keyway-peer.sh" stop >/dev/null ;;
    esac
}

rows=()
for rep in $(seq 1 "$REPS"); do
    for gw in nginx keyway; do
        port=$(start "$gw")
        read -r base_p99 base_ok < <(load "$port")
        "$LT" attack --target "127.0.0.1:$port" --from 127.0.0.2-9 --trickle "$TRICKLE" \
            --slow-body "$SLOW_BODY" -H "x-api-key: $BENCH_KEY" --duration "$((RUN_S + 6))s" \
            "${lockstep[@]}" --json >/tmp/attack-peer-$gw.json &
        attack=$!
        sleep 3
        read -r under_p99 under_ok < <(load "$port")
        wait "$attack" || true
        stop "$gw"
        echo "rep $rep $gw: p99 $base_p99 -> $under_p99 us ($(python3 -c "print(f'{$under_p99/max(1,$base_p99):.2f}')")x), 200s $base_ok % -> $under_ok %; attackers $(cat /tmp/attack-peer-$gw.json)"
        rows+=("$gw $base_p99 $under_p99 $under_ok")
    done
done
python3 - "${rows[@]}" <<'PY'
import statistics, sys
by = {}
for a in sys.argv[1:]:
    gw, b, u, ok = a.split()
    by.setdefault(gw, []).append((float(b), float(u), float(ok)))
for gw, rs in by.items():
    ratios = [u / max(1, b) for b, u, _ in rs]
    print(f"{gw}: median p99 ratio {statistics.median(ratios):.2f}x (pairs: {' '.join(f'{r:.2f}' for r in ratios)}), "
          f"median p99 alone {statistics.median(b for b, _, _ in rs):.0f} us, under attack {statistics.median(u for _, u, _ in rs):.0f} us, "
          f"lowest share of 200s {min(ok for *_, ok in rs):.2f} %")
PY
