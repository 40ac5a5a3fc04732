#!/usr/bin/env bash
# The run command. Builds Valet Key and, on a machine with no desktop, runs
# a complete session against real parts in a throwaway directory:
#   a private D-Bus + unlocked gnome-keyring, the oidc-provider IdP over TLS,
#   valetkeyd, a login, and a Python agent getting a down-scoped token that
#   the provider's introspection confirms, then the same agent in a box
#   (valetkey run) and what the box keeps from it, then a boxed git clone
#   through the egress proxy (--net proxy) against a GitHub stand-in
#   (tests/github/standin.py; github.com is not reachable from here), and
#   a remote MCP server with OAuth built from the official MCP SDK, reached
#   by the SDK's client through `valetkey mcp proxy`.
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

step "A GitHub stand-in over TLS (its OAuth flow, REST shapes, token/scoped and real git http-backend)"
gh_api=$(world_free_port); gh_git=$(world_free_port)
mkdir -p "$work/github/repos/octo" "$work/github/seed"
git init -q --bare --initial-branch=main "$work/github/repos/octo/hello.git"
(cd "$work/github/seed" && git init -q --initial-branch=main && echo "hello from the stand-in" > README \
  && git add README && git -c user.name=demo -c user.email=demo@example.invalid commit -qm init \
  && git push -q "$work/github/repos/octo/hello.git" main)
gh_secret=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')   # the stand-in app's secret, made now
python3 "$repo/tests/github/standin.py" --cert "$work/certs/leaf.pem" --key "$work/certs/leaf.key" \
  --api-port "$gh_api" --git-port "$gh_git" --repos "$work/github/repos" \
  --client-id Iv1.demo --client-secret "$gh_secret" > "$work/standin.out" 2> "$work/standin.log" &
pids+=($!)
until grep -q ready "$work/standin.out" 2>/dev/null; do sleep 0.1; done
echo "api on localhost:$gh_api, git on localhost:$gh_git"

{
world_provider_toml "Local demo IdP"
cat <<TOML

# The GitHub stand-in, with the github preset's rules; its hosts stand in
# for api.github.com and github.com.
[providers.github]
preset = "github"
client_id = "Iv1.demo"
confidential = true
authorization_endpoint = "https://localhost:$gh_git/login/oauth/authorize"
token_endpoint = "https://localhost:$gh_git/login/oauth/access_token"
allowed_scopes = ["metadata:read", "contents:read", "contents:write"]
ca_file = "$work/certs/ca.pem"
[providers.github.proxy]
hosts = { api = "localhost:$gh_api", git = "localhost:$gh_git" }
TOML
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

step "Agents that never hold the token: log in to the GitHub stand-in (its app's secret in the keychain)"
printf %s "$gh_secret" | "$bin/valetkey" provider set-secret github
"$bin/valetkey" login github
step "A boxed agent with no network but the egress proxy: git clone with nothing configured, a placeholder, a DELETE and another host"
(cd "$work/project" && "$bin/valetkey" run --net proxy --name gh-agent --env GH_TOKEN=github:contents:read@octo/hello -- sh -c "
  git clone -q https://localhost:$gh_git/octo/hello.git hello && echo \"git clone: ok (\$(cat hello/README))\"
  echo \"GH_TOKEN in the box: \$(printf %s \"\$GH_TOKEN\" | cut -c1-12)... (a placeholder)\"
  echo \"GET contents with the placeholder: \$(curl -sS -o /dev/null -w '%{http_code}' -H \"Authorization: Bearer \$GH_TOKEN\" https://localhost:$gh_api/repos/octo/hello/contents/README)\"
  echo \"DELETE the repository: \$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE -H \"Authorization: Bearer \$GH_TOKEN\" https://localhost:$gh_api/repos/octo/hello) (outside the grant)\"
  curl -sS https://example.com/ -o /dev/null 2>&1 | sed 's/^/another host: /'
" > "$work/proxy.out" 2>&1) &
ppid_=$!
until "$bin/valetkey" consent list | grep -q gh-agent; do sleep 0.1; done
"$bin/valetkey" consent list | grep -E "gh-agent|lets it|limited by"
id=$("$bin/valetkey" consent list | awk '/^c_/ {print $1; exit}')
"$bin/valetkey" consent allow "$id" --always
wait "$ppid_" || true
cat "$work/proxy.out"
echo "what the stand-in received:"
curl -sS --cacert "$work/certs/ca.pem" "https://localhost:$gh_api/_standin/seen" | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    print("  %s %s: credential %s%s" % (s["method"], s["path"], s["auth"], " limited to " + ",".join(s["repos"]) if s.get("repos") else ""))'
"$bin/valetkey" audit --kind proxy.request

step "A remote MCP server (built from the official MCP SDK): discovery from its 401, dynamic registration, login with PKCE and resource"
mcp_port=$(world_free_port); mcp_as=$(world_free_port)
NODE_EXTRA_CA_CERTS="$work/certs/ca.pem" node "$repo/tests/mcp/server.mjs" --port "$mcp_port" --as-port "$mcp_as" \
  --cert "$work/certs/leaf.pem" --key "$work/certs/leaf.key" > "$work/mcp-server.ready" 2>"$work/mcp-server.log" &
pids+=($!)
until grep -q ready "$work/mcp-server.ready" 2>/dev/null; do sleep 0.05; done
"$bin/valetkey" mcp add notes "https://localhost:$mcp_port/mcp" --ca-file "$work/certs/ca.pem" --timeout 30
"$bin/valetkey" mcp status notes

step "An MCP client (the SDK's) through valetkey mcp proxy: it asks once, you allow, and it never holds the token"
printf '%s\n' '{"op":"list"}' '{"op":"call","name":"whoami","args":{}}' '{"op":"call","name":"echo","args":{"text":"hello from the demo"}}' '{"op":"close"}' \
  | node "$repo/tests/mcp/client.mjs" -- "$bin/valetkey" mcp proxy notes --agent demo-mcp-client > "$work/mcp-client.out" 2>"$work/mcp-client.log" &
mpid=$!
until "$bin/valetkey" consent list | grep -q demo-mcp-client; do sleep 0.1; done
id=$("$bin/valetkey" consent list | awk '/^c_/ {print $1; exit}')
"$bin/valetkey" consent allow "$id" --always
wait "$mpid" || true
sed 's/^/  /' "$work/mcp-client.out"
"$bin/valetkey" audit --kind mcp.call

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
