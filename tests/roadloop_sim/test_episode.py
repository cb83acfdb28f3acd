from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from roadloop_core.registry import TopicRegistry
from roadloop_sim.episode import run_episode, sanitize_command
from roadloop_sim.highway import HighwayEnvSimulator
from roadloop_sim.scenarios import ScenarioSet, SimulationConfig
from roadloop_sim.sensor_messages import MessageFactory

CFG = SimulationConfig()
F = MessageFactory()


@pytest.mark.parametrize(
    ("steer", "speed", "accel", "invalid"),
    [
        (0.1, 10.0, 0.0, False),
        (-0.6, 0.0, 2.0, False),
        (math.nan, 10.0, 0.0, True),
        (0.0, math.inf, 0.0, True),
        (0.0, 10.0, math.nan, True),
        (0.7, 10.0, 0.0, True),  # beyond max_steering_angle 0.6
        (0.0, -1.0, 0.0, True),  # reversing is not a command a driving policy may give
        (0.0, 41.0, 0.0, True),  # above max_speed 40
        (0.0, 10.0, -1.0, True),  # acceleration is a magnitude
    ],
)
def test_sanitize_command(steer: float, speed: float, accel: float, invalid: bool) -> None:
    cmd = F.command(1_000_000_123, steer, speed, accel)
    applied, flagged = sanitize_command(cmd, CFG, F)
    assert flagged is invalid
    if invalid:  # replaced by a stop, same stamp
        assert (applied.drive.steering_angle, applied.drive.speed) == (0.0, 0.0)
        assert (applied.header.stamp.sec, applied.header.stamp.nanosec) == (1, 123)
    else:
        assert applied is cmd


class _RawRecorder:
    """A driver that, like the onboard pipeline, asks for the serialized messages."""

    name = "raw"
    wants_raw = True

    def __init__(self) -> None:
        self.periods: list[tuple[list[Any], list[Any]]] = []

    def reset(self, scenario: str, seed: int) -> None:
        self.periods = []

    def act(self, obs: Any) -> Any:
        self.periods.append((obs.period, obs.raw))
        return F.command(obs.time_ns, 0.0, 20.0)


def test_raw_messages_are_the_period_as_a_bag_holds_it(short_scenarios: ScenarioSet, registry: TopicRegistry) -> None:
    sc = dataclasses.replace(short_scenarios.get("highway_light"), max_duration_s=1.0)
    sset = dataclasses.replace(short_scenarios, scenarios={"highway_light": sc})
    sim = HighwayEnvSimulator(sset, registry)
    driver = _RawRecorder()
    run_episode(sim, driver, "highway_light", 0, registry=registry, cfg=sset.simulation, driver_label="raw")
    sim.close()
    assert len(driver.periods) == 10
    for period, raw in driver.periods:
        assert [(r.topic, r.timestamp_ns) for r in raw] == [(t, ts) for t, ts, _ in period]
        for r, (_, _, msg) in zip(raw, period, strict=True):
            assert r.typename == msg.__msgtype__ == registry.by_name(r.topic).type  # type: ignore[union-attr]
            assert bytes(r.data) == F.store.serialize_cdr(msg, r.typename)
