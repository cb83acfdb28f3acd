"""The one topic registry: name, type, QoS, expected rate and record flag per role.

Loaded from `config/topics.yaml`. Components address topics by *role* (`camera`,
`odometry`, ...), so another vehicle's names change the YAML, not the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from roadloop_core.config import load_yaml
from roadloop_core.errors import ConfigError

__all__ = ["QosProfile", "QosSpec", "TopicRegistry", "TopicSpec", "load_registry"]


class QosProfile(str, Enum):
    SENSOR = "sensor"  # best-effort, volatile
    COMMAND = "command"  # reliable, volatile
    LATCHED = "latched"  # reliable, transient-local


@dataclass(frozen=True)
class QosSpec:
    profile: QosProfile
    depth: int

    @property
    def reliable(self) -> bool:
        return self.profile is not QosProfile.SENSOR

    @property
    def transient_local(self) -> bool:
        return self.profile is QosProfile.LATCHED

    def to_rosbag2_yaml(self) -> str:
        """The offered_qos_profiles string rosbag2 stores in metadata (version >= 4 schema)."""
        reliability = 1 if self.reliable else 2
        durability = 1 if self.transient_local else 2
        return (
            f"- history: 3\n  depth: 0\n  reliability: {reliability}\n  durability: {durability}\n"
            "  deadline:\n    sec: 2147483647\n    nsec: 4294967295\n"
            "  lifespan:\n    sec: 2147483647\n    nsec: 4294967295\n"
            "  liveliness: 1\n  liveliness_lease_duration:\n    sec: 2147483647\n    nsec: 4294967295\n"
            "  avoid_ros_namespace_conventions: false"
        )


@dataclass(frozen=True)
class TopicSpec:
    role: str
    name: str
    type: str
    qos: QosSpec
    rate_hz: float
    record: bool

    def stale_after_s(self, factor: float) -> float:
        return factor / self.rate_hz


@dataclass(frozen=True)
class TopicRegistry:
    topics: dict[str, TopicSpec]
    typestore: str = "jazzy"
    stale_factor: float = 3.0
    source: Path | None = field(default=None, compare=False)

    def __getitem__(self, role: str) -> TopicSpec:
        try:
            return self.topics[role]
        except KeyError:
            raise ConfigError(f"{self.source or 'topic registry'}: no topic with role '{role}'") from None

    def by_name(self, name: str) -> TopicSpec | None:
        for spec in self.topics.values():
            if spec.name == name:
                return spec
        return None

    def recorded(self) -> list[TopicSpec]:
        return [t for t in self.topics.values() if t.record]


def _topic(path: Path, role: str, raw: Any) -> TopicSpec:
    where = f"{path}: topics.{role}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    try:
        qos_raw = raw.get("qos", {})
        profile = QosProfile(qos_raw.get("profile", "sensor"))
        qos = QosSpec(profile=profile, depth=int(qos_raw.get("depth", 10)))
        spec = TopicSpec(
            role=role,
            name=str(raw["name"]),
            type=str(raw["type"]),
            qos=qos,
            rate_hz=float(raw["rate_hz"]),
            record=bool(raw.get("record", True)),
        )
    except KeyError as err:
        raise ConfigError(f"{where}: missing field {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None
    if not spec.name.startswith("/"):
        raise ConfigError(f"{where}.name: '{spec.name}' must be an absolute topic name")
    if spec.rate_hz <= 0:
        raise ConfigError(f"{where}.rate_hz: must be > 0")
    if spec.type.count("/") != 2:
        raise ConfigError(f"{where}.type: '{spec.type}' must look like pkg/msg/Name")
    return spec


def load_registry(path: Path) -> TopicRegistry:
    """Load the registry from `path` (the entry point says which, normally config/topics.yaml)."""
    data = load_yaml(path)
    topics_raw = data.get("topics")
    if not isinstance(topics_raw, dict) or not topics_raw:
        raise ConfigError(f"{path}: 'topics' must be a non-empty mapping")
    topics = {role: _topic(path, role, raw) for role, raw in topics_raw.items()}
    names = [t.name for t in topics.values()]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"{path}: topic names used twice: {', '.join(sorted(dupes))}")
    return TopicRegistry(
        topics=topics,
        typestore=str(data.get("typestore", "jazzy")),
        stale_factor=float(data.get("stale_factor", 3.0)),
        source=path,
    )
