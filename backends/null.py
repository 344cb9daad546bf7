"""The null store: accepts and discards. Under load it shows the harness's own ceiling."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

from backends.base import Capabilities, Footprint, Key, NotFound, Quota, ServiceInfo, Store


class NullStore(Store):
    """Remembers only the sizes of what it was given; reads return zero bytes of that size.

    Reads are answered with zeros rather than the payload so that the null store holds no
    data at all; workloads that verify content treat it as a harness store.
    """

    name = "null"
    capabilities = Capabilities(
        native_ttl=False,
        expires_on_read=False,
        shared_across_instances=False,
        encrypted_at_rest=False,
        notes=("harness self-test: discards data",),
    )

    def __init__(self, quota: Quota | None = None) -> None:
        super().__init__(quota or Quota(files_per_session=None, total_bytes=None))
        self._sizes: dict[Key, int] = {}

    def service(self) -> ServiceInfo:
        return ServiceInfo(name="null (discards data)", emulated=False)

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        size = sum(len(chunk) for chunk in chunks)
        self._sizes[key] = size
        return size

    def _open(self, key: Key) -> BinaryIO:
        try:
            return io.BytesIO(bytes(self._sizes[key]))
        except KeyError:
            raise NotFound(f"null: nothing stored for {key.session_id}/{key.kind}") from None

    def _delete(self, key: Key) -> bool:
        return self._sizes.pop(key, None) is not None

    def _delete_session(self, session_id: str) -> int:
        keys = [k for k in self._sizes if k.session_id == session_id]
        for key in keys:
            del self._sizes[key]
        return len(keys)

    def _sweep(self) -> Footprint:
        return Footprint()

    def _footprint(self) -> Footprint:
        return Footprint()
