"""An agent that stays connected across a package upgrade (run by
scripts/system-test.sh as the user, with the Python SDK on PYTHONPATH).

Gets a token, says so in /opt/test/run/held.ready, then waits, still
connected, until /opt/test/run/held.go exists (the upgrade is done), and
asks again on the same client. It must get the token with no new consent:
the grant survived the restart, and the refresh token did too (the new
daemon has no cached access token, so it refreshed). Prints both results' scopes and exits 0."""

import os
import sys
import time

import valetkey

c = valetkey.Client("sys-agent")
before = c.token("local", ["repo:read"], wait=False)
open("/opt/test/run/held.ready", "w").write(f"{before.scopes}\n")
while not os.path.exists("/opt/test/run/held.go"):
    time.sleep(0.1)
try:
    after = c.token("local", ["repo:read"], wait=False)
except valetkey.ValetKeyError as e:
    print(f"after the upgrade: {e.name}: {e}", file=sys.stderr)
    sys.exit(1)
print(f"before {before.scopes} after {after.scopes}")
sys.exit(0 if after.scopes == ["repo:read"] else 1)
