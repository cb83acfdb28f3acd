"""Plain data records of the bag layer (what readers return and metadata.yaml holds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BagInfo", "FileInfo", "RawMessage", "StorageTopic", "TopicInfo"]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One serialized message as stored: CDR bytes plus its receive timestamp."""

    topic: str
    typename: str
    timestamp_ns: int
    data: bytes | memoryview


@dataclass(frozen=True)
class TopicInfo:
    name: str
    type: str
    message_count: int
    serialization_format: str = "cdr"
    offered_qos_profiles: str = ""
    type_description_hash: str = ""


@dataclass(frozen=True)
class FileInfo:
    """One storage file of a bag, as metadata.yaml's `files:` lists it."""

    path: str
    start_ns: int
    duration_ns: int
    message_count: int


@dataclass(frozen=True)
class BagInfo:
    path: Path
    storage: str  # "sqlite3" | "mcap"
    files: tuple[Path, ...]
    compression_mode: str  # "" | "file" | "message"
    compression_format: str  # "" | "zstd"
    start_ns: int
    end_ns: int
    message_count: int
    topics: tuple[TopicInfo, ...]
    custom_data: dict[str, str] = field(default_factory=dict)
    version: int = 0  # metadata.yaml version (0: no metadata.yaml, built from storage)
    ros_distro: str = ""  # what metadata says, or the distro its version implies (ros_distro_inferred)
    chunk_compression: str = ""  # mcap chunk compression ("zstd", "lz4", "" = none or sqlite3)
    size_bytes: int = 0
    ros_distro_inferred: bool = False  # metadata (version 5) has no ros_distro field: it is the version's distro

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class StorageTopic:
    """A topic as one storage file declares it (ids are per file)."""

    id: int
    name: str
    type: str
    serialization_format: str
    offered_qos_profiles: str
    type_description_hash: str
    message_count: int
    definition: str = ""  # message definition text the file carries ("" = none)
    definition_encoding: str = ""  # "ros2msg" | "ros2idl" | ""
