"""Valet Key for Python agents: ask valetkeyd for short-lived, narrowed
tokens over its local socket (the protocol is ipc-schema/PROTOCOL.md).

Standard library only. ``Client`` blocks, ``valetkey.aio.AsyncClient``
awaits; every refusal is an exception of its own class (see
:mod:`valetkey.errors`); ``TokenAuth``/``httpx_auth`` put a fresh token on
each HTTP request.
"""

from ._codes import MAX_FRAME_BYTES, PROTOCOL_VERSION
from ._wire import Token, socket_path
from .auth import TokenAuth, httpx_auth
from .client import Client
from .errors import *  # noqa: F401,F403  (one class per code)
from .errors import ConnectionError_, ProtocolError, ValetKeyError, from_rpc

__version__ = "0.1.0"
__all__ = [
    "Client",
    "Token",
    "TokenAuth",
    "httpx_auth",
    "socket_path",
    "ValetKeyError",
    "ConnectionError_",
    "ProtocolError",
    "from_rpc",
    "PROTOCOL_VERSION",
    "MAX_FRAME_BYTES",
]
