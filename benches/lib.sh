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
