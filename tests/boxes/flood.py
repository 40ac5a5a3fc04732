#!/usr/bin/env python3
"""The red team's fifth attack: hold as many connections to the box's own
socket as it can (N), each saying hello, to starve the daemon's other
sockets. Writes flood.json: how many were admitted, how many refused and
why, then holds them all until the file `release` appears.

Usage: flood.py N
"""
import json
import os
import socket
import sys
import time

n = int(sys.argv[1])
path = os.environ["VALETKEY_SOCKET"]
held, why = [], {}
hello = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "hello",
                    "params": {"protocol": 1, "agent": {"name": "flood"}}}) + "\n"
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    try:
        s.sendall(hello.encode())
    except OSError:
        pass
    line = s.makefile("rb").readline()
    reply = json.loads(line) if line else {}
    if "result" in reply:
        held.append(s)
    else:
        data = reply.get("error", {}).get("data", {})
        key = f'{data.get("name")}:{data.get("limit")}'
        why[key] = why.get(key, 0) + 1
        s.close()
with open("flood.json", "w") as f:
    json.dump({"admitted": len(held), "refused": why}, f)
while not os.path.exists("release"):
    time.sleep(0.05)
