#!/usr/bin/env python3
"""A Valet Key agent in ~60 lines of stdlib Python, written from PROTOCOL.md.

Usage: valetkey_client.py AGENT_NAME PROVIDER SCOPE [SCOPE...]
Prints the JSON result of token.get (waiting for the user's consent if
needed), or the error (exit 3 on consent_required).
"""
import json
import os
import socket
import sys


def socket_path():
    if os.environ.get("VALETKEY_SOCKET"):
        return os.environ["VALETKEY_SOCKET"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "valetkey", "agent.sock")
    logind = f"/run/user/{os.getuid()}"
    if os.path.isdir(logind) and not os.path.islink(logind) and os.stat(logind).st_uid == os.getuid():
        return os.path.join(logind, "valetkey", "agent.sock")
    return f"/tmp/valetkey-{os.getuid()}/agent.sock"


class ValetKey:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.reader = self.sock.makefile("rb")
        self.next_id = 1

    def call(self, method, params):
        req = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.next_id += 1
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        resp = json.loads(self.reader.readline())
        if "error" in resp:
            raise RuntimeError(resp["error"])
        return resp["result"]


def main():
    name, provider, scopes = sys.argv[1], sys.argv[2], sys.argv[3:]
    vk = ValetKey(socket_path())
    try:
        vk.call("hello", {"protocol": 1, "agent": {"name": name, "version": "1.0",
                                                     "purpose": "demo: read repositories"}})
        # Without a grant this waits (up to the daemon's consent timeout)
        # while the user decides in the tray or with `valetkey consent`.
        result = vk.call("token.get", {"provider": provider, "scopes": scopes,
                                       "duration_secs": 3600})
    except RuntimeError as e:
        err = e.args[0]
        print(f"refused: {err['data']['name']} ({err['code']}): {err['message']}", file=sys.stderr)
        sys.exit(3 if err["data"]["name"] == "consent_required" else 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
