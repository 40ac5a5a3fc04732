#!/usr/bin/env bash
# Installs everything Valet Key's demo and tests need on Debian/Ubuntu:
# system packages (Secret Service, D-Bus, TLS tools, node) and the test
# provider's npm packages. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=(gnome-keyring libsecret-tools dbus-daemon curl ca-certificates openssl python3 util-linux passwd)
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

if [ ! -d tests/oidc/node_modules/oidc-provider ]; then
  echo "setup: installing the test OIDC provider (npm ci)"
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi
