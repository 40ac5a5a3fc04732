#!/usr/bin/env bash
# The system stage: install Valet Key the way a user gets it and use it
# under a real systemd.
#
#   scripts/system-test.sh [bookworm|trixie]      (default bookworm)
#
# Builds the .deb (from the debug binaries the test command already built)
# and a newer one, boots a clean Debian under systemd-nspawn (the real
# systemd as PID 1, logind, a per-user manager: 252 on bookworm, 257 on
# trixie) and, as a logged-in user with an unlocked gnome-keyring
# (tests/system/user.sh):
#
# 1. `apt-get install`: the package enabled and started the socket; the
#    first connection starts valetkeyd; READY and the watchdog hold past
#    WatchdogSec; `valetkey doctor` is OK; `valetkey login` works against
#    the test IdP (on this machine: the container shares its network); an
#    agent gets a down-scoped token through consent; after `kill -9` the
#    daemon is back with the grant and refresh token kept;
# 2. upgrade to the newer .deb while an agent is connected: the daemon runs
#    the new binary, the agent's next call gets its token with no new
#    consent, grants, keychain items and the audit chain are intact;
# 3. `apt-get remove`, then `purge`: units and daemon gone, the user's data
#    kept, as packaging/README.md says.
#
# The debootstrapped root is cached outside the clone ($VK_NSPAWN_CACHE,
# default ~/.cache/valetkey-nspawn/SUITE), and so are the Debian packages
# apt downloads; each run starts from a fresh copy of the clean root.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/valetkey-target}"
suite="${1:-bookworm}"
case "$suite" in bookworm|trixie) ;; *) echo "usage: $0 [bookworm|trixie]" >&2; exit 2 ;; esac
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
deb=$(packaging/deb/build.sh --profile debug --fast --out "$work/old")
version=$(dpkg-deb -f "$deb" Version)
newdeb=$(packaging/deb/build.sh --profile debug --fast --out "$work/new" --version "$version+sys1")

# The mirror apt already uses here (never a hard-coded host).
mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -m1 -oE '^(URIs:|deb) +[^ ]+' | awk '{print $2}' || true)
[ -n "$mirror" ] || { say "no Debian mirror in the apt sources"; exit 1; }
if [ ! -x "$cache/$suite/usr/lib/systemd/systemd" ]; then
  say "debootstrap of a clean $suite into $cache/$suite (once)"
  rm -rf "$cache/$suite.new"; mkdir -p "$cache"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,python3,procps,curl,ca-certificates,gnome-keyring,libsecret-tools \
    "$suite" "$cache/$suite.new" "$mirror" > "$work/debootstrap.log"
  echo "deb $mirror $suite main" > "$cache/$suite.new/etc/apt/sources.list"
  chroot "$cache/$suite.new" useradd -m -s /bin/bash tester
  mv "$cache/$suite.new" "$cache/$suite"
fi
cp -a "$cache/$suite" "$root"
# /opt/test/run: where the test and the user's agent meet (the container's
# /tmp is its own tmpfs).
mkdir -p "$cache/apt-archives-$suite/partial" "$root/opt/test/run"
chmod 1777 "$root/opt/test/run"
cp "$deb" "$newdeb" tests/system/user.sh tests/system/held_agent.py examples/python/valetkey_client.py \
   tests/oidc/fake-browser.sh "$root/opt/test/"
cp -r sdk/python/src "$root/opt/test/sdk"

# The test IdP, on this machine (the container shares its network).
. scripts/world.sh
world_provider
cp "$work/certs/ca.pem" "$root/opt/test/ca.pem"
{ world_provider_toml "Local test IdP" | sed "s#ca_file = .*#ca_file = \"/opt/test/ca.pem\"#"; } > "$root/opt/test/config.toml"

say "booting $suite under systemd-nspawn"
for h in systemd unified; do mkdir -p /sys/fs/cgroup/$h/vk-system; done
( echo $BASHPID > /sys/fs/cgroup/systemd/vk-system/cgroup.procs
  echo $BASHPID > /sys/fs/cgroup/unified/vk-system/cgroup.procs
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn -q -D "$root" -M vksystem --boot \
      --register=no --keep-unit --console=passive \
      --bind="$cache/apt-archives-$suite:/var/cache/apt/archives" ) > "$work/nspawn.log" 2>&1 &
NSPAWN=$!
for _ in $(seq 300); do L=$(pgrep -P "$NSPAWN" -x systemd) && break; sleep 0.1; done
[ -n "$L" ] || { say "the container did not boot"; cat "$work/nspawn.log" >&2; exit 1; }
c() { nsenter -t "$L" -a "$@"; }
until st=$(c systemctl is-system-running 2>/dev/null); [ "$st" = running ] || [ "$st" = degraded ]; do sleep 0.1; done
# Through PID 1 (systemd-run), so logind sees a process of the container:
# systemd 257's logind refuses one that only entered its namespaces.
c systemd-run --quiet --wait --pipe --collect loginctl enable-linger tester
until [ "$(c systemctl is-active user@1000.service)" = active ]; do sleep 0.1; done

say "apt-get install $(basename "$deb")"
c apt-get update -q > "$work/apt-update.log"
c env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "/opt/test/$(basename "$deb")" > "$work/deb-install.log"
as_user() { c runuser -l tester -c "$*"; }

say "as the user: activation, watchdog, doctor, login, consent, kill -9"
as_user bash /opt/test/user.sh installed 2>&1 | tee "$work/user.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

say "upgrade to $(basename "$newdeb") while an agent is connected"
as_user "PYTHONPATH=/opt/test/sdk python3 /opt/test/held_agent.py" > "$work/held.log" 2>&1 &
held=$!; pids+=("$held")
for _ in $(seq 100); do [ -s "$root/opt/test/run/held.ready" ] && break; sleep 0.1; done
[ -s "$root/opt/test/run/held.ready" ] || { say "the held agent got no token: $(cat "$work/held.log")"; exit 1; }
as_user bash /opt/test/user.sh before-upgrade 2>&1 | tee -a "$work/user.log"
exe_inode() { c stat -L -c %i "/proc/$(as_user systemctl --user show -p MainPID --value valetkeyd.service)/exe"; }
old_inode=$(exe_inode)
c env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "/opt/test/$(basename "$newdeb")" > "$work/deb-upgrade.log"
new_inode=$(exe_inode)
[ "$new_inode" = "$(c stat -c %i /usr/bin/valetkeyd)" ] && [ "$new_inode" != "$old_inode" ] ||
  { say "valetkeyd runs inode $new_inode, not the new /usr/bin/valetkeyd (the old one was $old_inode)"; exit 1; }
say "valetkeyd now runs the new binary (inode $old_inode -> $new_inode)"
as_user bash /opt/test/user.sh upgraded 2>&1 | tee -a "$work/user.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
touch "$root/opt/test/run/held.go"
wait "$held" || { say "the held agent failed after the upgrade: $(cat "$work/held.log")"; exit 1; }
say "held agent: $(cat "$work/held.log")"

say "apt-get remove, then purge"
c env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q valetkey > "$work/deb-remove.log"
as_user bash /opt/test/user.sh removed 2>&1 | tee -a "$work/user.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
for f in /usr/bin/valetkeyd /usr/lib/systemd/user/valetkeyd.service /usr/lib/systemd/user/valetkeyd.socket \
         /etc/systemd/user/sockets.target.wants/valetkeyd.socket; do
  [ ! -e "$root$f" ] || { say "$f is still there after remove"; exit 1; }
done
[ -e "$root/etc/xdg/autostart/valetkey-tray.desktop" ] || { say "remove took the conffile (only purge may)"; exit 1; }
c env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q valetkey > "$work/deb-purge.log"
[ ! -e "$root/etc/xdg/autostart/valetkey-tray.desktop" ] || { say "purge left the autostart entry"; exit 1; }
c dpkg -s valetkey >/dev/null 2>&1 && { say "dpkg still knows valetkey after purge"; exit 1; }
as_user bash /opt/test/user.sh purged 2>&1 | tee -a "$work/user.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] && say "all checks passed in $(( $(date +%s) - start ))s"
exit "$status"
