#!/usr/bin/env bash
# Stands in for a person's browser during `valetkey login` in tests and the
# demo: follows the provider's redirects (with cookies) until the loopback
# redirect reaches valetkey. Use as BROWSER=/path/to/fake-browser.sh.
# Needs VK_TEST_CA (the test CA file).
set -euo pipefail
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT
curl -sS --fail-with-body --location --max-redirs 20 --cacert "${VK_TEST_CA:?}" \
  -c "$jar" -b "$jar" -o /dev/null "$1"
