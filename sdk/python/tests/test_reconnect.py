"""Fault injection at the unit level, beside the real-daemon suite: a
daemon that closes an idle connection (as valetkeyd does when it stops for
an upgrade) costs the agent nothing. The next call connects again and says
hello first, and nothing is ever sent on the closed connection. The system
stage (tests/system) checks the same across a real package upgrade."""

import asyncio
import json
import socket
import threading
import time

import valetkey
from valetkey.aio import AsyncClient


class ClosingDaemon:
    """Answers every request on a connection; closes each connection after
    ``per_conn`` answers. Records the methods each connection received."""

    def __init__(self, path: str, per_conn: int) -> None:
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen()
        self.per_conn = per_conn
        self.conns: list = []
        self.closed = threading.Event()  # set once the first connection is ended
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.srv.accept()
            seen: list = []
            self.conns.append(seen)
            reader = conn.makefile("rb")
            for _ in range(self.per_conn):
                req = json.loads(reader.readline())
                seen.append(req["method"])
                result = {"agent": {"name": "a"}} if req["method"] == "hello" else {"n": len(seen)}
                conn.sendall(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result}).encode() + b"\n")
            # Whatever arrives after the close is read here (nothing must),
            # and ends the connection for good, so such a call fails rather
            # than waits.
            conn.shutdown(socket.SHUT_WR)
            self.closed.set()
            for line in reader:
                if line.strip():
                    seen.append(json.loads(line)["method"])
                    break
            conn.close()


def wait_conns(daemon: ClosingDaemon, n: int) -> None:
    for _ in range(500):
        if len(daemon.conns) >= n:
            return
        time.sleep(0.01)


def test_the_sync_client_reconnects_when_the_daemon_closed_an_idle_connection(tmp_path):
    d = ClosingDaemon(str(tmp_path / "d.sock"), per_conn=2)
    c = valetkey.Client("a", socket_path=str(tmp_path / "d.sock"))
    assert c.whoami() == {"n": 2}
    assert d.closed.wait(5), "the daemon ends the idle connection"
    assert c.whoami() == {"n": 2}, "the call went to a new connection, after hello"
    c.close()
    wait_conns(d, 2)
    assert d.conns[0] == ["hello", "whoami"], "nothing sent on the closed connection"
    assert d.conns[1][:2] == ["hello", "whoami"]


def test_the_asyncio_client_reconnects_when_the_daemon_closed_an_idle_connection(tmp_path):
    d = ClosingDaemon(str(tmp_path / "d.sock"), per_conn=2)

    async def go() -> None:
        c = AsyncClient("a", socket_path=str(tmp_path / "d.sock"))
        assert await c.whoami() == {"n": 2}
        # Blocking, as an agent busy in sync code would: the loop does not
        # run, so only the kernel knows the connection ended.
        assert d.closed.wait(5), "the daemon ends the idle connection"
        assert await c.whoami() == {"n": 2}
        await c.close()

    asyncio.run(go())
    wait_conns(d, 2)
    assert d.conns[0] == ["hello", "whoami"]
    assert d.conns[1][:2] == ["hello", "whoami"]
