#!/usr/bin/env bash
# The system stage: install Valet Key the way a user gets it and use it
# under a real systemd. Builds the .deb (from the debug binaries the test
# command already built), boots a clean Debian bookworm under
# systemd-nspawn (systemd 252 as PID 1, logind, a per-user manager),
# `apt-get install`s the package there, and as a logged-in user with an
# unlocked gnome-keyring checks (tests/system/user.sh): the package enabled
# the socket, the first connection starts valetkeyd, READY and the watchdog
# hold past WatchdogSec, `valetkey doctor` is OK, `valetkey login` works
# against the test IdP (running on this machine: the container shares its
# network), an agent gets a down-scoped token through consent, and after
# `kill -9` of the daemon the socket starts it again with the grant and
# refresh token kept.
#
# The debootstrapped root is cached outside the clone ($VK_NSPAWN_CACHE,
# default ~/.cache/valetkey-nspawn), and so are the Debian packages apt
# downloads; each run starts from a fresh copy of the clean root.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/valetkey-target}"
cache="${VK_NSPAWN_CACHE:-$HOME/.cache/valetkey-nspawn}"
start=$(date +%s)
say() { echo "system-test: $*" >&2; }

apt_get() {
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
command -v systemd-nspawn >/dev/null && command -v debootstrap >/dev/null || apt_get systemd-container debootstrap

work=$(mktemp -d /var/tmp/valetkey-system.XXXXXX)
root="$work/root"
NSPAWN=""; L=""
cleanup() {
  if [ -n "$L" ]; then nsenter -t "$L" -a systemctl poweroff 2>/dev/null || true; elif [ -n "$NSPAWN" ]; then kill -TERM "$NSPAWN" 2>/dev/null || true; fi
  [ -n "$NSPAWN" ] && wait "$NSPAWN" 2>/dev/null || true
  for h in systemd unified; do find /sys/fs/cgroup/$h/vk-system -depth -type d -exec rmdir {} \; 2>/dev/null || true; done
  kill "${pids[@]}" 2>/dev/null || true
  [ "${status:-1}" -eq 0 ] && rm -rf "$work" || echo "system-test: failed; logs in $work" >&2
}
pids=()
trap cleanup EXIT

say "building the .deb from the debug binaries"
packaging/deb/build.sh --profile debug --fast --out "$work" >/dev/null
deb=$(ls "$work"/valetkey_*.deb)

# The mirror apt already uses here (never a hard-coded host).
mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -m1 -oE '^(URIs:|deb) +[^ ]+' | awk '{print $2}' || true)
[ -n "$mirror" ] || { say "no Debian mirror in the apt sources"; exit 1; }
if [ ! -x "$cache/pristine/usr/lib/systemd/systemd" ]; then
  say "debootstrap of a clean bookworm into $cache/pristine (once)"
  rm -rf "$cache/pristine.new"; mkdir -p "$cache"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,python3,procps,curl,ca-certificates,gnome-keyring,libsecret-tools \
    bookworm "$cache/pristine.new" "$mirror" > "$work/debootstrap.log"
  echo "deb $mirror bookworm main" > "$cache/pristine.new/etc/apt/sources.list"
  chroot "$cache/pristine.new" useradd -m -s /bin/bash tester
  mv "$cache/pristine.new" "$cache/pristine"
fi
cp -a "$cache/pristine" "$root"
mkdir -p "$cache/apt-archives/partial" "$root/opt/test"
cp "$deb" tests/system/user.sh examples/python/valetkey_client.py tests/oidc/fake-browser.sh "$root/opt/test/"

# The test IdP, on this machine (the container shares its network).
. scripts/world.sh
world_provider
cp "$work/certs/ca.pem" "$root/opt/test/ca.pem"
{ world_provider_toml "Local test IdP" | sed "s#ca_file = .*#ca_file = \"/opt/test/ca.pem\"#"; } > "$root/opt/test/config.toml"

say "booting bookworm under systemd-nspawn"
for h in systemd unified; do mkdir -p /sys/fs/cgroup/$h/vk-system; done
( echo $BASHPID > /sys/fs/cgroup/systemd/vk-system/cgroup.procs
  echo $BASHPID > /sys/fs/cgroup/unified/vk-system/cgroup.procs
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn -q -D "$root" -M vksystem --boot \
      --register=no --keep-unit --console=passive \
      --bind="$cache/apt-archives:/var/cache/apt/archives" ) > "$work/nspawn.log" 2>&1 &
NSPAWN=$!
for _ in $(seq 300); do L=$(pgrep -P "$NSPAWN" -x systemd) && break; sleep 0.1; done
[ -n "$L" ] || { say "the container did not boot"; cat "$work/nspawn.log" >&2; exit 1; }
c() { nsenter -t "$L" -a "$@"; }
until st=$(c systemctl is-system-running 2>/dev/null); [ "$st" = running ] || [ "$st" = degraded ]; do sleep 0.1; done
c loginctl enable-linger tester
until [ "$(c systemctl is-active user@1000.service)" = active ]; do sleep 0.1; done

say "apt-get install $(basename "$deb")"
c apt-get update -q > "$work/apt-update.log"
c env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "/opt/test/$(basename "$deb")" > "$work/deb-install.log"
# The package enables the socket for every user's manager from its next
# start on (`systemctl --global enable`): the user logs out and in again.
c systemctl restart user@1000.service
until [ "$(c systemctl is-active user@1000.service)" = active ]; do sleep 0.1; done

say "as the user: activation, watchdog, doctor, login, consent, kill -9"
c runuser -l tester -c "bash /opt/test/user.sh" 2>&1 | tee "$work/user.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] && say "all checks passed in $(( $(date +%s) - start ))s"
exit "$status"
