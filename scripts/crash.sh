#!/usr/bin/env bash
# Crash safety: kill -9 the daemon at random moments under a load of four
# agents, ROUNDS times (default 20), checking grants, the refresh token,
# the audit chain and reconnection after each restart. Not part of the
# test command (about a minute); prints a one-line summary.
#
#   scripts/crash.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/valetkey-target}"
export VK_CRASH_ROUNDS="${1:-20}"
cargo build --workspace --bins
cargo test -p valetkey-e2e --test e2e -- --ignored --nocapture crash:: 2>&1 | tee /tmp/valetkey-crash.log | grep -E "crash summary|test result|panicked|round [0-9]+:"
