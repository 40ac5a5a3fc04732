#!/usr/bin/env bash
# Run by scripts/system-test.sh as user `tester` in a logind session inside
# a clean Debian bookworm booted with systemd-nspawn, after
# `apt-get install ./valetkey_*.deb`. Only what the README has a user type.
set -euo pipefail
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; journalctl --user -u valetkeyd.service --no-pager | tail -30 >&2; exit 1; }

step "a headless, unlocked keyring for this user"
printf pw | gnome-keyring-daemon --replace --unlock --components=secrets --daemonize >/dev/null
mkdir -p ~/.config/valetkey && cp /opt/test/config.toml ~/.config/valetkey/config.toml

step "the package enabled the socket; nothing started the daemon yet"
[ "$(systemctl --user is-enabled valetkeyd.socket)" = enabled ] || fail "valetkeyd.socket not enabled by the package"
[ "$(systemctl --user is-active valetkeyd.socket)" = active ] || fail "valetkeyd.socket not listening"
[ "$(systemctl --user is-active valetkeyd.service)" != active ] || fail "valetkeyd ran before anyone connected"

step "valetkey login (the browser is curl following the IdP's redirects); its connection starts valetkeyd"
BROWSER=/opt/test/fake-browser.sh VK_TEST_CA=/opt/test/ca.pem valetkey login local --login-hint alice --timeout 60
[ "$(systemctl --user is-active valetkeyd.service)" = active ] || fail "the socket did not start valetkeyd"
pid=$(systemctl --user show -p MainPID --value valetkeyd.service)

step "an agent asks, the user allows, the agent gets a down-scoped token"
python3 /opt/test/valetkey_client.py sys-agent local repo:read > /tmp/agent.out 2>&1 &
agent=$!
for _ in $(seq 100); do id=$(valetkey consent list | awk '/^c_/ {print $1; exit}'); [ -n "$id" ] && break; sleep 0.1; done
[ -n "${id:-}" ] || fail "no consent appeared"
valetkey consent allow "$id" --for 1h
wait "$agent" || fail "the agent got no token: $(cat /tmp/agent.out)"
grep -q '"scopes": \["repo:read"\]' /tmp/agent.out || fail "not down-scoped: $(cat /tmp/agent.out)"
echo "token for: $(python3 -c 'import json; d=json.load(open("/tmp/agent.out")); print(d["provider"], d["scopes"])')"

step "valetkey doctor"
valetkey doctor | tee /tmp/doctor.out || true
grep -q '^FAIL' /tmp/doctor.out && fail "doctor found a failure"
# The user manager caps LimitMEMLOCK (8 MiB here): the daemon runs unlocked,
# and doctor says so, with the fix.
grep -q "^warn memory .*not locked" /tmp/doctor.out || fail "doctor does not say the memory is not locked"

step "READY and the watchdog hold past WatchdogSec (30 s)"
sleep 35
[ "$(systemctl --user is-active valetkeyd.service)" = active ] || fail "valetkeyd died"
[ "$(systemctl --user show -p MainPID --value valetkeyd.service)" = "$pid" ] || fail "valetkeyd was restarted (watchdog?)"
[ "$(systemctl --user show -p NRestarts --value valetkeyd.service)" = 0 ] || fail "NRestarts is not 0"

step "kill -9: systemd starts it again, and the grant and the refresh token are kept"
kill -9 "$pid"
for _ in $(seq 50); do
  new=$(systemctl --user show -p MainPID --value valetkeyd.service)
  [ "$(systemctl --user is-active valetkeyd.service)" = active ] && [ "$new" != "$pid" ] && [ "$new" != 0 ] && break
  sleep 0.2
done
python3 /opt/test/valetkey_client.py sys-agent local repo:read > /tmp/agent2.out 2>&1 || fail "after kill -9: $(cat /tmp/agent2.out)"
grep -q '"scopes": \["repo:read"\]' /tmp/agent2.out || fail "after kill -9: $(cat /tmp/agent2.out)"
valetkey audit verify > /tmp/verify.out || fail "audit verify: $(cat /tmp/verify.out)"

echo; echo "ALL OK"
