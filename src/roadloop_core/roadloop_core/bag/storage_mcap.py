"""mcap storage backend (rosbag2 `.mcap`), read over an mmap; the summary is trusted only once verified.

The file is memory-mapped: reads are copies out of the page cache with no syscalls, and a
corrupted length field can never make the parser allocate more than the file holds.

The summary (schemas, channels, statistics, chunk indexes) is used only after it passes its CRC
(Footer `summary_crc`, when the writer stored one) and agrees with itself (statistics against the
chunk indexes, each index pointing at a chunk inside the data section). A summary that fails is
not trusted at all: the data section is walked linearly instead (chunks are self-describing), so a
bit flip in an index costs speed, never messages, and the damage is reported in `problems`. A file
without a summary is walked the same way. If that walk meets damage before the data section's end
(a truncated copy, a killed writer), the file is refused with a one-line error saying how to recover
its intact prefix (`roadloop bag reindex` on a `.active` file).
"""

from __future__ import annotations

import contextlib
import mmap
import struct
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from mcap.reader import SeekingReader
from mcap.records import Channel, Metadata, Schema

from roadloop_core.bag.mcap_chunks import (
    MAGIC,
    OP_CHUNK,
    OP_DATA_END,
    OP_FOOTER,
    DataScan,
    chunks_in_time_order,
    iter_chunk_messages,
    walk_data_section,
)
from roadloop_core.bag.storage import ACTIVE_SUFFIX, ScannedStorage
from roadloop_core.bag.types import StorageTopic
from roadloop_core.errors import BagDamagedError, BagError

__all__ = ["CUSTOM_DATA_RECORD", "McapStorage"]

CUSTOM_DATA_RECORD = "roadloop.custom_data"  # the writer stores custom data at each file's start

# Everything the mcap parser can raise on a damaged file: its own errors, struct/zstd/utf-8
# faults, and allocation failures from corrupted sizes.
_PARSE_ERRORS = (Exception, MemoryError)
_FOOTER = struct.Struct("<BQQQI")  # opcode, length, summary start, summary offset start, summary crc
_FAST_COMPRESSIONS = ("", "zstd", "lz4")


class McapStorage(ScannedStorage):
    """One rosbag2 mcap file."""

    storage_id = "mcap"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []
        self._reader: SeekingReader | None = None  # the library's reader over a trusted summary
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

    # -- opening -----------------------------------------------------------------------------------

    def _footer(self) -> tuple[tuple[int, int], str]:
        """((summary start, summary crc), why the footer is unusable or "")."""
        m = self._map
        at = len(m) - len(MAGIC) - _FOOTER.size
        if at < len(MAGIC) or m[-len(MAGIC) :] != MAGIC:
            return (0, 0), "the file does not end with an mcap footer (truncated, or never finished)"
        op, length, start, _, crc = _FOOTER.unpack_from(m, at)
        if op != OP_FOOTER or length != _FOOTER.size - 9:
            return (0, 0), "its footer record is damaged"
        return (start, crc), ""

    def _trusted_summary(self, start: int, crc: int) -> tuple[Any, str]:
        """(the summary if it verifies, else None; why it was not trusted, "" when there is none to trust)."""
        m = self._map
        footer_at = len(m) - len(MAGIC) - _FOOTER.size
        if start == 0:
            return None, ""
        if not len(MAGIC) < start <= footer_at:
            return None, f"the footer points at a summary at byte {start}, outside the file"
        if crc:
            computed = zlib.crc32(memoryview(m)[start : footer_at + _FOOTER.size - 4])
            if computed != crc:
                return None, f"the summary section fails its CRC check (stored {crc:#010x}, computed {computed:#010x})"
        try:
            reader = SeekingReader(m, record_size_limit=len(m), validate_crcs=True)  # type: ignore[arg-type]
            summary = reader.get_summary()
            self._reader = reader
        except _PARSE_ERRORS as err:
            return None, f"the summary section cannot be parsed ({type(err).__name__}: {err})"
        if summary is None:
            return None, ""
        st = summary.statistics
        if st is not None:
            if sum(st.channel_message_counts.values()) != st.message_count:
                return None, "the summary's statistics disagree with themselves (per-channel counts vs total)"
            unknown = set(st.channel_message_counts) - set(summary.channels)
            if unknown:
                return None, f"the summary counts messages on channel(s) {sorted(unknown)} it does not declare"
            if summary.chunk_indexes and st.chunk_count != len(summary.chunk_indexes):
                n = len(summary.chunk_indexes)
                return None, f"the summary indexes {n} chunk(s) but its statistics count {st.chunk_count}"
        for c in summary.chunk_indexes:
            off = c.chunk_start_offset
            if not (len(MAGIC) <= off and off + c.chunk_length <= start) or m[off] != OP_CHUNK:
                return None, f"the summary indexes a chunk at byte {off}, where there is none"
        return summary, ""

    def _load(self) -> None:
        if self._map[: len(MAGIC)] != MAGIC:
            raise BagError(f"{self.path}: not an mcap file (bad magic)")
        self._reader = None
        self._ordered_chunks: list[Any] | None = None
        self._ordered = True
        self._data_end = 0  # offset of the DataEnd record, once known (0: not located)
        (start, crc), why = self._footer()
        summary, distrust = (None, "") if why else self._trusted_summary(start, crc)
        why = why or distrust
        st = summary.statistics if summary is not None else None
        meta: list[Metadata] = []
        if summary is not None and st is not None and (summary.chunk_indexes or not st.message_count):
            schemas, channels = summary.schemas, summary.channels
            counts = dict(st.channel_message_counts)
            if start >= 13 and self._map[start - 13] == OP_DATA_END:  # DataEnd sits right before the summary
                self._data_end = start - 13
            self._range = (st.message_start_time, st.message_end_time) if st.message_count else (0, 0)
            self.chunk_compression = next((c.compression for c in summary.chunk_indexes if c.compression), "")
            fast = all(c.compression in _FAST_COMPRESSIONS for c in summary.chunk_indexes)
            self._ordered_chunks = chunks_in_time_order(summary.chunk_indexes) if fast else None
            if summary.metadata_indexes:
                assert self._reader is not None
                try:
                    meta = list(self._reader.iter_metadata())
                except _PARSE_ERRORS as err:
                    self.problems.append(
                        f"{self.path}: its metadata records (custom data, embedded rosbag2 metadata) are damaged "
                        f"({type(err).__name__}: {err}); the messages are unaffected"
                    )
        else:
            self._reader = None
            scan = DataScan()
            for _ in walk_data_section(self._map, str(self.path), set(), scan, raise_on_damage=False):
                pass
            if scan.error:
                also = f"{why}; " if why else ""
                raise BagDamagedError(
                    f"{self.path}: damaged mcap file ({also}data section unreadable after {scan.message_count} intact "
                    f"messages: {scan.error}); to keep the intact part, rename it {self.path.name}{ACTIVE_SUFFIX} "
                    "and run `roadloop bag reindex` on its folder"
                )
            if why:
                self.problems.append(
                    f"{self.path}: {why}; all {scan.message_count} messages were read by a linear scan of the data "
                    "section instead (`roadloop bag reindex` rewrites the file with a fresh summary)"
                )
            schemas, channels, counts, meta = scan.schemas, scan.channels, scan.counts, scan.metadata
            self._data_end = -1  # the walk already checked the data section's CRC
            self._range = (scan.first, scan.last) if scan.counts else (0, 0)
            self.chunk_compression = scan.chunk_compression
            self._ordered = scan.ordered
        self._channels: dict[int, Channel] = dict(channels)
        self._index_counts = counts
        self._build(schemas, channels, counts, meta)

    def _build(
        self, schemas: dict[int, Schema], channels: dict[int, Channel], counts: dict[int, int], meta: list[Metadata]
    ) -> None:
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

    # -- reading -----------------------------------------------------------------------------------

    def messages(self, topic_ids: Collection[int] | None = None) -> Iterator[tuple[int, int, bytes | memoryview]]:
        wanted = None if topic_ids is None else set(topic_ids)
        where = str(self.path)
        if self._reader is not None and self._ordered_chunks is not None:
            yield from iter_chunk_messages(self._map, self._ordered_chunks, wanted, where)
            return
        if self._reader is not None:  # chunks overlap in time: the library merges them (CRCs checked)
            try:
                topics = None if wanted is None else [self._channels[i].topic for i in wanted if i in self._channels]
                for _, channel, msg in self._reader.iter_messages(topics=topics, log_time_order=True):
                    if wanted is None or channel.id in wanted:
                        yield channel.id, msg.log_time, msg.data
            except _PARSE_ERRORS as err:
                raise BagDamagedError(
                    f"{self.path}: damaged mcap file while reading messages: {type(err).__name__}: {err}"
                ) from err
            return
        if self._ordered:
            yield from walk_data_section(self._map, where, wanted)
            return
        found = list(walk_data_section(self._map, where, wanted))  # written out of time order: sorted here
        found.sort(key=lambda x: x[1])
        yield from found

    def verify_file(self) -> str:
        if self._data_end <= 0:
            return ""
        (stored,) = struct.unpack_from("<I", self._map, self._data_end + 9)
        with memoryview(self._map) as view:
            computed = zlib.crc32(view[: self._data_end])
        if stored and computed != stored:
            return f"{self.path}: the data section fails its CRC check (stored {stored:#010x}): bytes were altered"
        return ""

    def close(self) -> None:
        self._reader = None
        with contextlib.suppress(BufferError):  # a caller still holds a view; unmapped when it goes
            self._map.close()
