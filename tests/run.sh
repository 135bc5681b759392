#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this and nothing else).
# 1. Installs what the tests need when it is missing (Debian packages: prometheus + promtool,
#    prometheus-node-exporter, prometheus-blackbox-exporter, curl, git, podman + runc + busybox-static
#    for the containers tests, prometheus-alertmanager and python3-venv + aiosmtpd (in target/venv)
#    for the receiver tests; the Rust components rustfmt and clippy).
# 2. cargo fmt --check, cargo clippy --all-targets -D warnings, builds the binaries, and runs
#    cargo test --workspace (unit, fixture/golden, HTTP, CLI and real-Prometheus tests).
# Tests that need a tool fail in CI when it is missing; elsewhere they print why they skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
command -v curl >/dev/null || missing+=(curl)
command -v git >/dev/null || missing+=(git)
command -v prometheus-blackbox-exporter >/dev/null || missing+=(prometheus-blackbox-exporter)
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing: ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's packages start their own daemons where an init system exists; the tests use their
# own free ports, so those do not interfere.

# aiosmtpd (the SMTP server of the email receiver tests) in a venv kept under target/.
if ! target/venv/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  echo "==> installing aiosmtpd into target/venv"
  python3 -m venv target/venv
  target/venv/bin/pip install -q aiosmtpd
fi

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  echo "==> installing rustfmt and clippy"
  rustup component add rustfmt clippy
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo build (binaries used by the end-to-end tests)"
cargo build --workspace --bins
echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -o '[0-9]* passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -o '[0-9]* failed' "$log" | awk '{s += $1} END {print s + 0}')
echo "tests: $passed passed, $failed failed"
exit "$status"
