#!/usr/bin/env bash
# A cargo test runner that runs a test binary with the wall clock pinned
# to $VK_FAKE_NOW ("YYYY-MM-DD HH:MM:SS", UTC) by libfaketime. Time is
# injected everywhere in Valet Key, so the unit tier must pass on any date;
# scripts/test.sh runs it under two fixed dates to prove it. (Cargo splits
# a runner command on spaces, so the date cannot go on the command line.)
set -euo pipefail
exec faketime -f "@${VK_FAKE_NOW:?set VK_FAKE_NOW to \"YYYY-MM-DD HH:MM:SS\"}" "$@"
