#!/usr/bin/env bash
# Interleaved benchmark of keyway beside the peers, all in one session:
#   REPS x { direct, nginx w1, haproxy t1, keyway public route, keyway keyed route }
# then the median table. Uses ../shared/peer/run.sh for every measurement (same wrk, same
# CPU accounting). Usage: loadtest/peer/bench-matrix.sh [REPS]   (default 3; ~2 min per rep)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEER=${PEER_DIR:-$HERE/../../../shared/peer}
REPS=${1:-3}
RUN_ID=${RUN_ID:-kw-$(date -u +%Y%m%dT%H%M%S)}
export RUN_ID QUIET_WAIT_S=${QUIET_WAIT_S:-60}
cd "$PEER"
./run.sh setup >/dev/null
./run.sh start upstream >/dev/null 2>&1 || true
for rep in $(seq 1 "$REPS"); do
    export REP=$rep
    ./run.sh bench direct
    ./run.sh start nginx 1 >/dev/null && ./run.sh bench nginx && ./run.sh stop nginx >/dev/null
    ./run.sh start haproxy 1 >/dev/null && ./run.sh bench haproxy && ./run.sh stop haproxy >/dev/null
    "$HERE/keyway-peer.sh" start public 1 >/dev/null
    LABEL=keyway-public ./run.sh bench 127.0.0.1:18090
    "$HERE/keyway-peer.sh" stop >/dev/null
    "$HERE/keyway-peer.sh" start keyed 1 >/dev/null 2>&1
    LABEL=keyway-keyed ./run.sh bench 127.0.0.1:18090
    "$HERE/keyway-peer.sh" stop >/dev/null
done
./run.sh summary "$RUN_ID"
