"""DAgger labels: the expert's rollout is where the expert really goes, the mixture and the kinds are counted."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from roadloop_core.features.msg_fields import route_points
from roadloop_core.registry import TopicRegistry
from roadloop_sim.drivers import ExpertDriver, LaneKeepDriver
from roadloop_sim.drivers.expert_labels import ExpertLabeler, near_miss
from roadloop_sim.episode import run_episode
from roadloop_sim.highway import HighwayEnvSimulator
from roadloop_sim.protocol import AgentState, Observation, PrivilegedState
from roadloop_sim.record import label_counts
from roadloop_sim.scenarios import ScenarioSet

pytestmark = pytest.mark.needs("highway_env")


def _state(lead_gap: float, lead_speed: float, side: float = 0.0) -> PrivilegedState:
    ego = AgentState(0.0, 0.0, 0.0, 25.0)
    lead = AgentState(lead_gap + 5.0, side, 0.0, lead_speed)
    lane = np.stack([np.arange(0.0, 300.0), np.zeros(300)], axis=1)
    return PrivilegedState(ego, (lane,), 0, 5.0, (lead,), 25.0, 0.6)


def test_near_miss_is_short_headway_or_time_to_collision_in_the_ego_lane() -> None:
    assert near_miss(_state(15.0, 25.0))  # 0.6 s headway
    assert near_miss(_state(30.0, 10.0))  # 2 s to collision
    assert not near_miss(_state(40.0, 25.0))  # 1.6 s headway, same speed
    assert not near_miss(_state(15.0, 25.0, side=4.0))  # the next lane


class _Spy(ExpertLabeler):
    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.seen: list[tuple[int, float, float, float, np.ndarray]] = []

    def label(self, obs: Observation):  # type: ignore[no-untyped-def]
        lab = super().label(obs)
        e = obs.privileged.ego
        self.seen.append((obs.time_ns, e.x, e.y, e.yaw, route_points(lab.trajectory)))
        return lab


def test_the_rollout_is_the_experts_real_future(registry: TopicRegistry) -> None:
    """The expert drives and labels itself: its rollout at each state is where it then really was."""
    from roadloop_core.config import config_dir
    from roadloop_sim.scenarios import load_scenarios

    scenarios = load_scenarios(config_dir() / "scenarios.yaml")  # the full route: a few hundred states
    cfg = scenarios.simulation
    spy = _Spy(cfg, 8, 0.5)
    sim = HighwayEnvSimulator(scenarios, registry)
    try:
        log = run_episode(sim, ExpertDriver(), "highway_light", 3, registry=registry, cfg=cfg, driver_label="expert",
                          labeler=spy)  # fmt: skip
    finally:
        sim.close()
    at = {round(s.t * cfg.sim_rate_hz): s for s in log.samples}
    epoch = cfg.start_time_s * 1e9
    errors = []
    for t_ns, x, y, yaw, pts in spy.seen:
        k0 = round((t_ns - epoch) / 1e9 * cfg.sim_rate_hz)
        future = [at.get(k0 + round(k * 0.5 * cfg.sim_rate_hz)) for k in range(1, 9)]
        if any(f is None for f in future):
            continue
        c, s = math.cos(yaw), math.sin(yaw)
        real = np.array([[c * (f.x - x) + s * (f.y - y), -s * (f.x - x) + c * (f.y - y)] for f in future if f])
        errors.append(np.linalg.norm(real - pts, axis=1))
    assert len(errors) > 100 and pts.shape == (8, 2)
    err = np.array(errors)
    assert np.median(err[:, 1]) < 0.05  # 1 s ahead: the same vehicle model, the same decisions
    assert np.median(err[:, 5]) < 0.5  # 3 s: the other vehicles are extrapolated at constant velocity
    assert all(not s.disagreement and not s.expert_drove for s in log.labelled)


def test_beta_mixture_is_seeded_and_disagreement_counted(short_scenarios: ScenarioSet, registry: TopicRegistry) -> None:
    cfg = short_scenarios.simulation
    sim = HighwayEnvSimulator(short_scenarios, registry)
    try:
        runs = [
            run_episode(
                sim,
                LaneKeepDriver(registry),
                "highway_dense",
                2,
                registry=registry,
                cfg=cfg,
                driver_label="lanekeep",
                labeler=ExpertLabeler(cfg, 8, 0.5),
                beta=beta,
            )
            for beta in (0.5, 0.5, 0.0)
        ]
    finally:
        sim.close()
    a, b, never = runs
    assert [s.expert_drove for s in a.labelled] == [s.expert_drove for s in b.labelled]
    drove = [s.expert_drove for s in a.labelled]
    assert any(drove) and not all(drove)
    assert not any(s.expert_drove for s in never.labelled)
    counts = label_counts(a)
    assert counts["states"] == len(a.labelled) and counts["expert_drove"] == sum(drove)
    assert counts["disagreement"] > 0  # lanekeep holds its speed where the expert would not
    assert counts["other"] <= counts["states"] - max(counts["disagreement"], counts["near_miss"])


def test_dagger_bags_hold_the_expert_labels(
    short_scenarios_file: Path, registry: TopicRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from roadloop_core.bag import open_bag
    from roadloop_sim.record import record_episodes
    from roadloop_sim.scenarios import load_scenarios

    scenarios = load_scenarios(short_scenarios_file)
    done = record_episodes(tmp_path / "bags", scenarios="highway_light", episodes=1, seed=60, driver="lanekeep",
                           scenario_set=scenarios, registry=registry, progress=False,
                           labeler=ExpertLabeler(scenarios.simulation, 8, 0.5), beta=0.25)  # fmt: skip
    (ep,) = done
    assert ep.path.name.endswith("_dagger") and ep.metrics["labelled"]["states"] > 0
    with open_bag(ep.path) as bag:
        topics = {t.name: t for t in bag.info.topics}
        assert bag.info.custom_data["roadloop.dagger"] == "true"
    for role in ("expert_command", "expert_trajectory"):
        assert registry[role].name in topics
