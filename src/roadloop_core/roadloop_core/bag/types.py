"""Plain data records of the bag layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9
