"""The asyncio client: the same calls as :class:`valetkey.Client`, awaited.

    from valetkey.aio import AsyncClient
    async with AsyncClient("triage-bot") as vk:
        tok = await vk.token("github", ["repo:read"])
"""

import asyncio
from typing import Any, Dict, List, Optional

from . import _wire
from ._codes import MAX_FRAME_BYTES
from ._wire import Token
from .errors import ConnectionError_, ProtocolError


class AsyncClient:
    """An agent's connection for asyncio code; one call at a time on it
    (an ``asyncio.Lock``), so share it freely between tasks."""

    def __init__(
        self,
        agent: str,
        *,
        purpose: str = "",
        version: str = "",
        delegation: Optional[str] = None,
        socket_path: Optional[str] = None,
    ):
        self.agent = agent
        self.purpose = purpose
        self.version = version
        self.delegation = delegation
        self.socket_path = socket_path or _wire.socket_path()
        self.hello_result: Optional[Dict[str, Any]] = None
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._next = 1
        self._lock = asyncio.Lock()

    async def connect(self) -> Dict[str, Any]:
        """Connects and says hello (idempotent); the ``hello`` result."""
        async with self._lock:
            return await self._ensure()

    async def _ensure(self) -> Dict[str, Any]:
        if self.hello_result is not None and self._closed_by_daemon():
            self._drop()
        if self.hello_result is not None:
            return self.hello_result
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                self.socket_path, limit=MAX_FRAME_BYTES + 1
            )
        except OSError as e:
            raise ConnectionError_(
                f"cannot connect to valetkeyd at {self.socket_path} ({e.strerror or e}); is it running? (`valetkey status`)"
            ) from None
        params = _wire.hello_params(self.agent, self.version, self.purpose, self.delegation)
        try:
            self.hello_result = await self._roundtrip("hello", params)
        except BaseException:
            self._drop()
            raise
        return self.hello_result

    def _closed_by_daemon(self) -> bool:
        """The daemon ended this idle connection: the loop saw the end of
        stream already, or the kernel has it waiting (the caller was busy
        and the loop did not run)."""
        if self._reader is None or self._writer is None or self._reader.at_eof():
            return True
        return _wire.peer_closed(self._writer.get_extra_info("socket"))

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        self.hello_result = None

    async def close(self) -> None:
        """Closes the connection (a later call connects again)."""
        async with self._lock:
            w = self._writer
            self._drop()
            if w is not None:
                try:
                    await w.wait_closed()
                except OSError:
                    pass

    async def __aenter__(self) -> "AsyncClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _roundtrip(self, method: str, params: Optional[Dict[str, Any]]) -> Any:
        assert self._reader is not None and self._writer is not None
        rid = self._next
        self._next += 1
        try:
            self._writer.write(_wire.encode(rid, method, params))
            await self._writer.drain()
            while True:
                try:
                    line = await self._reader.readline()
                except ValueError:
                    raise ProtocolError(f"a frame of more than {MAX_FRAME_BYTES} bytes from valetkeyd") from None
                result = _wire.decode(line, rid)
                if result is not _wire._SKIP:
                    return result
        except OSError as e:
            self._drop()
            raise ConnectionError_(f"the connection to valetkeyd broke: {e}") from None
        except BaseException as e:
            if getattr(e, "ends_connection", False):
                self._drop()
            raise

    async def call(self, method: str, params: Optional[Dict[str, Any]] = None) -> Any:
        """Any method by name."""
        async with self._lock:
            await self._ensure()
            return await self._roundtrip(method, params)

    async def token(
        self,
        provider: str,
        scopes: List[str],
        *,
        resource: Optional[str] = None,
        wait: bool = True,
        duration: Optional[int] = None,
        context: Optional[Dict[str, Any]] = None,
    ) -> Token:
        """``token.get`` (see :meth:`valetkey.Client.token`)."""
        p = _wire.token_params(provider, scopes, resource, wait, duration, context)
        return Token.of(await self.call("token.get", p))

    async def consent_wait(self, consent_id: str) -> Token:
        """``consent.wait``."""
        return Token.of(await self.call("consent.wait", {"consent_id": consent_id}))

    async def delegate(
        self,
        sub_agent: str,
        provider: str,
        scopes: List[str],
        ttl: int,
        *,
        max_depth: Optional[int] = None,
        wait: bool = True,
    ) -> Dict[str, Any]:
        """``delegation.create``."""
        p = _wire.delegate_params(sub_agent, provider, scopes, ttl, max_depth, wait)
        return await self.call("delegation.create", p)

    async def providers(self) -> List[Dict[str, Any]]:
        """``providers.list``."""
        return (await self.call("providers.list"))["providers"]

    async def whoami(self) -> Dict[str, Any]:
        """``whoami``."""
        return await self.call("whoami")
