#!/usr/bin/env bash
# The run command. Builds Valet Key and, on a machine with no desktop, runs
# a complete session against real parts in a throwaway directory:
#   a private D-Bus + unlocked gnome-keyring, the oidc-provider IdP over TLS,
#   valetkeyd, a login, and a Python agent getting a down-scoped token that
#   the provider's introspection confirms, then the same agent in a box
#   (valetkey run) and what the box keeps from it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
if [ -z "${VK_DEMO_INNER:-}" ]; then
  bash scripts/setup.sh
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/valetkey-target}"
  cargo build --workspace --bins --quiet
  export VK_DEMO_BIN="$CARGO_TARGET_DIR/debug"
  # Not under /tmp: a box (valetkey run) gets an empty /tmp of its own.
  work=$(mktemp -d /var/tmp/valetkey-demo.XXXXXX)
  export HOME="$work/home" XDG_RUNTIME_DIR="$work/run" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data"
  mkdir -p "$HOME" "$XDG_CONFIG_HOME/valetkey" "$XDG_DATA_HOME"
  install -d -m 700 "$XDG_RUNTIME_DIR"
  export VK_DEMO_INNER=1 VK_DEMO_WORK="$work"
  exec dbus-run-session -- bash "$0"
fi

work=$VK_DEMO_WORK
bin=$VK_DEMO_BIN
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT

# shellcheck source=scripts/world.sh
. "$repo/scripts/world.sh"

step "Keychain: gnome-keyring (Secret Service) on a private session bus"
world_keyring demo-pass
echo "unlocked"

step "Identity provider: oidc-provider over TLS with a fresh test CA"
world_provider
echo "issuer https://127.0.0.1:$port"

{
world_provider_toml "Local demo IdP"
cat <<TOML

# The latency check at the end sends 2,000 requests back to back on one
# connection; lift the per-connection rate limit (default 100/s) for it.
[limits]
requests_per_second = 100000
burst = 100000
TOML
} > "$XDG_CONFIG_HOME/valetkey/config.toml"

step "Daemon: valetkeyd"
"$bin/valetkeyd" 2> "$work/valetkeyd.log" &
pids+=($!)
until [ -S "$XDG_RUNTIME_DIR/valetkey/agent.sock" ]; do sleep 0.05; done
echo "listening on $XDG_RUNTIME_DIR/valetkey/agent.sock"

step "valetkey login local (the 'browser' is curl following the provider's redirects)"
export VK_TEST_CA="$work/certs/ca.pem" BROWSER="$repo/tests/oidc/fake-browser.sh"
"$bin/valetkey" login local --login-hint alice
rt=$(secret-tool lookup service valetkey username refresh-token:local)
echo "secret-tool sees a ${#rt}-character refresh token in the keychain (not printed)"

agent="$repo/examples/python/valetkey_client.py"
step "An agent nobody approved asks for repo:read, and waits for the user"
python3 "$agent" demo-agent local repo:read >"$work/agent.out" &
apid=$!
until "$bin/valetkey" consent list | grep -q demo-agent; do sleep 0.1; done

step "The user sees the prompt (valetkey consent list) and allows it for 1 hour"
"$bin/valetkey" consent list
id=$("$bin/valetkey" consent list | awk '/^c_/ {print $1; exit}')
"$bin/valetkey" consent allow "$id" --for 1h

step "The waiting agent receives its token"
wait "$apid"
result=$(cat "$work/agent.out")
echo "$result" | python3 -c 'import json,sys; r=json.load(sys.stdin); t=r.pop("access_token"); print(json.dumps(r)); print("access_token: %s... (%d chars)" % (t[:6], len(t)))'
at=$(echo "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

step "The provider's own introspection of that token"
curl -sS --cacert "$work/certs/ca.pem" -u resource-server:resource-server-test-secret \
  "https://127.0.0.1:$port/token/introspection" -d "token=$at" | python3 -m json.tool

step "Escalation: the same agent asks for repo:write"
python3 "$agent" demo-agent local repo:write || true

step "The same agent started in a box (valetkey run): asked anew, and the card says it is boxed"
mkdir -p "$work/project"
(cd "$work/project" && "$bin/valetkey" run -- python3 "$agent" demo-agent local repo:read >"$work/boxed.out") &
bpid=$!
until "$bin/valetkey" consent list | grep -q "in a box"; do sleep 0.1; done
"$bin/valetkey" consent list
id=$("$bin/valetkey" consent list | awk '/^c_/ {print $1; exit}')
"$bin/valetkey" consent allow "$id" --once
wait "$bpid"
python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["access_token"]; print("the boxed agent got a %d-character token through its own socket" % len(t))' "$work/boxed.out"

step "What the box keeps from an agent (each of these works outside it)"
(cd "$work/project" && "$bin/valetkey" run -- sh -c "
  secret-tool lookup service valetkey username refresh-token:local >/dev/null 2>&1 && echo 'keychain: READ' || echo 'keychain: no session bus in the box'
  '$bin/valetkey' consent list >/dev/null 2>&1 && echo 'control.sock: REACHED' || echo 'control.sock: not in the box (valetkey consent list fails)'
  touch '$HOME/.bashrc' 2>/dev/null && echo 'home: WRITTEN' || echo 'home: read-only'
  ls '$XDG_DATA_HOME/valetkey' 2>/dev/null | grep -q state.db && echo 'state.db: VISIBLE' || echo 'state.db: hidden'
  unshare -Urm true 2>/dev/null && echo 'user namespaces: ALLOWED' || echo 'user namespaces: refused'
")

step "Quick check: cached token.get hand-out latency over the socket (2,000 calls, one connection)"
python3 - "$XDG_RUNTIME_DIR/valetkey/agent.sock" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); r = s.makefile("rb")
def call(i, m, p):
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": p}).encode() + b"\n")
    return json.loads(r.readline())
call(0, "hello", {"protocol": 1, "agent": {"name": "demo-agent"}})
lat = []
for i in range(2000):
    t = time.perf_counter_ns(); resp = call(i + 1, "token.get", {"provider": "local", "scopes": ["repo:read"]}); lat.append(time.perf_counter_ns() - t)
    assert "result" in resp, resp
lat.sort()
print("p50 %.0f us, p99 %.0f us (Python client; includes its own JSON work)" % (lat[1000] / 1e3, lat[1980] / 1e3))
PY

step "State"
"$bin/valetkey" grant list
echo
echo "Demo files (logs, config, database) are in $work"
