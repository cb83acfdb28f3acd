"""metadata.yaml of a rosbag2 bag: the one parser for untrusted bag metadata, and the writer of versions 5 and 9.

Version history (rosbag2): 3 compression, 4 QoS + relative paths, 5 per-file info (Galactic, Humble),
6 custom_data, 7 type_description_hash, 8 ros_distro, 9 QoS as mappings with enum names (Jazzy+).
Humble's rosbag2 reads version 5 only: `offered_qos_profiles` must be a YAML *string* holding the
profiles with numeric enums (a v9 list of mappings is a "bad conversion" there). `dump_metadata`
writes whichever of the two versions the metadata carries (`version_for_distro` picks it).

Parsing has bounded cost, so a bag from anywhere (a vehicle upload, a copied folder) can be
parsed before anything else looks at it: the text is at most MAX_METADATA_BYTES, and a YAML
document whose aliases would expand beyond MAX_YAML_NODES nodes, or that nests deeper than
MAX_YAML_DEPTH, is refused from the event stream before any object is built (an alias bomb of a
few KiB would otherwise grow to gigabytes the first time something walks the result).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import yaml

from roadloop_core.bag.types import FileInfo, TopicInfo
from roadloop_core.errors import BagError, BagUnsupportedError
from roadloop_core.fsio import atomic_write_text, read_regular_file

__all__ = [
    "DISTRO_METADATA_VERSION",
    "MAX_METADATA_BYTES",
    "MAX_VERSION",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "WRITABLE_VERSIONS",
    "BagMetadata",
    "distro_for_version",
    "dump_metadata",
    "load_untrusted_yaml",
    "parse_embedded",
    "parse_metadata",
    "qos_text_for_version",
    "read_metadata",
    "version_for_distro",
    "write_metadata",
]

MAX_VERSION = 9
NO_START = 2**63 - 1  # rosbag2's starting_time of an empty bag
MAX_METADATA_BYTES = 8 << 20  # a day of 1-minute splits is ~0.3 MB of metadata
MAX_YAML_NODES = 2_000_000  # nodes after alias expansion
MAX_YAML_DEPTH = 64  # rosbag2 metadata nests 5 deep
# What each ROS distro's rosbag2 writes (and the newest it reads): Humble 5, Jazzy/Kilted 9.
DISTRO_METADATA_VERSION = {"humble": 5, "jazzy": 9, "kilted": 9}
WRITABLE_VERSIONS = (5, 9)
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: parsing in C


def version_for_distro(distro: str) -> int:
    """The metadata version `distro`'s rosbag2 reads (humble: 5, jazzy and later: 9)."""
    try:
        return DISTRO_METADATA_VERSION[distro.lower()]
    except KeyError:
        known = ", ".join(DISTRO_METADATA_VERSION)
        raise BagError(f"unknown ROS distro '{distro}' for bag metadata; choose one of: {known}") from None


def distro_for_version(version: int) -> str:
    """The distro whose rosbag2 writes metadata `version` ("" when several or none do)."""
    return {5: "humble"}.get(version, "")


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


# -- bounded YAML ---------------------------------------------------------------------------------


def _check_shape(text: str, where: str, max_nodes: int, max_depth: int) -> None:
    """Walk the event stream once: refuse recursive aliases, too deep nesting and too large an expansion."""
    loader = _LOADER(text)
    try:
        sizes: dict[str, int] = {}  # anchor -> nodes its value expands to
        open_anchors: set[str] = set()
        stack: list[list[Any]] = []  # per open collection: [anchor, nodes so far]
        expanded = 0

        def close(n: int, anchor: str | None) -> None:
            if anchor:
                sizes[anchor] = n
            if stack:
                stack[-1][1] += n

        while loader.check_event():
            ev = loader.get_event()
            if isinstance(ev, yaml.ScalarEvent):
                expanded += 1
                close(1, ev.anchor)
            elif isinstance(ev, yaml.AliasEvent):
                if ev.anchor is None or ev.anchor in open_anchors:
                    raise BagError(f"{where}: YAML alias *{ev.anchor} refers to itself (a recursive document)")
                n = sizes.get(ev.anchor, 1)
                expanded += n
                close(n, None)
            elif isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                expanded += 1
                stack.append([ev.anchor, 1])
                if ev.anchor:
                    open_anchors.add(ev.anchor)
                if len(stack) > max_depth:
                    raise BagError(f"{where}: YAML nested more than {max_depth} levels deep; refused")
            elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, n = stack.pop()
                if anchor:
                    open_anchors.discard(anchor)
                close(n, anchor)
            if expanded > max_nodes:
                raise BagError(
                    f"{where}: YAML expands to more than {max_nodes} nodes (aliases/anchors used as an alias bomb?); "
                    "refused"
                )
    finally:
        loader.dispose()


def load_untrusted_yaml(
    text: str,
    where: str,
    *,
    max_bytes: int = MAX_METADATA_BYTES,
    max_nodes: int = MAX_YAML_NODES,
    max_depth: int = MAX_YAML_DEPTH,
) -> Any:
    """`yaml.safe_load` with bounded cost: size, nesting and alias expansion limited; BagError naming `where`."""
    if len(text) > max_bytes:
        raise BagError(f"{where}: {len(text)} characters of YAML, more than the {max_bytes} allowed; refused")
    try:
        _check_shape(text, where, max_nodes, max_depth)
        return yaml.load(text, Loader=_LOADER)  # a SafeLoader (C or Python), after the shape check
    except yaml.YAMLError as err:
        raise BagError(f"{where}: invalid YAML: {str(err).splitlines()[0]}") from None


# -- parsing --------------------------------------------------------------------------------------


def _qos_text(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False).strip()


def _scalar_text(value: Any, key: str) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError(f"{key} must be a string, not a {type(value).__name__}")
    return "" if value is None else str(value)


def _from_mapping(m: Any, where: str) -> BagMetadata:
    """BagMetadata from the `rosbag2_bagfile_information` mapping; BagError naming the field at fault."""
    key = ""
    try:
        key = "version"
        version = int(m["version"])
        if version > MAX_VERSION:
            raise BagUnsupportedError(f"{where}: metadata version {version} is newer than supported ({MAX_VERSION})")
        key = "storage_identifier"
        storage = _scalar_text(m["storage_identifier"], key)
        key = "relative_file_paths"
        paths = [_scalar_text(p, key) for p in m.get("relative_file_paths") or []]
        seen: set[str] = set()
        for p in paths:
            name = PurePath(p).name
            if name in seen:
                raise ValueError(f"it lists {name} twice (every message of it would be read twice)")
            seen.add(name)
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
                    name=_scalar_text(tm["name"], key + ".name"),
                    type=_scalar_text(tm["type"], key + ".type"),
                    message_count=int(t["message_count"]),
                    serialization_format=_scalar_text(tm.get("serialization_format", "cdr"), key),
                    offered_qos_profiles=_qos_text(tm.get("offered_qos_profiles")),
                    type_description_hash=_scalar_text(tm.get("type_description_hash"), key),
                )
            )
        files = []
        for i, f in enumerate(m.get("files") or []):
            key = f"files[{i}]"
            files.append(
                FileInfo(
                    path=_scalar_text(f["path"], key + ".path"),
                    start_ns=int(f["starting_time"]["nanoseconds_since_epoch"]),
                    duration_ns=int(f["duration"]["nanoseconds"]),
                    message_count=int(f["message_count"]),
                )
            )
        key = "custom_data"
        custom = {_scalar_text(k, key): _scalar_text(v, f"{key}.{k}") for k, v in (m.get("custom_data") or {}).items()}
        key = "compression_mode"
        mode = _scalar_text(m.get("compression_mode"), key).lower()
        key = "compression_format"
        compression_format = _scalar_text(m.get("compression_format"), key)
        key = "ros_distro"
        distro = _scalar_text(m.get("ros_distro"), key)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
        raise BagError(f"{where}: field {key} is missing or malformed ({type(err).__name__}: {err})") from None
    return BagMetadata(
        version=version,
        storage_identifier=storage,
        relative_file_paths=paths,
        start_ns=start,
        duration_ns=duration,
        message_count=count,
        topics=topics,
        compression_format=compression_format,
        compression_mode="" if mode == "none" else mode,
        files=files,
        custom_data=custom,
        ros_distro=distro,
    )


def parse_metadata(text: str, where: str) -> BagMetadata:
    """Parse metadata.yaml text with bounded cost; any fault is one BagError naming `where` and the field.

    The one parser for bag metadata from anywhere: the bag reader, `bag reindex` and services that
    take bags from others all use it, so an alias bomb or a malformed field is refused the same way.
    """
    doc = load_untrusted_yaml(text, where)
    if not isinstance(doc, dict) or not isinstance(doc.get("rosbag2_bagfile_information"), dict):
        raise BagError(f"{where}: not rosbag2 metadata (no rosbag2_bagfile_information mapping)")
    return _from_mapping(doc["rosbag2_bagfile_information"], where)


def parse_embedded(text: str, where: str) -> BagMetadata | None:
    """The metadata a storage file embeds (sqlite3 `metadata` table, mcap `rosbag2` record), if parseable."""
    try:
        doc = load_untrusted_yaml(text, where)
        if isinstance(doc, dict) and isinstance(doc.get("rosbag2_bagfile_information"), dict):
            doc = doc["rosbag2_bagfile_information"]
        return _from_mapping(doc, where) if isinstance(doc, dict) else None
    except BagError:
        return None


def read_metadata(bag_dir: Path) -> BagMetadata:
    """Read and parse `bag_dir/metadata.yaml` (a regular file of at most MAX_METADATA_BYTES); BagError otherwise."""
    path = Path(bag_dir) / "metadata.yaml"
    try:
        raw = read_regular_file(path, MAX_METADATA_BYTES)
    except FileNotFoundError:
        raise BagError(f"{path}: no such file") from None
    except OSError as err:
        raise BagError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BagError(f"{path}: not UTF-8 text") from None
    return parse_metadata(text, str(path))


# -- writing --------------------------------------------------------------------------------------

# rmw's QoS enums: version 9 writes the names, version 5 the numbers (Humble's rmw has no best_available,
# which is offered as system_default there).
_QOS_ENUMS = {
    "history": {"system_default": 0, "keep_last": 1, "keep_all": 2, "unknown": 3},
    "reliability": {"system_default": 0, "reliable": 1, "best_effort": 2, "unknown": 3, "best_available": 4},
    "durability": {"system_default": 0, "transient_local": 1, "volatile": 2, "unknown": 3, "best_available": 4},
    "liveliness": {"system_default": 0, "automatic": 1, "manual_by_topic": 3, "unknown": 4, "best_available": 5},
}
_HUMBLE_MAX = {"history": 3, "reliability": 3, "durability": 3, "liveliness": 4}
_INFINITE = {"sec": 9223372036, "nsec": 854775807}
_QOS_KEYS = (
    "history",
    "depth",
    "reliability",
    "durability",
    "deadline",
    "lifespan",
    "liveliness",
    "liveliness_lease_duration",
    "avoid_ros_namespace_conventions",
)


def _qos_items(text: str) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        items = load_untrusted_yaml(text, "offered_qos_profiles", max_bytes=1 << 20, max_nodes=100_000)
    except BagError:
        return []
    return [dict(item) for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _duration(value: Any) -> dict[str, int]:
    if isinstance(value, dict):
        try:
            return {"sec": int(value.get("sec", 0)), "nsec": int(value.get("nsec", 0))}
        except (TypeError, ValueError):
            pass
    return dict(_INFINITE)


def _profile(item: dict[str, Any], version: int) -> dict[str, Any]:
    """One QoS profile in the key order rosbag2 writes, enums as version 5 (numbers) or 9 (names)."""
    out: dict[str, Any] = {}
    for key in _QOS_KEYS:
        value = item.get(key)
        if key in _QOS_ENUMS:
            table = _QOS_ENUMS[key]
            if isinstance(value, str):
                number = table.get(value, table["unknown"])
            elif isinstance(value, int) and not isinstance(value, bool):
                number = value
            else:
                number = table["system_default"]
            if version <= 5:
                out[key] = number if 0 <= number <= _HUMBLE_MAX[key] else table["system_default"]
            else:
                out[key] = {v: k for k, v in table.items()}.get(number, "unknown")
        elif key == "depth":
            out[key] = int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
        elif key == "avoid_ros_namespace_conventions":
            out[key] = bool(value) if isinstance(value, bool) else False
        else:
            out[key] = _duration(value)
    return out


def _qos_profiles(text: str, version: int) -> list[dict[str, Any]]:
    return [_profile(item, version) for item in _qos_items(text)]


def qos_text_for_version(text: str, version: int) -> str:
    """Offered QoS profiles (in any version's form) as the text `version` stores: v5 numbers, v9 names."""
    profiles = _qos_profiles(text, version)
    return yaml.safe_dump(profiles, default_flow_style=False, sort_keys=False).strip() if profiles else ""


def _info(meta: BagMetadata, version: int) -> dict[str, Any]:
    """The `rosbag2_bagfile_information` mapping in rosbag2's key order for `version` (5 or 9)."""

    def topic(t: TopicInfo) -> dict[str, Any]:
        tm: dict[str, Any] = {"name": t.name, "type": t.type, "serialization_format": t.serialization_format}
        if version <= 5:
            tm["offered_qos_profiles"] = qos_text_for_version(t.offered_qos_profiles, 5)
        else:
            tm["offered_qos_profiles"] = _qos_profiles(t.offered_qos_profiles, 9)
            tm["type_description_hash"] = t.type_description_hash
        return {"topic_metadata": tm, "message_count": t.message_count}

    info: dict[str, Any] = {
        "version": version,
        "storage_identifier": meta.storage_identifier,
        "duration": {"nanoseconds": meta.duration_ns},
        "starting_time": {"nanoseconds_since_epoch": meta.start_ns},
        "message_count": meta.message_count,
        "topics_with_message_count": [topic(t) for t in meta.topics],
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
    }
    if version > 5:
        info["custom_data"] = dict(meta.custom_data) or None
        info["ros_distro"] = meta.ros_distro
    return info


def dump_metadata(meta: BagMetadata, *, embedded: bool = False) -> str:
    """metadata.yaml text in `meta.version`'s form: 5 (Humble) or 9 (Jazzy..Kilted); other versions are refused.

    Deterministic: the same metadata gives the same bytes (keys in rosbag2's order, custom data in
    its own order). `embedded=True` gives the mapping without the top-level key, as rosbag2 stores it
    inside a storage file.
    """
    if meta.version not in WRITABLE_VERSIONS:
        raise BagError(f"metadata version {meta.version} cannot be written (only {WRITABLE_VERSIONS})")
    info = _info(meta, meta.version)
    doc = info if embedded else {"rosbag2_bagfile_information": info}
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False, allow_unicode=True)


def write_metadata(bag_dir: Path, meta: BagMetadata) -> Path:
    path = bag_dir / "metadata.yaml"
    atomic_write_text(path, dump_metadata(meta))
    return path
