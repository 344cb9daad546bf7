"""Peers: the libraries a Flask team would otherwise keep temporary files in, as suite sides.

cachelib's ``FileSystemCache`` and ``RedisCache`` are Flask-Session's backends; ``diskcache``
keeps large values as files beside a SQLite index. Each is driven the way an app would use it
(``set(key, value, timeout)`` / ``get(key)`` / ``delete(key)``, the library's own defaults
otherwise) on the same medium as the tempbench store it is compared with: the same
filesystem, the same Redis server through the same redis-py client. Their role is ``peer``:
``tempbench ci-report`` prints each store's throughput over each peer's in the same group
(``store / peer``: above 1.00x the store is the faster). Every peer reads back what it wrote
byte for byte after timing (``bench_suite.run_case``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench_suite import TTL_S, Side, dist_version, filesystem_service, service_version

PEER = "peer"
FILESYSTEM_CACHE, REDIS_CACHE, DISKCACHE = "cachelib FileSystemCache", "cachelib RedisCache", "diskcache.Cache"


def filesystem_cache_side(root: Path, medium: str) -> Side:
    """cachelib's ``FileSystemCache`` in ``root`` (Flask-Session's filesystem backend)."""
    from cachelib import FileSystemCache

    root.mkdir(parents=True, exist_ok=True)
    service, version = filesystem_service(root)
    return _cache_side(FILESYSTEM_CACHE, FileSystemCache(str(root), default_timeout=int(TTL_S)),
                       medium, service, version, f"cachelib {dist_version('cachelib')}")


def diskcache_side(root: Path, medium: str) -> Side:
    """``diskcache.Cache`` in ``root`` (values over its threshold become files)."""
    import diskcache

    root.mkdir(parents=True, exist_ok=True)
    service, version = filesystem_service(root)
    cache = diskcache.Cache(str(root))
    side = _cache_side(DISKCACHE, cache, medium, service, version,
                       f"diskcache {dist_version('diskcache')}", timeout_word="expire")
    side.close = cache.close
    return side


def redis_cache_side(service: Any, prefix: str, medium: str) -> Side:
    """cachelib's ``RedisCache`` on the store's server, through a redis-py client like the store's."""
    from cachelib import RedisCache

    client = service.client()
    cache = RedisCache(host=client, key_prefix=f"{prefix}:cachelib:", default_timeout=int(TTL_S))

    def close() -> None:
        for name in client.scan_iter(match=f"{prefix}:cachelib:*", count=1000):
            client.unlink(name)
        client.close()

    side = _cache_side(REDIS_CACHE, cache, medium, service.name, service_version(service.name),
                       f"cachelib {dist_version('cachelib')} + redis-py {dist_version('redis')}")
    side.emulated = service.emulated
    side.close = close
    return side


def _cache_side(strategy: str, cache: Any, medium: str, service: str, version: str, client: str,
                timeout_word: str = "timeout") -> Side:
    def key(sid: str, kind: str) -> str:
        return f"{sid}:{kind}"

    def put(sid: str, kind: str, data: bytes) -> None:
        if not cache.set(key(sid, kind), data, **{timeout_word: int(TTL_S)}):
            raise RuntimeError(f"{strategy}: set({key(sid, kind)!r}) was refused")

    def get(sid: str, kind: str) -> bytes:
        value = cache.get(key(sid, kind))
        if value is None:
            raise KeyError(key(sid, kind))
        return value

    def journey(sid: str, data: Any) -> dict:
        raise NotImplementedError(f"{strategy} is measured on put and get only")

    return Side(
        strategy=strategy,
        role=PEER,
        medium=medium,
        service=service,
        emulated=False,
        version=version,
        client=client,
        put=put,
        get=get,
        delete=lambda sid, kind: cache.delete(key(sid, kind)),
        exists=lambda sid, kind: cache.get(key(sid, kind)) is not None,
        journey=journey,
    )
