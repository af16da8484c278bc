#!/usr/bin/env bash
# Benchmark (issue 8): builds release, then for each server under test --
# ours (target/release/rpcbind -f) and, if installed, Debian's C rpcbind
# (/usr/sbin/rpcbind -f) -- starts it in a fresh network + mount namespace
# (lo up, tmpfs on /run), server pinned to CPU 0 and rpcbench to CPU 1,
# runs the plan, and prints both tables and one side-by-side table with the
# ratio per row. Nothing starts outside a namespace; all traffic is on the
# namespace's loopback.
#
# Usage: scripts/bench.sh [rpcbench run options]   (as root)
#   e.g. scripts/bench.sh --duration 1 --reps 3 --rows base,stress
# Results (JSON and markdown) go to target/rpcbench/.
# Environment: BENCH_SERVERS="ours c" (default: both, c only if installed),
#              BENCH_TIMEOUT=290 (seconds allowed per server),
#              BENCH_OURS=path (another build of our daemon, to compare builds).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bench.sh: run as root (namespaces, port 111, /run/rpcbind.sock)" >&2
    exit 1
fi
cargo build --release -q -p rpcbind -p rpcbench
OUT=target/rpcbench
mkdir -p "$OUT"
rm -f "$OUT/compare.md"
BENCH="$PWD/target/release/rpcbench"
OURS=${BENCH_OURS:-"$PWD/target/release/rpcbind"}
C=/usr/sbin/rpcbind
SERVERS=${BENCH_SERVERS:-"ours c"}
LIMIT=${BENCH_TIMEOUT:-290}

# One server in its own namespace; the inner script kills the server on
# every exit path, and `timeout` bounds the whole.
run_one() {
    local label=$1 server=$2
    shift 2
    rm -f "$OUT/$label.json"
    timeout -k 5 "$LIMIT" unshare -n -m bash -s "$label" "$server" "$BENCH" "$OUT" "$@" <<'INNER'
set -euo pipefail
label=$1 server=$2 bench=$3 out=$4
shift 4
ip link set lo up
mount -t tmpfs none /run
# 1,000 idle connections need more than the default 1,024 descriptors
# once the server's own are counted; both servers get the same limit.
ulimit -n 4096
taskset -c 0 "$server" -f >"$out/$label.server.log" 2>&1 &
pid=$!
stop() {
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 50); do
    [ -S /run/rpcbind.sock ] && ss -Hlnu 'sport = :111' | grep -q . && break
    sleep 0.1
done
sleep 0.2
echo "== $label: $server (pid $pid)" >&2
taskset -c 1 "$bench" run --pid "$pid" --label "$label" --out "$out/$label.json" "$@" | tee "$out/$label.md"
INNER
}

ran=()
for s in $SERVERS; do
    case $s in
        ours) run_one ours "$OURS" "$@" && ran+=(ours) ;;
        c)
            if [ -x "$C" ]; then
                run_one c "$C" "$@" && ran+=(c)
            else
                echo "bench.sh: $C not installed; no reference run" >&2
            fi
            ;;
        *) echo "bench.sh: unknown server $s" >&2; exit 2 ;;
    esac
done

# Only a run of both servers is compared: a JSON left by an earlier run
# would pair figures of different minutes.
if [ "${#ran[@]}" -eq 2 ] && [ -f "$OUT/ours.json" ] && [ -f "$OUT/c.json" ]; then
    "$BENCH" compare "$OUT/ours.json" "$OUT/c.json" | tee "$OUT/compare.md"
fi
echo "bench.sh: results in $OUT/ (${ran[*]:-none})" >&2
