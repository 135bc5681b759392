#!/usr/bin/env bash
# The activity collector's file watching against the seeds' daemon, which walks the whole tree
# and stats every file every 60 s. Makes a tree of DIRS directories with FILES_PER_DIR files in
# each (default: 20,000 and 10, 200,000 files) and measures:
#   - the exporter (only the activity collector on, the tree as its one root): start-up time until
#     every directory is watched (the watcher's own "watches in place" log line, and the wall time
#     until /metrics shows activity_watched_directories{mode="inotify"} for all of them), RSS
#     growth against the same exporter with an empty root, and its CPU over IDLE idle seconds;
#   - the peer: a Python walk (os.walk + os.stat of every file, the excluded directories skipped),
#     its CPU for one walk = one 60 s duty cycle (the median of WALKS warm walks);
# and prints the ratios (targets: idle CPU <= 0.01x the walk's, RSS growth <= 40 MB).
#
# When the exporter has no activity collector (it fails --config.check with the activity config),
# the watcher is measured through the exporter/examples/activity_watch.rs driver instead (same
# library code, no HTTP server or /proc sampling), and the script says so.
#
# Usage: benches/activity.sh
#
# Environment:
#   DIRS=20000 FILES_PER_DIR=10   the tree (DIRS directories below the root, in 100 projects)
#   IDLE=60                       idle seconds measured
#   WALKS=3                       peer walks (the median counts)
#   FLEETWATCH_BIN=path           use this exporter binary instead of building one (release)
#   DRIVER_BIN=path               use this activity_watch example binary instead of building one
#   TREE=dir                      make (or reuse, if it has the right shape) the tree here
#   USERS=root,alice              activity.users (default: the collector's, every uid >= 1000):
#                                 whose processes the collector samples every interval
#   MODE=driver                   measure the watcher alone through the driver even when the
#                                 exporter has the activity collector
#
# CPU is from /proc/PID/task/*/schedstat (ns, sampled every 0.5 s) for the daemons and time.process_time() for the
# walk. The script exits 0 whether the targets are met or not, non-zero only when something failed.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
source benches/lib.sh

DIRS=${DIRS:-20000}
FILES_PER_DIR=${FILES_PER_DIR:-10}
IDLE=${IDLE:-60}
WALKS=${WALKS:-3}
PROJECTS=100

for v in DIRS FILES_PER_DIR IDLE WALKS; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"; done
((DIRS % PROJECTS == 0)) || die "DIRS must be a multiple of $PROJECTS"
command -v python3 >/dev/null || die "python3 is required"

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/fleetwatch-activity.XXXXXX")
PID=
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
TREE=${TREE:-$WORK/tree}
EMPTY=$WORK/empty
mkdir -p "$EMPTY"

# --- the tree: PROJECTS project directories, each with DIRS/PROJECTS - 1 subdirectories ----------
python3 - "$TREE" "$DIRS" "$FILES_PER_DIR" "$PROJECTS" <<'PY' >&2
import os, sys
tree, dirs, files, projects = sys.argv[1], *map(int, sys.argv[2:])
marker = os.path.join(tree, f".shape-{dirs}-{files}")
if os.path.exists(marker):
    print(f"reusing the tree in {tree}")
    sys.exit(0)
os.makedirs(tree, exist_ok=True)
for p in range(projects):
    pdir = os.path.join(tree, f"p{p:03}")
    for d in [pdir] + [os.path.join(pdir, f"d{d:03}") for d in range(dirs // projects - 1)]:
        os.makedirs(d, exist_ok=True)
        for f in range(files):
            open(os.path.join(d, f"f{f}"), "w").close()
open(marker, "w").close()
print(f"made {dirs} directories with {dirs * files} files in {tree}")
PY
WATCHED=$((DIRS + 1)) # the root too

# --- the peer: one full mtime walk -----------------------------------------------------------------
walk_ns=$(python3 - "$TREE" "$WALKS" <<'PY'
import os, statistics, sys, time
tree, walks = sys.argv[1], int(sys.argv[2])
skip = {".git", "node_modules", "target", "__pycache__", ".venv"}
def walk():
    newest, n = 0.0, 0
    for d, dirs, files in os.walk(tree):
        dirs[:] = [x for x in dirs if x not in skip]
        for f in files:
            st = os.stat(os.path.join(d, f))
            newest = max(newest, st.st_mtime)
            n += 1
    return n
walk()  # warm the caches: the daemon's tree is walked every minute
times = []
for _ in range(walks):
    t0 = time.process_time_ns()
    n = walk()
    times.append(time.process_time_ns() - t0)
print(int(statistics.median(times)))
PY
)

# --- the exporter (or the driver) ----------------------------------------------------------------
MODE=${MODE:-exporter}
if [[ $MODE == exporter && -z ${FLEETWATCH_BIN:-} ]]; then
    cargo build --release -p fleetwatch-exporter >&2
    FLEETWATCH_BIN=$ROOT/target/release/fleetwatch-exporter
fi
write_config() { # root -> path of a config watching it
    printf 'activity:\n  roots: ["%s"]\n  scan_interval: 60s\n' "$1" > "$WORK/$2.yml"
    [[ -z ${USERS:-} ]] || printf '  users: [%s]\n' "$USERS" >> "$WORK/$2.yml"
    echo "$WORK/$2.yml"
}
if [[ $MODE == exporter ]] && ! "$FLEETWATCH_BIN" --config.file="$(write_config "$EMPTY" check)" --config.check --collector.disable-defaults --collector.activity >/dev/null 2>&1; then
    MODE=driver
    echo "note: $FLEETWATCH_BIN has no activity collector; measuring the watcher through the activity_watch driver" >&2
fi
if [[ $MODE == driver ]]; then
    if [[ -z ${DRIVER_BIN:-} ]]; then
        cargo build --release -p fleetwatch-exporter --example activity_watch >&2
        DRIVER_BIN=$ROOT/target/release/examples/activity_watch
    fi
fi
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Sum of activity_watched_directories{mode="inotify"} on /metrics (0 when unreachable).
watched_on_metrics() {
    python3 - "$PORT" <<'PY'
import sys, urllib.request
try:
    body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
except OSError:
    print(0); sys.exit()
print(int(sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
              if l.startswith("activity_watched_directories{") and 'mode="inotify"' in l)))
PY
}

now_ms() { date +%s%3N; }

# Starts the daemon on root $1 and waits until it watches $2 directories. Sets PID and writes to
# $WORK/NAME.result: watcher-ms wall-ms rss-before-kB rss-after-kB (rss-before: the driver's own
# reading before it starts watching, 0 for the exporter).
start() { # root expected-dirs name
    local t0 log=$WORK/$3.log out=$WORK/$3.out ms wall before=0 line
    t0=$(now_ms)
    if [[ $MODE == exporter ]]; then
        "$FLEETWATCH_BIN" --web.listen-address="127.0.0.1:$PORT" --collector.disable-defaults --collector.activity \
            --config.file="$(write_config "$1" "$3")" --log.level=info 2>"$log" >"$out" &
        PID=$!
        for _ in $(seq 1200); do
            [[ $(watched_on_metrics) -ge $2 ]] && break
            kill -0 "$PID" 2>/dev/null || die "the exporter exited: $(tail -5 "$log")"
            sleep 0.05
        done
        wall=$(($(now_ms) - t0))
        [[ $(watched_on_metrics) -ge $2 ]] || die "the exporter did not report $2 watched directories in 60 s"
        line=$(grep -m1 'watches in place' "$log" || true)
        ms=$(sed -n 's/.*elapsed_ms=\([0-9]*\).*/\1/p' <<<"$line")
    else
        "$DRIVER_BIN" "$1" >"$out" 2>"$log" &
        PID=$!
        for _ in $(seq 1200); do
            grep -q '^ready' "$out" && break
            kill -0 "$PID" 2>/dev/null || die "the driver exited: $(tail -5 "$log")"
            sleep 0.05
        done
        wall=$(($(now_ms) - t0))
        read -r _ ms dirs _ < <(grep '^ready' "$out") || die "the driver did not get ready in 60 s"
        [[ $dirs -ge $2 ]] || die "the driver watches $dirs directories, expected $2"
        before=$(awk '$1 == "rss_before_kb" { print $2 }' "$out")
    fi
    sleep 2 # settle
    echo "${ms:-0} $wall $before $(status_kb "$PID" VmRSS)" > "$WORK/$3.result"
}

# CPU (ns) of the daemon over IDLE seconds with nothing changing in the tree: the sum over its
# threads of /proc/PID/task/TID/schedstat's run time, sampled every 0.5 s so that threads that
# exit in between (the runtime's idle blocking threads) still count up to their last sample, and
# threads started in between count from zero.
idle_cpu() {
    python3 - "$PID" "$IDLE" <<'PY'
import os, sys, time
pid, seconds = sys.argv[1], float(sys.argv[2])
seen = {}  # tid -> [first, last]
def sample(initial):
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        seen.setdefault(tid, [ns if initial else 0, ns])[1] = ns
sample(True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    time.sleep(min(0.5, max(0.0, end - time.monotonic())))
    sample(False)
print(sum(last - first for first, last in seen.values()))
PY
}

stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

start "$EMPTY" 1 empty
read -r _ _ _ rss_empty < "$WORK/empty.result"
cpu_empty=$(idle_cpu)
stop
start "$TREE" "$WATCHED" tree
read -r ms wall rss_before rss_tree < "$WORK/tree.result"
cpu_tree=$(idle_cpu)
hwm=$(status_kb "$PID" VmHWM)
stop

python3 - "$MODE" "${USERS:-default}" "$DIRS" "$((DIRS * FILES_PER_DIR))" "$IDLE" "$walk_ns" "$ms" "$wall" "$rss_empty" "$rss_before" "$rss_tree" "$hwm" "$cpu_empty" "$cpu_tree" <<'PY'
import sys
users = sys.argv.pop(2)
mode, dirs, files, idle, walk_ns, ms, wall, rss_empty, rss_before, rss_tree, hwm, cpu_empty, cpu_tree = sys.argv[1], *map(int, sys.argv[2:])
what = f"fleetwatch-exporter (only the activity collector, users: {users})" if mode == "exporter" else "the activity_watch driver (the watcher alone)"
base = rss_empty if mode == "exporter" else rss_before
growth = (rss_tree - base) / 1024
print(f"{dirs} directories, {files} files; {what}")
print("| | fleetwatch | peer: mtime walk every 60 s |")
print("| --- | --- | --- |")
print(f"| start-up (all {dirs + 1} directories watched) | {ms / 1000:.2f} s (watcher), {wall / 1000:.2f} s (wall, until reported) | one walk |")
print(f"| CPU per {idle} s idle | {cpu_tree / 1e6:.1f} ms (empty root: {cpu_empty / 1e6:.1f} ms) | {walk_ns / 1e6 * idle / 60:.0f} ms |")
print(f"| RSS | {rss_tree / 1024:.1f} MiB (peak {hwm / 1024:.1f}), {'empty root' if mode == 'exporter' else 'before watching'}: {base / 1024:.1f} MiB | |")
print(f"idle CPU ratio: {cpu_tree / (walk_ns * idle / 60):.4f}x the walk's (target <= 0.01x)")
print(f"RSS growth for the watches: {growth:.1f} MiB (target <= 40 MB)")
PY
