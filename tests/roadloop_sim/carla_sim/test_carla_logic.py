"""The CARLA backend's own logic on `fake_carla` (see its docstring: not a substitute for a live server)."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from roadloop_core.config import config_dir
from roadloop_core.registry import TopicRegistry
from roadloop_sim.carla_sim import CarlaSimulator, load_carla_config
from roadloop_sim.drivers import ExpertDriver
from roadloop_sim.episode import run_episode
from roadloop_sim.metrics import episode_metrics
from roadloop_sim.scenarios import load_scenarios
from roadloop_sim.sensor_messages import MessageFactory

SCENARIOS = config_dir() / "scenarios.yaml"

F = MessageFactory()


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """`import carla` gives the fake module; a local TCP listener passes the reachability probe."""
    spec = importlib.util.spec_from_file_location("carla", Path(__file__).with_name("fake_carla.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "carla", module)  # before exec: its dataclasses look themselves up
    spec.loader.exec_module(module)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                srv.accept()[0].close()
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join()
    srv.close()


def _sim(port: int, registry: TopicRegistry, **overrides: Any) -> CarlaSimulator:
    cfg = load_carla_config(SCENARIOS, host="127.0.0.1", port=port)
    scenarios = {
        "straight": {"env": "carla:Town04", "route_length_m": 60.0, "max_duration_s": 12.0, "cruise_speed": 10.0,
                     "seeds": [0], "env_config": {"spawn_point": 1, "npc_vehicles": overrides.pop("npcs", 0)}},
    }  # fmt: skip
    import dataclasses

    return CarlaSimulator(
        dataclasses.replace(cfg, scenarios=scenarios, **overrides), load_scenarios(SCENARIOS).simulation, registry
    )


def test_messages_frames_and_camera_conversion(fake_server: int, registry: TopicRegistry) -> None:
    sim = _sim(fake_server, registry)
    res = sim.reset("straight", 0)
    names = {registry[r].name for r in ("camera", "imu", "gnss", "odometry", "route", "diagnostics")}
    assert {t for t, _, _ in res.messages} == names
    cam = next(m for t, _, m in res.messages if t == registry["camera"].name)
    px = np.asarray(cam.data).reshape(cam.height, cam.width, 3)
    assert cam.encoding == "rgb8" and (px[:, :, 0] == 200).all()  # BGRA -> RGB: red first
    assert len(res.privileged.lanes) == 3 and res.privileged.route_lane == 1  # left, own, right lane
    lanes_y = [float(np.mean(lane[:, 1])) for lane in res.privileged.lanes]
    assert lanes_y == sorted(lanes_y, reverse=True)  # ENU: the left lane has the larger y
    for _ in range(10):
        res = sim.step(F.command(res.time_ns, 0.0, 8.0))
    assert res.privileged.ego.speed > 3.0 and res.truth.progress_m > 1.5  # from rest at <= 4 m/s^2
    odom = [m for t, _, m in res.messages if t == registry["odometry"].name][-1]
    assert odom.twist.twist.linear.x == pytest.approx(res.privileged.ego.speed, rel=1e-6)
    res = sim.step(F.command(res.time_ns, 0.2, 8.0))  # left in ROS ...
    res = sim.step(F.command(res.time_ns, 0.2, 8.0))
    assert res.privileged.ego.yaw > 0.01  # ... is counter-clockwise in ENU
    sim.close()


@pytest.mark.parametrize("control", ["vehicle_control", "ackermann"])
def test_expert_drives_the_route(fake_server: int, registry: TopicRegistry, control: str) -> None:
    sim = _sim(fake_server, registry, control=control)
    log = run_episode(sim, ExpertDriver(), "straight", 0, registry=registry, cfg=sim.cfg, driver_label="expert")
    sim.close()
    m = episode_metrics(log)
    assert log.reason == "route_complete" and m["success"], m


def test_off_road_and_collision_truth(fake_server: int, registry: TopicRegistry) -> None:
    sim = _sim(fake_server, registry)
    res = sim.reset("straight", 0)
    while not res.truth.done:
        res = sim.step(F.command(res.time_ns, -0.3, 8.0))  # hard right: off the road
    assert res.truth.reason == "off_road"
    sim.close()
    sim = _sim(fake_server, registry, npcs=11)  # parked cars on the spawn points ahead
    res = sim.reset("straight", 0)
    while not res.truth.done:
        res = sim.step(F.command(res.time_ns, 0.0, 10.0))
    assert res.truth.reason == "collision" and res.truth.collision == "vehicle"
    sim.close()
