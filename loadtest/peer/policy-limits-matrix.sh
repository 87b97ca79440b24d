#!/usr/bin/env bash
# keyway keyed on the peer job in three variants, interleaved in one session, for the
# authorization-policy and rate-limit issues:
#   keyed        1-scope plan, the benchmark key's own 1,000,000/s limit (limits on)
#   keyed-10sc   10-scope plan (match on the last), limits on
#   keyed-nolim  1-scope plan, benchmark key without a limit (limiter not called)
# Usage: loadtest/peer/policy-limits-matrix.sh [REPS]   (default 3)
#   VARIANTS="keyed keyed-nolim" runs only those (default: all three)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEER=${PEER_DIR:-$HERE/../../../shared/peer}
REPS=${1:-3}
RUN_ID=${RUN_ID:-kwpol-$(date -u +%Y%m%dT%H%M%S)}
export RUN_ID QUIET_WAIT_S=${QUIET_WAIT_S:-30}
VARIANTS=${VARIANTS:-keyed keyed-10sc keyed-nolim}
for v in $VARIANTS; do
    case $v in
    keyed | keyed-10sc | keyed-nolim) ;;
    *) echo "unknown variant '$v' in VARIANTS; use keyed, keyed-10sc or keyed-nolim" >&2 && exit 2 ;;
    esac
done
cd "$PEER"
./run.sh start upstream >/dev/null 2>&1 || true
run() { # LABEL ENV...
    local label=$1
    shift
    env "$@" "$HERE/keyway-peer.sh" start keyed 1 >/dev/null 2>&1
    LABEL=$label ./run.sh bench 127.0.0.1:18090
    "$HERE/keyway-peer.sh" stop >/dev/null
}
for rep in $(seq 1 "$REPS"); do
    export REP=$rep
    for v in $VARIANTS; do
        case $v in
        keyed) run keyed KEYWAY_PEER_SCOPES=1 ;;
        keyed-10sc) run keyed-10sc KEYWAY_PEER_SCOPES=10 ;;
        keyed-nolim) run keyed-nolim KEYWAY_PEER_LIMITS=off ;;
        esac
    done
done
./run.sh summary "$RUN_ID"
