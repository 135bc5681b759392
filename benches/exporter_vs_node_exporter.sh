#!/usr/bin/env bash
# Compares fleetwatch-exporter with Debian's node_exporter on the same host and collector set:
# daemon CPU per scrape, peak/current RSS, response size and sample counts.
#
# Usage: benches/exporter_vs_node_exporter.sh          (from any directory)
#
# Environment:
#   SCRAPES=2000         measured scrapes per exporter and round (after 20 warm-up scrapes)
#   ROUNDS=3             rounds; the exporters take turns each round and the CPU is summed
#   FLEETWATCH_BIN=path  use this binary instead of building one with cargo
#   NODE_EXPORTER=path   node_exporter binary (default /usr/bin/prometheus-node-exporter)
#   MATCH_FILTERS=1      pass fleetwatch's default filesystem/netdev filters to node_exporter
#                        (Debian patches node_exporter's defaults to also drop /run, /mnt, /media
#                        and the lo interface, which would skew the sample counts); 0 keeps
#                        Debian's defaults
#
# CPU is measured on the daemons themselves (utime+stime from /proc/PID/stat), so the scrape
# client's own cost does not matter; it uses one keep-alive connection so the run is quick.
# The targets printed at the end are informational: the script exits 0 whether they are met or
# not, and non-zero only when something failed to run.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

SCRAPES=${SCRAPES:-2000}
ROUNDS=${ROUNDS:-3}
WARMUP=20
NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
MATCH_FILTERS=${MATCH_FILTERS:-1}
COLLECTORS=(
    --collector.cpu --collector.meminfo --collector.loadavg --collector.filesystem
    --collector.diskstats --collector.netdev --collector.stat --collector.time --collector.uname
)
# fleetwatch-exporter's defaults (deploy/exporter.yml), which are upstream node_exporter's.
FW_MOUNT_POINTS_EXCLUDE='^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)'
FW_NETDEV_DEVICE_EXCLUDE=''

[[ $SCRAPES =~ ^[1-9][0-9]*$ ]] || die "SCRAPES must be a positive integer, got '$SCRAPES'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
for tool in python3 curl getconf awk; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

# --- node_exporter -------------------------------------------------------------------------------
if [[ ! -x $NODE_EXPORTER ]]; then
    [[ $NODE_EXPORTER == /usr/bin/prometheus-node-exporter ]] || die "$NODE_EXPORTER is not executable"
    apt_install prometheus-node-exporter
    [[ -x $NODE_EXPORTER ]] || die "$NODE_EXPORTER still missing after installing the package"
fi

# --- fleetwatch-exporter -------------------------------------------------------------------------
if [[ -n ${FLEETWATCH_BIN:-} ]]; then
    FW_BIN=$FLEETWATCH_BIN
else
    FW_BIN=$(release_bin fleetwatch-exporter fleetwatch-exporter)
fi
[[ -x $FW_BIN ]] || die "$FW_BIN is not executable"

# --- start both ----------------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fleetwatch-bench.XXXXXX")
PIDS=()

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf -- "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Two distinct free ports: both sockets are bound at once so the kernel cannot hand out the same
# one twice. (Another process could still grab one before the exporter binds it; the readiness
# check below then fails loudly.)
PORTS=$(python3 -c '
import socket
socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
')
read -r P1 P2 <<<"$PORTS"
[[ -n ${P1:-} && -n ${P2:-} ]] || die "could not pick free ports"

"$FW_BIN" --web.listen-address="127.0.0.1:$P1" --collector.disable-defaults "${COLLECTORS[@]}" \
    >"$TMP/fleetwatch.log" 2>&1 &
FW_PID=$!
PIDS+=("$FW_PID")

NE_ARGS=(--web.listen-address="127.0.0.1:$P2" --collector.disable-defaults "${COLLECTORS[@]}")
if [[ $MATCH_FILTERS == 1 ]]; then
    NE_ARGS+=(
        --collector.filesystem.mount-points-exclude="$FW_MOUNT_POINTS_EXCLUDE"
        --collector.netdev.device-exclude="$FW_NETDEV_DEVICE_EXCLUDE"
    )
fi
"$NODE_EXPORTER" "${NE_ARGS[@]}" >"$TMP/node_exporter.log" 2>&1 &
NE_PID=$!
PIDS+=("$NE_PID")

wait_ready() { # name pid port
    local name=$1 pid=$2 port=$3 i
    for ((i = 0; i < 150; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited before serving /metrics; its output:" >&2
            cat "$TMP/$name.log" >&2
            return 1
        fi
        if curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$port/metrics"; then
            return 0
        fi
        sleep 0.2
    done
    echo "$name did not answer /metrics on 127.0.0.1:$port within 30s; its output:" >&2
    cat "$TMP/$name.log" >&2
    return 1
}
wait_ready fleetwatch "$FW_PID" "$P1"
wait_ready node_exporter "$NE_PID" "$P2"

# --- measurement helpers -------------------------------------------------------------------------
# Sequential GETs of /metrics over one keep-alive connection (reconnecting if the server closes
# it). http.client sends no Accept header and "Accept-Encoding: identity", so the bodies are the
# uncompressed text format. Prints the wall seconds and the number of connections used.
scrape() { # port count
    python3 - "$1" "$2" <<'PY'
import http.client, sys, time

port, count = int(sys.argv[1]), int(sys.argv[2])
conn, connections = None, 0
start = time.monotonic()
for _ in range(count):
    for attempt in (0, 1):
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                connections += 1
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            resp.read()
            break
        except (http.client.HTTPException, OSError):
            if conn is not None:
                conn.close()
            conn = None
            if attempt:
                raise
    if resp.status != 200:
        sys.exit(f"GET /metrics on port {port}: HTTP {resp.status}")
    if resp.will_close:
        conn.close()
        conn = None
print(f"{time.monotonic() - start:.3f} {connections}")
PY
}

# --- measure ---------------------------------------------------------------------------------------
declare -A CPU_TICKS WALL CONNS HWM_KB RSS_KB BYTES SAMPLES NODE_SAMPLES

# CPU over SCRAPES scrapes, added to the running total of that exporter.
measure_cpu() { # name pid port
    local name=$1 pid=$2 port=$3 t0 t1 out wall conns
    t0=$(cpu_ticks "$pid")
    out=$(scrape "$port" "$SCRAPES")
    t1=$(cpu_ticks "$pid")
    CPU_TICKS[$name]=$((${CPU_TICKS[$name]:-0} + t1 - t0))
    read -r wall conns <<<"$out"
    WALL[$name]=$(awk -v a="${WALL[$name]:-0}" -v b="$wall" 'BEGIN { printf "%.3f", a + b }')
    CONNS[$name]=$((${CONNS[$name]:-0} + conns))
}

# Memory and one scrape's size and content, after the CPU rounds.
measure_rest() { # name pid port
    local name=$1 pid=$2 port=$3
    HWM_KB[$name]=$(status_kb "$pid" VmHWM)
    RSS_KB[$name]=$(status_kb "$pid" VmRSS)
    # `-H Accept:` removes curl's default Accept header; without --compressed curl sends no
    # Accept-Encoding.
    curl -sf -H 'Accept:' -o "$TMP/$name.prom" "http://127.0.0.1:$port/metrics"
    BYTES[$name]=$(wc -c <"$TMP/$name.prom")
    SAMPLES[$name]=$(grep -cv -e '^#' -e '^[[:space:]]*$' "$TMP/$name.prom" || true)
    # Host series: node_* without node_exporter's own scrape/build metrics (fleetwatch has those
    # as fleetwatch_exporter_*), so both sides count the same thing.
    NODE_SAMPLES[$name]=$(grep '^node_' "$TMP/$name.prom" | grep -cv '^node_scrape_collector_\|^node_exporter_build_info' || true)
}

# The two exporters take turns, ROUNDS times, so that drift in the machine's speed hits both.
scrape "$P1" "$WARMUP" >/dev/null
scrape "$P2" "$WARMUP" >/dev/null
for ((round = 1; round <= ROUNDS; round++)); do
    echo "round $round/$ROUNDS: $SCRAPES scrapes each ..." >&2
    measure_cpu fleetwatch "$FW_PID" "$P1"
    measure_cpu node_exporter "$NE_PID" "$P2"
done
measure_rest fleetwatch "$FW_PID" "$P1"
measure_rest node_exporter "$NE_PID" "$P2"

# --- report --------------------------------------------------------------------------------------
cpu_ms() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$((SCRAPES * ROUNDS))" 'BEGIN { printf "%.4f", t * 1000 / hz / n }'; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.2f", kb / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.3f", a / b }'; }

FW_CPU=$(cpu_ms "${CPU_TICKS[fleetwatch]}")
NE_CPU=$(cpu_ms "${CPU_TICKS[node_exporter]}")
CPU_RATIO=$(ratio "${CPU_TICKS[fleetwatch]}" "${CPU_TICKS[node_exporter]}")

row() { printf '%-20s | %14s | %14s | %8s\n' "$@"; }
row_num() { row "$1" "$2" "$3" "$(ratio "$2" "$3")"; }

echo
echo "fleetwatch:    $FW_BIN"
echo "node_exporter: $NODE_EXPORTER ($("$NODE_EXPORTER" --version 2>&1 | head -n1))"
echo "scrapes: $ROUNDS rounds x $SCRAPES per exporter, taking turns, after $WARMUP warm-up; CLK_TCK=$CLK_TCK; MB = 1024 kB"
echo
row metric fleetwatch node_exporter ratio
row "--------------------" "--------------" "--------------" "--------"
row "CPU ms/scrape" "$FW_CPU" "$NE_CPU" "$CPU_RATIO"
row_num "peak RSS MB" "$(mb "${HWM_KB[fleetwatch]}")" "$(mb "${HWM_KB[node_exporter]}")"
row_num "current RSS MB" "$(mb "${RSS_KB[fleetwatch]}")" "$(mb "${RSS_KB[node_exporter]}")"
row_num "response bytes" "${BYTES[fleetwatch]}" "${BYTES[node_exporter]}"
row_num "samples" "${SAMPLES[fleetwatch]}" "${SAMPLES[node_exporter]}"
row_num "host samples" "${NODE_SAMPLES[fleetwatch]}" "${NODE_SAMPLES[node_exporter]}"
echo
for name in fleetwatch node_exporter; do
    printf '%s: %d CPU ticks over %s s wall (%s ms/scrape), %d connection(s)\n' "$name" \
        "${CPU_TICKS[$name]}" "${WALL[$name]}" \
        "$(awk -v w="${WALL[$name]}" -v n="$((SCRAPES * ROUNDS))" 'BEGIN { printf "%.3f", w * 1000 / n }')" \
        "${CONNS[$name]}"
done
if ((CPU_TICKS[fleetwatch] < 20 || CPU_TICKS[node_exporter] < 20)); then
    echo "note: fewer than 20 CPU ticks measured; raise SCRAPES for a steadier CPU ratio"
fi
if [[ $MATCH_FILTERS == 1 ]]; then
    echo "note: node_exporter ran with fleetwatch's default filesystem/netdev filters (MATCH_FILTERS=1)"
fi

verdict() { if [[ $1 == 1 ]]; then echo PASS; else echo MISS; fi; }
echo
echo "target: CPU ratio <= 0.20 and RSS <= 8 MB, host samples >= node_exporter's"
if [[ $CPU_RATIO == n/a ]]; then
    echo "  CPU ratio <= 0.20:            n/a (node_exporter used no measurable CPU; raise SCRAPES)"
else
    printf '  CPU ratio <= 0.20:            %s (%s)\n' \
        "$(verdict "$(awk -v r="$CPU_RATIO" 'BEGIN { print (r <= 0.20) }')")" "$CPU_RATIO"
fi
printf '  peak RSS <= 8 MB:             %s (%s MB)\n' \
    "$(verdict "$((HWM_KB[fleetwatch] <= 8192))")" "$(mb "${HWM_KB[fleetwatch]}")"
printf "  host samples >= node_exporter's: %s (%d vs %d; all samples incl. Go runtime metrics: %d vs %d)\n" \
    "$(verdict "$((NODE_SAMPLES[fleetwatch] >= NODE_SAMPLES[node_exporter]))")" \
    "${NODE_SAMPLES[fleetwatch]}" "${NODE_SAMPLES[node_exporter]}" \
    "${SAMPLES[fleetwatch]}" "${SAMPLES[node_exporter]}"
