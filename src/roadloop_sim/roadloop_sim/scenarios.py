"""Scenario set and simulation settings, loaded from `config/scenarios.yaml` into typed dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadloop_core.config import dataclass_from_dict, load_yaml
from roadloop_sim.errors import ScenarioError

__all__ = [
    "CameraConfig",
    "GeodeticOrigin",
    "ImuNoise",
    "Scenario",
    "ScenarioSet",
    "SimulationConfig",
    "episode_plan",
    "load_scenarios",
]

# highway-env environments known to work with ContinuousAction (merge, roundabout and two-way crash with it).
SUPPORTED_ENVS = ("highway-v0", "highway-fast-v0", "racetrack-v0", "u-turn-v0", "exit-v0")


@dataclass(frozen=True)
class CameraConfig:
    width: int = 160
    height: int = 80
    scaling: float = 2.0  # pixels per metre of the top-down raster
    centering: tuple[float, float] = (0.3, 0.5)  # where the ego sits in the image (fraction of width, height)
    # rotate the raster with the ego (it always faces right) instead of keeping the map's axes
    align_with_ego: bool = True


@dataclass(frozen=True)
class GeodeticOrigin:
    latitude: float = 48.137154
    longitude: float = 11.576124
    altitude: float = 520.0


@dataclass(frozen=True)
class ImuNoise:
    accel_std: float = 0.0
    gyro_std: float = 0.0


@dataclass(frozen=True)
class SimulationConfig:
    sim_rate_hz: int = 20
    policy_rate_hz: int = 10
    start_time_s: int = 1_700_000_000
    camera: CameraConfig = field(default_factory=CameraConfig)
    geodetic_origin: GeodeticOrigin = field(default_factory=GeodeticOrigin)
    imu_noise: ImuNoise = field(default_factory=ImuNoise)
    speed_gain: float = 2.0
    accel_range: tuple[float, float] = (-8.0, 4.0)
    max_steering_angle: float = 0.6
    max_speed: float = 40.0
    offroad_terminal_s: float = 2.0
    route_publish_ahead_m: float = 150.0

    def __post_init__(self) -> None:
        if self.sim_rate_hz <= 0 or self.policy_rate_hz <= 0:
            raise ValueError("sim_rate_hz and policy_rate_hz must be > 0")
        if self.sim_rate_hz % self.policy_rate_hz:
            raise ValueError(f"policy_rate_hz {self.policy_rate_hz} must divide sim_rate_hz {self.sim_rate_hz}")
        if self.camera.width <= 0 or self.camera.height <= 0:
            raise ValueError("camera width and height must be > 0")

    @property
    def substeps(self) -> int:
        return self.sim_rate_hz // self.policy_rate_hz


@dataclass(frozen=True)
class Scenario:
    name: str
    env: str
    route_length_m: float
    max_duration_s: float
    cruise_speed: float
    seeds: tuple[int, ...]
    description: str = ""
    env_config: dict[str, Any] = field(default_factory=dict)
    # highway-env's IDM/MOBIL traffic sometimes piles up on its own (seen at the U-turn) and blocks
    # the road for good: that tests nobody's driving, so traffic-to-traffic collisions are off by default.
    npc_collisions: bool = False


@dataclass(frozen=True)
class ScenarioSet:
    simulation: SimulationConfig
    scenarios: dict[str, Scenario]
    source: Path | None = None

    def get(self, name: str) -> Scenario:
        try:
            return self.scenarios[name]
        except KeyError:
            raise ScenarioError(
                f"{self.source or 'scenarios'}: unknown scenario '{name}'; valid: {', '.join(self.scenarios)}"
            ) from None

    def select(self, names: str | list[str] | None) -> list[Scenario]:
        """Scenarios named in a comma list (None or '' or 'all': every scenario, in file order)."""
        if names is None or names in ("", "all"):
            return list(self.scenarios.values())
        items = names.split(",") if isinstance(names, str) else names
        return [self.get(n.strip()) for n in items if n.strip()]


def load_scenarios(path: Path) -> ScenarioSet:
    """Load a scenario set (normally config/scenarios.yaml); faults are ScenarioErrors naming the file and field."""
    data = load_yaml(path)
    sim = dataclass_from_dict(SimulationConfig, dict(data.get("simulation") or {}), f"{path}: simulation")
    raw = data.get("scenarios")
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(f"{path}: 'scenarios' must be a non-empty mapping")
    scenarios: dict[str, Scenario] = {}
    for name, body in raw.items():
        where = f"{path}: scenarios.{name}"
        if not isinstance(body, dict):
            raise ScenarioError(f"{where}: expected a mapping")
        sc = dataclass_from_dict(Scenario, {"name": str(name), **body}, where)
        if sc.env not in SUPPORTED_ENVS and not sc.env.startswith("carla:"):
            raise ScenarioError(f"{where}.env: '{sc.env}' is not supported; use one of {', '.join(SUPPORTED_ENVS)}")
        if not sc.seeds:
            raise ScenarioError(f"{where}.seeds: needs at least one seed")
        if sc.route_length_m <= 0 or sc.max_duration_s <= 0:
            raise ScenarioError(f"{where}: route_length_m and max_duration_s must be > 0")
        scenarios[str(name)] = sc
    return ScenarioSet(simulation=sim, scenarios=scenarios, source=path)


def episode_plan(scenarios: list[Scenario], episodes: int, seed: int) -> list[tuple[Scenario, int]]:
    """(scenario, env seed) of each episode: scenarios round-robin; a scenario's j-th episode uses seed
    S*1000 + its seeds[j], and once its seeds are used up continues with the next base seed
    ((S+1)*1000 + seeds[0], ...), so no episode repeats however many are asked for."""
    if not scenarios:
        raise ScenarioError("no scenarios selected")
    plan = []
    for k in range(episodes):
        sc = scenarios[k % len(scenarios)]
        j = k // len(scenarios)
        plan.append((sc, (seed + j // len(sc.seeds)) * 1000 + sc.seeds[j % len(sc.seeds)]))
    return plan
