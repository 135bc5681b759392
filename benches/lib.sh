# Helpers shared by the benchmark scripts (sourced, not run): reading a daemon's CPU time and
# memory from /proc, the simple honest way to measure it.

CLK_TCK=$(getconf CLK_TCK)

# utime + stime (fields 14 and 15) of the whole process (all its threads, live and exited), in
# clock ticks. The fields are counted after the last ')' because the command name (field 2) may
# itself contain spaces or ')'.
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*") "}
    # shellcheck disable=SC2086 # split into fields on purpose; field 3 becomes $1
    set -- $stat
    echo $((${12} + ${13}))
}

status_kb() { # pid field -> value in kB
    awk -v key="$2:" '$1 == key { print $2; found = 1 } END { exit !found }' "/proc/$1/status"
}

die() { echo "error: $*" >&2; exit 1; }

# Installs Debian packages (with sudo when not root), refreshing the package lists once if the
# first attempt fails. On a systemd host a package may also start its own service on its default
# port; the benches use other ports, so it does not interfere (you may want to stop it).
apt_install() { # package...
    local sudo=()
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null || die "$* missing and we are not root"
        sudo=(sudo)
    fi
    echo "installing $* ..." >&2
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; then
        "${sudo[@]}" apt-get update
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
    fi
}

# Builds a release binary of the workspace and prints its path.
release_bin() { # package binary
    local target_dir
    cargo build --release -p "$1" >&2
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    echo "$target_dir/release/$2"
}

# Whether the run includes daemon $1 (the scripts set DAEMONS from ONLY).
wants() { local d; for d in "${DAEMONS[@]}"; do [[ $d == "$1" ]] && return 0; done; return 1; }

# sleep in the background and wait for it: bash runs the INT/TERM traps only once a foreground
# command has finished, but interrupts `wait` at once. The cleanup traps kill $SLEEP_PID.
SLEEP_PID=
pause() { # seconds
    sleep "$1" &
    SLEEP_PID=$!
    wait "$SLEEP_PID"
    SLEEP_PID=
}

# TERM, then KILL after the grace period; reaps the process.
stop_pid() { # pid [grace seconds]
    local pid=$1 grace=${2:-30} i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Debian's nginx, installed when missing; sets NGINX.
find_nginx() {
    NGINX=$(command -v nginx || true)
    [[ -n $NGINX ]] || [[ ! -x /usr/sbin/nginx ]] || NGINX=/usr/sbin/nginx
    if [[ -z $NGINX ]]; then
        apt_install nginx
        NGINX=$(command -v nginx || echo /usr/sbin/nginx)
        [[ -x $NGINX ]] || die "nginx still missing after installing the package"
    fi
}

# Dies with the daemon's last output if $DAEMON_PID is gone (its log is $TMP/NAME.log).
alive_or_die() { # name
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        echo "$1 exited during the run; its output:" >&2
        tail -n 50 "$TMP/$1.log" >&2
        DAEMON_PID=
        die "$1 exited"
    fi
}

# A line that stands out in the output, for results that must not be trusted.
warn_loud() {
    printf '\n!!!!!!!! WARNING: %s !!!!!!!!\n\n' "$*" >&2
}
