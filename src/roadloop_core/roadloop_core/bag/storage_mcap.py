"""mcap storage backend (rosbag2 `.mcap`), read with the `mcap` library over an mmap.

The file is memory-mapped: reads are copies out of the page cache with no syscalls, and a
corrupted length field can never make the parser allocate more than the file holds.
Files without a summary section are read linearly; if that read hits damage before the
file's end (a truncated copy, a killed writer) the file is refused with a one-line error
saying how to recover its intact prefix (`roadloop bag reindex` on a `.active` file).
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from mcap.reader import SeekingReader
from mcap.records import Channel, Message, Metadata, Schema
from mcap.stream_reader import StreamReader

from roadloop_core.bag.mcap_chunks import chunks_in_time_order, iter_chunk_messages
from roadloop_core.bag.storage import ACTIVE_SUFFIX, ScannedStorage
from roadloop_core.bag.types import StorageTopic
from roadloop_core.errors import BagDamagedError, BagError

__all__ = ["CUSTOM_DATA_RECORD", "McapStorage", "scan_mcap"]

CUSTOM_DATA_RECORD = "roadloop.custom_data"  # the writer stores custom data at each file's start

# Everything the mcap parser can raise on a damaged file: its own errors, struct/zstd/utf-8
# faults, and allocation failures from corrupted sizes.
_PARSE_ERRORS = (Exception, MemoryError)


class _Scan:
    """What a linear pass over a summary-less file found (the intact prefix)."""

    def __init__(self) -> None:
        self.schemas: dict[int, Schema] = {}
        self.channels: dict[int, Channel] = {}
        self.counts: dict[int, int] = {}
        self.metadata: list[Metadata] = []
        self.first = 0
        self.last = 0
        self.ordered = True
        self.error = ""  # why the scan stopped early ("" = reached the end cleanly)


def scan_mcap(stream: Any, on_message: Any = None) -> _Scan:
    """Read records linearly until the end or the first damaged record."""
    scan = _Scan()
    prev = None
    reader = StreamReader(stream, skip_magic=False, validate_crcs=True)
    try:
        for record in reader.records:
            if isinstance(record, Schema):
                scan.schemas[record.id] = record
            elif isinstance(record, Channel):
                scan.channels[record.id] = record
            elif isinstance(record, Message):
                if record.channel_id not in scan.channels:
                    continue
                t = record.log_time
                if prev is None:
                    scan.first = scan.last = t
                else:
                    scan.ordered = scan.ordered and t >= prev
                    scan.first, scan.last = min(scan.first, t), max(scan.last, t)
                prev = t
                scan.counts[record.channel_id] = scan.counts.get(record.channel_id, 0) + 1
                if on_message is not None:
                    on_message(record)
            elif isinstance(record, Metadata):
                scan.metadata.append(record)
    except _PARSE_ERRORS as err:
        scan.error = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return scan


class McapStorage(ScannedStorage):
    """One rosbag2 mcap file."""

    storage_id = "mcap"

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as err:  # mmap of an empty file
            raise BagError(f"{path}: empty file, not an mcap file") from err
        except OSError as err:
            raise BagError(f"{path}: cannot read: {err.strerror}") from err
        try:
            self._load()
        except BagError:
            self._map.close()
            raise
        except _PARSE_ERRORS as err:
            self._map.close()
            raise BagDamagedError(f"{path}: damaged mcap file: {type(err).__name__}: {err}") from err

    def _load(self) -> None:
        self._map.seek(0)
        if self._map.read(8) != b"\x89MCAP0\r\n":
            raise BagError(f"{self.path}: not an mcap file (bad magic)")
        self._map.seek(0)
        self._summary: Any = None
        self._ordered_chunks: list[Any] | None = None
        self.damage = ""
        try:
            self._reader: SeekingReader | None = SeekingReader(self._map, record_size_limit=len(self._map))  # type: ignore[arg-type]
            self._summary = self._reader.get_summary()
        except _PARSE_ERRORS:
            self._reader, self._summary = None, None
        meta: list[Metadata] = []
        if self._summary is not None and self._summary.statistics is not None:
            s = self._summary
            schemas, channels = s.schemas, s.channels
            counts = dict(s.statistics.channel_message_counts)
            self._range = (
                (s.statistics.message_start_time, s.statistics.message_end_time)
                if s.statistics.message_count
                else (0, 0)
            )
            self.chunk_compression = next((c.compression for c in s.chunk_indexes if c.compression), "")
            fast = s.chunk_indexes and all(c.compression in ("", "zstd") for c in s.chunk_indexes)
            self._ordered_chunks = chunks_in_time_order(s.chunk_indexes) if fast else None
            if s.metadata_indexes:
                assert self._reader is not None
                meta = list(self._reader.iter_metadata())
            self._ordered = True
        else:
            self._map.seek(0)
            scan = scan_mcap(self._map)
            if scan.error:
                n = sum(scan.counts.values())
                raise BagDamagedError(
                    f"{self.path}: damaged mcap file (no summary; unreadable after {n} intact messages: {scan.error}); "
                    f"to keep the intact part, rename it {self.path.name}{ACTIVE_SUFFIX}, run `roadloop bag reindex`"
                )
            self.damage = ""
            schemas, channels, counts, meta = scan.schemas, scan.channels, scan.counts, scan.metadata
            self._range = (scan.first, scan.last) if scan.counts else (0, 0)
            self.chunk_compression = ""
            self._ordered = scan.ordered
            self._reader = None
        self._channels = channels
        self._defs = {sc.name: (sc.data.decode("utf-8", errors="replace"), sc.encoding) for sc in schemas.values()}
        self._topics = []
        for cid, ch in sorted(channels.items()):
            schema = schemas.get(ch.schema_id)
            self._topics.append(
                StorageTopic(
                    id=cid,
                    name=ch.topic,
                    type=schema.name if schema else "",
                    serialization_format=ch.message_encoding,
                    offered_qos_profiles=ch.metadata.get("offered_qos_profiles", ""),
                    type_description_hash=ch.metadata.get("topic_type_hash", ""),
                    message_count=counts.get(cid, 0),
                    definition=schema.data.decode("utf-8", errors="replace") if schema else "",
                    definition_encoding=schema.encoding if schema else "",
                )
            )
        self._metadata = ""
        self.custom_data: dict[str, str] = {}
        for m in meta:
            if m.name == CUSTOM_DATA_RECORD:
                self.custom_data.update(m.metadata)
            if m.name == "rosbag2" and "serialized_metadata" in m.metadata:
                self._metadata = m.metadata["serialized_metadata"]

    def messages(self, topic_ids: Collection[int] | None = None) -> Iterator[tuple[int, int, bytes | memoryview]]:
        wanted = None if topic_ids is None else set(topic_ids)
        if self._reader is not None and self._ordered_chunks is not None:
            yield from iter_chunk_messages(self._map, self._ordered_chunks, wanted, str(self.path))
            return
        try:
            if self._reader is not None:
                topics = None if wanted is None else [self._channels[i].topic for i in wanted if i in self._channels]
                for _, channel, msg in self._reader.iter_messages(topics=topics, log_time_order=True):
                    if wanted is None or channel.id in wanted:
                        yield channel.id, msg.log_time, msg.data
                return
        except _PARSE_ERRORS as err:
            raise BagDamagedError(
                f"{self.path}: damaged mcap file while reading messages: {type(err).__name__}: {err}"
            ) from err
        yield from self._linear_messages(wanted)

    def _linear_messages(self, wanted: set[int] | None) -> Iterator[tuple[int, int, bytes | memoryview]]:
        """Summary-less file: the intact prefix, sorted by time if it was written out of order."""
        found: list[tuple[int, int, bytes | memoryview]] = []

        def keep(m: Message) -> None:
            if wanted is None or m.channel_id in wanted:
                found.append((m.channel_id, m.log_time, m.data))

        self._map.seek(0)
        scan_mcap(self._map, keep)
        if not self._ordered:
            found.sort(key=lambda x: x[1])
        yield from found

    def close(self) -> None:
        self._reader = None
        with contextlib.suppress(BufferError):  # a caller still holds a view; unmapped when it goes
            self._map.close()
