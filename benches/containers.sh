#!/usr/bin/env bash
# The containers collector's cost with many real containers: creates CONTAINERS cgroups named like
# Docker containers (/docker/<id> in each v1 controller, or in the v2 tree), each with a sleeping
# process, and measures fleetwatch-exporter (only the containers collector on, no API socket):
#   - daemon CPU per scrape with no containers and with CONTAINERS of them, and the difference
#     per container and scrape (target < 20 µs);
#   - RSS after warm-up scrapes with no containers and with CONTAINERS, and the growth per
#     container (target < 2 KB); and the host's unreclaimable kernel memory before and after the
#     exporter first reads the containers (its open cgroup files hold read buffers in the kernel).
# There is no peer here: cAdvisor is not packaged in Debian.
#
# Usage: sudo benches/containers.sh          (root: it writes to /sys/fs/cgroup)
#
# Environment:
#   CONTAINERS=500       cgroups to create
#   SCRAPES=200          measured scrapes per phase (after 20 warm-up scrapes)
#   NETNS=host           host: the sleepers stay in the script's (the host's) network namespace, as
#                        `--network host` containers (no network series); own: each sleeper gets a
#                        network namespace of its own (`unshare --net`) with a dummy eth0 in it, as
#                        a container with its own network (its net/dev read every scrape, four
#                        network series)
#   BUSY=0               1: each container's process wakes every 20 ms (a shell loop that never
#                        forks) and the scrapes are paced 100 ms apart, so every container's CPU
#                        time moves between two scrapes (the collector then reads cpuacct.stat
#                        too, which it skips while cpuacct.usage stands still)
#   LIMIT=0              1: each container gets a 256 MiB memory limit (v1: the collector then reads
#                        memory.failcnt every scrape, which cannot move without a limit)
#   FLEETWATCH_BIN=path  use this binary instead of building one with cargo (release profile)
#
# CPU is utime+stime of the daemon from /proc/PID/stat (the scrape client's cost does not count).
# The script exits 0 whether the targets are met or not, non-zero only when something failed.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

CONTAINERS=${CONTAINERS:-500}
SCRAPES=${SCRAPES:-200}
NETNS=${NETNS:-host}
BUSY=${BUSY:-0}
LIMIT=${LIMIT:-0}
WARMUP=20
CG=/sys/fs/cgroup

[[ $EUID -eq 0 ]] || die "run as root (cgroups are created under $CG)"
[[ $CONTAINERS =~ ^[1-9][0-9]*$ ]] || die "CONTAINERS must be a positive integer"
[[ $SCRAPES =~ ^[1-9][0-9]*$ ]] || die "SCRAPES must be a positive integer"
[[ $NETNS == host || $NETNS == own ]] || die "NETNS must be host or own"
[[ $BUSY == 0 || $BUSY == 1 ]] || die "BUSY must be 0 or 1"
[[ $LIMIT == 0 || $LIMIT == 1 ]] || die "LIMIT must be 0 or 1"
[[ $NETNS == host ]] || { command -v unshare >/dev/null && command -v ip >/dev/null; } || die "NETNS=own needs unshare (util-linux) and ip (iproute2)"
command -v python3 >/dev/null || die "python3 is required"

if [[ -n ${FLEETWATCH_BIN:-} ]]; then
    BIN=$FLEETWATCH_BIN
else
    BIN=$(release_bin fleetwatch-exporter fleetwatch-exporter)
fi

# --- cgroups -------------------------------------------------------------------------------------
if [[ -e $CG/cgroup.controllers ]]; then
    LAYOUT=v2
    BASES=("$CG")
else
    LAYOUT=$([[ -e $CG/unified/cgroup.controllers ]] && echo hybrid || echo v1)
    BASES=()
    for c in cpu cpuacct memory blkio pids; do [[ -d $CG/$c ]] && BASES+=("$CG/$c"); done
fi
[[ ${#BASES[@]} -gt 0 ]] || die "no cgroup hierarchy under $CG"

WORK=$(mktemp -d)
mkfifo "$WORK/fifo"
SLEEPERS=()
CREATED=()
EXPORTER_PID=
cleanup() {
    [[ -n $EXPORTER_PID ]] && kill "$EXPORTER_PID" 2>/dev/null || true
    for p in "${SLEEPERS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # Deepest first: the containers, then the /docker parents this script made.
    # A cgroup whose last process is still exiting cannot be removed yet: retry for a while.
    for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do
        for _ in $(seq 50); do rmdir "${CREATED[i]}" 2>/dev/null && break; [[ -d ${CREATED[i]} ]] || break; sleep 0.1; done
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

make_containers() {
    local base id i
    for base in "${BASES[@]}"; do
        if [[ ! -d $base/docker ]]; then
            mkdir "$base/docker"
            CREATED+=("$base/docker")
            [[ $LAYOUT == v2 ]] && echo "+cpu +memory +pids" > "$base/docker/cgroup.subtree_control" 2>/dev/null || true
        fi
    done
    for ((i = 0; i < CONTAINERS; i++)); do
        id=$(printf 'fbe%061x' "$i")
        if [[ $BUSY == 1 ]]; then
            # Wakes every 20 ms without forking: bash's read with a timeout on a FIFO nobody writes.
            set -- bash -c 'exec 3<>"$0"; while :; do read -t 0.02 -u 3 || :; done' "$WORK/fifo"
        else
            set -- sleep 3600
        fi
        if [[ $NETNS == own ]]; then
            # shellcheck disable=SC2016
            unshare --net sh -c 'ip link add eth0 type dummy && ip link set eth0 up; exec "$@"' sh "$@" &
        else
            "$@" &
        fi
        SLEEPERS+=($!)
        for base in "${BASES[@]}"; do
            mkdir "$base/docker/$id"
            CREATED+=("$base/docker/$id")
            if [[ $LIMIT == 1 && -e $base/docker/$id/memory.limit_in_bytes ]]; then
                echo $((256 << 20)) > "$base/docker/$id/memory.limit_in_bytes"
            elif [[ $LIMIT == 1 && -e $base/docker/$id/memory.max ]]; then
                echo $((256 << 20)) > "$base/docker/$id/memory.max"
            fi
            echo "$!" > "$base/docker/$id/cgroup.procs"
        done
    done
}

# --- exporter ------------------------------------------------------------------------------------
# Starts the exporter with containers.limits_refresh = $1 (sets PORT and EXPORTER_PID).
start_exporter() { # limits_refresh
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf 'containers:\n  docker_socket: ""\n  max_containers: %d\n  limits_refresh: %s\n' "$((CONTAINERS + 1000))" "$1" > "$WORK/exporter.yml"
    "$BIN" --web.listen-address="127.0.0.1:$PORT" --collector.disable-defaults --collector.containers \
        --config.file="$WORK/exporter.yml" --log.level=warn &
    EXPORTER_PID=$!
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null && break
        sleep 0.1
    done
}
start_exporter 5m

# Sequential GETs over one keep-alive connection; prints the last body's container_last_seen count.
# With BUSY=1 the scrapes start 100 ms apart.
scrape() { # count
    python3 - "$PORT" "$1" "$BUSY" <<'PY'
import http.client, sys, time
port, count, busy = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
body = b""
for _ in range(count):
    if busy:
        time.sleep(0.1)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        sys.exit(f"HTTP {resp.status}")
print(sum(1 for l in body.splitlines() if l.startswith(b"container_last_seen{")))
PY
}

# The floor: a C loop doing nothing but the reads the collector does every scrape, one pread per
# file, over the same containers' files. Their kernel cost varies with the machine's load by up
# to half within minutes, so the floor is measured in turns with the exporter's scrapes.
floor_files() {
    local i id c
    for ((i = 0; i < CONTAINERS; i++)); do
        id=$(printf 'fbe%061x' "$i")
        if [[ $LAYOUT == v2 ]]; then
            for f in cpu.stat memory.current memory.stat memory.events memory.swap.current pids.current io.stat; do
                [[ -e $CG/docker/$id/$f ]] && echo "$CG/docker/$id/$f"
            done
        else
            c=$CG/cpuacct/docker/$id
            echo "$c/cpuacct.usage"
            [[ $BUSY == 1 ]] && echo "$c/cpuacct.stat"
            echo "$CG/memory/docker/$id/memory.usage_in_bytes"
            echo "$CG/memory/docker/$id/memory.stat"
            [[ $LIMIT == 1 ]] && echo "$CG/memory/docker/$id/memory.failcnt"
            echo "$CG/pids/docker/$id/pids.current"
            echo "$CG/blkio/docker/$id/blkio.throttle.io_service_bytes"
        fi
    done
}
FLOOR_BIN=
if command -v cc >/dev/null && cc -O2 -o "$WORK/cgroup_reads" "$ROOT/benches/cgroup_reads.c"; then
    FLOOR_BIN=$WORK/cgroup_reads
else
    warn_loud "no C compiler: the floor of the reads is not measured"
fi


# Prints: containers-seen cpu-ticks-over-SCRAPES rss-kB floor-µs-per-round (-1: not measured).
# With $1 = floor, the scrapes are taken in 5 turns, each followed by 10 rounds of the floor.
phase() {
    local seen t0 t1 ticks=0 floor=0 turn per=$((SCRAPES / 5))
    scrape "$WARMUP" >/dev/null
    if [[ ${1:-} != floor || -z $FLOOR_BIN ]]; then
        t0=$(cpu_ticks "$EXPORTER_PID")
        seen=$(scrape "$SCRAPES")
        t1=$(cpu_ticks "$EXPORTER_PID")
        echo "$seen $((t1 - t0)) $(status_kb "$EXPORTER_PID" VmRSS) -1"
        return
    fi
    for ((turn = 0; turn < 5; turn++)); do
        t0=$(cpu_ticks "$EXPORTER_PID")
        seen=$(scrape "$per")
        t1=$(cpu_ticks "$EXPORTER_PID")
        ticks=$((ticks + t1 - t0))
        floor=$(python3 -c "print($floor + $("$FLOOR_BIN" 10 < "$WORK/floor.txt"))")
    done
    echo "$seen $((ticks * SCRAPES / (per * 5))) $(status_kb "$EXPORTER_PID" VmRSS) $(python3 -c "print($floor / 5)")"
}

slab_kb() { awk '$1 == "SUnreclaim:" { print $2 }' /proc/meminfo; }
read -r seen0 ticks0 rss0 _ < <(phase)
hwm0=$(status_kb "$EXPORTER_PID" VmHWM)
make_containers
slab0=$(slab_kb)
floor_files > "$WORK/floor.txt"
read -r seen1 ticks1 rss1 FLOOR < <(phase floor)
slab1=$(slab_kb)
hwm=$(status_kb "$EXPORTER_PID" VmHWM)
[[ $seen1 -eq $CONTAINERS ]] || die "the exporter saw $seen1 containers, expected $CONTAINERS"
# The same scrapes from an exporter that reads every container's limits (and looks up its
# network namespace) at every scrape instead of every 5 minutes.
stop_pid "$EXPORTER_PID"
start_exporter 0s
read -r _ ticks2 _ _ < <(phase)

python3 - "$LAYOUT" "$NETNS $([[ $BUSY == 1 ]] && echo ", busy (every container's CPU time moves between scrapes)") $([[ $LIMIT == 1 ]] && echo ", memory limit on every container")" "$CONTAINERS" "$SCRAPES" "$CLK_TCK" "$seen0" "$ticks0" "$rss0" "$hwm0" "$ticks1" "$rss1" "$hwm" "$slab0" "$slab1" "$ticks2" "$FLOOR" <<'PY'
import sys
layout, netns = sys.argv[1], sys.argv[2]
n, scrapes, hz, seen0, t0, rss0, hwm0, t1, rss1, hwm, slab0, slab1, t2 = map(int, sys.argv[3:16])
floor = float(sys.argv[16])
per0 = t0 / hz / scrapes * 1e6
per1 = t1 / hz / scrapes * 1e6
per_container = (per1 - per0) / n
growth = (rss1 - rss0) * 1024 / n
print(f"layout {layout}, {n} containers (each a cgroup with a sleeping process), network namespace {netns}, {scrapes} scrapes per phase")
print(f"| containers | CPU per scrape | RSS |")
print(f"| --- | --- | --- |")
print(f"| {seen0} | {per0:.0f} µs | {rss0 / 1024:.1f} MiB |")
print(f"| {n} | {per1:.0f} µs | {rss1 / 1024:.1f} MiB (peak {hwm / 1024:.1f} MiB) |")
refresh = ((t2 - t1) / hz / scrapes * 1e6) / n
print(f"CPU per container per scrape: {per_container:.1f} µs (target < 20 µs)")
print(f"reading the limits again (every 5 min by default) costs {refresh:.1f} µs per container; at a 15 s")
print(f"scrape interval that is {refresh / 20:.1f} µs per scrape, so {per_container + refresh / 20:.1f} µs per container per scrape in all")
if floor >= 0:
    print(f"the reads alone (benches/cgroup_reads.c: one pread per file of the same files, in turns with the scrapes): {floor / n:.1f} µs per container")
print(f"RSS growth per container: {growth:.0f} bytes (target < 2048); peak RSS growth: {(hwm - hwm0) * 1024 / n:.0f} bytes")
print(f"kernel memory (SUnreclaim, whole host) while the exporter's files are open: {(slab1 - slab0) * 1024 / n:.0f} bytes per container")
PY
