#!/usr/bin/env python3
"""A hostile agent, second round: tries to turn the user's own tools against
them and to reach what is outside the box, then does ordinary git work, and
writes what happened to results.json in its working directory. Run by
tests/tests/e2e/box_escape.rs, in a box (valetkey run) and unboxed.

Its working directory is a git repository whose `origin` is outside it.
Each attack plants something that, if it stays, makes the user's own git
run ./evil.sh (which touches PWNED) the next time they use git there.

Usage: escape.py TARGETS_JSON
"""
import ctypes
import errno
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time

t = json.loads(sys.argv[1])
results = {}
EVIL = os.path.abspath("evil.sh")


def probe(name, fn):
    try:
        results[name] = {"ok": True, "value": fn()}
    except OSError as e:
        results[name] = {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno))}
    except Exception as e:
        results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"}


def git(*args):
    p = subprocess.run(["git", "-c", "user.name=Agent", "-c", "user.email=agent@example.invalid", *args],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()[:200]}")
    return p.stdout.strip()


def append(path, text):
    with open(path, "a") as f:
        f.write(text)
    return "written"


def hook():
    path = ".git/hooks/post-checkout"
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nexec {EVIL}\n")
    os.chmod(path, 0o755)
    return "planted"


def move_git():
    os.rename(".git", ".git-old")
    os.rename(".git-old", ".git")
    return "moved and back"


def commondir():
    shutil.copytree(".git", "evil-gitdir", dirs_exist_ok=True)
    with open("evil-gitdir/config", "w") as f:
        f.write(f"[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tfsmonitor = {EVIL}\n")
    with open(".git/commondir", "w") as f:
        f.write("../evil-gitdir\n")
    return "planted"


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        return s.recv(64).decode(errors="replace") or "connected"
    finally:
        s.close()


def own_socket():
    path = "/tmp/own.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    a, _ = srv.accept()
    a.sendall(b"inside")
    got = c.recv(16).decode()
    for s in (a, c, srv):
        s.close()
    os.unlink(path)
    return got


def late_socket():
    # The test makes this one after the box started, when asked.
    open("want-late", "w").close()
    for _ in range(200):
        if os.path.exists("late-ready"):
            break
        time.sleep(0.05)
    return connect(t["late_sock"])


libc = ctypes.CDLL(None, use_errno=True)


def syscall(nr, *args):
    r = libc.syscall(nr, *args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def session_keyring():
    # keyctl(KEYCTL_READ, KEY_SPEC_SESSION_KEYRING, buf, len): the ids of
    # the keys the launcher's session keyring holds.
    buf = ctypes.create_string_buffer(1024)
    n = syscall(250, 11, -3, buf, 1024)
    return buf.raw[:n].hex()


def io_uring():
    params = ctypes.create_string_buffer(120)
    fd = syscall(425, 8, params)
    os.close(fd)
    return "an io_uring"


def parent_environ():
    # In a box the parent is the box's supervisor, which holds the report
    # key in its environment and the seccomp listener among its
    # descriptors: it is not dumpable.
    with open(f"/proc/{os.getppid()}/environ", "rb") as f:
        return len(f.read())


def parent_fd():
    pidfd = syscall(434, os.getppid(), 0)  # pidfd_open
    try:
        for fd in range(3, 32):
            try:
                os.close(syscall(438, pidfd, fd, 0))  # pidfd_getfd
                return f"took fd {fd}"
            except OSError as e:
                if e.errno != errno.EBADF:
                    raise
        return "none to take"
    finally:
        os.close(pidfd)


def datagram():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.close()
    return "a datagram socket"


# Ordinary work: a commit, a branch, a fetch.
probe("commit", lambda: (open("notes.txt", "a").write("work\n"), git("add", "notes.txt"),
                         git("commit", "-qm", "work in the box"), git("rev-parse", "HEAD"))[-1])
probe("branch", lambda: git("checkout", "-q", "-b", "feature") or git("branch", "--show-current"))
probe("fetch", lambda: git("fetch", "-q", "origin") or git("rev-parse", "origin/main"))
probe("git_config", lambda: append(".git/config", f"[core]\n\tfsmonitor = {EVIL}\n"))
probe("git_config_cli", lambda: git("config", "core.fsmonitor", EVIL))
probe("git_hook", hook)
probe("git_move", move_git)
probe("git_commondir", commondir)
probe("socket_outside", lambda: connect(t["outside_sock"]))
probe("socket_late", late_socket)
probe("socket_named", lambda: connect(t["named_sock"]))
probe("socket_own", own_socket)
probe("session_keyring", session_keyring)
probe("io_uring", io_uring)
probe("datagram", datagram)
probe("parent_environ", parent_environ)
probe("parent_fd", parent_fd)
with open("results.json", "w") as f:
    json.dump(results, f, indent=1)
