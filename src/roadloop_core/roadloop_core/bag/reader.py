"""Bag reading: first version on top of rosbags.Reader (hardened in the bag-I/O work)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.rosbag2 import Reader, ReaderError
from rosbags.typesys.store import Typestore

from roadloop_core.bag.types import BagInfo, RawMessage, TopicInfo
from roadloop_core.errors import BagError
from roadloop_core.typesys import make_typestore, register_msgdef

__all__ = ["BagReader", "open_bag"]


class BagReader:
    """A rosbag2 bag opened for reading. Use as a context manager."""

    def __init__(self, path: Path | str, distro: str = "jazzy") -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such file or directory")
        self.typestore: Typestore = make_typestore(distro)
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except ReaderError as err:
            raise BagError(f"{self.path}: {err}") from err
        for conn in self._reader.connections:
            if conn.msgtype not in self.typestore.fielddefs and conn.msgdef.data:
                register_msgdef(self.typestore, conn.msgtype, conn.msgdef.data, conn.msgdef.format.name.lower())

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    @property
    def info(self) -> BagInfo:
        r = self._reader
        topics: dict[str, TopicInfo] = {}
        for c in r.connections:
            prev = topics.get(c.topic)
            count = c.msgcount + (prev.message_count if prev else 0)
            topics[c.topic] = TopicInfo(c.topic, c.msgtype, count, getattr(c.ext, "serialization_format", "cdr"))
        return BagInfo(
            path=self.path,
            storage="mcap" if any(p.suffix == ".mcap" for p in r.paths) else "sqlite3",
            files=tuple(r.paths),
            compression_mode=r.compression_mode or "",
            compression_format=r.compression_format or "",
            start_ns=r.start_time if r.message_count else 0,
            end_ns=r.end_time if r.message_count else 0,
            message_count=r.message_count,
            topics=tuple(topics.values()),
            custom_data=dict(r.custom_data),
        )

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[RawMessage]:
        wanted = set(topics) if topics is not None else None
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        try:
            for conn, ts, data in self._reader.messages(connections=conns):
                yield RawMessage(conn.topic, conn.msgtype, ts, data)
        except ReaderError as err:
            raise BagError(f"{self.path}: {err}") from err

    def decode(self, raw: RawMessage) -> Any:
        return self.typestore.deserialize_cdr(raw.data, raw.typename)


def open_bag(path: Path | str, distro: str = "jazzy") -> BagReader:
    return BagReader(path, distro)
