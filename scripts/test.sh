#!/usr/bin/env bash
# The test command: installs what it needs, then runs formatting, lints,
# and every test (unit and end-to-end against real parts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/valetkey-target}"
export CARGO_TERM_COLOR=never
start=$(date +%s)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
(cd src-ui/web && npx --no-install vitest run)
cargo test --workspace -- --test-threads=2
echo "scripts/test.sh: all checks passed in $(( $(date +%s) - start ))s"
