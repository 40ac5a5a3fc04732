#!/usr/bin/env python3
"""A hostile agent: tries every way around Valet Key that a process running
as the user has, and writes what happened to results.json in its working
directory. Run by tests/tests/e2e/boxes.rs, once in a box (valetkey run)
and once without. Every probe is harmless when it succeeds: it opens for
writing without writing, takes a write lock and rolls back, sends signal 0.

Usage: probe.py TARGETS_JSON [AGENT_NAME]
With AGENT_NAME it then behaves: asks Valet Key for a token through its
socket (waiting for consent) and records whether it got one.
"""
import errno
import fcntl
import json
import os
import socket
import sqlite3
import subprocess
import sys
import termios

t = json.loads(sys.argv[1])
results = {}


def probe(name, fn):
    try:
        got = fn()
        results[name] = {"ok": True, "value": got}
    except OSError as e:
        results[name] = {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno))}
    except Exception as e:  # sqlite3 and friends
        results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"}


def connect(path, abstract=False):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(("\0" + path) if abstract else path)
    s.close()
    return "connected"


def open_for_write(path, create=False):
    flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT if create else 0)
    os.close(os.open(path, flags, 0o600))
    return "writable"


def run(argv, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=e)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[:300]}")
    return p.stdout.strip()


def sqlite_write(path):
    db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=1)
    db.execute("BEGIN IMMEDIATE")
    db.execute("SELECT count(*) FROM grants").fetchone()
    db.rollback()
    db.close()
    return "write lock taken"


def tiocsti():
    if not os.isatty(0):
        raise RuntimeError("stdin is not a terminal")
    fcntl.ioctl(0, termios.TIOCSTI, b" ")
    return "injected"


probe("keyrings", lambda: os.listdir(t["keyrings"]))
probe("ssh_keys", lambda: os.listdir(t["ssh"]))
probe("secret_tool", lambda: run(
    ["secret-tool", "lookup", "service", "valetkey", "username", "refresh-token:local"],
    {"DBUS_SESSION_BUS_ADDRESS": "unix:path=" + t["bus"]}))
probe("session_bus", lambda: connect(t["bus"]))
probe("control_sock", lambda: connect(t["control"]))
probe("consent_cli", lambda: run([t["valetkey"], "--socket", t["agent_sock"], "consent", "list"]))
probe("consent_cli_default", lambda: run([t["valetkey"], "consent", "list"]))
probe("state_db", lambda: sqlite_write(t["state_db"]))
probe("config_toml", lambda: open_for_write(t["config"]))
probe("bashrc", lambda: open_for_write(t["bashrc"], create=True))
probe("replace_agent_sock", lambda: open_for_write(
    os.path.join(os.path.dirname(t["agent_sock"]), "relay-probe"), create=True))
probe("replace_box_sock", lambda: open_for_write(
    os.path.join(os.path.dirname(os.environ.get("VALETKEY_SOCKET", t["agent_sock"])), "relay-probe"),
    create=True))
probe("signal_daemon", lambda: os.kill(t["daemon_pid"], 0) or "signalled")
probe("proc_daemon", lambda: os.listdir(f"/proc/{t['daemon_pid']}/fd") and "visible")
probe("abstract_socket", lambda: connect(t["abstract"], abstract=True))
probe("unshare", lambda: run(["unshare", "-Urm", "true"]) or "unshared")
probe("tiocsti", tiocsti)
results["env"] = sorted(os.environ)

if len(sys.argv) > 2:
    sys.dont_write_bytecode = True
    sys.path.insert(0, t["client_dir"])
    import valetkey_client as vk
    try:
        c = vk.ValetKey(vk.socket_path())
        c.call("hello", {"protocol": 1, "agent": {"name": sys.argv[2], "version": "1"}})
        r = c.call("token.get", {"provider": "local", "scopes": ["repo:read"]})
        results["token"] = {"ok": True, "len": len(r["access_token"])}
    except Exception as e:
        results["token"] = {"ok": False, "error": str(e)[:300]}

with open("results.json", "w") as f:
    json.dump(results, f, indent=1)
