#!/usr/bin/env bash
# The headline benchmark: keyway beside nginx doing the same job (the peer job of
# ../shared/peer: 100,000 keys, wrk -t1 -c64, the peer's nginx upstream), interleaved in one
# session, then per-label medians and keyway ÷ nginx per adjacent pair.
#
#   loadtest/peer/bench-matrix.sh [REPS]        # default 5 reps of MATRIX (~1 min per entry pair)
#
# MATRIX (environment), in the order run within each repetition; default
#   "nginx:1 keyway:1 nginx:2 keyway:2"
# entries: direct | nginx:N | haproxy:N | keyway:N | keyway-public:N | keyway-nocoop:N |
#          keyway-oneshot:N | keyway-base:N
#   (N = nginx workers / HAProxy threads / keyway shards; keyway-nocoop runs with
#   KEYWAY_URING_FLAGS=none, the rings as glommio publishes them; keyway-oneshot with
#   KEYWAY_URING_FLAGS=coop_taskrun, one-shot read polls; keyway-base runs the binary
#   at $KEYWAY_BASE_BIN, the build before a change, to compare the two in one session).
# Every measurement is ../shared/peer/run.sh bench (same wrk, same CPU accounting: req/s,
# p50/p99, CPU µs per request of the gateway, the upstream and wrk).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEER=${PEER_DIR:-$HERE/../../../shared/peer}
REPS=${1:-5}
MATRIX=${MATRIX:-"nginx:1 keyway:1 nginx:2 keyway:2"}
RUN_ID=${RUN_ID:-kw-$(date -u +%Y%m%dT%H%M%S)}
export RUN_ID QUIET_WAIT_S=${QUIET_WAIT_S:-60}
cd "$PEER"
./run.sh setup >/dev/null
./run.sh start upstream >/dev/null 2>&1 || true
for rep in $(seq 1 "$REPS"); do
    export REP=$rep
    for entry in $MATRIX; do
        kind=${entry%%:*}
        n=${entry#*:}
        [[ $n == "$entry" ]] && n=1
        case $kind in
            direct) ./run.sh bench direct ;;
            nginx | haproxy)
                ./run.sh start "$kind" "$n" >/dev/null
                ./run.sh bench "$kind"   # labelled nginx-wN / haproxy-tN by run.sh
                ./run.sh stop "$kind" >/dev/null ;;
            keyway | keyway-public | keyway-nocoop | keyway-oneshot | keyway-base)
                mode=keyed flags= bin=
                [[ $kind == keyway-public ]] && mode=public
                [[ $kind == keyway-nocoop ]] && flags=none
                [[ $kind == keyway-oneshot ]] && flags=coop_taskrun
                if [[ $kind == keyway-base ]]; then
                    bin=${KEYWAY_BASE_BIN:?keyway-base needs KEYWAY_BASE_BIN=path/to/keyway}
                fi
                KEYWAY_BIN=$bin KEYWAY_URING_FLAGS=$flags "$HERE/keyway-peer.sh" start "$mode" "$n" >/dev/null 2>&1
                LABEL="$kind-$n" ./run.sh bench 127.0.0.1:18090
                "$HERE/keyway-peer.sh" stop >/dev/null ;;
            *) echo "bench-matrix: unknown MATRIX entry $entry" >&2; exit 2 ;;
        esac
    done
done
python3 "$HERE/headline.py" "${PEER_WORK:-/tmp/peer-bench}/results/bench.tsv" "$RUN_ID"
if [[ $MATRIX == *keyway-base* ]]; then
    python3 "$HERE/headline.py" "${PEER_WORK:-/tmp/peer-bench}/results/bench.tsv" "$RUN_ID" keyway-base-
fi
