#!/usr/bin/env bash
# Compares fleetwatch-alerter with Debian's Prometheus scraping the same fleet with the same rules:
# daemon CPU per 15 s scrape cycle, RSS (current and peak), and rule evaluation time per cycle as
# each daemon reports it (Prometheus's prometheus_rule_group_last_duration_seconds, the alerter's
# fleetwatch_alerter_rule_group_last_duration_seconds, summed over the rule groups).
#
# The fleet is simulated: one nginx (on loopback, one `listen` per target) serves a recorded
# node_exporter payload, benches/fixtures/node_exporter.prom (Debian's node_exporter 1.5.0 with its
# default collectors, ~500 samples), gzip-compressed when the scraper asks for it, as a real
# exporter does. Both daemons get the same Prometheus config: scrape_interval 15s, scrape_timeout
# 10s, evaluation_interval 15s, rule_files <repo>/rules/*.yml and one job `node` whose targets come
# from a file_sd_configs file listing the TARGETS ports.
#
# Usage: benches/alerter_vs_prometheus.sh          (from any directory)
#
# Environment:
#   TARGETS=1000          number of simulated exporters (nginx listen ports)
#   BASE_PORT=port        first target port (ports BASE_PORT..BASE_PORT+TARGETS-1 must be free);
#                         default: the first free block below the kernel's ephemeral port range
#   WARMUP=30             seconds each daemon runs before the measured window (2 cycles)
#   WINDOW=120            measured seconds per daemon and round (8 cycles)
#   ROUNDS=2              rounds; each round runs the alerter, then Prometheus, one at a time
#   ONLY=alerter|prometheus  run only that daemon (no ratios); default both
#   ALERTER_BIN=path      use this binary instead of building one with cargo
#                         (`cargo build --release -p fleetwatch-alerter`, a no-op when up to date)
#   PROMETHEUS_BIN=path   Prometheus binary (default /usr/bin/prometheus, installed if missing)
#   ALERTER_ARGS, PROMETHEUS_ARGS   extra flags for that daemon (split on whitespace)
#   RULES=glob            rule files for both daemons (default <repo>/rules/*.yml, the shipped
#                         rules; a glob matching nothing is fine and loads no rules)
#   RULES_MIXIN=1         also load benches/fixtures/host-mixin-rules.yml (node-mixin-style host
#                         recording and alerting rules) into both; 0 leaves it out
#   KEEP_TMP=1            keep the temporary directory (configs, logs) and print its path
#
# Each daemon starts from scratch in every round (Prometheus with an empty TSDB directory), runs
# alone (never both at once, so they do not fight over the CPUs), scrapes for WARMUP seconds, then
# its CPU (utime+stime from /proc/PID/stat, all threads) is read at the start and end of the
# WINDOW; CPU per cycle = CPU seconds / (window seconds / 15). VmRSS is read at the end of the
# window and VmHWM (peak RSS since start) with it. After each window the script asks the daemon,
# through the Prometheus HTTP API, for count(up == 1) (must be TARGETS) and
# sum(scrape_samples_scraped) (must be TARGETS x the payload's samples; benches/fixtures/bench-rules.yml,
# loaded by both, selects that series so the alerter's store keeps it), and counts the rules it
# loaded (/api/v1/rules).
#
# Rule evaluation time: once per cycle during the WINDOW the script reads the daemon's /metrics
# and sums the last evaluation duration of every rule group; the table shows the mean of those
# sums (seconds of wall-clock time per evaluation cycle). Ranges in the rules reach back up to 6 h,
# so with a longer WARMUP the ranges hold more samples and both daemons do more work per cycle.
#
# The per-run table also shows the CPU of nginx's worker per cycle while serving that daemon (a
# sanity check: it should be about the same for both, since both ask for gzip).
#
# Both stores only hold a few minutes of data here. Prometheus's memory keeps growing for a while
# afterwards (its head block covers up to 3 h), so for a steady-state figure raise WINDOW.
#
# For reference, on a 2-CPU VM with the defaults (1000 targets, 13 shipped rules), Debian's
# Prometheus 2.42 used 2.15 s CPU per cycle and peaked at 1.78 GB RSS.
#
# The targets printed at the end are informational: the script exits 0 whether they are met or
# not. It exits 1 when something failed to run and 3 when a daemon did not scrape every target
# (the figures are then not comparable).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

TARGETS=${TARGETS:-1000}
BASE_PORT=${BASE_PORT:-}
WARMUP=${WARMUP:-30}
WINDOW=${WINDOW:-120}
ROUNDS=${ROUNDS:-2}
ONLY=${ONLY:-}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-/usr/bin/prometheus}
KEEP_TMP=${KEEP_TMP:-0}
INTERVAL=15 # scrape and evaluation interval, seconds (fixed: it is part of the target)
FIXTURE=$ROOT/benches/fixtures/node_exporter.prom
RULES_GLOB=${RULES:-$ROOT/rules/*.yml}
RULES_MIXIN=${RULES_MIXIN:-1}
MIXIN=$ROOT/benches/fixtures/host-mixin-rules.yml

for var in TARGETS WARMUP WINDOW ROUNDS; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer, got '${!var}'"
done
[[ -z $BASE_PORT || $BASE_PORT =~ ^[1-9][0-9]*$ ]] || die "BASE_PORT must be a port number"
if [[ -n $BASE_PORT ]] && ((BASE_PORT < 1024 || BASE_PORT + TARGETS - 1 > 65535)); then
    die "BASE_PORT..BASE_PORT+TARGETS-1 must lie within 1024..65535"
fi
case $ONLY in
    '') DAEMONS=(alerter prometheus) ;;
    alerter | prometheus) DAEMONS=("$ONLY") ;;
    *) die "ONLY must be alerter or prometheus, got '$ONLY'" ;;
esac
((WINDOW % INTERVAL == 0)) || echo "note: WINDOW is not a multiple of ${INTERVAL}s" >&2
[[ -s $FIXTURE ]] || die "$FIXTURE is missing"
[[ $RULES_MIXIN == 0 || $RULES_MIXIN == 1 ]] || die "RULES_MIXIN must be 0 or 1, got '$RULES_MIXIN'"
for tool in python3 curl getconf awk; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

# --- packages: nginx, prometheus -----------------------------------------------------------------
find_nginx
if wants prometheus && [[ ! -x $PROMETHEUS_BIN ]]; then
    [[ $PROMETHEUS_BIN == /usr/bin/prometheus ]] || die "$PROMETHEUS_BIN is not executable"
    apt_install prometheus
    [[ -x $PROMETHEUS_BIN ]] || die "$PROMETHEUS_BIN still missing after installing the package"
fi

# --- fleetwatch-alerter --------------------------------------------------------------------------
ALERTER=
if wants alerter; then
    if [[ -n ${ALERTER_BIN:-} ]]; then
        ALERTER=$ALERTER_BIN
    else
        ALERTER=$(release_bin fleetwatch-alerter fleetwatch-alerter)
    fi
    [[ -x $ALERTER ]] || die "$ALERTER is not executable"
fi

# --- file descriptors ----------------------------------------------------------------------------
# nginx holds TARGETS listening sockets plus one connection per target; each daemon one connection
# per target.
NOFILE=$((4 * TARGETS + 1024))
if [[ $(ulimit -Sn) != unlimited ]] && (($(ulimit -Sn) < NOFILE)); then
    if [[ $(ulimit -Hn) != unlimited ]] && (($(ulimit -Hn) < NOFILE)); then
        ulimit -Hn "$NOFILE" 2>/dev/null ||
            die "need $NOFILE open files but the hard limit is $(ulimit -Hn) (raise it, or lower TARGETS)"
    fi
    ulimit -Sn "$NOFILE"
fi

# --- temporary directory and cleanup -------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fleetwatch-alerter-bench.XXXXXX")
NGINX_PID=
DAEMON_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -z $SLEEP_PID ]] || kill "$SLEEP_PID" 2>/dev/null || true
    stop_pid "$DAEMON_PID"
    stop_pid "$NGINX_PID" # SIGTERM to the master stops its worker too
    if [[ $KEEP_TMP == 1 ]]; then
        echo "kept $TMP" >&2
    else
        rm -rf -- "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- ports ---------------------------------------------------------------------------------------
# A block of TARGETS free ports (BASE_PORT's, or the first free block below the ephemeral range, so
# that the daemons' outgoing connections cannot take one), and two free ports for the daemons' web
# listeners outside it. SO_REUSEADDR as nginx sets it, so TIME_WAIT leftovers do not count as busy.
# (Another process could still grab a port before nginx binds it; nginx then fails loudly.)
PORTS=$(python3 - "$TARGETS" "$BASE_PORT" <<'PY'
import socket, sys

n, base = int(sys.argv[1]), sys.argv[2]

def free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()

def first_busy(start):
    return next((p for p in range(start, start + n) if not free(p)), None)

if base:
    busy = first_busy(int(base))
    if busy is not None:
        sys.exit(f"port {busy} in BASE_PORT={base}..{int(base) + n - 1} is in use")
    base = int(base)
else:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo = int(f.read().split()[0])
    except OSError:
        eph_lo = 32768
    start = eph_lo - n
    base = None
    while start >= 1024:
        busy = first_busy(start)
        if busy is None:
            base = start
            break
        start = busy - n  # the next block ends just below the busy port
    if base is None:
        sys.exit(f"no block of {n} free ports below {eph_lo}; set BASE_PORT")

web = []
while len(web) < 2:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    if not base <= p < base + n and p not in web:
        web.append(p)
print(base, *web)
PY
) || die "could not pick ports"
read -r BASE_PORT ALERTER_PORT PROMETHEUS_PORT <<<"$PORTS"
LAST_PORT=$((BASE_PORT + TARGETS - 1))
declare -A WEB_PORT=([alerter]=$ALERTER_PORT [prometheus]=$PROMETHEUS_PORT)

# --- nginx: the fleet ----------------------------------------------------------------------------
# The nginx master runs as the invoking user; when that is root its worker runs as nobody, so the
# payload and the directories leading to it must be world-readable.
chmod 0711 "$TMP"
mkdir -p "$TMP/nginx/www"
chmod 0755 "$TMP/nginx" "$TMP/nginx/www"
install -m 0644 "$FIXTURE" "$TMP/nginx/www/metrics.prom"
SAMPLES_PER_TARGET=$(grep -cv -e '^#' -e '^[[:space:]]*$' "$FIXTURE" || true)

# Debian's nginx is built with absolute temp paths under /var/lib/nginx; point every one this build
# has at the temp dir so nothing outside it is touched (and a non-root run works).
NGINX_V=$("$NGINX" -V 2>&1)
TEMP_PATHS="    client_body_temp_path $TMP/nginx/client_body;"
for module in proxy fastcgi uwsgi scgi; do
    [[ $NGINX_V == *"--without-http_${module}_module"* ]] ||
        TEMP_PATHS+=$'\n'"    ${module}_temp_path $TMP/nginx/$module;"
done
{
    cat <<EOF
# Generated by benches/alerter_vs_prometheus.sh: $TARGETS simulated exporters.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;

events {
    worker_connections $((2 * TARGETS + 512));
}

http {
    access_log off;
    types {}
    sendfile on;
    tcp_nopush on;
    # Longer than the scrape interval, so scrapers keep their connections as with real exporters.
    keepalive_timeout 120s;
    keepalive_requests 100000;
    gzip on;
    # gzip_types compares the whole Content-Type, parameters included.
    gzip_types text/plain "text/plain; version=0.0.4";
$TEMP_PATHS

    server {
EOF
    for ((port = BASE_PORT; port <= LAST_PORT; port++)); do
        echo "        listen 127.0.0.1:$port;"
    done
    cat <<EOF
        location = /metrics {
            default_type "text/plain; version=0.0.4";
            alias $TMP/nginx/www/metrics.prom;
        }
        location / {
            return 404;
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"

echo "starting nginx on 127.0.0.1:$BASE_PORT..$LAST_PORT ..." >&2
"$NGINX" -p "$TMP/nginx/" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" \
    >"$TMP/nginx/stdout.log" 2>&1 &
NGINX_PID=$!

# Every target must answer with the payload, gzip-compressed when asked (as Prometheus does).
check_fleet() {
    python3 - "$BASE_PORT" "$TARGETS" "$FIXTURE" <<'PY'
import gzip, http.client, sys

base, n, fixture = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
want = open(fixture, "rb").read()
for port in range(base, base + n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status != 200:
        sys.exit(f"port {port}: HTTP {resp.status}")
    if resp.getheader("Content-Encoding") != "gzip":
        sys.exit(f"port {port}: response not gzip-compressed")
    if resp.getheader("Content-Type") != "text/plain; version=0.0.4":
        sys.exit(f"port {port}: Content-Type {resp.getheader('Content-Type')!r}")
    if gzip.decompress(body) != want:
        sys.exit(f"port {port}: body differs from the fixture")
print(len(body))
PY
}
GZIP_BYTES=
for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$NGINX_PID" 2>/dev/null; then
        cat "$TMP/nginx/stdout.log" "$TMP/nginx/error.log" >&2 2>/dev/null || true
        NGINX_PID=
        die "nginx exited"
    fi
    if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$LAST_PORT/metrics"; then
        GZIP_BYTES=$(check_fleet) || die "nginx does not serve the fleet as expected"
        break
    fi
    sleep 0.1
done
[[ -n $GZIP_BYTES ]] || die "nginx did not answer on 127.0.0.1:$LAST_PORT within 10s"
NGINX_WORKER=$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null || true)
NGINX_WORKER=${NGINX_WORKER%% *}

# --- the shared scrape config --------------------------------------------------------------------
yaml_quote() { local s=${1//\'/\'\'}; printf "'%s'" "$s"; }
python3 - "$BASE_PORT" "$TARGETS" >"$TMP/targets.yml" <<'PY'
import sys

base, n = int(sys.argv[1]), int(sys.argv[2])
print("# Generated by benches/alerter_vs_prometheus.sh")
print("- labels:")
print("    env: bench")
print("    team: fleetwatch")
print("  targets:")
for port in range(base, base + n):
    print(f"    - 127.0.0.1:{port}")
PY
cat >"$TMP/config.yml" <<EOF
# Generated by benches/alerter_vs_prometheus.sh; used by both daemons.
global:
  scrape_interval: ${INTERVAL}s
  scrape_timeout: 10s
  evaluation_interval: ${INTERVAL}s
rule_files:
  - $(yaml_quote "$RULES_GLOB")
  - $(yaml_quote "$ROOT/benches/fixtures/bench-rules.yml")
$( ((RULES_MIXIN)) && echo "  - $(yaml_quote "$MIXIN")")
scrape_configs:
  - job_name: node
    file_sd_configs:
      - files:
          - $(yaml_quote "$TMP/targets.yml")
EOF
RULE_FILES=$(compgen -G "$RULES_GLOB" | wc -l || true)

# --- measurement helpers -------------------------------------------------------------------------
# An instant query through the Prometheus HTTP API; prints the single result's value, 0 for an
# empty result, "n/a" when the query fails.
query() { # port promql
    python3 - "$1" "$2" <<'PY' || echo n/a
import json, sys, urllib.parse, urllib.request

port, q = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
try:
    with urllib.request.urlopen(url, timeout=30) as resp:
        doc = json.load(resp)
    if doc.get("status") != "success":
        raise ValueError(f"status {doc.get('status')!r}: {doc.get('error')}")
    result = doc["data"]["result"]
    if doc["data"]["resultType"] == "scalar":
        v = result[1]
    elif not result:
        v = "0"
    else:
        v = result[0]["value"][1]
    f = float(v)
except Exception as e:
    sys.exit(f"query {q!r} on port {port} failed: {e}")
print(int(f) if f.is_integer() else v)
PY
}

# Number of rules (alerting + recording) the daemon loaded, from /api/v1/rules; "n/a" on failure.
rule_count() { # port
    python3 - "$1" <<'PY' || echo n/a
import json, sys, urllib.request

try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v1/rules", timeout=30) as resp:
        doc = json.load(resp)
    if doc.get("status") != "success":
        raise ValueError(f"status {doc.get('status')!r}: {doc.get('error')}")
    n = sum(len(g.get("rules", [])) for g in doc["data"]["groups"])
except Exception as e:
    sys.exit(f"GET /api/v1/rules on port {sys.argv[1]} failed: {e}")
print(n)
PY
}

# Sum over rule groups of the last evaluation's duration, from the daemon's /metrics; "n/a" on
# failure or when no group has been evaluated yet.
eval_seconds() { # name
    local metric=prometheus_rule_group_last_duration_seconds
    [[ $1 == alerter ]] && metric=fleetwatch_alerter_rule_group_last_duration_seconds
    python3 - "${WEB_PORT[$1]}" "$metric" <<'PY' || echo n/a
import sys, urllib.request

port, metric = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
except Exception as e:
    sys.exit(f"GET /metrics on port {port} failed: {e}")
values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
          if line.startswith(metric + "{") or line.startswith(metric + " ")]
if not values or sum(values) == 0:
    sys.exit(f"{metric} not found or zero on port {port}")
print(f"{sum(values):.6f}")
PY
}

start_daemon() { # name -> sets DAEMON_PID
    local name=$1 port=${WEB_PORT[$1]} extra=()
    mkdir -p "$TMP/$name"
    if [[ $name == alerter ]]; then
        # shellcheck disable=SC2206 # split on whitespace on purpose
        extra=(${ALERTER_ARGS:-})
        # Run in its own directory so anything it writes lands in the temp dir.
        (cd "$TMP/$name" && exec "$ALERTER" --config.file="$TMP/config.yml" \
            --web.listen-address="127.0.0.1:$port" ${extra[@]+"${extra[@]}"}) \
            >"$TMP/$name.log" 2>&1 &
    else
        # shellcheck disable=SC2206
        extra=(${PROMETHEUS_ARGS:-})
        rm -rf -- "$TMP/$name"
        mkdir -p "$TMP/$name/data"
        # Debian's defaults otherwise: no --enable-feature, no remote write, no Alertmanager.
        (cd "$TMP/$name" && exec "$PROMETHEUS_BIN" --config.file="$TMP/config.yml" \
            --storage.tsdb.path="$TMP/$name/data" --web.listen-address="127.0.0.1:$port" \
            ${extra[@]+"${extra[@]}"}) >"$TMP/$name.log" 2>&1 &
    fi
    DAEMON_PID=$!
}

# Ready when the HTTP API answers at all (any status code).
wait_ready() { # name
    local name=$1 port=${WEB_PORT[$1]} i code
    for ((i = 0; i < 600; i++)); do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            echo "$name exited; its output:" >&2
            tail -n 50 "$TMP/$name.log" >&2
            DAEMON_PID=
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
            "http://127.0.0.1:$port/api/v1/query?query=up" || true)
        [[ $code != 000 && -n $code ]] && return 0
        sleep 0.1
    done
    echo "$name did not answer HTTP on 127.0.0.1:$port within 60s; its output:" >&2
    tail -n 50 "$TMP/$name.log" >&2
    return 1
}

# --- measure -------------------------------------------------------------------------------------
declare -A TICKS SECONDS_RUN HWM_MAX RSS_SUM RUNS RULE_COUNT EVAL_SUM EVAL_N
ROW_LOG=()
INVALID=0

run_once() { # name round
    local name=$1 round=$2 port=${WEB_PORT[$1]} t0 t1 w0 w1 n0=0 n1=0 hwm rss up samples rules
    local secs cycles e evals=() left step
    echo "round $round/$ROUNDS: $name: ${WARMUP}s warm-up, ${WINDOW}s measured ..." >&2
    start_daemon "$name"
    wait_ready "$name" || die "$name did not start"
    pause "$WARMUP"
    alive_or_die "$name"

    w0=$EPOCHREALTIME
    t0=$(cpu_ticks "$DAEMON_PID")
    [[ -z $NGINX_WORKER ]] || n0=$(cpu_ticks "$NGINX_WORKER")
    # One reading of the evaluation time per cycle.
    left=$WINDOW
    while ((left > 0)); do
        step=$((left < INTERVAL ? left : INTERVAL))
        pause "$step"
        left=$((left - step))
        e=$(eval_seconds "$name")
        [[ $e == n/a ]] || evals+=("$e")
    done
    alive_or_die "$name"
    t1=$(cpu_ticks "$DAEMON_PID")
    [[ -z $NGINX_WORKER ]] || n1=$(cpu_ticks "$NGINX_WORKER")
    w1=$EPOCHREALTIME
    hwm=$(status_kb "$DAEMON_PID" VmHWM)
    rss=$(status_kb "$DAEMON_PID" VmRSS)

    # After the window, so the queries' cost is not measured.
    up=$(query "$port" 'count(up == 1)')
    samples=$(query "$port" 'sum(scrape_samples_scraped)')  # kept by benches/fixtures/bench-rules.yml
    rules=$(rule_count "$port")
    stop_pid "$DAEMON_PID"
    DAEMON_PID=

    secs=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
    cycles=$(awk -v s="$secs" -v i="$INTERVAL" 'BEGIN { printf "%.4f", s / i }')
    TICKS[$name]=$((${TICKS[$name]:-0} + t1 - t0))
    SECONDS_RUN[$name]=$(awk -v a="${SECONDS_RUN[$name]:-0}" -v b="$secs" 'BEGIN { printf "%.3f", a + b }')
    ((hwm > ${HWM_MAX[$name]:-0})) && HWM_MAX[$name]=$hwm
    RSS_SUM[$name]=$((${RSS_SUM[$name]:-0} + rss))
    RUNS[$name]=$((${RUNS[$name]:-0} + 1))
    RULE_COUNT[$name]=$rules
    local eval_mean=n/a
    if ((${#evals[@]})); then
        eval_mean=$(printf '%s\n' "${evals[@]}" | awk '{ s += $1 } END { printf "%.4f", s / NR }')
        EVAL_SUM[$name]=$(awk -v a="${EVAL_SUM[$name]:-0}" -v b="$eval_mean" 'BEGIN { printf "%.6f", a + b }')
        EVAL_N[$name]=$((${EVAL_N[$name]:-0} + 1))
    fi
    ROW_LOG+=("$(printf '%-10s | %5s | %12s | %9s | %9s | %5s | %9s | %5s | %9s | %12s' "$name" "$round" \
        "$(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" -v c="$cycles" 'BEGIN { printf "%.3f", t / hz / c }')" \
        "$(mb "$hwm")" "$(mb "$rss")" "$up" "$samples" "$rules" "$eval_mean" \
        "$(awk -v t="$((n1 - n0))" -v hz="$CLK_TCK" -v c="$cycles" 'BEGIN { printf "%.3f", t / hz / c }')")")

    if [[ $up != "$TARGETS" ]]; then
        warn_loud "$name round $round: count(up == 1) = $up, expected $TARGETS; see $TMP/$name.log (KEEP_TMP=1 keeps it)"
        INVALID=1
    fi
    if [[ $samples != $((TARGETS * SAMPLES_PER_TARGET)) ]]; then
        warn_loud "$name round $round: sum(scrape_samples_scraped) = $samples, expected $((TARGETS * SAMPLES_PER_TARGET))"
    fi
    if grep -qE '\[(alert|crit|emerg)\]' "$TMP/nginx/error.log" 2>/dev/null; then
        warn_loud "nginx logged errors:"
        grep -E '\[(alert|crit|emerg)\]' "$TMP/nginx/error.log" | tail -n 5 >&2
        INVALID=1
    fi
}

mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

for ((round = 1; round <= ROUNDS; round++)); do
    for name in "${DAEMONS[@]}"; do
        run_once "$name" "$round"
    done
done

# --- report --------------------------------------------------------------------------------------
eval_mean() { # name -> mean evaluation seconds per cycle over all rounds
    if [[ -z ${EVAL_N[$1]:-} ]]; then echo n/a; return; fi
    awk -v s="${EVAL_SUM[$1]}" -v n="${EVAL_N[$1]}" 'BEGIN { printf "%.4f", s / n }'
}
cpu_per_cycle() { # name -> CPU seconds per cycle over all rounds
    awk -v t="${TICKS[$1]}" -v hz="$CLK_TCK" -v s="${SECONDS_RUN[$1]}" -v i="$INTERVAL" \
        'BEGIN { printf "%.3f", t / hz / (s / i) }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.3f", a / b }'; }

echo
[[ -z $ALERTER ]] || echo "alerter:    $ALERTER"
wants prometheus && echo "prometheus: $PROMETHEUS_BIN ($("$PROMETHEUS_BIN" --version 2>&1 | head -n1))"
echo "fleet:      $TARGETS targets on 127.0.0.1:$BASE_PORT..$LAST_PORT (nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), 1 worker)," \
    "$SAMPLES_PER_TARGET samples each ($(wc -c <"$FIXTURE") bytes, $GZIP_BYTES gzipped)"
echo "rules:      $RULES_GLOB ($RULE_FILES files)$( ((RULES_MIXIN)) && echo " + $MIXIN")"
echo "method:     $ROUNDS rounds, each daemon alone in turn: ${WARMUP}s warm-up + ${WINDOW}s measured;" \
    "interval ${INTERVAL}s; CLK_TCK=$CLK_TCK; MB = 1024 kB"
echo
printf '%-10s | %5s | %12s | %9s | %9s | %5s | %9s | %5s | %9s | %12s\n' daemon round "CPU s/cycle" \
    "peak MB" "RSS MB" "up" samples rules "eval s" "nginx s/cyc"
printf '%s\n' "-----------+-------+--------------+-----------+-----------+-------+-----------+-------+-----------+-------------"
printf '%s\n' "${ROW_LOG[@]}"
echo

row() { printf '%-20s | %12s | %12s | %8s\n' "$@"; }
if [[ ${#DAEMONS[@]} -eq 2 ]]; then
    A_CPU=$(cpu_per_cycle alerter)
    P_CPU=$(cpu_per_cycle prometheus)
    A_RSS=$((RSS_SUM[alerter] / RUNS[alerter]))
    P_RSS=$((RSS_SUM[prometheus] / RUNS[prometheus]))
    CPU_RATIO=$(ratio "$A_CPU" "$P_CPU")
    HWM_RATIO=$(ratio "${HWM_MAX[alerter]}" "${HWM_MAX[prometheus]}")
    row metric alerter prometheus ratio
    row "--------------------" "------------" "------------" "--------"
    row "CPU s/cycle" "$A_CPU" "$P_CPU" "$CPU_RATIO"
    row "peak RSS MB (max)" "$(mb "${HWM_MAX[alerter]}")" "$(mb "${HWM_MAX[prometheus]}")" "$HWM_RATIO"
    row "end RSS MB (mean)" "$(mb "$A_RSS")" "$(mb "$P_RSS")" "$(ratio "$A_RSS" "$P_RSS")"
    A_EVAL=$(eval_mean alerter)
    P_EVAL=$(eval_mean prometheus)
    EVAL_RATIO=$(ratio "$A_EVAL" "$P_EVAL")
    row "rule eval s/cycle" "$A_EVAL" "$P_EVAL" "$EVAL_RATIO"
    row "rules loaded" "${RULE_COUNT[alerter]}" "${RULE_COUNT[prometheus]}" ""
    if [[ ${RULE_COUNT[alerter]} == n/a ]]; then
        echo "note: the alerter did not answer /api/v1/rules, so the rule counts were not compared"
    elif [[ ${RULE_COUNT[alerter]} != "${RULE_COUNT[prometheus]}" ]]; then
        warn_loud "the daemons report different rule counts (${RULE_COUNT[alerter]} vs ${RULE_COUNT[prometheus]})"
    fi

    verdict() { if [[ $1 == 1 ]]; then echo PASS; else echo MISS; fi; }
    le() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "n/a" && r <= t) }'; }
    echo
    echo "targets: CPU per cycle <= 0.30x Prometheus's and RSS <= 0.25x Prometheus's (peak);"
    echo "         rule evaluation time per cycle <= 0.5x Prometheus's"
    printf '  CPU ratio <= 0.30:  %s (%s)\n' "$(verdict "$(le "$CPU_RATIO" 0.30)")" "$CPU_RATIO"
    printf '  RSS ratio <= 0.25:  %s (%s)\n' "$(verdict "$(le "$HWM_RATIO" 0.25)")" "$HWM_RATIO"
    printf '  eval ratio <= 0.5:  %s (%s)\n' "$(verdict "$(le "$EVAL_RATIO" 0.5)")" "$EVAL_RATIO"
else
    name=${DAEMONS[0]}
    row1() { printf '%-20s | %12s\n' "$@"; }
    row1 metric "$name"
    row1 "--------------------" "------------"
    row1 "CPU s/cycle" "$(cpu_per_cycle "$name")"
    row1 "peak RSS MB (max)" "$(mb "${HWM_MAX[$name]}")"
    row1 "end RSS MB (mean)" "$(mb $((RSS_SUM[$name] / RUNS[$name])))"
    row1 "rule eval s/cycle" "$(eval_mean "$name")"
    row1 "rules loaded" "${RULE_COUNT[$name]}"
    echo
    echo "ONLY=$name: no ratios (target: alerter <= 0.30x Prometheus's CPU per cycle, <= 0.25x its RSS)"
fi
if ((INVALID)); then
    warn_loud "not every target was scraped in every run (see the 'up' column): the figures are not comparable"
    exit 3
fi
