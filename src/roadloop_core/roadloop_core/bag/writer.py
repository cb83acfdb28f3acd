"""Bag writing: first version on top of rosbags.Writer (mcap); hardened in the bag-I/O work."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from roadloop_core.errors import BagError
from roadloop_core.registry import QosSpec
from roadloop_core.typesys import typestore_for

__all__ = ["BagWriter"]


class BagWriter:
    """Write an mcap rosbag2 bag. The bag directory appears complete only at close()."""

    def __init__(
        self,
        path: Path | str,
        *,
        distro: str = "jazzy",
        compression: str = "zstd",
        max_bytes: int | None = None,
        max_duration_s: float | None = None,
        custom_data: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path}: already exists")
        self.typestore: Typestore = typestore_for(distro)
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        for k, v in (custom_data or {}).items():
            self._writer.set_custom_data(k, v)
        self._writer.open()
        self._conns: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def add_topic(self, name: str, typename: str, qos: QosSpec | None = None) -> None:
        if name in self._conns:
            return
        self._conns[name] = self._writer.add_connection(name, typename, typestore=self.typestore)

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        try:
            conn = self._conns[topic]
        except KeyError:
            raise BagError(f"{self.path}: topic {topic} was not added") from None
        self._writer.write(conn, timestamp_ns, bytes(data))

    def write_msg(self, topic: str, timestamp_ns: int, msg: Any) -> None:
        conn = self._conns[topic]
        self.write(topic, timestamp_ns, self.typestore.serialize_cdr(msg, conn.msgtype))

    def close(self) -> None:
        self._writer.close()
