#!/usr/bin/env bash
# Compares fleetwatch-exporter's `health` collector (scheduled HTTP checks) with Debian's
# blackbox_exporter doing the same probes at the same rate: daemon CPU per probe and RSS (current
# and peak).
#
# The probed service is one local nginx (1 worker, on SERVER_PORTS loopback ports) answering
# `GET /health` with 200 "ok\n". There are CHECKS distinct targets, the same server with different
# query strings: http://127.0.0.1:PORT/health?i=N (N = 1..CHECKS, spread over the ports).
#
# - fleetwatch-exporter gets a config file with `collectors: {}` (the default collectors, which
#   cost nothing unless scraped) and a `health:` section holding the CHECKS checks, interval 1s,
#   timeout 5s, max_concurrency 64. It runs them by itself every second; nothing scrapes it during
#   the measured window.
# - blackbox_exporter (module http_2xx: prober http, timeout 5s, preferred_ip_protocol ip4) only
#   probes when asked, so this script drives it at the same rate: a small Python asyncio client
#   with a pool of 64 keep-alive connections sends CHECKS `GET /probe?module=http_2xx&target=...`
#   requests per second, spaced evenly within each second, every target once a second, and counts
#   the answers that contain `probe_success 1`.
#
# Usage: benches/health_vs_blackbox.sh          (from any directory)
#
# Environment:
#   CHECKS=300            number of checks (distinct targets), each probed once a second
#   WARMUP=10             seconds each daemon probes before the measured window
#   WINDOW=60             measured seconds per daemon and round
#   ROUNDS=1              rounds; each round runs the exporter, then blackbox_exporter, one at a time
#   ONLY=exporter|blackbox   run only that daemon (no ratios); default both
#   EXPORTER_BIN=path     use this binary instead of building one with cargo
#                         (`cargo build --release -p fleetwatch-exporter`, a no-op when up to date)
#   BLACKBOX_BIN=path     blackbox_exporter binary (default /usr/bin/prometheus-blackbox-exporter,
#                         Debian package prometheus-blackbox-exporter, installed if missing)
#   SERVER_PORTS=4        number of nginx ports the targets are spread over
#   KEEP_TMP=1            keep the temporary directory (configs, logs) and print its path
#
# Method: each daemon starts from scratch in every round and runs alone (never both at once, so
# they do not fight over the CPUs). After WARMUP seconds of probing, its CPU (utime+stime from
# /proc/PID/stat, all threads) is read at the start and end of the WINDOW. Probes done in the
# window are counted where they land: nginx's request counter (stub_status) is read at both ends,
# so both daemons are measured the same way and a daemon that falls behind its schedule is not
# credited with probes it did not do. CPU per probe = daemon CPU seconds / probes done. For
# reference the table also shows the nominal count (CHECKS per second of window), what the driver
# got back from blackbox_exporter, the connections nginx accepted in the window (blackbox_exporter
# opens a new one for every probe; a prober that kept connections alive would open far fewer and
# save work on both sides, so this column shows whether the two did the same work), and the CPU of
# the nginx worker and of the driver per probe. VmRSS is read at the end of the window and VmHWM
# (peak RSS since start) with it.
#
# Note the asymmetry: the exporter's figure includes its own scheduling (timers, concurrency
# limit, storing results for /metrics), while blackbox_exporter's excludes the scheduling, which
# the driver does; it does include parsing the /probe request and rendering its response. The
# driver's CPU is printed separately, for information only.
#
# After the exporter's window the script reads its /metrics once: every check must have a
# fleetwatch_health_check_last_run_timestamp_seconds within 3 s of now and probe_success 1. For
# blackbox_exporter every answer must say probe_success 1. When a daemon did fewer than 95% of the
# nominal probes (it, or for blackbox_exporter the driver, could not keep up) a loud warning is
# printed; the figures are per probe done, so they stay meaningful.
#
# The target printed at the end is informational: the script exits 0 whether it is met or not. It
# exits 1 when something failed to run and 3 when probes failed or checks were not run on time
# (the figures are then not comparable).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
CALLER_PWD=$PWD
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

CHECKS=${CHECKS:-300}
WARMUP=${WARMUP:-10}
WINDOW=${WINDOW:-60}
ROUNDS=${ROUNDS:-1}
ONLY=${ONLY:-}
SERVER_PORTS=${SERVER_PORTS:-4}
BLACKBOX_BIN=${BLACKBOX_BIN:-/usr/bin/prometheus-blackbox-exporter}
KEEP_TMP=${KEEP_TMP:-0}
CONCURRENCY=64   # the exporter's max_concurrency and the driver's connection pool
PROBE_TIMEOUT=5  # seconds, both daemons
FRESH_SECONDS=3  # how recent every check's last run must be after the window

# A binary given by the user, as an absolute path (the daemons run in their own directories): a
# relative path is taken from the caller's directory, a bare name from PATH.
abs_bin() {
    case $1 in
        /*) echo "$1" ;;
        */*) echo "$CALLER_PWD/$1" ;;
        *) command -v -- "$1" || echo "$1" ;;
    esac
}
BLACKBOX_BIN=$(abs_bin "$BLACKBOX_BIN")

for var in CHECKS WARMUP WINDOW ROUNDS SERVER_PORTS; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer, got '${!var}'"
done
((SERVER_PORTS <= CHECKS)) || SERVER_PORTS=$CHECKS
case $ONLY in
    '') DAEMONS=(exporter blackbox) ;;
    exporter | blackbox) DAEMONS=("$ONLY") ;;
    *) die "ONLY must be exporter or blackbox, got '$ONLY'" ;;
esac
for tool in python3 curl getconf awk; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

# --- packages: nginx, blackbox_exporter ----------------------------------------------------------
find_nginx
NGINX_V=$("$NGINX" -V 2>&1)
[[ $NGINX_V == *--with-http_stub_status_module* ]] ||
    die "$NGINX lacks the stub_status module (the bench counts probes with it); use Debian's nginx"
if wants blackbox && [[ ! -x $BLACKBOX_BIN ]]; then
    [[ $BLACKBOX_BIN == /usr/bin/prometheus-blackbox-exporter ]] || die "$BLACKBOX_BIN is not executable"
    apt_install prometheus-blackbox-exporter
    [[ -x $BLACKBOX_BIN ]] || die "$BLACKBOX_BIN still missing after installing the package"
fi

# --- fleetwatch-exporter -------------------------------------------------------------------------
EXPORTER=
if wants exporter; then
    if [[ -n ${EXPORTER_BIN:-} ]]; then
        EXPORTER=$(abs_bin "$EXPORTER_BIN")
    else
        EXPORTER=$(release_bin fleetwatch-exporter fleetwatch-exporter)
    fi
    [[ -x $EXPORTER ]] || die "$EXPORTER is not executable"
fi

# --- temporary directory and cleanup -------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fleetwatch-health-bench.XXXXXX")
NGINX_PID=
DAEMON_PID=
DRIVER_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -z $SLEEP_PID ]] || kill "$SLEEP_PID" 2>/dev/null || true
    stop_pid "$DRIVER_PID" 5
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
# SERVER_PORTS ports for nginx and one each for the daemons' web listeners, all bound at once so the
# kernel cannot hand out the same one twice. (Another process could still grab one before it is
# bound again; nginx or the daemon then fails loudly.)
PORTS=$(python3 - "$((SERVER_PORTS + 2))" <<'PY'
import socket, sys

socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
) || die "could not pick free ports"
read -r -a PORT_LIST <<<"$PORTS"
EXPORTER_PORT=${PORT_LIST[-2]}
BLACKBOX_PORT=${PORT_LIST[-1]}
NGINX_PORTS=("${PORT_LIST[@]:0:SERVER_PORTS}")
declare -A WEB_PORT=([exporter]=$EXPORTER_PORT [blackbox]=$BLACKBOX_PORT)

# --- nginx: the probed service -------------------------------------------------------------------
mkdir -p "$TMP/nginx"
# Debian's nginx is built with absolute temp paths under /var/lib/nginx; point every one this build
# has at the temp dir so nothing outside it is touched (and a non-root run works).
TEMP_PATHS="    client_body_temp_path $TMP/nginx/client_body;"
for module in proxy fastcgi uwsgi scgi; do
    [[ $NGINX_V == *"--without-http_${module}_module"* ]] ||
        TEMP_PATHS+=$'\n'"    ${module}_temp_path $TMP/nginx/$module;"
done
{
    cat <<EOF
# Generated by benches/health_vs_blackbox.sh: the service behind the $CHECKS targets.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 8192;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    types {}
    keepalive_timeout 120s;
    keepalive_requests 1000000;
$TEMP_PATHS

    server {
EOF
    for port in "${NGINX_PORTS[@]}"; do
        echo "        listen 127.0.0.1:$port;"
    done
    cat <<EOF
        location = /health {
            default_type text/plain;
            return 200 "ok\n";
        }
        # The request counter the bench reads before and after each window.
        location = /nginx_status {
            stub_status;
        }
        location / {
            return 404;
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"

echo "starting nginx on 127.0.0.1:${NGINX_PORTS[*]} ..." >&2
"$NGINX" -p "$TMP/nginx/" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" \
    >"$TMP/nginx/stdout.log" 2>&1 &
NGINX_PID=$!

STATUS_URL="http://127.0.0.1:${NGINX_PORTS[0]}/nginx_status"
ready=0
for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$NGINX_PID" 2>/dev/null; then
        cat "$TMP/nginx/stdout.log" "$TMP/nginx/error.log" >&2 2>/dev/null || true
        NGINX_PID=
        die "nginx exited"
    fi
    if curl -sf -o /dev/null --max-time 2 "$STATUS_URL"; then
        ready=1
        break
    fi
    sleep 0.1
done
((ready)) || die "nginx did not answer on 127.0.0.1:${NGINX_PORTS[0]} within 10s"
for port in "${NGINX_PORTS[@]}"; do
    body=$(curl -sf --max-time 2 "http://127.0.0.1:$port/health?i=0") ||
        die "nginx: GET /health on port $port failed"
    [[ $body == ok ]] || die "nginx: GET /health on port $port answered '$body', expected 'ok'"
done
NGINX_WORKER=$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null || true)
NGINX_WORKER=${NGINX_WORKER%% *}

nginx_counters() { # -> nginx's accepted connections and requests so far (stub_status)
    curl -sf --max-time 5 "$STATUS_URL" | awk 'NR == 3 { print $1, $3; found = 1 } END { exit !found }'
}

# --- targets and configs -------------------------------------------------------------------------
for ((n = 1; n <= CHECKS; n++)); do
    echo "http://127.0.0.1:${NGINX_PORTS[(n - 1) % SERVER_PORTS]}/health?i=$n"
done >"$TMP/targets.txt"

{
    cat <<EOF
# Generated by benches/health_vs_blackbox.sh: $CHECKS HTTP checks, each once a second.
collectors: {}
health:
  interval: 1s
  timeout: ${PROBE_TIMEOUT}s
  max_concurrency: $CONCURRENCY
  checks:
EOF
    n=0
    while read -r url; do
        n=$((n + 1))
        printf '    - name: c%d\n      url: "%s"\n' "$n" "$url"
    done <"$TMP/targets.txt"
} >"$TMP/exporter.yml"

cat >"$TMP/blackbox.yml" <<EOF
# Generated by benches/health_vs_blackbox.sh
modules:
  http_2xx:
    prober: http
    timeout: ${PROBE_TIMEOUT}s
    http:
      preferred_ip_protocol: ip4
EOF

if wants exporter; then
    if ! "$EXPORTER" --config.file="$TMP/exporter.yml" --config.check >"$TMP/config-check.log" 2>&1; then
        cat "$TMP/config-check.log" >&2
        die "$EXPORTER rejects the generated config $TMP/exporter.yml (does it have the health collector?)"
    fi
fi

# --- the driver for blackbox_exporter ------------------------------------------------------------
# Sends RATE /probe requests a second for DURATION seconds (request k is released at start + k/RATE,
# target k mod RATE) over a pool of keep-alive connections, then waits up to 10 s for the answers
# still out. Prints key=value pairs: done (answers received), ok (HTTP 200 with probe_success 1),
# failed (other answers), errors (no answer), min/max completions per second over the seconds of
# the window, its own CPU seconds while driving, and the seconds it drove (DURATION, or more when
# answers came late).
cat >"$TMP/driver.py" <<'PY'
import asyncio, resource, sys, time, urllib.parse

port, module, targets_file, duration, pool = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
targets = [line.strip() for line in open(targets_file) if line.strip()]
rate = len(targets)
total = rate * duration
paths = ["/probe?" + urllib.parse.urlencode({"module": module, "target": t}) for t in targets]
host = f"127.0.0.1:{port}".encode()
stats = {"done": 0, "ok": 0, "failed": 0, "errors": 0}
per_second = [0] * duration
first_problem = []

async def request(reader, writer, path):
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    await writer.drain()
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("connection closed")
    status = int(line.split(None, 2)[1])
    length, chunked, close = None, False, False
    while True:
        h = await reader.readline()
        if not h:
            raise ConnectionResetError("connection closed in headers")
        if h in (b"\r\n", b"\n"):
            break
        name, _, value = h.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection" and value == b"close":
            close = True
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body, close = await reader.read(), True
    return status, bytes(body), close

async def worker(queue, start):
    conn = None
    while True:
        item = await queue.get()
        if item is None:
            break
        result = None
        for attempt in (0, 1):  # one retry, for a keep-alive connection the server closed
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", int(port))
                result = await asyncio.wait_for(request(*conn, item), 30)
                if result[2]:
                    conn[1].close()
                    conn = None
                break
            except (OSError, EOFError, ValueError, IndexError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError) as e:
                if conn is not None:
                    conn[1].close()
                    conn = None
                if attempt and not first_problem:
                    first_problem.append(f"{type(e).__name__}: {e}")
        if result is None:
            stats["errors"] += 1
            continue
        status, body = result[0], result[1]
        stats["done"] += 1
        if status == 200 and b"\nprobe_success 1\n" in b"\n" + body:
            stats["ok"] += 1
        else:
            stats["failed"] += 1
            if not first_problem:
                first_problem.append(f"HTTP {status}: {body[:300]!r}")
        sec = int(time.monotonic() - start)
        if sec < duration:
            per_second[sec] += 1

async def main():
    queue = asyncio.Queue()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic() + 0.05
    workers = [asyncio.create_task(worker(queue, start)) for _ in range(pool)]
    k = 0
    while k < total:
        now = time.monotonic()
        while k < total and start + k / rate <= now:
            queue.put_nowait(paths[k % rate])
            k += 1
        if k < total:
            await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
    for _ in workers:
        queue.put_nowait(None)
    done, pending = await asyncio.wait(workers, timeout=max(1.0, start + duration + 10 - time.monotonic()))
    for t in pending:
        t.cancel()
    unfinished = total - stats["done"] - stats["errors"]
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    print(f"done={stats['done']} ok={stats['ok']} failed={stats['failed']} "
          f"errors={stats['errors'] + unfinished} min_per_s={min(per_second)} "
          f"max_per_s={max(per_second)} cpu={cpu:.3f} secs={max(duration, time.monotonic() - start):.3f}")
    if first_problem:
        print("first problem: " + first_problem[0], file=sys.stderr)

asyncio.run(main())
PY

drive() { # seconds -> the driver's key=value line in $TMP/driver.out
    python3 "$TMP/driver.py" "$BLACKBOX_PORT" http_2xx "$TMP/targets.txt" "$1" "$CONCURRENCY" \
        >"$TMP/driver.out" 2>>"$TMP/driver.log" &
    DRIVER_PID=$!
    wait "$DRIVER_PID" || { DRIVER_PID=; cat "$TMP/driver.log" >&2; die "the driver failed"; }
    DRIVER_PID=
}

# --- measurement helpers -------------------------------------------------------------------------
# The exporter's checks after the window: prints "checks fresh success" (checks with a last-run
# timestamp, how many of those within FRESH_SECONDS of now, how many probe_success series are 1)
# and the sum of fleetwatch_health_check_failures_total; "n/a" when /metrics cannot be read.
exporter_checks() {
    python3 - "$EXPORTER_PORT" "$FRESH_SECONDS" <<'PY' || echo n/a
import re, sys, time, urllib.request

port, fresh = sys.argv[1], float(sys.argv[2])
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
except Exception as e:
    sys.exit(f"GET /metrics on port {port} failed: {e}")
now = time.time()
check = re.compile(r'[{,]check="((?:[^"\\]|\\.)*)"')
last_run, success, failures = {}, {}, 0.0
for line in text.splitlines():
    if line.startswith("#") or "{" not in line:
        continue
    name = line[:line.index("{")]
    if name not in ("fleetwatch_health_check_last_run_timestamp_seconds", "probe_success",
                    "fleetwatch_health_check_failures_total"):
        continue
    value = float(line[line.rindex("}") + 1:].split()[0])
    if name == "fleetwatch_health_check_failures_total":
        failures += value
        continue
    m = check.search(line)
    if m:
        (last_run if name.startswith("fleetwatch") else success)[m.group(1)] = value
fresh_n = sum(1 for v in last_run.values() if now - v <= fresh)
print(len(last_run), fresh_n, sum(1 for v in success.values() if v == 1), int(failures))
PY
}

start_daemon() { # name -> sets DAEMON_PID
    local name=$1 port=${WEB_PORT[$1]}
    mkdir -p "$TMP/$name"
    if [[ $name == exporter ]]; then
        (cd "$TMP/$name" && exec "$EXPORTER" --config.file="$TMP/exporter.yml" \
            --web.listen-address="127.0.0.1:$port") >"$TMP/$name.log" 2>&1 &
    else
        (cd "$TMP/$name" && exec "$BLACKBOX_BIN" --config.file="$TMP/blackbox.yml" \
            --web.listen-address="127.0.0.1:$port") >"$TMP/$name.log" 2>&1 &
    fi
    DAEMON_PID=$!
}

wait_ready() { # name
    local name=$1 port=${WEB_PORT[$1]} i
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            echo "$name exited; its output:" >&2
            tail -n 50 "$TMP/$name.log" >&2
            DAEMON_PID=
            return 1
        fi
        curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/metrics" && return 0
        sleep 0.1
    done
    echo "$name did not answer /metrics on 127.0.0.1:$port within 30s; its output:" >&2
    tail -n 50 "$TMP/$name.log" >&2
    return 1
}

mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
ms_per() { # ticks probes -> CPU ms per probe
    awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { if (n <= 0) print "n/a"; else printf "%.4f", t * 1000 / hz / n }'
}
kv() { # "k=v k=v ..." key
    local pair
    for pair in $1; do
        [[ ${pair%%=*} == "$2" ]] && { echo "${pair#*=}"; return; }
    done
    echo n/a
}

# --- measure -------------------------------------------------------------------------------------
declare -A TICKS PROBES HWM_MAX RSS_SUM RUNS SECS
ROW_LOG=()
INVALID=0

run_once() { # name round
    local name=$1 round=$2 t0 t1 w0 w1 c0 c1 r0 r1 k0=0 k1=0 hwm rss secs nominal probes conns out= cnt
    local driver_ms=- got=- checks fresh success failures
    echo "round $round/$ROUNDS: $name: $CHECKS checks/s, ${WARMUP}s warm-up, ${WINDOW}s measured ..." >&2
    start_daemon "$name"
    wait_ready "$name" || die "$name did not start"
    if [[ $name == exporter ]]; then
        pause "$WARMUP"
    else
        drive "$WARMUP"
    fi
    alive_or_die "$name"

    cnt=$(nginx_counters) || die "could not read nginx's counters"
    read -r c0 r0 <<<"$cnt"
    [[ -z $NGINX_WORKER ]] || k0=$(cpu_ticks "$NGINX_WORKER")
    t0=$(cpu_ticks "$DAEMON_PID")
    w0=$EPOCHREALTIME
    if [[ $name == exporter ]]; then
        pause "$WINDOW"
    else
        drive "$WINDOW"
        out=$(<"$TMP/driver.out")
    fi
    t1=$(cpu_ticks "$DAEMON_PID")
    w1=$EPOCHREALTIME
    [[ -z $NGINX_WORKER ]] || k1=$(cpu_ticks "$NGINX_WORKER")
    cnt=$(nginx_counters) || die "could not read nginx's counters"
    read -r c1 r1 <<<"$cnt"
    alive_or_die "$name"
    hwm=$(status_kb "$DAEMON_PID" VmHWM)
    rss=$(status_kb "$DAEMON_PID" VmRSS)

    # Seconds of probing: the wall-clock window for the exporter, the driver's own sending time
    # for blackbox (the window there also holds the driver's start-up).
    secs=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
    [[ $name == exporter ]] || secs=$(kv "$out" secs)
    nominal=$((CHECKS * WINDOW))
    probes=$((r1 - r0 - 1)) # the second status request counts itself, and its connection
    conns=$((c1 - c0 - 1))

    if [[ $name == exporter ]]; then
        # After the window, so this scrape's cost is not measured.
        read -r checks fresh success failures <<<"$(exporter_checks)"
        if [[ $checks == n/a ]]; then
            warn_loud "exporter round $round: could not read its /metrics after the window"
            INVALID=1
        else
            echo "exporter: $checks checks with a last run, $fresh of them within ${FRESH_SECONDS}s of now," \
                "$success with probe_success 1; failures_total summed: $failures" >&2
            if ((checks != CHECKS || fresh != CHECKS || success != CHECKS)); then
                warn_loud "exporter round $round: expected all $CHECKS checks run within ${FRESH_SECONDS}s and" \
                    "successful, got $checks with a last run, $fresh recent, $success successful" \
                    "(see $TMP/exporter.log; KEEP_TMP=1 keeps it)"
                INVALID=1
            fi
        fi
        got=$probes
    else
        echo "driver: $out" >&2
        got=$(kv "$out" ok)
        if [[ $(kv "$out" failed) != 0 || $(kv "$out" errors) != 0 ]]; then
            warn_loud "blackbox round $round: $(kv "$out" failed) probes did not answer probe_success 1 and" \
                "$(kv "$out" errors) requests got no answer (see $TMP/driver.log; KEEP_TMP=1 keeps it)"
            INVALID=1
        fi
        driver_ms=$(awk -v c="$(kv "$out" cpu)" -v n="$probes" 'BEGIN { if (n <= 0) print "n/a"; else printf "%.4f", c * 1000 / n }')
        if (($(kv "$out" done) != probes)); then
            echo "note: the driver got $(kv "$out" done) answers, nginx served $probes requests in the window" >&2
        fi
    fi
    if ((probes * 100 < CHECKS * WINDOW * 95)); then
        warn_loud "$name round $round: only $probes probes in ${secs}s ($(awk -v p="$probes" -v s="$secs" \
            'BEGIN { printf "%.1f", p / s }')/s), fewer than 95% of the nominal $((CHECKS * WINDOW))" \
            "($CHECKS/s); the figures below are per probe done"
    fi
    stop_pid "$DAEMON_PID"
    DAEMON_PID=

    TICKS[$name]=$((${TICKS[$name]:-0} + t1 - t0))
    PROBES[$name]=$((${PROBES[$name]:-0} + probes))
    SECS[$name]=$(awk -v a="${SECS[$name]:-0}" -v b="$secs" 'BEGIN { printf "%.3f", a + b }')
    ((hwm > ${HWM_MAX[$name]:-0})) && HWM_MAX[$name]=$hwm
    RSS_SUM[$name]=$((${RSS_SUM[$name]:-0} + rss))
    RUNS[$name]=$((${RUNS[$name]:-0} + 1))
    ROW_LOG+=("$(printf '%-8s | %5s | %7s | %7s | %8s | %7s | %7s | %6s | %12s | %7s | %7s | %11s | %11s' \
        "$name" "$round" "$probes" "$nominal" "$got" "$conns" \
        "$(awk -v p="$probes" -v s="$secs" 'BEGIN { printf "%.1f", p / s }')" \
        "$(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')" \
        "$(ms_per "$((t1 - t0))" "$probes")" "$(mb "$hwm")" "$(mb "$rss")" \
        "$(ms_per "$((k1 - k0))" "$probes")" "$driver_ms")")
    if grep -qE '\[(alert|crit|emerg)\]' "$TMP/nginx/error.log" 2>/dev/null; then
        warn_loud "nginx logged errors:"
        grep -E '\[(alert|crit|emerg)\]' "$TMP/nginx/error.log" | tail -n 5 >&2
        INVALID=1
    fi
}

for ((round = 1; round <= ROUNDS; round++)); do
    for name in "${DAEMONS[@]}"; do
        run_once "$name" "$round"
    done
done

# --- report --------------------------------------------------------------------------------------
cpu_per_probe() { ms_per "${TICKS[$1]}" "${PROBES[$1]}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.3f", a / b }'; }

echo
[[ -z $EXPORTER ]] || echo "exporter:  $EXPORTER"
wants blackbox && echo "blackbox:  $BLACKBOX_BIN ($("$BLACKBOX_BIN" --version 2>&1 | head -n1))"
echo "service:   nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') (1 worker) on 127.0.0.1:${NGINX_PORTS[*]}, GET /health -> 200 \"ok\\n\""
echo "load:      $CHECKS checks (distinct targets) once a second each; timeout ${PROBE_TIMEOUT}s; concurrency $CONCURRENCY"
echo "method:    $ROUNDS round(s), each daemon alone in turn: ${WARMUP}s warm-up + ${WINDOW}s measured;" \
    "probes counted by nginx; CLK_TCK=$CLK_TCK; MB = 1024 kB"
echo
printf '%-8s | %5s | %7s | %7s | %8s | %7s | %7s | %6s | %12s | %7s | %7s | %11s | %11s\n' daemon round probes nominal \
    "answered" "conns" "probe/s" "CPU s" "CPU ms/probe" "peak MB" "RSS MB" "nginx ms/pr" "driver ms/p"
printf '%s\n' "---------+-------+---------+---------+----------+---------+---------+--------+--------------+---------+---------+-------------+------------"
printf '%s\n' "${ROW_LOG[@]}"
echo
echo "(probes: requests nginx served in the window; nominal: $CHECKS x $WINDOW s; answered: for blackbox the" \
    "/probe answers with probe_success 1, for the exporter the same as probes; conns: connections nginx" \
    "accepted in the window, about one per probe for a prober that does not keep connections alive)"
echo

row() { printf '%-20s | %12s | %12s | %8s\n' "$@"; }
if [[ ${#DAEMONS[@]} -eq 2 ]]; then
    E_CPU=$(cpu_per_probe exporter)
    B_CPU=$(cpu_per_probe blackbox)
    E_RSS=$((RSS_SUM[exporter] / RUNS[exporter]))
    B_RSS=$((RSS_SUM[blackbox] / RUNS[blackbox]))
    CPU_RATIO=$(ratio "$E_CPU" "$B_CPU")
    row metric exporter blackbox ratio
    row "--------------------" "------------" "------------" "--------"
    row "CPU ms/probe" "$E_CPU" "$B_CPU" "$CPU_RATIO"
    row "peak RSS MB (max)" "$(mb "${HWM_MAX[exporter]}")" "$(mb "${HWM_MAX[blackbox]}")" \
        "$(ratio "${HWM_MAX[exporter]}" "${HWM_MAX[blackbox]}")"
    row "end RSS MB (mean)" "$(mb "$E_RSS")" "$(mb "$B_RSS")" "$(ratio "$E_RSS" "$B_RSS")"
    row "probes/s (mean)" "$(awk -v p="${PROBES[exporter]}" -v s="${SECS[exporter]}" 'BEGIN { printf "%.1f", p / s }')" \
        "$(awk -v p="${PROBES[blackbox]}" -v s="${SECS[blackbox]}" 'BEGIN { printf "%.1f", p / s }')" ""
    if ((TICKS[exporter] < 20 || TICKS[blackbox] < 20)); then
        echo "note: fewer than 20 CPU ticks measured for a daemon; raise WINDOW for a steadier ratio"
    fi
    verdict() { if [[ $1 == 1 ]]; then echo PASS; else echo MISS; fi; }
    echo
    printf "target: CPU per probe <= 0.5x blackbox's: %s (%s)\n" \
        "$(verdict "$(awk -v r="$CPU_RATIO" 'BEGIN { print (r != "n/a" && r <= 0.5) }')")" "$CPU_RATIO"
else
    name=${DAEMONS[0]}
    row1() { printf '%-20s | %12s\n' "$@"; }
    row1 metric "$name"
    row1 "--------------------" "------------"
    row1 "CPU ms/probe" "$(cpu_per_probe "$name")"
    row1 "peak RSS MB (max)" "$(mb "${HWM_MAX[$name]}")"
    row1 "end RSS MB (mean)" "$(mb $((RSS_SUM[$name] / RUNS[$name])))"
    row1 "probes/s (mean)" "$(awk -v p="${PROBES[$name]}" -v s="${SECS[$name]}" 'BEGIN { printf "%.1f", p / s }')"
    echo
    echo "ONLY=$name: no ratio (target: exporter's CPU per probe <= 0.5x blackbox's)"
fi
if ((INVALID)); then
    warn_loud "probes failed or checks were not run on time (see above): the figures are not comparable"
    exit 3
fi
