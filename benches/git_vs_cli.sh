#!/usr/bin/env bash
# Compares the git collector's refresh with the naive git CLI approach on 50 repositories, one
# of them with 100,000 commits (generated with git fast-import; the others have 200 each): the
# first scan, a refresh when nothing changed and a refresh after 10 new commits in the big
# repository, against `git rev-list --count HEAD`, `git log --since=24h --numstat` and
# `git status --porcelain` run in every repository (median of 3 runs; the collector's no-change
# figure is the median of 5). Wall-clock time of the whole cycle, scans run one after another.
#
# Usage: benches/git_vs_cli.sh            (from any directory)
#
# Environment:
#   BIG_COMMITS=100000   commits in the big repository
#   REPOS=50             repositories in all
#   KEEP=dir             generate into (and keep) this directory instead of a temporary one
#
# The targets printed at the end are informational: the script exits 0 whether they are met or
# not, and non-zero only when something failed to run.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

BIG_COMMITS=${BIG_COMMITS:-100000}
REPOS=${REPOS:-50}
[[ $BIG_COMMITS =~ ^[1-9][0-9]*$ ]] || die "BIG_COMMITS must be a positive integer"
[[ $REPOS =~ ^[1-9][0-9]*$ ]] || die "REPOS must be a positive integer"
command -v git >/dev/null || die "git is required"

cargo build --release -q -p fleetwatch-exporter --example git_bench
BENCH=target/release/examples/git_bench

if [[ -n ${KEEP:-} ]]; then
    DIR=$KEEP
    mkdir -p "$DIR"
else
    DIR=$(mktemp -d)
    trap 'rm -rf "$DIR"' EXIT
fi
export HOME=$DIR/home GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME" "$DIR/projects"
if [[ -z $(ls -A "$DIR/projects") ]]; then
    echo "generating $REPOS repositories ($BIG_COMMITS commits in the big one) in $DIR/projects ..." >&2
    start=$(date +%s)
    "$BENCH" generate "$DIR/projects" "$REPOS" "$BIG_COMMITS"
    echo "generated in $(( $(date +%s) - start ))s" >&2
fi
echo "git $(git --version | awk '{print $3}'), $(nproc) CPUs, $(date -u +%Y-%m-%d)"
"$BENCH" measure "$DIR/projects"
