#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time and prints, per target,
# the executions, the corpus size and the crashes found. Not part of the
# test command (it takes SECONDS x 3 plus a sanitizer build).
#
#   scripts/fuzz.sh [SECONDS]        default 300 per target
#
# libFuzzer needs nightly-only compiler flags; the machine has one stable
# toolchain, so RUSTC_BOOTSTRAP=1 lets it accept them. Crashes are kept in
# fuzz/artifacts/TARGET/ and must become regression tests.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/valetkey-fuzz-target}"
work="${FUZZ_WORK_DIR:-$HOME/.cache/valetkey-fuzz}"
mkdir -p "$work"
# The dispatch target builds a real daemon state: keep its files private.
export XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" XDG_RUNTIME_DIR="$work/run"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
summary="$work/summary.txt"
printf '%-18s %8s %14s %10s %8s\n' target seconds executions exec/s crashes > "$summary"
status=0
for t in frame_codec jsonrpc_dispatch delegation_token; do
  corpus="$work/corpus/$t"
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  log="$work/$t.log"
  set +e
  cargo fuzz run --fuzz-dir fuzz "$t" "$corpus" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=4096 \
    -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
  printf '%-18s %8s %14s %10s %8s\n' "$t" "$secs" "${execs:-0}" "${rate:-0}" "$crashes" >> "$summary"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    echo "fuzz: $t failed (exit $rc); see $log and fuzz/artifacts/$t/" >&2
    tail -30 "$log" >&2
    status=1
  fi
done
cat "$summary"
exit "$status"
