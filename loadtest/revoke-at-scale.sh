#!/usr/bin/env bash
# Revocation at scale: N keys (default 10,000,000) imported and built into a snapshot, a
# 2-shard gateway serving them, 8 keep-alive connections using one key; then the key is
# revoked over the admin API and the time until every connection gets 401 key_revoked is
# measured (no snapshot build on that path: the live overlay carries it). A second key is
# revoked with the CLI the same way. Loopback only; every loop is bounded.
#
#   cargo build --release --workspace
#   loadtest/revoke-at-scale.sh [N]          # work dir /tmp/kw-revoke-N (kept for reruns)
set -euo pipefail
N=${1:-10000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${KEYWAY_BIN:-$ROOT/target/release/keyway}
LOADTEST=${LOADTEST_BIN:-$ROOT/target/release/keyway-loadtest}
WORK=/tmp/kw-revoke-$N
mkdir -p "$WORK/state"
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'bench write %s\n' "$TOKEN" > "$WORK/state/admin.tokens"
chmod 600 "$WORK/state/admin.tokens"

"$LOADTEST" upstream --listen 127.0.0.1:0 > "$WORK/upstream.out" 2>&1 &
UP_PID=$!
trap 'kill $UP_PID 2>/dev/null || true; [[ -f $WORK/state/keyway.pid ]] && kill "$(cat "$WORK/state/keyway.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do grep -q "listening on" "$WORK/upstream.out" && break; sleep 0.1; done
UP=$(grep -o "listening on [0-9.:]*" "$WORK/upstream.out" | awk '{print $3}')

cat > "$WORK/keyway.toml" <<CONF
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
shards = 2
state_dir = "$WORK/state"

[admin]
token_file = "$WORK/state/admin.tokens"

[upstreams.api]
servers = ["$UP"]

[[routes]]
path_prefix = "/"
upstream = "api"
CONF

if [[ ! -f $WORK/state/keys.snap ]]; then
    python3 - "$N" > "$WORK/keys.tsv" <<'PY'
import sys, hashlib
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    # 32 hex characters, deterministic per index (an imported, legacy-format secret, as
    # the peer's keys are).
    secret = hashlib.sha256(b"%d" % i).hexdigest()[:32]
    out.write("%s\tk%08d\tt%d\t100000\n" % (secret, i, i % 1000))
PY
    "$BIN" --config "$WORK/keyway.toml" plans set bench --scope '* /**' >/dev/null
    t0=$(date +%s.%N)
    "$BIN" --config "$WORK/keyway.toml" keys import --format tsv --plan bench "$WORK/keys.tsv"
    t1=$(date +%s.%N)
    "$BIN" --config "$WORK/keyway.toml" snapshot build
    t2=$(date +%s.%N)
    echo "import $(echo "$t1 - $t0" | bc) s, snapshot build $(echo "$t2 - $t1" | bc) s"
fi

(ulimit -l unlimited 2>/dev/null || true; exec "$BIN" serve --config "$WORK/keyway.toml" > "$WORK/stdout" 2> "$WORK/stderr") &
for _ in $(seq 1 600); do grep -q "listening on" "$WORK/stdout" 2>/dev/null && break; sleep 0.1; done
grep -q "listening on" "$WORK/stdout" || { cat "$WORK/stderr" >&2; exit 1; }
ADDR=$(grep -o "listening on [0-9.:]*" "$WORK/stdout" | awk '{print $3}')
ADMIN=$(grep -o "admin [0-9.:]*" "$WORK/stdout" | awk '{print $2}')
echo "gateway $ADDR admin $ADMIN, $(grep -o '"keys":[0-9]*' <(curl -s "http://$ADMIN/snapshot"))"

# secret_of INDEX: the generator's secret for key k<INDEX>.
secret_of() { printf '%d' "$1" | sha256sum | cut -c1-32; }

# measure HOW KEY_INDEX: 8 keep-alive connections get 200 with the key, then it is revoked
# (HOW = api | cli) and each connection polls until 401; prints the slowest.
measure() {
    local how=$1 idx=$2 id secret
    id=$(printf 'k%08d' "$idx")
    secret=$(secret_of "$idx")
    python3 - "$ADDR" "$secret" "$how" "$id" "$ADMIN" "$TOKEN" "$BIN" "$WORK/keyway.toml" <<'PY'
import socket, subprocess, sys, time
addr, secret, how, kid, admin, token, bin_, conf = sys.argv[1:]
host, port = addr.rsplit(":", 1)
req = ("GET /x HTTP/1.1\r\nHost: t\r\nx-api-key: %s\r\n\r\n" % secret).encode()
def status(s):
    s.sendall(req)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        rest += s.recv(65536)
    return int(head.split()[1])
conns = [socket.create_connection((host, int(port))) for _ in range(8)]
first = [status(c) for c in conns]
assert all(s == 200 for s in first), "the key is not served before the revocation: %s" % first
t0 = time.monotonic()
if how == "api":
    ah, ap = admin.rsplit(":", 1)
    a = socket.create_connection((ah, int(ap)))
    a.sendall(("POST /v1/keys/%s/revoke HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n" % (kid, token)).encode())
    answer = a.recv(65536)
    assert b" 200 " in answer.split(b"\r\n")[0], answer
else:
    subprocess.run([bin_, "--config", conf, "keys", "revoke", kid], check=True, capture_output=True)
answered = time.monotonic() - t0
slowest = 0.0
for c in conns:
    while True:
        if status(c) == 401:
            slowest = max(slowest, time.monotonic() - t0)
            break
        assert time.monotonic() - t0 < 10, "not refused within 10 s"
        time.sleep(0.005)
print("%s revoke of %s: answered in %.0f ms, refused on all 8 connections after %.0f ms" % (how, kid, answered * 1000, slowest * 1000))
PY
}
for i in 1 2 3; do
    measure api $((i * 1000003 % N))
    measure cli $(((i * 2000003 + 7) % N))
done
