#!/usr/bin/env bash
# The test command: installs what it needs, then runs formatting, lints,
# and every test (unit and end-to-end against real parts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/valetkey-target}"
export CARGO_TERM_COLOR=never
# No incremental session data: it grew the shared target dir by gigabytes
# a week (23 GiB once, and a full disk); whole crates rebuild instead.
export CARGO_INCREMENTAL=0
start=$(date +%s)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The daemon is the only writer of its database: built on its own, the CLI
# gets the core without the `writer` feature, so it cannot open it writable.
cargo check -p valetkey --quiet
cargo build --workspace --bins
(cd src-ui/web && npx --no-install vitest run)
cargo test --workspace -- --test-threads=2
# Time is injected: no unit test may depend on the day, hour or time zone.
# Run the unit tier again with the wall clock pinned (libfaketime) to a
# Monday morning and to the last minute of a Friday, in two time zones a
# day apart.
runner="CARGO_TARGET_$(rustc -vV | sed -n 's/^host: //p' | tr 'a-z-' 'A-Z_')_RUNNER"
for at in "2026-03-02 09:00:00|America/Adak" "2026-11-27 23:59:00|Pacific/Kiritimati"; do
  echo "scripts/test.sh: unit tests with the clock at ${at%|*} UTC, TZ=${at#*|}"
  env "$runner=$PWD/scripts/at-date.sh" VK_FAKE_NOW="${at%|*}" TZ="${at#*|}" \
    cargo test -p valetkey-ipc -p valetkey-core -p valetkeyd -p valetkey --lib --bins --quiet -- --test-threads=2
done
# Installed for real: the .deb into a clean Debian booted with
# systemd-nspawn, used by a logged-in user under a real systemd user
# manager, upgraded, removed and purged: bookworm (systemd 252) and trixie
# (systemd 257).
bash scripts/system-test.sh bookworm
bash scripts/system-test.sh trixie
echo "scripts/test.sh: all checks passed in $(( $(date +%s) - start ))s"
