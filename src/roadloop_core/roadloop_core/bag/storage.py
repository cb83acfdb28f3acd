"""Storage backends behind one Protocol (rosbags style): a file -> topics + raw bytes with timestamps.

Decoding happens above this layer; a backend only knows its file format. We read the
files ourselves (stdlib `sqlite3`, the `mcap` library) instead of through
`rosbags.rosbag2.Reader`, because rosbags 0.11.9 joins metadata.yaml topics to storage
topics by *QoS equality*: bags whose metadata.yaml QoS differs from the storage's (the
rosbag2 `talker` and `convert_a` test bags) then yield 0 messages. We join by
(topic name, type), which is what rosbag2 itself does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Protocol

from roadloop_core.bag.types import StorageTopic

__all__ = ["ACTIVE_SUFFIX", "STORAGE_SUFFIXES", "ScannedStorage", "StorageReader", "storage_id_for"]

STORAGE_SUFFIXES = {".db3": "sqlite3", ".mcap": "mcap"}
ACTIVE_SUFFIX = ".active"  # a storage file still being written (or left behind by a killed writer)


class StorageReader(Protocol):
    """One open storage file."""

    path: Path
    storage_id: str  # "sqlite3" | "mcap"
    problems: list[str]  # damage the backend worked around while opening (e.g. a bad mcap summary), one line each
    custom_data: dict[str, str]  # custom data the writer stored in the file itself

    @property
    def topics(self) -> list[StorageTopic]: ...

    @property
    def chunk_compression(self) -> str: ...

    @property
    def definitions(self) -> dict[str, tuple[str, str]]:
        """Every type definition the file carries: type name -> (text, encoding)."""
        ...

    @property
    def time_range(self) -> tuple[int, int]:
        """(first, last) message timestamp in ns; (0, 0) when the file holds no message."""
        ...

    @property
    def embedded_metadata(self) -> str:
        """The rosbag2 metadata YAML the file carries itself ("" if none)."""
        ...

    def messages(self, topic_ids: Collection[int] | None = None) -> Iterator[tuple[int, int, bytes | memoryview]]:
        """(topic id, timestamp ns, data) in timestamp order; BagDamagedError on damage met while reading.

        What is yielded is verified as far as the format allows (mcap chunk CRCs); the caller compares
        how many messages it got per topic with `topics[i].message_count` (the file's own index).
        """
        ...

    def verify_file(self) -> str:
        """The whole-file check the format offers (mcap data-section CRC, sqlite3 quick_check): "" or why it fails.

        Costs one pass over the file; `bag check` and `bag reindex` run it, plain reads do not.
        """
        ...

    def close(self) -> None: ...


class ScannedStorage:
    """What every backend learns when it opens its file, with the accessors StorageReader asks for."""

    _topics: list[StorageTopic]
    _defs: dict[str, tuple[str, str]]
    _range: tuple[int, int]
    _metadata: str

    @property
    def topics(self) -> list[StorageTopic]:
        return list(self._topics)

    @property
    def definitions(self) -> dict[str, tuple[str, str]]:
        return dict(self._defs)

    @property
    def time_range(self) -> tuple[int, int]:
        return self._range

    @property
    def embedded_metadata(self) -> str:
        return self._metadata


def storage_id_for(path: Path) -> str | None:
    return STORAGE_SUFFIXES.get(path.suffix)
