#!/usr/bin/env bash
# Run by scripts/system-test.sh as user `tester` in a logind session inside
# a clean Debian booted with systemd-nspawn, once per phase:
#
#   user.sh installed        after `apt-get install ./valetkey_*.deb`
#   user.sh before-upgrade   notes the daemon's pid, the audit and keychain counts
#   user.sh upgraded         after installing a newer .deb over it
#   user.sh removed|purged   after `apt-get remove` / `apt-get purge`
#
# Only what the README has a user type, plus systemctl and /proc to look.
set -euo pipefail
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; journalctl --user -u valetkeyd.service --no-pager | tail -30 >&2; exit 1; }
main_pid() { systemctl --user show -p MainPID --value valetkeyd.service; }
audit_records() { valetkey audit verify --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert not r.get("broken"), r; print(r["records"])'; }
keychain_items() { secret-tool search --all service valetkey 2>/dev/null | grep -c '^\[/' || true; }

installed() {
  step "a headless, unlocked keyring for this user"
  printf pw | gnome-keyring-daemon --replace --unlock --components=secrets --daemonize >/dev/null
  mkdir -p ~/.config/valetkey && cp /opt/test/config.toml ~/.config/valetkey/config.toml

  step "the package enabled and started the socket (no new login); nothing started the daemon yet"
  [ "$(systemctl --user is-enabled valetkeyd.socket)" = enabled ] || fail "valetkeyd.socket not enabled by the package"
  [ "$(systemctl --user is-active valetkeyd.socket)" = active ] || fail "valetkeyd.socket not listening"
  [ "$(systemctl --user is-active valetkeyd.service)" != active ] || fail "valetkeyd ran before anyone connected"

  step "valetkey login (the browser is curl following the IdP's redirects); its connection starts valetkeyd"
  BROWSER=/opt/test/fake-browser.sh VK_TEST_CA=/opt/test/ca.pem valetkey login local --login-hint alice --timeout 60
  [ "$(systemctl --user is-active valetkeyd.service)" = active ] || fail "the socket did not start valetkeyd"
  pid=$(main_pid)

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
  # Under a real user manager the runtime dir is /run/user/$UID, where a
  # client with the MCP SDKs' reduced environment looks too.
  grep -q "^ok   discovery" /tmp/doctor.out || fail "doctor: a reduced-environment client would not find the socket: $(grep discovery /tmp/doctor.out)"

  step "systemd-analyze --user security: the exposure of the unit as this manager runs it"
  systemd-analyze --user security valetkeyd.service --no-pager > /tmp/security.out || true
  score=$(grep -m1 'Overall exposure level' /tmp/security.out | grep -oE '[0-9]+\.[0-9]+')
  echo "exposure $score (systemd $(systemctl --version | awk 'NR==1 {print $2}'))" | tee /opt/test/run/exposure
  awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 6.3) }' || fail "exposure $score is above 6.3: $(tail -5 /tmp/security.out)"

  step "READY and the watchdog hold past WatchdogSec (30 s)"
  sleep 35
  [ "$(systemctl --user is-active valetkeyd.service)" = active ] || fail "valetkeyd died"
  [ "$(main_pid)" = "$pid" ] || fail "valetkeyd was restarted (watchdog?)"
  [ "$(systemctl --user show -p NRestarts --value valetkeyd.service)" = 0 ] || fail "NRestarts is not 0"

  step "kill -9: systemd starts it again, and the grant and the refresh token are kept"
  kill -9 "$pid"
  for _ in $(seq 50); do
    new=$(main_pid)
    [ "$(systemctl --user is-active valetkeyd.service)" = active ] && [ "$new" != "$pid" ] && [ "$new" != 0 ] && break
    sleep 0.2
  done
  python3 /opt/test/valetkey_client.py sys-agent local repo:read > /tmp/agent2.out 2>&1 || fail "after kill -9: $(cat /tmp/agent2.out)"
  grep -q '"scopes": \["repo:read"\]' /tmp/agent2.out || fail "after kill -9: $(cat /tmp/agent2.out)"
  valetkey audit verify > /tmp/verify.out || fail "audit verify: $(cat /tmp/verify.out)"

}

before_upgrade() {
  step "before the upgrade: valetkeyd's pid, the audit records and keychain items"
  [ "$(systemctl --user is-active valetkeyd.service)" = active ] || fail "valetkeyd is not running"
  main_pid > /tmp/vk.pid
  audit_records > /tmp/vk.audit
  keychain_items > /tmp/vk.keys
  echo "pid $(cat /tmp/vk.pid), $(cat /tmp/vk.audit) audit records, $(cat /tmp/vk.keys) keychain item(s)"
}

upgraded() {
  # (Which binary it runs, system-test.sh checks as root: valetkeyd is not
  # dumpable, so even its user cannot read /proc/PID/exe.)
  step "the package's postinst restarted valetkeyd"
  [ "$(systemctl --user is-active valetkeyd.service)" = active ] || fail "valetkeyd is not running after the upgrade"
  pid=$(main_pid)
  [ "$pid" != "$(cat /tmp/vk.pid)" ] || fail "valetkeyd was not restarted (pid $pid)"
  [ "$(systemctl --user is-active valetkeyd.socket)" = active ] || fail "the socket is not listening"
  step "grants, refresh token and the audit chain survived"
  valetkey grant list | grep -q sys-agent || fail "the grant is gone: $(valetkey grant list)"
  [ "$(keychain_items)" = "$(cat /tmp/vk.keys)" ] || fail "keychain items changed"
  n=$(audit_records) || fail "audit verify failed after the upgrade"
  [ "$n" -ge "$(cat /tmp/vk.audit)" ] || fail "audit records went from $(cat /tmp/vk.audit) to $n"
  echo "now pid $pid; $n audit records chain correctly"
}

gone() { # what remove and purge both leave: no service, the user's data
  step "no unit and no daemon for this user; the user's data is kept"
  ! systemctl --user cat valetkeyd.socket >/dev/null 2>&1 || fail "valetkeyd.socket is still known to the manager"
  ! systemctl --user cat valetkeyd.service >/dev/null 2>&1 || fail "valetkeyd.service is still known to the manager"
  ! pgrep -u "$(id -u)" -x valetkeyd >/dev/null || fail "valetkeyd still runs"
  [ ! -e "$XDG_RUNTIME_DIR/valetkey/agent.sock" ] || fail "the agent socket is still there"
  [ -s ~/.local/share/valetkey/state.db ] || fail "the state database is gone"
  [ "$(keychain_items)" = "$(cat /tmp/vk.keys)" ] || fail "keychain items changed"
  echo "state.db $(stat -c %s ~/.local/share/valetkey/state.db) bytes, $(keychain_items) keychain item(s) kept"
}

case "${1:-}" in
  installed) installed ;;
  before-upgrade) before_upgrade ;;
  upgraded) upgraded ;;
  removed|purged) gone ;;
  *) echo "usage: user.sh installed|before-upgrade|upgraded|removed|purged" >&2; exit 2 ;;
esac
echo; echo "OK: $1"
