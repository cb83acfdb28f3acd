"""The highway-env backend, run for real (offscreen rendering, a few seconds of sim per test)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from roadloop_core.registry import TopicRegistry
from roadloop_sim.errors import ScenarioError, SimError
from roadloop_sim.highway import HighwayEnvSimulator
from roadloop_sim.protocol import Simulator
from roadloop_sim.scenarios import ImuNoise, ScenarioSet
from roadloop_sim.sensor_messages import MessageFactory

F = MessageFactory()
SENSOR_ROLES = ("camera", "imu", "gnss", "odometry", "route", "diagnostics")


@pytest.fixture(scope="module")
def sim(short_scenarios: ScenarioSet, registry: TopicRegistry) -> Any:
    s = HighwayEnvSimulator(short_scenarios, registry)
    yield s
    s.close()


def _drive(
    sim: HighwayEnvSimulator, scenario: str, seed: int, steps: int, steer: float = 0.0, speed: float = 10.0
) -> list[Any]:
    results = [sim.reset(scenario, seed)]
    for _ in range(steps):
        if results[-1].truth.done:
            break
        results.append(sim.step(F.command(results[-1].time_ns, steer, speed)))
    return results


def test_is_a_simulator(sim: HighwayEnvSimulator) -> None:
    assert isinstance(sim, Simulator)


@pytest.mark.parametrize("scenario", ["highway_light", "highway_dense", "racetrack", "uturn"])
def test_every_scenario_runs_with_continuous_action(
    sim: HighwayEnvSimulator, registry: TopicRegistry, scenario: str
) -> None:
    results = _drive(sim, scenario, 3, steps=10)
    assert len(results) == 11
    names = {registry[r].name: registry[r].type for r in SENSOR_ROLES}
    seen = {topic for r in results for topic, _, _ in r.messages}
    assert seen == set(names)
    for r in results:
        for topic, stamp, msg in r.messages:
            assert msg.__msgtype__ == names[topic]
            assert msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == stamp
            assert stamp <= r.time_ns
    # the ego moved under the command and the route lies ahead of it
    first, last = results[0].privileged.ego, results[-1].privileged.ego
    assert np.hypot(last.x - first.x, last.y - first.y) > 5.0
    assert results[-1].truth.progress_m > 5.0


def test_rates_follow_registry_capped_by_sim_rate(sim: HighwayEnvSimulator, registry: TopicRegistry) -> None:
    results = _drive(sim, "highway_light", 0, steps=20)  # 2 s
    count: dict[str, int] = {}
    for r in results:
        for topic, _, _ in r.messages:
            count[topic] = count.get(topic, 0) + 1
    sim_rate = sim.cfg.sim_rate_hz
    for role in SENSOR_ROLES:
        rate = min(registry[role].rate_hz, sim_rate)
        assert count[registry[role].name] == pytest.approx(2.0 * rate + 1, abs=1), role


def test_camera_is_a_rendered_raster_not_blank(sim: HighwayEnvSimulator, registry: TopicRegistry) -> None:
    r = sim.reset("highway_dense", 1)
    img = next(m for t, _, m in r.messages if t == registry["camera"].name)
    cam = sim.cfg.camera
    assert (img.width, img.height, img.encoding) == (cam.width, cam.height, "rgb8")
    px = np.asarray(img.data).reshape(img.height, img.width, 3)
    assert px.std() > 10.0 and len(np.unique(px.reshape(-1, 3), axis=0)) > 5


def test_same_seed_same_bytes_other_seed_differs(sim: HighwayEnvSimulator) -> None:
    def run(seed: int) -> list[bytes]:
        store = F.store
        return [
            store.serialize_cdr(m, m.__msgtype__)
            for r in _drive(sim, "highway_dense", seed, steps=8)
            for _, _, m in r.messages
        ]

    a, b, c = run(5), run(5), run(6)
    assert a == b
    assert a != c


def test_imu_and_odometry_agree_with_motion(sim: HighwayEnvSimulator, registry: TopicRegistry) -> None:
    results = _drive(sim, "highway_light", 2, steps=20, speed=30.0)  # accelerate from 25 m/s
    imu = [m for r in results[1:] for t, _, m in r.messages if t == registry["imu"].name]
    odom = [m for r in results for t, _, m in r.messages if t == registry["odometry"].name]
    assert all(0.5 < m.linear_acceleration.x <= 4.0 + 1e-9 for m in imu[:10])
    assert odom[-1].twist.twist.linear.x > odom[0].twist.twist.linear.x + 2.0


def test_off_road_is_counted_and_terminal(sim: HighwayEnvSimulator) -> None:
    results = _drive(sim, "highway_light", 0, steps=100, steer=0.3, speed=15.0)
    last = results[-1].truth
    assert last.done and last.reason == "off_road"
    assert any(s.off_road for r in results for s in r.truth.samples)


def test_left_steer_turns_left_in_the_map_frame(sim: HighwayEnvSimulator) -> None:
    results = _drive(sim, "highway_light", 0, steps=5, steer=0.1, speed=20.0)
    assert results[-1].privileged.ego.yaw > 0.05  # ROS: + steering = left = counter-clockwise


def test_unknown_scenario_and_misuse(sim: HighwayEnvSimulator) -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'nowhere'; valid: highway_light, highway_dense"):
        sim.reset("nowhere", 0)
    fresh = HighwayEnvSimulator(sim.scenarios, sim.registry)
    with pytest.raises(SimError, match="before reset"):
        fresh.step(F.command(0, 0.0, 0.0))


@pytest.mark.parametrize(("sim_rate", "policy_rate"), [(10, 10), (20, 5), (40, 10)])
def test_sim_and_policy_rates_are_configurable(
    short_scenarios: ScenarioSet, registry: TopicRegistry, sim_rate: int, policy_rate: int
) -> None:
    cfg = dataclasses.replace(short_scenarios.simulation, sim_rate_hz=sim_rate, policy_rate_hz=policy_rate)
    sim = HighwayEnvSimulator(dataclasses.replace(short_scenarios, simulation=cfg), registry)
    results = _drive(sim, "racetrack", 0, steps=policy_rate)  # one simulated second
    sim.close()
    assert results[-1].time_ns - results[0].time_ns == 1_000_000_000
    assert sum(len(r.truth.samples) for r in results[1:]) == sim_rate
    odom = [s for r in results for t, s, _ in r.messages if t == registry["odometry"].name]
    assert len(odom) == min(sim_rate, 50) + 1


def test_imu_noise_is_seeded(short_scenarios: ScenarioSet, registry: TopicRegistry) -> None:
    noisy = dataclasses.replace(short_scenarios.simulation, imu_noise=ImuNoise(accel_std=0.5, gyro_std=0.05))
    sim = HighwayEnvSimulator(dataclasses.replace(short_scenarios, simulation=noisy), registry)

    def imu_x(seed: int) -> list[float]:
        return [
            m.linear_acceleration.x
            for r in _drive(sim, "highway_light", seed, 5)
            for t, _, m in r.messages
            if t == registry["imu"].name
        ]

    a, b, c = imu_x(1), imu_x(1), imu_x(2)
    sim.close()
    assert a == b and a != c
    assert np.std(np.diff(a)) > 0.1  # noise on top of a smooth signal


def _ego_blob(img: np.ndarray, cx: int, cy: int) -> tuple[int, int]:
    """(width, height) of the pixels with the ego's colour around the ego's position in the raster."""
    colour = img[cy, cx]
    ys, xs = np.nonzero((img[cy - 12 : cy + 13, cx - 12 : cx + 13] == colour).all(axis=2))
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


@pytest.mark.parametrize("align", [True, False])
def test_camera_rotates_with_the_ego_when_aligned(
    short_scenarios: ScenarioSet, registry: TopicRegistry, align: bool
) -> None:
    cam = dataclasses.replace(short_scenarios.simulation.camera, align_with_ego=align)
    cfg = dataclasses.replace(short_scenarios.simulation, camera=cam)
    sim = HighwayEnvSimulator(dataclasses.replace(short_scenarios, simulation=cfg), registry)
    results = _drive(sim, "highway_light", 0, steps=8, steer=0.12, speed=12.0)  # a car turning left
    yaw = results[-1].privileged.ego.yaw
    img = sim.camera_frame()
    sim.close()
    assert 0.4 < yaw < 1.2 and img.shape == (cam.height, cam.width, 3)
    w, h = _ego_blob(img, int(cam.centering[0] * cam.width), int(cam.centering[1] * cam.height))
    if align:
        assert w > 1.8 * h  # the 5 m x 2 m car lies along the image's x axis whatever its heading
    else:
        assert w < 1.8 * h  # the map's axes: the car is drawn turned


_DRIVE_ON = r"""
from roadloop_core.config import config_dir
from roadloop_core.registry import load_registry
from roadloop_sim.drivers import make_driver
from roadloop_sim.episode import run_episode
from roadloop_sim.highway import HighwayEnvSimulator
from roadloop_sim.scenarios import load_scenarios

reg = load_registry(config_dir() / "topics.yaml")
scenarios = load_scenarios(config_dir() / "scenarios.yaml")
sim = HighwayEnvSimulator(scenarios, reg)
for seed in range(20):
    run_episode(sim, make_driver("expert", reg, None), "highway_light", seed, registry=reg, cfg=scenarios.simulation,
                driver_label="expert")
    print("episode", seed, flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_a_running_simulation(sig: signal.Signals) -> None:
    """SDL used to catch SIGTERM (a quit event nobody read): the process drove its episodes on and exited 0."""
    env = {k: v for k, v in os.environ.items() if k != "SDL_NO_SIGNAL_HANDLERS"}
    proc = subprocess.Popen([sys.executable, "-c", _DRIVE_ON], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("episode 0")  # the simulator and its renderer are up
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == -sig, f"ended with {proc.returncode} after driving on: {out!r}"
