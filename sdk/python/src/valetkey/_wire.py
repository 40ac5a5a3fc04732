"""The wire, shared by the sync and asyncio clients: where the socket is,
how a request is framed, how an answer is read. One JSON object per line,
at most ``MAX_FRAME_BYTES`` with the newline (PROTOCOL.md, "Framing")."""

import json
import os
import select
import socket
import stat
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ._codes import MAX_FRAME_BYTES, PROTOCOL_VERSION
from .errors import ConnectionError_, ProtocolError, ValetKeyError, from_rpc

__all__ = ["socket_path", "Token", "encode", "decode", "hello_params", "token_params"]


def socket_path(run_user: str = "/run/user") -> str:
    """The agent socket, by the daemon's own rule (PROTOCOL.md, "Where the
    socket is"): ``$VALETKEY_SOCKET`` (set inside a box by ``valetkey
    run``), else ``$XDG_RUNTIME_DIR/valetkey/agent.sock``, else
    ``/run/user/$UID/valetkey/agent.sock`` when ``/run/user/$UID`` is a
    directory of yours (what a reduced environment, such as an MCP
    client's stdio transport, still finds), else
    ``/tmp/valetkey-$UID/agent.sock``."""
    env = os.environ.get("VALETKEY_SOCKET")
    if env:
        return env
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "valetkey", "agent.sock")
    uid = os.getuid()
    logind = os.path.join(run_user, str(uid))
    try:
        st = os.lstat(logind)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
            return os.path.join(logind, "valetkey", "agent.sock")
    except OSError:
        pass
    return os.path.join(f"/tmp/valetkey-{uid}", "agent.sock")


def peer_closed(sock: Any) -> bool:
    """Whether the daemon closed this idle connection (it restarted, for
    example for a package upgrade). Asks the kernel, not the event loop, so
    it holds however long the caller was busy. Nothing is in flight on an
    idle connection, so connecting again before sending is safe."""
    try:
        fd = sock.fileno()
        readable, _, _ = select.select([fd], [], [], 0)
        if not readable:
            return False
        with socket.socket(fileno=os.dup(fd)) as peek:
            return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


@dataclass(frozen=True)
class Token:
    """An access token as ``token.get`` (or ``consent.wait``) hands it out.
    ``repr`` never shows the token itself."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: int
    scopes: List[str]
    provider: str
    resource: Optional[str] = None

    @classmethod
    def of(cls, r: Dict[str, Any]) -> "Token":
        return cls(
            access_token=r["access_token"],
            token_type=r.get("token_type", "Bearer"),
            expires_at=int(r.get("expires_at", 0)),
            scopes=list(r.get("scopes", [])),
            provider=r.get("provider", ""),
            resource=r.get("resource"),
        )

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value: ``Bearer …``."""
        return f"Bearer {self.access_token}"


def encode(request_id: int, method: str, params: Optional[Dict[str, Any]]) -> bytes:
    """One request frame; refused here if it would exceed the cap."""
    msg: Dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        msg["params"] = params
    frame = json.dumps(msg, separators=(",", ":")).encode() + b"\n"
    if len(frame) > MAX_FRAME_BYTES:
        raise ValetKeyError(f"a {method} request of {len(frame)} bytes exceeds the {MAX_FRAME_BYTES}-byte frame cap")
    return frame


def decode(line: bytes, request_id: int) -> Any:
    """The result of the answer to ``request_id``, or its error raised.
    An ``id: null`` error is the daemon ending the connection (a cut-off
    after revocation, a frame it could not read): it is raised as well.
    Returns ``_SKIP`` for a frame that answers nothing (a notification)."""
    if not line:
        e: ValetKeyError = ConnectionError_("valetkeyd closed the connection")
        e.ends_connection = True  # type: ignore[attr-defined]
        raise e
    if len(line) > MAX_FRAME_BYTES:
        raise ProtocolError(f"a frame of more than {MAX_FRAME_BYTES} bytes from valetkeyd")
    try:
        msg = json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"valetkeyd sent something that is not JSON: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("valetkeyd sent a frame that is not a JSON object")
    if "error" in msg and msg.get("id") in (None, request_id):
        err = from_rpc(msg["error"] if isinstance(msg["error"], dict) else {})
        err.ends_connection = msg.get("id") is None  # type: ignore[attr-defined]
        raise err
    if msg.get("id") != request_id:
        return _SKIP
    return msg.get("result")


_SKIP = object()


def hello_params(name: str, version: str, purpose: str, delegation: Optional[str]) -> Dict[str, Any]:
    p: Dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "agent": {"name": name, "version": version, "purpose": purpose},
    }
    if delegation:
        p["delegation"] = delegation
    return p


def delegate_params(
    sub_agent: str, provider: str, scopes: List[str], ttl: int, max_depth: Optional[int], wait: bool
) -> Dict[str, Any]:
    p: Dict[str, Any] = {"sub_agent": sub_agent, "provider": provider, "scopes": list(scopes), "ttl_secs": int(ttl), "wait": wait}
    if max_depth is not None:
        p["max_depth"] = max_depth
    return p


def token_params(
    provider: str,
    scopes: List[str],
    resource: Optional[str],
    wait: bool,
    duration: Optional[int],
    context: Optional[Dict[str, Any]],
) -> Dict[str, Any]:
    if isinstance(scopes, str):
        scopes = scopes.split()
    p: Dict[str, Any] = {"provider": provider, "scopes": list(scopes), "wait": wait}
    if resource is not None:
        p["resource"] = resource
    if duration is not None:
        p["duration_secs"] = int(duration)
    if context is not None:
        p["context"] = context
    return p
