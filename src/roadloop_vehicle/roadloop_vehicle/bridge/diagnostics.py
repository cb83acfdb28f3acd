"""The bridge's health as diagnostic_msgs/DiagnosticArray: built purely, published by whoever can.

`statuses(...)` is pure; `to_message` makes the ROS message (rosbags typestore, so the
ROS node layer publishes its CDR bytes unchanged); `JsonlSink` appends each array to
`STATE/diagnostics.jsonl` where no ROS 2 graph runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadloop_core.stamps import header
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.bridge.decisions import DiskStatus

__all__ = ["JsonlSink", "Status", "statuses", "to_message"]


@dataclass(frozen=True)
class Status:
    level: int
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "name": self.name,
            "message": self.message,
            "hardware_id": self.hardware_id,
            "values": dict(self.values),
        }


def statuses(
    vehicle: str, disk: DiskStatus, free_bytes: int, queued: int, failed: int, upload_error: str, model: str
) -> list[Status]:
    up_level = 1 if upload_error else 0
    return [
        Status(
            disk.level,
            "roadloop_bridge: disk",
            disk.message,
            vehicle,
            (
                ("usage_bytes", str(disk.usage)),
                ("quota_bytes", str(disk.quota)),
                ("unconfirmed_bytes", str(disk.unconfirmed)),
                ("filesystem_free_bytes", str(free_bytes)),
            ),
        ),
        Status(
            up_level,
            "roadloop_bridge: upload",
            upload_error or f"{queued} bag(s) queued",
            vehicle,
            (("queued", str(queued)), ("failed", str(failed))),
        ),
        Status(0, "roadloop_bridge: model", model or "no model installed", vehicle, (("current", model),)),
    ]


def to_message(items: list[Status], stamp_ns: int, distro: str = "jazzy") -> Any:
    """A rosbags diagnostic_msgs/msg/DiagnosticArray (serialize with the same typestore to publish)."""
    store = typestore_for(distro)
    t = store.types
    hdr = header(store, stamp_ns, "")
    status = [
        t["diagnostic_msgs/msg/DiagnosticStatus"](
            level=s.level,
            name=s.name,
            message=s.message,
            hardware_id=s.hardware_id,
            values=[t["diagnostic_msgs/msg/KeyValue"](key=k, value=v) for k, v in s.values],
        )
        for s in items
    ]
    return t["diagnostic_msgs/msg/DiagnosticArray"](header=hdr, status=status)


class JsonlSink:
    """Append-only /diagnostics log; one JSON object per line, flushed and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, items: list[Status], stamp_ns: int) -> None:
        line = json.dumps({"stamp_ns": stamp_ns, "status": [s.as_json() for s in items]}) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
