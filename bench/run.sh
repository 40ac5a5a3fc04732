#!/usr/bin/env bash
# The benchmark: Valet Key's cached token.get over its real socket against
# ssh-agent, a minimal JSON echo server and a Secret Service read, in one
# interleaved run, plus process-level figures (exec to ready, one-shot CLI,
# cold path, RSS). Runs in a private world like the demo: its own D-Bus,
# unlocked gnome-keyring, the oidc-provider IdP over TLS, and a valetkeyd
# with a logged-in provider.
#
#   bench/run.sh [--smoke] [--callgrind | --syscalls | --box-startup | --proxy | --mcp | --sdks] [--profile release|debug] [--out DIR] [-- extra valetkey-bench args]
#
# Full run (default): release build, 1/16/256/1000 connections, writes
# results.json and latency.svg into --out (default docs/bench). --smoke:
# the binaries already built (debug unless --profile), a few hundred
# requests, into a temp dir; the test suite runs this so the harness can't rot.
# --callgrind: instead of timing, count the instructions each server
# executes per request under valgrind's callgrind (deterministic, so it is
# the regression gate: fails when a cached token.get costs more than
# $VK_BENCH_MAX_INSTR), into callgrind.json. The default gate, 23300, is
# today's 21.2k plus 10% (the goal was 22,000: half of ssh-agent's 42.5k);
# see docs/BENCHMARKS.md for where the instructions go.
# --syscalls: the system calls each server makes per request (strace -c
# over N requests on one connection), into syscalls.json: what CPU time the
# instruction count does not show.
# --box-startup: what `valetkey run` adds to starting a command: 30
# interleaved runs each of `true` bare, inside a bare bwrap, and through
# `valetkey run` (box.open, bwrap, box.started, Landlock, the supervisor and
# its seccomp filter, exec, box.close), in an empty project and in a git
# repository, and the cost of the supervisor's traps (2,000 opens for
# writing, 500 connects), into box-startup.json; with
# VK_BENCH_BASELINE=DIR, an earlier build's valetkey and valetkeyd in the
# same rounds.
# --proxy: the egress proxy: kept-alive HTTPS GETs of 1 KiB from a local
# upstream, directly and through a `valetkey run --net proxy` box (with a
# placeholder swapped for the token), at 1 and 16 connections, rounds
# interleaved; latency percentiles, throughput and the CPU per request of
# the upstream and valetkeyd, into proxy.json.
# --mcp: a tools/call through `valetkey mcp proxy` against direct: the
# official MCP SDK's client (tests/mcp/bench.mjs) calls the test MCP
# server's echo tool in interleaved rounds both ways, with the CPU time of
# valetkeyd, the stdio bridge and the server per call, into mcp.json.
# --sdks: a cached token.get through each client library on the same
# daemon, interleaved rounds: the Rust client (valetkey_ipc::Client), the
# Python SDK and the Node SDK, into sdks.json.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
if [ -z "${VK_BENCH_INNER:-}" ]; then
  smoke=""; profile=""; out=""; extra=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --smoke) smoke=1; shift ;;
      --callgrind) export VK_BENCH_CALLGRIND=1; shift ;;
      --syscalls) export VK_BENCH_SYSCALLS=1; shift ;;
      --box-startup) export VK_BENCH_BOX=1; shift ;;
      --proxy) export VK_BENCH_PROXY=1; shift ;;
      --mcp) export VK_BENCH_MCP=1; shift ;;
      --sdks) export VK_BENCH_SDKS=1; shift ;;
      --profile) profile=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      --) shift; extra=("$@"); break ;;
      *) echo "usage: $0 [--smoke] [--profile release|debug] [--out DIR] [-- valetkey-bench args]" >&2; exit 2 ;;
    esac
  done
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/valetkey-target}"
  if [ -n "$smoke" ]; then
    profile=${profile:-debug}
  else
    profile=${profile:-release}
    bash scripts/setup.sh >&2
    if [ "$profile" = release ]; then
      cargo build --release -p valetkeyd -p valetkey -p valetkey-bench --quiet
    else
      cargo build -p valetkeyd -p valetkey -p valetkey-bench --quiet
    fi
  fi
  if [ -n "${VK_BENCH_SYSCALLS:-}" ] && ! command -v strace >/dev/null; then
    echo "bench: installing strace" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq strace >/dev/null
  fi
  if [ -n "${VK_BENCH_CALLGRIND:-}" ] && ! command -v callgrind_control >/dev/null; then
    echo "bench: installing valgrind" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
  fi
  bin="$CARGO_TARGET_DIR/$profile"
  for b in valetkeyd valetkey valetkey-bench; do
    [ -x "$bin/$b" ] || { echo "run.sh: $bin/$b missing; build first" >&2; exit 1; }
  done
  work=$(mktemp -d /tmp/valetkey-bench.XXXXXX)
  out=${out:-$([ -n "$smoke" ] && echo "$work/out" || echo "$repo/docs/bench")}
  mkdir -p "$out"
  export HOME="$work/home" XDG_RUNTIME_DIR="$work/run" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data"
  mkdir -p "$HOME" "$XDG_CONFIG_HOME/valetkey" "$XDG_DATA_HOME"
  install -d -m 700 "$XDG_RUNTIME_DIR"
  export VK_BENCH_INNER=1 VK_BENCH_WORK="$work" VK_BENCH_BIN="$bin" VK_BENCH_OUT="$out" VK_BENCH_SMOKE="$smoke"
  status=0
  dbus-run-session -- bash "$0" "${extra[@]}" || status=$?
  [ "$status" -eq 0 ] && rm -rf "$work" || echo "run.sh: failed; logs in $work" >&2
  exit "$status"
fi

work=$VK_BENCH_WORK
bin=$VK_BENCH_BIN
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
say() { echo "bench: $*" >&2; }
# Waits for a socket, failing fast if the process meant to open it died.
wait_sock() {
  until [ -S "$1" ]; do
    kill -0 "$2" 2>/dev/null || { echo "bench: pid $2 died before listening on $1" >&2; exit 1; }
    sleep 0.05
  done
}

# shellcheck source=scripts/world.sh
. "$repo/scripts/world.sh"
world_keyring bench-pass
world_provider
{
world_provider_toml "Local benchmark IdP"
cat <<TOML

# A load generator is one agent sending as fast as it can on up to 1,000
# connections: lift the per-connection limits that exist to stop exactly that.
[limits]
max_connections = 1100
requests_per_second = 1000000
burst = 1000000
TOML
if [ -n "${VK_BENCH_PROXY:-}" ]; then
  upstream_port=$(world_free_port)
  cat <<TOML

# The egress proxy benchmark: the upstream is a provider host.
[providers.local.proxy]
hosts = { api = "localhost:$upstream_port" }
[providers.local.proxy.rules]
"repo:read" = ["GET api /bench/**"]

[box.profiles.bench]
network = "proxy"
TOML
fi
} > "$XDG_CONFIG_HOME/valetkey/config.toml"

# As many descriptors as allowed: 1,000 clients exceed the usual 1,024.
ulimit -n "$(ulimit -Hn)"
wrap=()
[ -n "${VK_BENCH_CALLGRIND:-}" ] && wrap=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p")
"${wrap[@]}" "$bin/valetkeyd" 2> "$work/valetkeyd.log" &
pids+=($!)
wait_sock "$XDG_RUNTIME_DIR/valetkey/agent.sock" $!
export VK_TEST_CA="$work/certs/ca.pem" BROWSER="$repo/tests/oidc/fake-browser.sh"
"$bin/valetkey" login local --login-hint alice >"$work/login.log" 2>&1

if [ -n "$VK_BENCH_SMOKE" ]; then cold=3; else cold=30; fi
"$bin/valetkey" grant add bench local repo:read --binary "$bin/valetkey-bench" >/dev/null
"$bin/valetkey" grant add valetkey-cli local repo:read --binary "$bin/valetkey" >/dev/null
for i in $(seq 0 $((cold - 1))); do
  "$bin/valetkey" grant add "bench-cold-$i" local repo:read --binary "$bin/valetkey-bench" >/dev/null
done
agent_sock="$XDG_RUNTIME_DIR/valetkey/agent.sock"
size=$("$bin/valetkey-bench" reply-size --agent-socket "$agent_sock")
say "a cached token.get reply is $size bytes; padding the baselines to match"

# ssh-agent's identity list: 4 (length) + 1 (type) + 4 (count) + 4 + 51
# (ed25519 key blob) + 4 + comment.
comment=$(head -c $((size - 68)) /dev/zero | tr '\0' c)
ssh-keygen -q -t ed25519 -N '' -C "$comment" -f "$work/id_ed25519"
# ssh-agent is setgid, which valgrind refuses to run; a plain copy is the same code.
ssh_agent=$(command -v ssh-agent)
[ -n "${VK_BENCH_CALLGRIND:-}" ] && { cp "$ssh_agent" "$work/ssh-agent"; ssh_agent="$work/ssh-agent"; }
"${wrap[@]}" "$ssh_agent" -D -a "$work/ssh.sock" > /dev/null 2>"$work/ssh-agent.log" &
pids+=($!)
wait_sock "$work/ssh.sock" $!
SSH_AUTH_SOCK="$work/ssh.sock" ssh-add -q "$work/id_ed25519"

"${wrap[@]}" "$bin/valetkey-bench" echo-server --socket "$work/echo.sock" --reply-bytes "$size" > /dev/null 2>"$work/echo.log" &
pids+=($!)
wait_sock "$work/echo.sock" $!

head -c 768 /dev/urandom | base64 -w0 | secret-tool store --label="valetkey bench item" service valetkey-bench username bench-item

# Runs `FN name pid socket target` for each server (valetkey, ssh-agent,
# echo; each prints one `"name": …` JSON member) after $n requests, and
# writes them with the request count as one JSON object to $VK_BENCH_OUT/FILE.
each_server() { # FN FILE
  {
    echo "{"
    echo "  \"requests\": $n,"
    "$1" valetkey "${pids[1]}" "$agent_sock" valetkey | sed 's/^/  /; s/$/,/'
    "$1" ssh-agent "${pids[2]}" "$work/ssh.sock" ssh-agent | sed 's/^/  /; s/$/,/'
    "$1" echo "${pids[3]}" "$work/echo.sock" echo | sed 's/^/  /'
    echo "}"
  } > "$VK_BENCH_OUT/$2"
  cat "$VK_BENCH_OUT/$2"
}

if [ -n "${VK_BENCH_CALLGRIND:-}" ]; then
  # Instructions per request on the server side: zero the counters after
  # a warm-up, send N requests on one connection, dump, divide.
  n=${VK_BENCH_CG_REQUESTS:-2000}
  count() { # name pid socket target
    "$bin/valetkey-bench" load --agent-socket "$3" --target "$4" --requests 200 >/dev/null
    callgrind_control -z "$2" >/dev/null
    "$bin/valetkey-bench" load --agent-socket "$3" --target "$4" --requests "$n" >/dev/null
    callgrind_control -d "$2" >/dev/null
    local dump; dump=$(ls -t "$work"/cg."$2".* | head -1)
    local ir; ir=$(awk '/^(summary|totals):/ && !seen {print $2; seen=1}' "$dump")
    # valgrind 3.19 does not know pidfd_open (syscall 434), so valetkeyd
    # falls back to reading /proc/PID/stat for its per-request peer check;
    # natively that check is one poll(2). Report what the fallback cost too.
    local fallback; fallback=$(callgrind_annotate --inclusive=yes "$dump" 2>/dev/null \
      | awk '/valetkey_core::attest::linux::read_stat/ && !seen {gsub(",", "", $1); print $1; seen=1}')
    fallback=${fallback:-0}
    # Where they go: the inclusive profile, for docs/BENCHMARKS.md.
    callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | head -80 > "$VK_BENCH_OUT/callgrind-$1.txt" || true
    echo "\"$1\": $(((ir - fallback) / n)), \"$1_stat_fallback\": $((fallback / n))"
  }
  each_server count callgrind.json
  per=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["valetkey"])' "$VK_BENCH_OUT/callgrind.json")
  say "per request: $(tr -d '\n ' < "$VK_BENCH_OUT/callgrind.json")"
  max=${VK_BENCH_MAX_INSTR:-23300}
  if [ "$per" -gt "$max" ]; then
    say "FAIL: a cached token.get costs $per instructions in valetkeyd (gate: $max)"
    exit 1
  fi
  say "ok: $per instructions per cached token.get (gate: $max)"
  exit 0
fi

if [ -n "${VK_BENCH_SYSCALLS:-}" ]; then
  # System calls per request on the server side, by name: strace counts
  # them exactly (its overhead changes the time, not the count).
  n=${VK_BENCH_SC_REQUESTS:-20000}
  per_request() { # name pid socket target
    "$bin/valetkey-bench" load --agent-socket "$3" --target "$4" --requests 200 >/dev/null
    strace -c -f -U name,calls -S calls -o "$work/sc.$1" -p "$2" &
    local tracer=$!
    sleep 0.5
    "$bin/valetkey-bench" load --agent-socket "$3" --target "$4" --requests "$n" >/dev/null
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    awk -v n="$n" -v name="$1" 'BEGIN{printf "\"%s\": {", name; sep=""}
      $2 ~ /^[0-9]+$/ && $1 != "total" {printf "%s\"%s\": %.2f", sep, $1, $2/n; sep=", "}
      END{print "}"}' "$work/sc.$1"
  }
  each_server per_request syscalls.json
  exit 0
fi

if [ -n "${VK_BENCH_BOX:-}" ]; then
  # Wall-clock from fork to exit, p50 and p90 of N runs, interleaved so
  # that drift affects every case alike. The boxes' working directories
  # are project directories (valetkey run refuses the home): an empty one,
  # and one holding a git repository (what the box locks in it).
  # With VK_BENCH_BASELINE=DIR (a valetkey and valetkeyd of an earlier
  # build), that build runs beside this one, on a daemon of its own, in
  # the same rounds: before and after, measured together.
  mkdir -p "$work/project" "$work/repo"
  git -C "$work/repo" init -q
  runs=${VK_BENCH_BOX_RUNS:-30}
  [ -n "$VK_BENCH_SMOKE" ] && runs=3
  base_env=""
  if [ -n "${VK_BENCH_BASELINE:-}" ]; then
    base_env="$work/base"
    install -d -m 700 "$base_env/run"
    mkdir -p "$base_env/config/valetkey" "$base_env/data"
    cp "$XDG_CONFIG_HOME/valetkey/config.toml" "$base_env/config/valetkey/"
    XDG_RUNTIME_DIR="$base_env/run" XDG_DATA_HOME="$base_env/data" XDG_CONFIG_HOME="$base_env/config" \
      "$VK_BENCH_BASELINE/valetkeyd" 2> "$work/valetkeyd-base.log" &
    pids+=($!)
    wait_sock "$base_env/run/valetkey/agent.sock" $!
  fi
  python3 - "$bin/valetkey" "$runs" "$work" "${VK_BENCH_BASELINE:-}" "$base_env" > "$VK_BENCH_OUT/box-startup.json" <<'PY'
import json, os, statistics, subprocess, sys, time
valetkey, runs, work, base_bin, base_env = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
true = "/usr/bin/true"
WRITES, CONNECTS = 2000, 500
# 2,000 opens for writing (each a trap to the supervisor, for its report),
# and 500 connects to a socket the box made (each made by the supervisor).
writes = ["python3", "-c", f"for i in range({WRITES}): open(f'w{{i % 20}}', 'w').close()"]
connects = ["python3", "-c", f"""
import os, socket, tempfile
d = tempfile.mkdtemp(); p = os.path.join(d, 's')
l = socket.socket(socket.AF_UNIX); l.bind(p); l.listen(64)
for _ in range({CONNECTS}):
    c = socket.socket(socket.AF_UNIX); c.connect(p); l.accept()[0].close(); c.close()
"""]
cases = {
    "bare": ([true], "project", None),
    "bwrap": (["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--unshare-all", "--die-with-parent", true], "project", None),
    "valetkey_run": ([valetkey, "run", "--", true], "project", None),
    "valetkey_run_git": ([valetkey, "run", "--", true], "repo", None),
    "writes_bare": (writes, "project", None),
    "writes_box": ([valetkey, "run", "--"] + writes, "project", None),
    "connects_bare": (connects, "project", None),
    "connects_box": ([valetkey, "run", "--"] + connects, "project", None),
    # The box's first process alone, outside any box: Landlock, then (from
    # this build on) the supervisor's two stages and its seccomp filter.
    "box_exec": ([valetkey, "box-exec", "--", true, "true"], "project", None),
}
if base_bin:
    env = dict(os.environ, XDG_RUNTIME_DIR=f"{base_env}/run", XDG_DATA_HOME=f"{base_env}/data",
               XDG_CONFIG_HOME=f"{base_env}/config")
    b = os.path.join(base_bin, "valetkey")
    cases.update({
        "valetkey_run_before": ([b, "run", "--", true], "project", env),
        "valetkey_run_git_before": ([b, "run", "--", true], "repo", env),
        "writes_box_before": ([b, "run", "--"] + writes, "project", env),
        "connects_box_before": ([b, "run", "--"] + connects, "project", env),
        "box_exec_before": ([b, "box-exec", "--", true, "true"], "project", env),
    })
times = {k: [] for k in cases}
for _ in range(runs):
    for name, (argv, cwd, env) in cases.items():
        t = time.perf_counter_ns()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, cwd=os.path.join(work, cwd), env=env)
        times[name].append((time.perf_counter_ns() - t) / 1e6)
def q(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))], 2)
out = {"runs": runs}
for name, xs in times.items():
    out[name] = {"p50_ms": round(statistics.median(xs), 2), "p90_ms": q(xs, 0.9)}
p50 = lambda k: out[k]["p50_ms"]
out["valetkey_run_over_bare_ms"] = round(p50("valetkey_run") - p50("bare"), 2)
out["git_repo_over_empty_ms"] = round(p50("valetkey_run_git") - p50("valetkey_run"), 2)
if base_bin:
    out["valetkey_run_over_before_ms"] = round(p50("valetkey_run") - p50("valetkey_run_before"), 2)
    out["git_over_before_ms"] = round(p50("valetkey_run_git") - p50("valetkey_run_git_before"), 2)
    out["per_write_open_over_before_us"] = round((p50("writes_box") - p50("writes_box_before")) * 1000 / WRITES, 1)
    out["per_connect_over_before_us"] = round((p50("connects_box") - p50("connects_box_before")) * 1000 / CONNECTS, 1)
    out["supervisor_over_before_ms"] = round(p50("box_exec") - p50("box_exec_before"), 2)
print(json.dumps(out, indent=2))
PY
  cat "$VK_BENCH_OUT/box-startup.json"
  exit 0
fi

if [ -n "${VK_BENCH_SDKS:-}" ]; then
  py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3)
  "$bin/valetkey" grant add bench-py local repo:read --binary "$("$py" -c 'import os,sys; print(os.path.realpath(sys.executable))')" >/dev/null
  "$bin/valetkey" grant add bench-node local repo:read --binary "$(node -p 'require("fs").realpathSync(process.execPath)')" >/dev/null
  rounds=${VK_BENCH_SDK_ROUNDS:-5}; n=${VK_BENCH_SDK_REQUESTS:-3000}
  [ -n "$VK_BENCH_SMOKE" ] && { rounds=1; n=200; }
  python3 - "$rounds" "$n" "$bin" "$agent_sock" "$py" "$repo" > "$VK_BENCH_OUT/sdks.json" <<'PY'
import json, os, statistics, subprocess, sys
rounds, n, bin_dir, sock, py, repo = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
env = dict(os.environ, PYTHONPATH=f"{repo}/sdk/python/src")
cmds = {
    "rust (valetkey_ipc::Client)": [f"{bin_dir}/valetkey-bench", "client-latency", "--agent-socket", sock, "--agent", "bench", "--requests", n],
    "python (sdk/python)": [py, f"{repo}/bench/sdk_latency.py", "bench-py", "local", "repo:read", n],
    "node (sdk/typescript)": ["node", f"{repo}/bench/sdk_latency.mjs", "bench-node", "local", "repo:read", n],
}
res = {k: [] for k in cmds}
for _ in range(rounds):
    for k, argv in cmds.items():
        out = subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout
        res[k].append(json.loads(out.strip().splitlines()[-1]))
out = {"rounds": rounds, "requests_per_round": int(n), "clients": {}}
for k, xs in res.items():
    out["clients"][k] = {m: round(statistics.median(x[m] for x in xs), 1) for m in ("p50_us", "p99_us", "rps")}
print(json.dumps(out, indent=2))
PY
  cat "$VK_BENCH_OUT/sdks.json"
  exit 0
fi

if [ -n "${VK_BENCH_MCP:-}" ]; then
  mcp_port=$(world_free_port); as_port=$(world_free_port)
  NODE_EXTRA_CA_CERTS="$work/certs/ca.pem" node "$repo/tests/mcp/server.mjs" --port "$mcp_port" \
    --as-port "$as_port" --cert "$work/certs/leaf.pem" --key "$work/certs/leaf.key" \
    > "$work/mcp-server.ready" 2>"$work/mcp-server.log" &
  pids+=($!)
  mcp_pid=$!
  until grep -q ready "$work/mcp-server.ready" 2>/dev/null; do
    kill -0 "$mcp_pid" 2>/dev/null || { echo "bench: the MCP server died" >&2; exit 1; }
    sleep 0.05
  done
  "$bin/valetkey" mcp add notes "https://localhost:$mcp_port/mcp" --ca-file "$work/certs/ca.pem" \
    --timeout 30 > "$work/mcp-add.log" 2>&1
  "$bin/valetkey" grant add bench-mcp notes mcp:tools --binary "$bin/valetkey" >/dev/null
  auth=$("$bin/valetkey" mcp headers notes --agent bench-mcp | sed 's/^Authorization: //')
  rounds=${VK_BENCH_MCP_ROUNDS:-6}; calls=${VK_BENCH_MCP_CALLS:-300}
  [ -n "$VK_BENCH_SMOKE" ] && { rounds=1; calls=20; }
  NODE_EXTRA_CA_CERTS="$work/certs/ca.pem" node "$repo/tests/mcp/bench.mjs" \
    --url "https://localhost:$mcp_port/mcp" --auth "$auth" --daemon "${pids[1]}" --server "$mcp_pid" \
    --rounds "$rounds" --calls "$calls" -- "$bin/valetkey" mcp proxy notes --agent bench-mcp \
    > "$VK_BENCH_OUT/mcp.json"
  cat "$VK_BENCH_OUT/mcp.json"
  exit 0
fi

if [ -n "${VK_BENCH_PROXY:-}" ]; then
  "$bin/valetkey-bench" https-server --cert "$work/certs/leaf.pem" --key "$work/certs/leaf.key" \
    --port "$upstream_port" > "$work/upstream.ready" 2>"$work/upstream.log" &
  pids+=($!)
  until grep -q ready "$work/upstream.ready" 2>/dev/null; do sleep 0.05; done
  mkdir -p "$work/project"
  # The boxed client: a script, so every run is the same agent whatever
  # its arguments.
  cat > "$work/project/proxy-load.sh" <<SH
exec "$bin/valetkey-bench" https-load --url "https://localhost:$upstream_port/bench/1k" \
  --proxy http://127.0.0.1:3128 --ca "\$SSL_CERT_FILE" --bearer-env BENCH_TOKEN \
  --concurrency "\$1" --duration "\$2"
SH
  # The first box asks for consent; allow it for good, as a person would.
  ( cd "$work/project" && "$bin/valetkey" run --net proxy --profile bench --name bench-proxy \
      --env BENCH_TOKEN=local:repo:read -- sh proxy-load.sh 1 100ms >/dev/null ) &
  first=$!
  id=""
  until [ -n "$id" ]; do sleep 0.1; id=$("$bin/valetkey" consent list | awk '/^c_/ {print $1; exit}'); done
  "$bin/valetkey" consent allow "$id" --always >/dev/null
  wait "$first"
  rounds=${VK_BENCH_PROXY_ROUNDS:-4}; dur=${VK_BENCH_PROXY_DURATION:-2s}
  [ -n "$VK_BENCH_SMOKE" ] && { rounds=1; dur=200ms; }
  (cd "$work/project" && python3 - "$bin" "$upstream_port" "$work/certs/ca.pem" "$rounds" "$dur" \
      "${pids[1]}" "${pids[4]}" > "$VK_BENCH_OUT/proxy.json") <<'PY'
import json, os, statistics, subprocess, sys
bin_dir, port, ca, rounds, dur, daemon, upstream = sys.argv[1:8]
url = f"https://localhost:{port}/bench/1k"
bench = f"{bin_dir}/valetkey-bench"

def cpu_ns(pid):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/schedstat") as f:
            total += int(f.read().split()[0])
    return total

def run(case, conc):
    load = [bench, "https-load", "--url", url, "--concurrency", str(conc), "--duration", dur]
    if case == "direct":
        argv = load + ["--ca", ca]
    else:
        argv = [f"{bin_dir}/valetkey", "run", "--net", "proxy", "--profile", "bench", "--name", "bench-proxy",
                "--env", "BENCH_TOKEN=local:repo:read", "--", "sh", "proxy-load.sh", str(conc), dur]
    before = (cpu_ns(daemon), cpu_ns(upstream))
    out = subprocess.run(argv, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    after = (cpu_ns(daemon), cpu_ns(upstream))
    s = json.loads(out.strip().splitlines()[-1])
    n = max(s["requests"], 1)
    s["daemon_cpu_us_per_req"] = (after[0] - before[0]) / 1000 / n
    s["upstream_cpu_us_per_req"] = (after[1] - before[1]) / 1000 / n
    return s

res = {}
for _ in range(int(rounds)):
    for conc in (1, 16):
        for case in ("direct", "proxy"):
            res.setdefault((case, conc), []).append(run(case, conc))

def med(xs, k):
    return round(statistics.median(x[k] for x in xs), 3)

out = {"rounds": int(rounds), "duration_per_round": dur, "body_bytes": 1024}
for conc in (1, 16):
    row = {}
    for case in ("direct", "proxy"):
        xs = res[(case, conc)]
        reqs = sum(x["requests"] for x in xs)
        r = {"requests": reqs, "errors": sum(x["errors"] for x in xs),
             "rps": round(statistics.median(x["rps"] for x in xs), 1),
             "p50_us": med(xs, "p50_us"), "p99_us": med(xs, "p99_us"),
             "upstream_cpu_us_per_req": med(xs, "upstream_cpu_us_per_req"),
             "daemon_cpu_us_per_req": med(xs, "daemon_cpu_us_per_req")}
        row[case] = r
    row["added_p50_ms"] = round((row["proxy"]["p50_us"] - row["direct"]["p50_us"]) / 1000, 3)
    row["added_p99_ms"] = round((row["proxy"]["p99_us"] - row["direct"]["p99_us"]) / 1000, 3)
    row["throughput_ratio"] = round(row["proxy"]["rps"] / row["direct"]["rps"], 3)
    out[f"c{conc}"] = row
print(json.dumps(out, indent=2))
PY
  cat "$VK_BENCH_OUT/proxy.json"
  exit 0
fi

if [ -n "$VK_BENCH_SMOKE" ]; then
  shape=(--concurrency 1,16 --requests 100 --rounds 2 --process-runs 3)
else
  shape=(--concurrency 1,16,256,1000 --duration 8s --rounds 4 --process-runs 30)
fi
# Arguments after `--` replace the shape.
[ $# -gt 0 ] && shape=()
"$bin/valetkey-bench" compare --agent-socket "$agent_sock" --ssh-socket "$work/ssh.sock" \
  --echo-socket "$work/echo.sock" --keychain valetkey-bench/bench-item \
  --bin-dir "$bin" --cold-agents "$cold" --provider-control "127.0.0.1:$control" \
  --json "$VK_BENCH_OUT/results.json" --svg "$VK_BENCH_OUT/latency.svg" "${shape[@]}" "$@"
say "results in $VK_BENCH_OUT/results.json and $VK_BENCH_OUT/latency.svg"
