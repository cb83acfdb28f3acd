"""The closed loop: simulator -> driver -> command guard -> simulator, optionally into a bag.

One function, `run_episode`, serves recording and evaluation, so a recorded episode and a
scored one are the same run. A command with NaN/inf or out-of-range values is an
"invalid_command" infraction and is replaced by a stop (speed 0, straight wheels);
the bag's command topic holds the command that was applied.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from roadloop_core.bag import BagWriter, RawMessage
from roadloop_core.registry import QosProfile, TopicRegistry
from roadloop_core.stamps import header_stamp_ns
from roadloop_sim.drivers.expert_labels import ExpertLabeler
from roadloop_sim.protocol import Driver, EgoSample, Observation, Simulator, Truth
from roadloop_sim.scenarios import SimulationConfig
from roadloop_sim.sensor_messages import MessageFactory

__all__ = [
    "DISAGREE_SPEED_MPS",
    "DISAGREE_STEER_RAD",
    "MIX_BLOCK_S",
    "EpisodeLog",
    "Infraction",
    "LabelledState",
    "run_episode",
    "sanitize_command",
]

# The beta mixture hands control over in blocks this long (switching every period would make the car
# zig-zag between two drivers, a motion neither would make).
MIX_BLOCK_S = 1.0
# A policy command this far from the expert's (either field) is a "large disagreement" state.
DISAGREE_STEER_RAD = 0.05
DISAGREE_SPEED_MPS = 2.0


@dataclass(frozen=True)
class Infraction:
    kind: str  # collision_vehicle | collision_static | off_road | invalid_command
    t: float
    x: float
    y: float


@dataclass(frozen=True)
class LabelledState:
    """A state the expert labelled while another driver drove (DAgger)."""

    t: float
    near_miss: bool
    disagreement: bool  # the driver's command differed from the expert's beyond the thresholds above
    expert_drove: bool  # the beta mixture applied the expert's command in this state


@dataclass
class EpisodeLog:
    scenario: str
    seed: int
    driver: str
    samples: list[EgoSample] = field(default_factory=list)
    infractions: list[Infraction] = field(default_factory=list)
    progress_m: float = 0.0
    route_length_m: float = 0.0
    reason: str = ""
    lanes: tuple[npt.NDArray[np.float64], ...] = ()
    takeover_t: float | None = None
    labelled: list[LabelledState] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.samples[-1].t if self.samples else 0.0

    def distances(self) -> tuple[float, float]:
        """(distance driven, distance driven off-road), metres."""
        total = off = 0.0
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            d = math.hypot(b.x - a.x, b.y - a.y)
            total += d
            off += d if b.off_road else 0.0
        return total, off


def sanitize_command(command: Any, cfg: SimulationConfig, factory: MessageFactory) -> tuple[Any, bool]:
    """(command to apply, whether the original was invalid). Invalid: non-finite or out of the limits."""
    d = command.drive
    values = (d.steering_angle, d.speed, d.acceleration)
    ok = all(math.isfinite(float(v)) for v in values)
    ok = ok and abs(float(d.steering_angle)) <= cfg.max_steering_angle + 1e-6
    ok = ok and -1e-6 <= float(d.speed) <= cfg.max_speed + 1e-6 and float(d.acceleration) >= 0.0
    if ok:
        return command, False
    return factory.command(header_stamp_ns(command), 0.0, 0.0), True


def run_episode(
    sim: Simulator,
    driver: Driver,
    scenario: str,
    seed: int,
    *,
    registry: TopicRegistry,
    cfg: SimulationConfig,
    driver_label: str,
    writer: BagWriter | None = None,
    takeover_driver: Driver | None = None,
    takeover_s: float | None = None,
    on_step: Callable[[float], None] | None = None,
    labeler: ExpertLabeler | None = None,
    beta: float = 0.0,
) -> EpisodeLog:
    """Run one episode; write every message to `writer` (from `takeover_s` on when a takeover is set).

    `labeler` (DAgger): the expert labels every state `driver` visits (its command and trajectory on the
    registry's `expert_command` / `expert_trajectory` topics), and its command is applied instead of the
    driver's with probability `beta`, drawn per MIX_BLOCK_S block (seeded by the episode seed: reruns are
    identical).
    """
    factory = MessageFactory(registry.typestore)
    store = factory.store
    types = {t.name: t.type for t in registry.topics.values()}
    latched = {t.name for t in registry.topics.values() if t.qos.profile is QosProfile.LATCHED}
    cmd_topic = registry["command"].name
    traj_topic = registry["trajectory"].name if "trajectory" in registry.topics else None
    label_topics = (registry["expert_command"].name, registry["expert_trajectory"].name) if labeler else ("", "")
    mix = np.random.default_rng([seed, 7919])  # the beta mixture's coin: per episode, reproducible
    mix_block, expert_drove = -1, False
    log = EpisodeLog(scenario=scenario, seed=seed, driver=driver_label, takeover_t=takeover_s)
    res = sim.reset(scenario, seed)
    log.lanes = res.privileged.lanes
    driver.reset(scenario, seed)
    if labeler is not None:
        labeler.reset(scenario, seed)
    if takeover_driver is not None:
        takeover_driver.reset(scenario, seed)
    latest: dict[str, Any] = {}
    recording_started = False
    active = driver
    wants_raw = bool(getattr(driver, "wants_raw", False)) or bool(getattr(takeover_driver, "wants_raw", False))
    last_progress = 0.0
    epoch_ns = cfg.start_time_s * 1_000_000_000
    record_from_ns = epoch_ns + (round(takeover_s * 1e9) if takeover_s is not None else 0)
    while True:
        t = (res.time_ns - epoch_ns) / 1e9
        record_now = writer is not None and res.time_ns >= record_from_ns
        raw: list[RawMessage] = []
        if record_now or wants_raw:
            raw = [
                RawMessage(topic, types[topic], ts, store.serialize_cdr(msg, types[topic]))
                for topic, ts, msg in res.messages
            ]
        if record_now and writer is not None:
            if not recording_started:  # a late joiner of a latched topic gets its last message
                for topic, ts, msg in res.messages:
                    if ts < record_from_ns:
                        latest[topic] = msg
                fresh = {m.topic for m in raw if m.timestamp_ns >= record_from_ns}
                for topic in sorted(latched - fresh):
                    if topic in latest:
                        writer.write(topic, record_from_ns, store.serialize_cdr(latest[topic], types[topic]))
                recording_started = True
            for m in raw:
                if m.timestamp_ns >= record_from_ns:
                    writer.write(m.topic, m.timestamp_ns, m.data)
        for topic, _, msg in res.messages:
            latest[topic] = msg
        _account(log, res.truth)
        if on_step is not None:
            on_step(log.progress_m - last_progress)
            last_progress = log.progress_m
        if res.truth.done:
            log.reason = res.truth.reason
            break
        if takeover_driver is not None and res.time_ns >= record_from_ns:
            active = takeover_driver
        obs = Observation(res.time_ns, latest, res.messages, res.privileged, raw if wants_raw else [])
        label = labeler.label(obs) if labeler is not None else None
        command = active.act(obs)
        if label is not None:
            block = math.floor(t / MIX_BLOCK_S + 1e-9)
            if block != mix_block:
                mix_block, expert_drove = block, bool(mix.random() < beta)
            log.labelled.append(LabelledState(t, label.near_miss, _disagree(command, label.command), expert_drove))
            command = label.command if expert_drove else command
        applied, invalid = sanitize_command(command, cfg, factory)
        if invalid:
            e = res.privileged.ego
            log.infractions.append(Infraction("invalid_command", t, e.x, e.y))
        if record_now and writer is not None:
            writer.write(cmd_topic, res.time_ns, store.serialize_cdr(applied, types[cmd_topic]))
            plan = getattr(active, "last_trajectory", None)
            if traj_topic is not None and plan is not None:
                writer.write(traj_topic, res.time_ns, store.serialize_cdr(plan, types[traj_topic]))
            if label is not None:
                for topic, msg in zip(label_topics, (label.command, label.trajectory), strict=True):
                    writer.write(topic, res.time_ns, store.serialize_cdr(msg, types[topic]))
        res = sim.step(applied)
    return log


def _disagree(command: Any, expert: Any) -> bool:
    a, b = command.drive, expert.drive
    steer = abs(float(a.steering_angle) - float(b.steering_angle))
    speed = abs(float(a.speed) - float(b.speed))
    return not (steer <= DISAGREE_STEER_RAD and speed <= DISAGREE_SPEED_MPS)  # NaN counts as disagreement


def _account(log: EpisodeLog, truth: Truth) -> None:
    """Append the period's samples and infractions (an off-road infraction per excursion)."""
    was_off = log.samples[-1].off_road if log.samples else False
    for s in truth.samples:
        if s.off_road and not was_off:
            log.infractions.append(Infraction("off_road", s.t, s.x, s.y))
        was_off = s.off_road
        log.samples.append(s)
    if truth.collision is not None:
        s = log.samples[-1]
        log.infractions.append(Infraction(f"collision_{truth.collision}", s.t, s.x, s.y))
    log.progress_m = truth.progress_m
    log.route_length_m = truth.route_length_m
