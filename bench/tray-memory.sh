#!/usr/bin/env bash
# Measures the desktop app's memory: valetkey-tray (the tray icon that runs
# all day) plus everything below it, that is valetkey-window and its WebKitGTK
# processes (web content and network) while the window is open, as PSS
# (proportional set size: shared library pages split between the processes
# that map them) and RSS, settled: in the tray before the window was ever
# opened, with the window open, and after it was closed again. Runs in a private world: its own D-Bus
# session, Xvfb, runtime dir and a real valetkeyd for the tray to talk to.
#
#   bench/tray-memory.sh [target-dir]      (default: $CARGO_TARGET_DIR or target)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}}/debug"
release="${1:-${CARGO_TARGET_DIR:-target}}/release"
[ -x "$release/valetkey-tray" ] && bin="$release"
for b in valetkeyd valetkey-tray valetkey-window; do
  [ -x "$bin/$b" ] || { echo "build first: cargo build --workspace --bins ($bin/$b missing)" >&2; exit 1; }
done
settle="${SETTLE_SECS:-10}"

world=$(mktemp -d)
trap 'rm -rf "$world"' EXIT
mkdir -p "$world"/{home,run,config/valetkey,data}
chmod 700 "$world/run"
export HOME="$world/home" XDG_RUNTIME_DIR="$world/run" XDG_CONFIG_HOME="$world/config" XDG_DATA_HOME="$world/data"
: > "$world/config/valetkey/config.toml"

measure() { # pids… → "pss_kib rss_kib"
  local pss=0 rss=0 p
  for p in "$@"; do
    [ -r "/proc/$p/smaps_rollup" ] || continue
    pss=$((pss + $(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup")))
    rss=$((rss + $(awk '/^Rss:/{print $2}' "/proc/$p/smaps_rollup")))
  done
  echo "$pss $rss"
}
family() { # the app and every descendant
  local p=$1
  echo "$p"
  for c in $(pgrep -P "$p" || true); do family "$c"; done
}

report() { # label, app pid
  local label=$1 app=$2 pids
  pids=$(family "$app")
  read -r app_pss app_rss < <(measure "$app")
  # shellcheck disable=SC2086
  read -r all_pss all_rss < <(measure $pids)
  printf '%-26s tray PSS %6.1f MiB (RSS %6.1f) | with window+WebKit PSS %6.1f MiB (RSS %6.1f) | %d processes\n' \
    "$label" "$(echo "$app_pss/1024" | bc -l)" "$(echo "$app_rss/1024" | bc -l)" \
    "$(echo "$all_pss/1024" | bc -l)" "$(echo "$all_rss/1024" | bc -l)" "$(echo "$pids" | wc -w)"
}

# One tray through a day: started, the window opened (a second launch with
# --show, as the app menu or a notification does; the tray menu's Open does
# the same), closed with the window's close button (a WM_DELETE_WINDOW, as a
# window manager sends).
day() {
  "$bin/valetkey-tray" 2>/dev/null &
  local app=$! w
  sleep "$settle"; report "in the tray, never opened" "$app"
  "$bin/valetkey-tray" --show 2>/dev/null
  sleep "$settle"; report "window open" "$app"
  w=$(xdotool search --onlyvisible --name "^Valet Key" | head -1)
  [ -n "$w" ] && python3 bench/x11-close.py "$w"
  sleep "$settle"; report "closed again (hidden)" "$app"
  kill "$app"; wait "$app" 2>/dev/null || true
}

export -f day report measure family
export bin settle
dbus-run-session -- bash -c '
  Xvfb :77 -screen 0 1280x1000x24 -nolisten tcp 2>/dev/null &
  export DISPLAY=:77
  sleep 1
  "$bin/valetkeyd" 2>/dev/null &
  until [ -S "$XDG_RUNTIME_DIR/valetkey/control.sock" ]; do sleep 0.1; done
  echo "valetkey-tray memory ($bin, settled ${settle}s per state, $(nproc) cores)"
  day
  kill $(jobs -p) 2>/dev/null || true
' 2>/dev/null
exit 0
