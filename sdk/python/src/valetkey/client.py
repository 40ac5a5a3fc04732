"""The blocking client: one connection to valetkeyd's agent socket, greeted
once, then any number of calls (one at a time; a lock keeps threads from
interleaving them).

    from valetkey import Client
    with Client("triage-bot", purpose="label new issues") as vk:
        tok = vk.token("github", ["repo:read"])
        requests.get(url, headers={"Authorization": tok.authorization})
"""

import socket
import threading
from typing import Any, Dict, List, Optional

from . import _wire
from ._codes import MAX_FRAME_BYTES
from ._wire import Token
from .errors import ConnectionError_


class Client:
    """An agent's connection. It connects and says ``hello`` on first use
    (or on :meth:`connect`); ``delegation`` makes it a sub-agent."""

    def __init__(
        self,
        agent: str,
        *,
        purpose: str = "",
        version: str = "",
        delegation: Optional[str] = None,
        socket_path: Optional[str] = None,
        timeout: Optional[float] = None,
    ):
        self.agent = agent
        self.purpose = purpose
        self.version = version
        self.delegation = delegation
        self.socket_path = socket_path or _wire.socket_path()
        self.timeout = timeout
        self.hello_result: Optional[Dict[str, Any]] = None
        self._sock: Optional[socket.socket] = None
        self._reader: Any = None
        self._next = 1
        self._lock = threading.Lock()

    # -- connection ---------------------------------------------------------

    def connect(self) -> Dict[str, Any]:
        """Connects and says hello; returns the ``hello`` result (what the
        daemon attested). Idempotent."""
        with self._lock:
            return self._ensure()

    def _ensure(self) -> Dict[str, Any]:
        if self.hello_result is not None and (self._sock is None or _wire.peer_closed(self._sock)):
            self._drop()
        if self.hello_result is not None:
            return self.hello_result
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.socket_path)
        except OSError as e:
            s.close()
            raise ConnectionError_(
                f"cannot connect to valetkeyd at {self.socket_path} ({e.strerror or e}); is it running? (`valetkey status`)"
            ) from None
        self._sock, self._reader = s, s.makefile("rb")
        params = _wire.hello_params(self.agent, self.version, self.purpose, self.delegation)
        try:
            self.hello_result = self._roundtrip("hello", params)
        except BaseException:
            self._drop()
            raise
        return self.hello_result

    def _drop(self) -> None:
        for c in (self._reader, self._sock):
            try:
                if c is not None:
                    c.close()
            except OSError:
                pass
        self._sock = self._reader = None
        self.hello_result = None

    def close(self) -> None:
        """Closes the connection (a later call connects again)."""
        with self._lock:
            self._drop()

    def __enter__(self) -> "Client":
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- calls --------------------------------------------------------------

    def _roundtrip(self, method: str, params: Optional[Dict[str, Any]]) -> Any:
        assert self._sock is not None
        rid = self._next
        self._next += 1
        try:
            self._sock.sendall(_wire.encode(rid, method, params))
            while True:
                line = self._reader.readline(MAX_FRAME_BYTES + 1)
                result = _wire.decode(line, rid)
                if result is not _wire._SKIP:
                    return result
        except OSError as e:
            self._drop()
            raise ConnectionError_(f"the connection to valetkeyd broke: {e}") from None
        except BaseException as e:
            # The daemon ended the connection (an `id: null` error, such as
            # the push after a revocation, or end of stream): the next call
            # connects again.
            if getattr(e, "ends_connection", False):
                self._drop()
            raise

    def call(self, method: str, params: Optional[Dict[str, Any]] = None) -> Any:
        """Any method by name (for what this client has no helper for)."""
        with self._lock:
            self._ensure()
            return self._roundtrip(method, params)

    def token(
        self,
        provider: str,
        scopes: List[str],
        *,
        resource: Optional[str] = None,
        wait: bool = True,
        duration: Optional[int] = None,
        context: Optional[Dict[str, Any]] = None,
    ) -> Token:
        """``token.get``. With ``wait=False`` and no grant, raises
        :class:`ConsentRequiredError` at once (``e.data["consent_id"]`` for
        :meth:`consent_wait`); by default it waits for your decision."""
        p = _wire.token_params(provider, scopes, resource, wait, duration, context)
        return Token.of(self.call("token.get", p))

    def consent_wait(self, consent_id: str) -> Token:
        """``consent.wait``: the token once the person decided."""
        return Token.of(self.call("consent.wait", {"consent_id": consent_id}))

    def delegate(
        self,
        sub_agent: str,
        provider: str,
        scopes: List[str],
        ttl: int,
        *,
        max_depth: Optional[int] = None,
        wait: bool = True,
    ) -> Dict[str, Any]:
        """``delegation.create``: a token for ``sub_agent`` (hand
        ``result["token"]`` to it; it passes it as ``delegation=``)."""
        p = _wire.delegate_params(sub_agent, provider, scopes, ttl, max_depth, wait)
        return self.call("delegation.create", p)

    def providers(self) -> List[Dict[str, Any]]:
        """``providers.list``."""
        return self.call("providers.list")["providers"]

    def whoami(self) -> Dict[str, Any]:
        """``whoami``."""
        return self.call("whoami")

    def jwks(self) -> Dict[str, Any]:
        """``jwks``: the broker's public keys, for verifying delegation tokens."""
        return self.call("jwks")

    def placeholder(self, provider: str, scopes: List[str]) -> Dict[str, Any]:
        """``token.placeholder`` (inside a ``--net proxy`` box, or after
        :meth:`open_proxy`)."""
        return self.call("token.placeholder", {"provider": provider, "scopes": list(scopes)})

    def open_proxy(self) -> Dict[str, Any]:
        """``proxy.open``: a loopback egress proxy for this connection."""
        return self.call("proxy.open", {})
