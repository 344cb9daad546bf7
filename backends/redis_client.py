"""How the ``redis`` store (:mod:`backends.redis_store`) builds its redis-py client: which
reply parser serves it, and a command packer that sends large values without copying them.

hiredis (the ``fast`` extra) parses replies in C; without it redis-py parses them in
Python. Every figure of the store names the parser that served it (:func:`parser_name`).
"""

from __future__ import annotations

import importlib.metadata

import redis
from redis._parsers import Encoder
from redis.connection import DefaultParser, PythonRespSerializer
from redis.utils import HIREDIS_AVAILABLE

from backends.base import BackendUnavailable

PARSERS = ("auto", "hiredis", "python")

_BUFFER_CUTOFF = 6000
"""Arguments above this many bytes are sent as they are, not joined (redis-py's default)."""


def client_options(parser: str) -> dict[str, object]:
    """redis-py keywords for a client this store builds: the reply parser (``parser_class``,
    none for ``auto``: redis-py's default) and the command packer.

    The packer is always redis-py's Python one: it hands a large value (or a view of one) to
    the socket as it is, where hiredis's packer - redis-py's default when hiredis is
    installed - first copies every argument into one buffer (a view twice).
    """
    options: dict[str, object] = {
        "command_packer": PythonRespSerializer(_BUFFER_CUTOFF, Encoder("utf-8", "strict", False).encode)
    }
    if parser == "python":
        options["parser_class"] = redis.connection._RESP2Parser
    elif parser == "hiredis":
        if not HIREDIS_AVAILABLE:
            raise BackendUnavailable(
                "redis: parser 'hiredis' asked for but hiredis is not installed "
                "(pip install 'tempbench[fast]')"
            )
        options["parser_class"] = redis.connection._HiredisParser
    return options


def parser_name(client: redis.Redis, emulated: bool) -> str:
    """Which reply parser serves ``client``: ``hiredis 3.5.0`` or redis-py's own."""
    if emulated:
        return "fakeredis in-process (no reply parser)"
    chosen = client.connection_pool.connection_kwargs.get("parser_class", DefaultParser)
    if chosen is redis.connection._HiredisParser:
        return f"hiredis {importlib.metadata.version('hiredis')}"
    return f"redis-py {redis.__version__} Python parser"
