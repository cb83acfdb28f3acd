"""The checks before the work: `roadloop data check BAG...`, and the same checks inside `data build`.

In one pass per bag, every problem at once, each with what to change:
* topics: every role the dataset reads (observation and labels) missing from the bag, recorded with
  another type than the registry says, or typed in the registry as something the builder cannot read;
* the bag itself: what the bag layer found inconsistent (truncated, counts off);
* rates against the registry, silences, time coverage, clocks, and the frame conventions (IMU axes
  and units, odometry heading and twist frame, steering angle scale, label speed): `BagProbe` over
  the message stream, judged by the pure functions of `roadloop_cluster.data.conventions`.

`data build` runs `topic_findings` before reading a bag and feeds its message stream through the
same probe, so a bag `data check` passes is a bag the builder takes, for the same reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from roadloop_cluster.data.config import DatasetConfig
from roadloop_cluster.data.conventions import Finding, measured_rate_hz
from roadloop_cluster.data.lazy import read_roles
from roadloop_cluster.data.probe import BagProbe
from roadloop_cluster.data.splits import block_count
from roadloop_core.bag import open_bag
from roadloop_core.errors import ConfigError, RoadloopError
from roadloop_core.registry import TopicRegistry
from roadloop_core.typesys import typestore_for

__all__ = [
    "BagReport",
    "Finding",
    "check_bag",
    "needed_roles",
    "readable_roles",
    "registry_findings",
    "split_finding",
    "topic_findings",
]

IMAGE, IMU, ODOMETRY, PATH = (
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/Imu",
    "nav_msgs/msg/Odometry",
    "nav_msgs/msg/Path",
)
ACKERMANN = "ackermann_msgs/msg/AckermannDriveStamped"


def needed_roles(cfg: DatasetConfig) -> dict[str, tuple[str, tuple[str, ...]]]:
    """role -> (the config key naming it, the message types the builder can read it as)."""
    spec, labels = cfg.observation, cfg.build.labels
    need: dict[str, tuple[str, tuple[str, ...]]] = {}
    uses: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
        ("observation.camera", spec.camera, (IMAGE,)),
        ("observation.imu", spec.imu, (IMU,)),
        ("observation.odometry", spec.odometry, (ODOMETRY,)),
        ("observation.route", spec.route_role(), (PATH,)),
        ("build.labels.command", labels.command, (ACKERMANN,)),
        ("build.labels.waypoints", labels.waypoints, (ODOMETRY, PATH)),
    )
    for key, role, types in uses:
        if role is None:
            continue
        if role in need:
            key = f"{need[role][0]}, {key}"
            types = tuple(t for t in types if t in need[role][1])
        need[role] = (key, types)
    return need


def registry_findings(cfg: DatasetConfig, registry: TopicRegistry) -> list[Finding]:
    """Roles the config names that the registry lacks or types as something the builder cannot read."""
    out: list[Finding] = []
    where = str(registry.source or "the topic registry")
    for role, (key, types) in needed_roles(cfg).items():
        try:
            spec = registry[role]
        except ConfigError:
            fix = f"add topics.{role} (name, type, qos, rate_hz) to {where}, or name another role"
            out.append(Finding("error", "role", key, f"role '{role}' is not in {where}", fix))
            continue
        if not types:
            out.append(Finding("error", "type", key, f"role '{role}' is used for two things no one type serves",
                               "use one role per purpose"))  # fmt: skip
        elif spec.type not in types:
            out.append(Finding(
                "error", "type", f"{spec.name} ({role})",
                f"{where} types it {spec.type}; {key} reads {' or '.join(types)}",
                f"point {key} at a role of that type, or fix topics.{role}.type",
            ))  # fmt: skip
    return out


def topic_findings(cfg: DatasetConfig, registry: TopicRegistry, bag_topics: Mapping[str, str]) -> list[Finding]:
    """Every needed role missing from a bag (`bag_topics`: topic name -> type), or recorded with another type."""
    out: list[Finding] = []
    known = set(registry.topics)
    for role, (key, types) in needed_roles(cfg).items():
        if role not in known:
            continue  # registry_findings says so, once
        spec = registry[role]
        subject = f"{spec.name} ({role})"
        recorded = bag_topics.get(spec.name)
        if recorded is None:
            candidates = sorted(name for name, t in bag_topics.items() if t in types)
            fix = (
                f"set topics.{role}.name to the bag's {' or '.join(candidates)} in the topic registry"
                if candidates
                else f"record {spec.name}, or set {key} to another role"
            )
            if role == cfg.observation.camera:
                fix += "; a log without video: set observation.camera: null (state-only)"
            if role == cfg.observation.imu:
                fix += "; without an IMU: set observation.imu: null (yaw rate and accelerations from odometry)"
            if role == cfg.observation.route and cfg.observation.route_source == "topic":
                fix += (
                    "; a log without a route: set observation.route_source: none (a model without a route input) "
                    "and route: null, or hindsight (route target from the logged future path)"
                )
            out.append(Finding("error", "missing_topic", subject, f"not in the bag ({key})", fix))
        elif recorded != spec.type:
            candidates = sorted(name for name, t in bag_topics.items() if t in types)
            if recorded in types:
                fix = f"set topics.{role}.type: {recorded} in the topic registry"
            elif candidates:
                fix = (
                    f"set topics.{role}.name to the bag's {' or '.join(candidates)} ({key} reads {' or '.join(types)})"
                )
            else:
                fix = f"the bag has no {' or '.join(types)} topic for {key}: record one, or set {key} to another role"
            out.append(Finding(
                "error", "type", subject, f"the bag records it as {recorded}, the topic registry says {spec.type}", fix
            ))  # fmt: skip
    return out


def readable_roles(cfg: DatasetConfig, registry: TopicRegistry, bag_topics: Mapping[str, str]) -> dict[str, str]:
    """role -> topic of the needed roles a bag records with the registry's type (the others are findings)."""
    return {
        r: registry[r].name
        for r in needed_roles(cfg)
        if r in registry.topics and bag_topics.get(registry[r].name) == registry[r].type
    }


def split_finding(cfg: DatasetConfig, durations_s: list[float]) -> Finding:
    """How `data build` would split bags of these durations (the usable ones), and whether a val split exists."""
    b, spec = cfg.build, cfg.observation
    gap = spec.label_horizon * spec.label_dt_s + (
        spec.history_ns / 1e9 + spec.ego_history_dt_s if spec.ego_history_steps else 0
    )
    by_time = b.split_by == "time" or (b.split_by == "auto" and len(durations_s) < 2)
    if b.val_fraction == 0:
        return Finding("warning", "split", "build.val_fraction", "0: no val split (`roadloop train` needs one)",
                       "set build.val_fraction: 0.2")  # fmt: skip
    if not by_time:
        return Finding("info", "split", "build.split_by", f"{len(durations_s)} bag(s): split by bag (content hash)")
    shrink = b.split_by == "auto"
    blocks = [block_count(d, b.split_block_s, b.val_fraction, gap, shrink) for d in durations_s]
    short = [d for d, n in zip(durations_s, blocks, strict=True) if n < 2]
    if short:
        return Finding(
            "warning", "split", "build.split_block_s",
            f"a {min(short):.0f} s bag is too short for two time blocks of {b.split_block_s:g} s: no val split",
            f"set build.split_block_s to at most {min(short) / 2:.0f} s (more than {2 * gap:g} s), or add bags",
        )  # fmt: skip
    sizes = sorted({round(d / n) for d, n in zip(durations_s, blocks, strict=True)})
    shorter = (
        f" (shorter than build.split_block_s {b.split_block_s:g} s: the bag is shorter than two such blocks)"
        if any(n != max(1, round(d / b.split_block_s)) for d, n in zip(durations_s, blocks, strict=True))
        else ""
    )
    return Finding(
        "info", "split", "build.split_by",
        f"split inside the bag(s) by time: {', '.join(map(str, blocks))} block(s) of about "
        f"{'/'.join(f'{s:g}' for s in sizes)} s{shorter}, {gap:g} s kept clear between splits (label horizon + ego "
        "history)",
    )  # fmt: skip


@dataclass
class BagReport:
    path: Path
    duration_s: float = 0.0
    # role, topic, type, messages, measured Hz, the config key that reads it ("" for none)
    topics: list[tuple[str, str, str, int, float | None, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


def check_bag(path: Path, cfg: DatasetConfig, registry: TopicRegistry) -> BagReport:
    """All findings for one bag, in one pass over the topics the dataset reads."""
    report = BagReport(path)
    try:
        with open_bag(path, distro=registry.typestore) as bag:
            info = bag.info
            report.duration_s = info.duration_s
            report.findings += [
                Finding(
                    "error", "bag", str(path), f"truncated or inconsistent: {p}", f"run `roadloop bag check {path}`"
                )
                for p in bag.problems
            ]
            bag_topics = {t.name: t.type for t in info.topics}
            report.findings += topic_findings(cfg, registry, bag_topics)
            present = readable_roles(cfg, registry, bag_topics)
            probe = BagProbe(cfg, registry, list(present), info.start_ns, info.end_ns)
            store = typestore_for(registry.typestore)
            for role, receive_ns, msg in read_roles(bag, store, {name: role for role, name in present.items()}):
                probe.observe(role, receive_ns, msg)
            report.findings += probe.findings()
            counts = {t.name: t.message_count for t in info.topics}
            needed = needed_roles(cfg)
            for role, spec in registry.topics.items():
                if spec.name not in bag_topics:
                    continue
                stream = probe.streams.get(role)
                rate = (
                    measured_rate_hz(np.asarray(stream.stamps, dtype=np.int64))
                    if stream
                    else _rate(counts[spec.name], info.duration_s)
                )
                key = needed[role][0] if role in needed else ""
                report.topics.append((role, spec.name, bag_topics[spec.name], counts[spec.name], rate, key))
    except RoadloopError as err:
        report.findings.append(Finding("error", "bag", str(path), str(err), f"run `roadloop bag check {path}`"))
    except Exception as err:  # a corrupt bag can fail anywhere inside rosbags/mcap/zstd: report it, go on
        report.findings.append(
            Finding(
                "error",
                "bag",
                str(path),
                f"unreadable: {type(err).__name__}: {err}",
                f"run `roadloop bag check {path}`",
            )
        )
    return report


def _rate(count: int, duration_s: float) -> float | None:
    return (count - 1) / duration_s if count > 1 and duration_s > 0 else None
