#!/usr/bin/env bash
# Installs everything Valet Key's demo and tests need on Debian/Ubuntu:
# system packages (Secret Service, D-Bus, TLS tools, node, bubblewrap; WebKitGTK and
# friends for the tray app; Xvfb, WebKitWebDriver and dunst for its tests),
# the test provider's and the test MCP server's npm packages, the tray frontend (built into
# src-ui/web/dist, which the window binary embeds) and tauri-driver.
# Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=(gnome-keyring libsecret-tools dbus-daemon curl ca-certificates openssl python3 util-linux passwd
  # tray app build
  build-essential pkg-config libssl-dev libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
  # tray app tests: a headless X server, the WebDriver for WebKitGTK, a
  # notification server, tools to look at what they show, and gdbus to
  # click the tray's menu over D-Bus
  xvfb xauth webkit2gtk-driver dbus-x11 at-spi2-core dunst libnotify-bin imagemagick xdotool libglib2.0-bin
  # service and packaging tests: systemd-analyze and systemd-socket-activate,
  # dpkg-shlibdeps, desktop-file-validate, man (systemd-analyze checks
  # Documentation=man:…), ssh-agent (the benchmark's baseline)
  systemd dpkg-dev desktop-file-utils man-db openssh-client
  # valetkey run: agents in a box (bubblewrap; libseccomp for the box's
  # seccomp filter and its supervisor), and the box tests' tools
  bubblewrap libseccomp-dev sqlite3
  # the egress proxy tests: real git over HTTPS (git http-backend behind
  # the GitHub stand-in), and the real GitHub CLI in a proxy box
  git gh
  # the unit tests run again under two pinned dates (libfaketime)
  faketime
  # the one-writer test: strace sees every open of the state database
  strace
  # the Python SDK's test suite (sdk/python), with Debian's Python; venv
  # for the official MCP Python SDK's client (tests/mcp/requirements.txt)
  python3-pytest python3-venv)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: node $node_major is too old for oidc-provider 9 (needs 20+)" >&2
  exit 1
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust 1.85+ (rustup.rs)" >&2; exit 1; }

if [ ! -d tests/oidc/node_modules/oidc-provider ] || [ ! -d tests/oidc/node_modules/undici ]; then
  echo "setup: installing the test OIDC provider (npm ci)"
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -d sdk/typescript/node_modules/typescript ] || [ sdk/typescript/package-lock.json -nt sdk/typescript/node_modules/.package-lock.json ]; then
  echo "setup: installing the TypeScript SDK's type checker (npm ci)"
  (cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -d tests/mcp/node_modules/@modelcontextprotocol/sdk ] || [ tests/mcp/package-lock.json -nt tests/mcp/node_modules/.package-lock.json ]; then
  echo "setup: installing the test MCP server (the official MCP SDK, npm ci)"
  (cd tests/mcp && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -d src-ui/web/node_modules/@tauri-apps/api ] || [ src-ui/web/package-lock.json -nt src-ui/web/node_modules/.package-lock.json ]; then
  # `npm install --no-save`, not `npm ci`: the lockfile pins every version,
  # but the registry mirror here lacks rollup's binaries for other
  # platforms, so the lockfile has no entries for them and `npm ci` refuses
  # it. `install` takes the lockfile's versions and skips those optional
  # packages.
  echo "setup: installing the tray frontend's packages (npm install from the lockfile)"
  (cd src-ui/web && npm install --no-save --no-audit --no-fund --loglevel=error)
fi
# The tray binary embeds the built frontend, so build it before cargo does.
(cd src-ui/web && npx --no-install vite build --logLevel error)

# The official MCP Python SDK, for the test that starts `valetkey mcp proxy`
# from its stdio client with the SDK's own environment. A venv outside the
# clone (like the cargo target dir), rebuilt when the pinned list changes.
venv="${VK_PY_VENV:-$HOME/.cache/valetkey-py}"
if [ ! -x "$venv/bin/python3" ] || [ tests/mcp/requirements.txt -nt "$venv/.installed" ]; then
  echo "setup: installing the official MCP Python SDK into $venv (pip)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/mcp/requirements.txt
  touch "$venv/.installed"
fi

tauri_driver_version=2.1.0
if ! tauri-driver --help >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver" ]; then
  echo "setup: installing tauri-driver $tauri_driver_version (cargo install, about a minute)"
  cargo install tauri-driver --locked --version "$tauri_driver_version" --quiet
fi
