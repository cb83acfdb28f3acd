"""metadata.yaml of a rosbag2 bag: parse versions 1..9 (Foxy..Kilted), write version 9 atomically.

Version history (rosbag2): 3 compression, 4 QoS + relative paths, 5 per-file info,
6 custom_data, 7 type_description_hash, 8 ros_distro, 9 QoS as mappings with enum names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from roadloop_core.bag.types import FileInfo, TopicInfo
from roadloop_core.errors import BagError, BagUnsupportedError
from roadloop_core.fsio import atomic_write_text

__all__ = [
    "MAX_VERSION",
    "BagMetadata",
    "dump_metadata",
    "parse_embedded",
    "parse_metadata",
    "read_metadata",
    "write_metadata",
]

MAX_VERSION = 9
NO_START = 2**63 - 1  # rosbag2's starting_time of an empty bag


@dataclass
class BagMetadata:
    version: int
    storage_identifier: str
    relative_file_paths: list[str]
    start_ns: int
    duration_ns: int
    message_count: int
    topics: list[TopicInfo]
    compression_format: str = ""
    compression_mode: str = ""
    files: list[FileInfo] = field(default_factory=list)
    custom_data: dict[str, str] = field(default_factory=dict)
    ros_distro: str = ""


def _qos_text(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False).strip()


def parse_metadata(text: str, where: str) -> BagMetadata:
    """Parse metadata.yaml text; any fault is a BagError naming `where` and the field."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise BagError(f"{where}: invalid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("rosbag2_bagfile_information"), dict):
        raise BagError(f"{where}: not rosbag2 metadata (no rosbag2_bagfile_information mapping)")
    m = doc["rosbag2_bagfile_information"]
    key = ""
    try:
        key = "version"
        version = int(m["version"])
        if version > MAX_VERSION:
            raise BagUnsupportedError(f"{where}: metadata version {version} is newer than supported ({MAX_VERSION})")
        key = "storage_identifier"
        storage = str(m["storage_identifier"])
        key = "relative_file_paths"
        paths = [str(p) for p in m.get("relative_file_paths") or []]
        key = "starting_time"
        start = int(m["starting_time"]["nanoseconds_since_epoch"])
        key = "duration"
        duration = int(m["duration"]["nanoseconds"])
        key = "message_count"
        count = int(m["message_count"])
        topics = []
        for i, t in enumerate(m.get("topics_with_message_count") or []):
            key = f"topics_with_message_count[{i}]"
            tm = t["topic_metadata"]
            topics.append(
                TopicInfo(
                    name=str(tm["name"]),
                    type=str(tm["type"]),
                    message_count=int(t["message_count"]),
                    serialization_format=str(tm.get("serialization_format", "cdr")),
                    offered_qos_profiles=_qos_text(tm.get("offered_qos_profiles")),
                    type_description_hash=str(tm.get("type_description_hash") or ""),
                )
            )
        files = []
        for i, f in enumerate(m.get("files") or []):
            key = f"files[{i}]"
            files.append(
                FileInfo(
                    path=str(f["path"]),
                    start_ns=int(f["starting_time"]["nanoseconds_since_epoch"]),
                    duration_ns=int(f["duration"]["nanoseconds"]),
                    message_count=int(f["message_count"]),
                )
            )
        key = "custom_data"
        custom = {str(k): str(v) for k, v in (m.get("custom_data") or {}).items()}
        mode = str(m.get("compression_mode") or "").lower()
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise BagError(f"{where}: field {key} is missing or malformed ({type(err).__name__}: {err})") from None
    return BagMetadata(
        version=version,
        storage_identifier=storage,
        relative_file_paths=paths,
        start_ns=start,
        duration_ns=duration,
        message_count=count,
        topics=topics,
        compression_format=str(m.get("compression_format") or ""),
        compression_mode="" if mode == "none" else mode,
        files=files,
        custom_data=custom,
        ros_distro=str(m.get("ros_distro") or ""),
    )


def parse_embedded(text: str, where: str) -> BagMetadata | None:
    """The metadata a storage file embeds (sqlite3 `metadata` table, mcap `rosbag2` record), if parseable."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if isinstance(doc, dict) and "rosbag2_bagfile_information" not in doc:
        doc = {"rosbag2_bagfile_information": doc}
    try:
        return parse_metadata(yaml.safe_dump(doc), where)
    except BagError:
        return None


def read_metadata(bag_dir: Path) -> BagMetadata:
    path = bag_dir / "metadata.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise BagError(f"{path}: not UTF-8 text") from err
    except OSError as err:
        raise BagError(f"{path}: cannot read: {err.strerror}") from err
    return parse_metadata(text, str(path))


def _qos_v9(text: str) -> Any:
    """QoS as version-9 mappings (strings like 'reliable'), converted from any earlier form."""
    if not text:
        return []
    try:
        items = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    if not isinstance(items, list):
        return []
    names = {
        "history": {0: "system_default", 1: "keep_last", 2: "keep_all", 3: "unknown"},
        "reliability": {0: "system_default", 1: "reliable", 2: "best_effort", 3: "unknown", 4: "best_available"},
        "durability": {0: "system_default", 1: "transient_local", 2: "volatile", 3: "unknown", 4: "best_available"},
        "liveliness": {0: "system_default", 1: "automatic", 3: "manual_by_topic", 4: "unknown", 5: "best_available"},
    }
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        item = dict(item)
        for k, table in names.items():
            if isinstance(item.get(k), int):
                item[k] = table.get(item[k], "unknown")
        out.append(item)
    return out


def dump_metadata(meta: BagMetadata) -> str:
    """metadata.yaml text in version 9 (what Jazzy..Kilted write and read)."""
    info = {
        "version": MAX_VERSION,
        "storage_identifier": meta.storage_identifier,
        "duration": {"nanoseconds": meta.duration_ns},
        "starting_time": {"nanoseconds_since_epoch": meta.start_ns},
        "message_count": meta.message_count,
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": t.name,
                    "type": t.type,
                    "serialization_format": t.serialization_format,
                    "offered_qos_profiles": _qos_v9(t.offered_qos_profiles),
                    "type_description_hash": t.type_description_hash,
                },
                "message_count": t.message_count,
            }
            for t in meta.topics
        ],
        "compression_format": meta.compression_format,
        "compression_mode": meta.compression_mode,
        "relative_file_paths": list(meta.relative_file_paths),
        "files": [
            {
                "path": f.path,
                "starting_time": {"nanoseconds_since_epoch": f.start_ns},
                "duration": {"nanoseconds": f.duration_ns},
                "message_count": f.message_count,
            }
            for f in meta.files
        ],
        "custom_data": dict(meta.custom_data) or None,
        "ros_distro": meta.ros_distro,
    }
    return yaml.safe_dump({"rosbag2_bagfile_information": info}, default_flow_style=False, sort_keys=False)


def write_metadata(bag_dir: Path, meta: BagMetadata) -> Path:
    path = bag_dir / "metadata.yaml"
    atomic_write_text(path, dump_metadata(meta))
    return path
