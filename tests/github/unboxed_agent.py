#!/usr/bin/env python3
"""An unboxed agent that uses its own egress proxy (proxy.open), for the
egress proxy tests: asks for a placeholder, then has real curl and git
(processes it starts) reach the GitHub stand-in through the proxy, and
waits (with the proxy open) until the test says it is done.

Usage: unboxed_agent.py API_URL GIT_URL   (run in a scratch directory)"""

import json
import os
import socket
import subprocess
import sys
import time

api, git = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(os.path.join(os.environ["XDG_RUNTIME_DIR"], "valetkey", "agent.sock"))
reader = sock.makefile("rb")
next_id = 0


def call(method, params):
    global next_id
    next_id += 1
    sock.sendall(json.dumps({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params}).encode() + b"\n")
    resp = json.loads(reader.readline())
    if "error" in resp:
        sys.exit(f"{method}: {resp['error']}")
    return resp["result"]


call("hello", {"protocol": 1, "agent": {"name": "unboxed-bot", "version": "1", "purpose": "egress proxy test"}})
opened = call("proxy.open", {})
json.dump(opened, open("proxy.json", "w"))
ph = call("token.placeholder", {"provider": "github", "scopes": ["contents:read"]})["placeholder"]
env = dict(os.environ, HTTPS_PROXY=opened["proxy_url"], https_proxy=opened["proxy_url"],
           CURL_CA_BUNDLE=opened["ca_bundle"], GIT_SSL_CAINFO=opened["ca_bundle"])
with open("curl.json", "wb") as out:
    subprocess.run(["curl", "-sS", "-H", f"Authorization: Bearer {ph}", f"{api}/repos/octo/hello/contents/README"],
                   env=env, stdout=out, check=False)
with open("clone.err", "wb") as err:
    rc = subprocess.run(["git", "clone", "-q", f"{git}/octo/hello.git", "hello"], env=env, stderr=err, check=False).returncode
open("clone.rc", "w").write(str(rc))
open("ready", "w").write("1")
while not os.path.exists("done"):
    time.sleep(0.05)
