"""HTTP auth helpers: a token from valetkeyd on every request, fetched once
and again shortly before it expires (or when the server answers 401).

    import requests, valetkey
    auth = valetkey.TokenAuth(valetkey.Client("bot"), "github", ["repo:read"])
    requests.get("https://api.github.com/user", auth=auth)

    import httpx
    httpx.get(url, auth=auth)                                  # sync httpx
    async with httpx.AsyncClient(auth=valetkey.httpx_auth(async_client, "github", ["repo:read"])) as h: ...

Neither ``requests`` nor ``httpx`` is imported unless you use them.
"""

import threading
import time
from typing import Any, Callable, List, Optional

from ._wire import Token

#: A token is fetched again when it has less than this left (seconds).
MARGIN = 60


class TokenAuth:
    """A ``requests`` auth (and an ``httpx`` one: both call it with the
    request). ``clock`` is injectable for tests."""

    def __init__(
        self,
        client: Any,
        provider: str,
        scopes: List[str],
        *,
        margin: int = MARGIN,
        clock: Callable[[], float] = time.time,
        **token_args: Any,
    ):
        self.client, self.provider, self.scopes = client, provider, list(scopes)
        self.margin, self.clock, self.token_args = margin, clock, token_args
        self._token: Optional[Token] = None
        self._lock = threading.Lock()

    def token(self) -> Token:
        """The current token, fetched when missing or about to expire."""
        with self._lock:
            t = self._token
            if t is None or t.expires_at - self.clock() < self.margin:
                t = self._token = self.client.token(self.provider, self.scopes, **self.token_args)
            return t

    def forget(self) -> None:
        """Drops the cached token (the next request fetches one)."""
        with self._lock:
            self._token = None

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = self.token().authorization
        return request


def httpx_auth(client: Any, provider: str, scopes: List[str], **kw: Any) -> Any:
    """An ``httpx.Auth`` for ``client`` (a :class:`valetkey.Client` for
    sync httpx, an :class:`valetkey.aio.AsyncClient` for ``httpx.AsyncClient``)
    that retries once with a fresh token on a 401."""
    import httpx  # only when asked for

    margin = kw.pop("margin", MARGIN)
    clock = kw.pop("clock", time.time)

    class _Auth(httpx.Auth):
        def __init__(self) -> None:
            self.cached: Optional[Token] = None

        def _stale(self) -> bool:
            return self.cached is None or self.cached.expires_at - clock() < margin

        def sync_auth_flow(self, request: Any) -> Any:
            if self._stale():
                self.cached = client.token(provider, scopes, **kw)
            request.headers["Authorization"] = self.cached.authorization
            response = yield request
            if response.status_code == 401:
                self.cached = client.token(provider, scopes, **kw)
                request.headers["Authorization"] = self.cached.authorization
                yield request

        async def async_auth_flow(self, request: Any) -> Any:
            if self._stale():
                self.cached = await client.token(provider, scopes, **kw)
            request.headers["Authorization"] = self.cached.authorization
            response = yield request
            if response.status_code == 401:
                self.cached = await client.token(provider, scopes, **kw)
                request.headers["Authorization"] = self.cached.authorization
                yield request

    return _Auth()
