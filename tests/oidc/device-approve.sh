#!/usr/bin/env bash
# Stands in for a person approving (or aborting) an RFC 8628 device login
# at the provider's /device page, as `valetkey login --device` asks:
#   device-approve.sh VERIFICATION_URI USER_CODE [approve|deny]
# Walks oidc-provider's real forms: the code entry page (xsrf token in a
# cookie-bound hidden field), the confirmation form, then the login and
# consent interactions, which provider.mjs answers as alice.
# Needs VK_TEST_CA (the test CA file).
set -euo pipefail
uri=$1 code=$2 action=${3:-approve}
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT
c() { curl -sS --fail-with-body --cacert "${VK_TEST_CA:?}" -c "$jar" -b "$jar" "$@"; }
xsrf=$(c "$uri" | sed -n 's/.*name="xsrf" value="\([^"]*\)".*/\1/p' | head -n1)
[ -n "$xsrf" ] || { echo "device-approve: no xsrf field at $uri" >&2; exit 1; }
page=$(c --data-urlencode "xsrf=$xsrf" --data-urlencode "user_code=$code" "$uri")
grep -q 'name="confirm"' <<<"$page" || { echo "device-approve: the provider did not accept the code" >&2; exit 1; }
if [ "$action" = deny ]; then
  c --location --max-redirs 20 -o /dev/null --data-urlencode "xsrf=$xsrf" \
    --data-urlencode "user_code=$code" -d confirm=yes -d abort=yes "$uri"
else
  out=$(c --location --max-redirs 20 --data-urlencode "xsrf=$xsrf" \
    --data-urlencode "user_code=$code" -d confirm=yes "$uri")
  grep -q 'Sign-in Success' <<<"$out" || { echo "device-approve: no success page" >&2; exit 1; }
fi
