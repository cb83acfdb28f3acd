"""Bag writing: rosbag2 mcap with zstd chunk compression, split by size and/or duration.

Written directly with the `mcap` library, following rosbag2's mcap conventions (profile
`ros2`, `ros2msg` schemas with the full concatenated definition, `cdr` channels carrying
`offered_qos_profiles` and `topic_type_hash`, a `rosbag2` metadata record at close), so
`ros2 bag`, rosbags and our reader all read it.

For the target distro (`distro=`): Jazzy and later read metadata version 9 (QoS as YAML mappings
with enum names, type hashes); Humble reads version 5 only (QoS as a YAML *string* with numeric
enums, no type hashes, no custom_data or ros_distro fields). The channels' `offered_qos_profiles`
follow the same form, because Humble's mcap plugin parses them the same way. Custom data always
travels in each file's `roadloop.custom_data` record as well, so a version-5 bag keeps it.

Integrity: chunk CRCs, the summary CRC and the data-section CRC (DataEnd) are all written, so a
reader can tell a damaged file from a short one.

Crash safety (what a reader can rely on):
- a file being written is named `<bag>_<n>.mcap.active` and holds an exclusive `flock`;
  it is renamed to `<bag>_<n>.mcap` only once finished (summary written, fsynced);
- every chunk is flushed to the OS when it is finalized, so a killed writer loses at most
  the chunk in progress; `roadloop bag reindex` recovers the rest;
- `metadata.yaml` is written last (temp + fsync + rename): a bag folder with a
  metadata.yaml and no `.active` file is complete.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.typesys.store import Typestore

from roadloop_core.bag.metadata import (
    BagMetadata,
    dump_metadata,
    qos_text_for_version,
    version_for_distro,
    write_metadata,
)
from roadloop_core.bag.storage import ACTIVE_SUFFIX
from roadloop_core.bag.storage_mcap import CUSTOM_DATA_RECORD
from roadloop_core.bag.types import FileInfo, TopicInfo
from roadloop_core.errors import BagError, TypesysError
from roadloop_core.fsio import fsync_dir
from roadloop_core.registry import QosSpec
from roadloop_core.typesys import make_typestore, register_definition, typestore_for

__all__ = ["ACTIVE_SUFFIX", "CUSTOM_DATA_RECORD", "BagWriter", "qos_profiles_text"]

LIBRARY = "roadloop_core"
_INFINITE = {"sec": 9223372036, "nsec": 854775807}  # rosbag2's "infinite" duration


def qos_profiles_text(qos: QosSpec | None) -> str:
    """The offered_qos_profiles YAML (version-9 form) for a registry QoS; "" when unknown."""
    if qos is None:
        return ""
    profile = {
        "history": "keep_last",
        "depth": qos.depth,
        "reliability": "reliable" if qos.reliable else "best_effort",
        "durability": "transient_local" if qos.transient_local else "volatile",
        "deadline": dict(_INFINITE),
        "lifespan": dict(_INFINITE),
        "liveliness": "automatic",
        "liveliness_lease_duration": dict(_INFINITE),
        "avoid_ros_namespace_conventions": False,
    }
    return yaml.safe_dump([profile], default_flow_style=False, sort_keys=False).strip()


@dataclass
class _Topic:
    name: str
    typename: str
    qos_text: str
    type_hash: str
    definition: str
    encoding: str
    count: int = 0
    sequence: int = 0


class _File:
    """One mcap storage file in progress."""

    def __init__(self, final: Path, compression: str, chunk_bytes: int) -> None:
        self.final = final
        self.active = final.with_name(final.name + ACTIVE_SUFFIX)
        self.stream: IO[bytes] = open(self.active, "xb")  # noqa: SIM115 - closed in finish()/abort()
        try:
            fcntl.flock(self.stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            self.stream.close()
            raise BagError(f"{self.active}: locked by another writer") from err
        comp = CompressionType.ZSTD if compression == "zstd" else CompressionType.NONE
        # Chunks are cut by us (flush below), never by the library, so a cut is always a flush.
        self.mcap = McapWriter(self.stream, chunk_size=2**62, compression=comp, enable_data_crcs=True)
        self.chunk_bytes = chunk_bytes
        self.pending = 0
        self.schemas: dict[str, int] = {}
        self.channels: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.first = 0
        self.last = 0
        self.total = 0

    def channel(self, t: _Topic) -> int:
        cid = self.channels.get(t.name)
        if cid is None:
            sid = self.schemas.get(t.typename)
            if sid is None:
                sid = self.mcap.register_schema(t.typename, t.encoding, t.definition.encode())
                self.schemas[t.typename] = sid
            meta = {"offered_qos_profiles": t.qos_text}
            if t.type_hash:
                meta["topic_type_hash"] = t.type_hash
            cid = self.mcap.register_channel(t.name, "cdr", sid, meta)
            self.channels[t.name] = cid
        return cid

    def write(self, t: _Topic, timestamp_ns: int, data: bytes | memoryview) -> None:
        cid = self.channel(t)
        self.mcap.add_message(cid, timestamp_ns, data, timestamp_ns, t.sequence)  # type: ignore[arg-type]
        if self.total == 0:
            self.first = self.last = timestamp_ns
        else:
            self.first, self.last = min(self.first, timestamp_ns), max(self.last, timestamp_ns)
        self.total += 1
        self.counts[t.name] = self.counts.get(t.name, 0) + 1
        self.pending += len(data) + 31
        if self.pending >= self.chunk_bytes:
            self.mcap.flush()  # type: ignore[no-untyped-call]  # finalizes the chunk and hands it to the OS: survives kill -9
            self.pending = 0

    @property
    def size(self) -> int:
        return self.stream.tell() + self.pending

    def finish(self, rosbag2_metadata: str) -> FileInfo:
        self.mcap.add_metadata("rosbag2", {"serialized_metadata": rosbag2_metadata})
        self.mcap.finish()  # type: ignore[no-untyped-call]
        self.stream.flush()
        os.fsync(self.stream.fileno())
        os.replace(self.active, self.final)
        self.stream.close()  # releases the lock after the rename: no window without either
        return FileInfo(self.final.name, self.first, self.last - self.first, self.total)

    def abort(self) -> None:
        self.stream.close()


class BagWriter:
    """Write an mcap rosbag2 bag. The bag folder appears complete (metadata.yaml) only at close()."""

    def __init__(
        self,
        path: Path | str,
        *,
        distro: str = "jazzy",  # the ROS distro whose rosbag2 must read the bag: metadata version 5 (humble) or 9
        compression: str = "zstd",
        max_bytes: int | None = None,
        max_duration_s: float | None = None,
        custom_data: dict[str, str] | None = None,
        chunk_bytes: int = 1 << 20,
    ) -> None:
        self.path = Path(path)
        if compression not in ("zstd", "none", ""):
            raise BagError(f"{self.path}: unknown compression '{compression}' (zstd or none)")
        if max_bytes is not None and max_bytes <= 0:
            raise BagError(f"{self.path}: max_bytes must be > 0")
        if max_duration_s is not None and max_duration_s <= 0:
            raise BagError(f"{self.path}: max_duration_s must be > 0")
        self.distro = distro.lower()
        self.metadata_version = version_for_distro(self.distro)  # before anything is created: a bad name leaves nothing
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise BagError(f"{self.path}: already exists")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BagError(f"{self.path}: cannot create the bag folder: {err.strerror}") from err
        self.typestore: Typestore = typestore_for(self.distro)
        self._private_store = False
        self.compression = "zstd" if compression == "zstd" else ""
        self.max_bytes = max_bytes
        self.max_duration_ns = None if max_duration_s is None else int(max_duration_s * 1e9)
        self.custom_data = {str(k): str(v) for k, v in (custom_data or {}).items()}
        self.chunk_bytes = chunk_bytes
        self._topics: dict[str, _Topic] = {}
        self._files: list[FileInfo] = []
        self._file: _File | None = None
        self._closed = False
        self._open_file()

    # -- files -----------------------------------------------------------------------------

    def _open_file(self) -> None:
        final = self.path / f"{self.path.name}_{len(self._files)}.mcap"
        self._file = _File(final, self.compression, self.chunk_bytes)
        self._file.mcap.start(profile="ros2", library=LIBRARY)
        if self.custom_data:
            self._file.mcap.add_metadata(CUSTOM_DATA_RECORD, self.custom_data)
        for t in self._topics.values():  # every file declares every topic, like rosbag2
            self._file.channel(t)
        fsync_dir(self.path)

    def _metadata(self, files: list[FileInfo]) -> BagMetadata:
        counted = [f for f in files if f.message_count]
        start = min((f.start_ns for f in counted), default=0)
        end = max((f.start_ns + f.duration_ns for f in counted), default=0)
        return BagMetadata(
            version=self.metadata_version,
            storage_identifier="mcap",
            relative_file_paths=[f.path for f in files],
            start_ns=start,
            duration_ns=end - start,
            message_count=sum(f.message_count for f in files),
            topics=[
                TopicInfo(t.name, t.typename, t.count, "cdr", t.qos_text, t.type_hash) for t in self._topics.values()
            ],
            files=list(files),
            custom_data=dict(self.custom_data),
            ros_distro=self.distro,
        )

    def _finish_file(self) -> None:
        assert self._file is not None
        f, self._file = self._file, None
        pending = FileInfo(f.final.name, f.first, f.last - f.first, f.total)
        self._files.append(f.finish(dump_metadata(self._metadata([*self._files, pending]), embedded=True)))

    def _maybe_split(self, timestamp_ns: int) -> None:
        f = self._file
        assert f is not None
        if f.total == 0:
            return
        by_size = self.max_bytes is not None and f.size >= self.max_bytes
        by_time = self.max_duration_ns is not None and timestamp_ns - f.first >= self.max_duration_ns
        if by_size or by_time:
            self._finish_file()
            self._open_file()

    # -- public API ------------------------------------------------------------------------

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def add_topic(
        self,
        name: str,
        typename: str,
        qos: QosSpec | None = None,
        *,
        definition: str | None = None,
        encoding: str = "ros2msg",
    ) -> None:
        """Declare a topic. Types outside the typestore need their `definition` text (.msg/.idl)."""
        if self._closed:
            raise BagError(f"{self.path}: writer is closed")
        if name in self._topics:
            if self._topics[name].typename != typename:
                raise BagError(f"{self.path}: topic {name} was added as {self._topics[name].typename}, not {typename}")
            return
        if definition is not None and typename not in self.typestore.fielddefs:
            if not self._private_store:  # never register bag-specific types into the shared store
                self.typestore, self._private_store = make_typestore(self.distro), True
            try:
                register_definition(self.typestore, typename, definition, encoding)
            except TypesysError as err:
                raise BagError(f"{self.path}: topic {name}: {err}") from err
        if typename not in self.typestore.fielddefs:
            raise BagError(f"{self.path}: topic {name}: type {typename} is unknown; pass its definition")
        if definition is None:
            definition, _ = self.typestore.generate_msgdef(typename, ros_version=2)
            encoding = "ros2msg"
        type_hash = ""
        if self.metadata_version > 5:  # Humble has no type hashes
            try:
                type_hash = self.typestore.hash_rihs01(typename)
            except Exception:  # rosbags cannot hash every registered shape; the hash is optional metadata
                type_hash = ""
        qos_text = qos_text_for_version(qos_profiles_text(qos), self.metadata_version)
        t = _Topic(name, typename, qos_text, type_hash, definition, encoding)
        self._topics[name] = t
        if self._file is not None:
            self._file.channel(t)

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        """Append one serialized (CDR) message; the bytes are handed to the chunk without a copy."""
        t = self._topics.get(topic)
        if t is None:
            raise BagError(f"{self.path}: topic {topic} was not added")
        if self._closed or self._file is None:
            raise BagError(f"{self.path}: writer is closed")
        self._maybe_split(timestamp_ns)
        assert self._file is not None
        self._file.write(t, timestamp_ns, data)
        t.count += 1
        t.sequence += 1

    def write_msg(self, topic: str, timestamp_ns: int, msg: Any) -> None:
        t = self._topics.get(topic)
        if t is None:
            raise BagError(f"{self.path}: topic {topic} was not added")
        self.write(topic, timestamp_ns, self.typestore.serialize_cdr(msg, t.typename))

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self._topics.values())

    def close(self) -> None:
        """Finish the last file and write metadata.yaml: only now is the bag complete."""
        if self._closed:
            return
        self._closed = True
        self._finish_file()
        write_metadata(self.path, self._metadata(self._files))
