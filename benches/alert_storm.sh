#!/usr/bin/env bash
# Alert storm: 10,000 alerts start firing at once across 1,000 instances and go to 3 receivers
# (webhooks on local HTTP sinks), grouped by instance: 3,000 notifications of 10 alerts each.
# Measures the time from the alerter's start until every group reached every sink, the alerter's
# CPU and peak RSS over that time, the database size, and the steady-state CPU while the alerts
# stay firing (nothing new to send: only evaluation, dispatch and the group timers).
#
# The alerts come from one scrape target (a static file served by python's http.server) with
# 10,000 series `storm{instance="i<0..999>", n="<0..9>"} 1` and the rule `storm == 1` (no `for`),
# scraped with honor_labels so each alert keeps its instance.
#
# Peer (PEER=1, the default when /usr/bin/prometheus-alertmanager exists): Debian's Alertmanager
# with the same route (group_by [instance], group_wait 0s) and the same 3 sinks, given the same
# 10,000 alerts through POST /api/v2/alerts in one request; measured the same way from that POST.
# The alerter's time includes its first scrape and evaluation; Alertmanager's does not.
#
# Usage: benches/alert_storm.sh          Environment: INSTANCES=1000 PER_INSTANCE=10
#   STEADY=60 (seconds of steady state measured), ALERTER_BIN (default: cargo build --release),
#   PEER=0|1, KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

INSTANCES=${INSTANCES:-1000}
PER_INSTANCE=${PER_INSTANCE:-10}
STEADY=${STEADY:-60}
TOTAL=$((INSTANCES * PER_INSTANCE))
AM=/usr/bin/prometheus-alertmanager
PEER=${PEER:-$([ -x $AM ] && echo 1 || echo 0)}
if [ -z "${ALERTER_BIN:-}" ]; then
    cargo build --release -q -p fleetwatch-alerter
    ALERTER_BIN=target/release/fleetwatch-alerter
fi
TMP=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The sinks: one HTTP server counting notifications and alerts per path; GET /count answers
# {"/r0": [notifications, alerts], ...}.
cat >"$TMP/sink.py" <<'EOF'
import json, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
counts, lock = {}, threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        n = len(json.loads(body).get("alerts", []))
        with lock:
            c = counts.setdefault(self.path, [0, 0]); c[0] += 1; c[1] += n
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        with lock: b = json.dumps(counts).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF

python3 - "$INSTANCES" "$PER_INSTANCE" >"$TMP/metrics" <<'EOF'
import sys
n, k = int(sys.argv[1]), int(sys.argv[2])
print("# TYPE storm gauge")
for i in range(n):
    for j in range(k):
        print(f'storm{{instance="i{i}",n="{j}"}} 1')
EOF

# Waits until every sink path has `groups` notifications; prints the seconds since $1 (ns).
# With $4 (the alerter's port) it first notes when all alerts fire there, in $TMP/fired_at (ns).
wait_delivered() {
    local start=$1 port=$2 groups=$3 alerter=${4:-}
    for _ in $(seq 1 6000); do
        if [ -n "$alerter" ] && [ ! -s "$TMP/fired_at" ] &&
            curl -s "127.0.0.1:$alerter/metrics" | grep -q "^fleetwatch_alerter_alerts{state=\"firing\"} $TOTAL\$"; then
            date +%s%N >"$TMP/fired_at"
        fi
        if curl -s "127.0.0.1:$port/count" | python3 -c "
import json,sys; c=json.load(sys.stdin)
sys.exit(0 if len(c)==3 and all(v[0]>=$groups for v in c.values()) else 1)"; then
            echo "scale=2; ($(date +%s%N) - $start) / 1000000000" | bc
            return 0
        fi
        sleep 0.1
    done
    echo "timeout"
    return 1
}

steady_cpu() { # pid -> CPU % over STEADY seconds
    local a b
    a=$(cpu_ticks "$1")
    sleep "$STEADY"
    b=$(cpu_ticks "$1")
    echo "scale=2; 100 * ($b - $a) / $CLK_TCK / $STEADY" | bc
}

report() { # name seconds pid datadir sinkport
    local cpu rss hwm db steady
    cpu=$(echo "scale=2; $(cpu_ticks "$3") / $CLK_TCK" | bc)
    rss=$(status_kb "$3" VmRSS)
    hwm=$(status_kb "$3" VmHWM)
    db=$(du -sk "$4" | cut -f1)
    steady=$(steady_cpu "$3")
    echo "| $1 | $2 | $cpu s | $((hwm / 1024)) MB | $((rss / 1024)) MB | $((db / 1024)) MB | $steady % | $(curl -s "127.0.0.1:$5/count") |"
}

echo "| daemon | all $((INSTANCES * 3)) groups delivered after | CPU until then | peak RSS | RSS | DB size | steady CPU (${STEADY}s) | sinks: path [notifications, alerts] |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"

# --- fleetwatch-alerter
target_port=$(free_port)
(cd "$TMP" && exec python3 -m http.server "$target_port" --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)
sink=$(free_port)
python3 "$TMP/sink.py" "$sink" &
pids+=($!)
routes=""
receivers=""
for r in 0 1 2; do
    routes+="    - {receiver: r$r, continue: true}"$'\n'
    receivers+="  - {name: r$r, webhook_configs: [{url: 'http://127.0.0.1:$sink/r$r', max_alerts: 0}]}"$'\n'
done
cat >"$TMP/rules.yml" <<EOF
groups:
  - name: storm
    rules:
      - alert: Storm
        expr: storm == 1
EOF
cat >"$TMP/alerter.yml" <<EOF
global: {scrape_interval: 5s, scrape_timeout: 4s, evaluation_interval: 5s}
rule_files: [rules.yml]
scrape_configs:
  - job_name: storm
    honor_labels: true
    static_configs: [{targets: ['127.0.0.1:$target_port']}]
route:
  receiver: r0
  group_by: [instance]
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
  routes:
$routes
receivers:
$receivers
EOF
sleep 1
port=$(free_port)
start=$(date +%s%N)
"$ALERTER_BIN" --config.file="$TMP/alerter.yml" --web.listen-address="127.0.0.1:$port" \
    --storage.path="$TMP/alerter-data" --log.level=warn >"$TMP/alerter.log" 2>&1 &
apid=$!
pids+=($apid)
secs=$(wait_delivered "$start" "$sink" "$INSTANCES" "$port")
done_at=$(date +%s%N)
if [ -s "$TMP/fired_at" ]; then
    since_fired=$(echo "scale=2; ($done_at - $(cat "$TMP/fired_at")) / 1000000000" | bc)
else
    since_fired="?"
fi
report "fleetwatch-alerter" "$secs s (${since_fired} s after all fired)" "$apid" "$TMP/alerter-data" "$sink"
kill "$apid"

# --- Alertmanager
if [ "$PEER" = 1 ]; then
    sink2=$(free_port)
    python3 "$TMP/sink.py" "$sink2" &
    pids+=($!)
    {
        echo "route: {receiver: r0, group_by: [instance], group_wait: 0s, group_interval: 5m, repeat_interval: 4h, routes: [{receiver: r0, continue: true}, {receiver: r1, continue: true}, {receiver: r2, continue: true}]}"
        echo "receivers:"
        for r in 0 1 2; do echo "  - {name: r$r, webhook_configs: [{url: 'http://127.0.0.1:$sink2/r$r', max_alerts: 0}]}"; done
    } >"$TMP/am.yml"
    amport=$(free_port)
    clport=$(free_port)
    $AM --config.file="$TMP/am.yml" --storage.path="$TMP/am-data" --web.listen-address="127.0.0.1:$amport" \
        --cluster.listen-address="" --log.level=warn >"$TMP/am.log" 2>&1 &
    ampid=$!
    pids+=($ampid)
    for _ in $(seq 1 100); do curl -sf "127.0.0.1:$amport/-/ready" >/dev/null && break; sleep 0.1; done
    python3 - "$INSTANCES" "$PER_INSTANCE" >"$TMP/alerts.json" <<'EOF'
import json, sys, datetime
n, k = int(sys.argv[1]), int(sys.argv[2])
now = datetime.datetime.now(datetime.timezone.utc)
ends = (now + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps([{"labels": {"alertname": "Storm", "instance": f"i{i}", "n": str(j)}, "endsAt": ends} for i in range(n) for j in range(k)]))
EOF
    start=$(date +%s%N)
    curl -sf -XPOST -H 'Content-Type: application/json' --data-binary @"$TMP/alerts.json" "127.0.0.1:$amport/api/v2/alerts" >/dev/null
    secs=$(wait_delivered "$start" "$sink2" "$INSTANCES")
    report "Alertmanager $($AM --version 2>&1 | head -1 | awk '{print $3}')" "$secs s" "$ampid" "$TMP/am-data" "$sink2"
    echo "(Alertmanager's steady state: the alerts stay active until endsAt; no re-POST in the window.)"
    : "$clport"
fi
