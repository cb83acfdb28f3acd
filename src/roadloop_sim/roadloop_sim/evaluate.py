"""Closed-loop evaluation: run a driver over a scenario plan and score it (see metrics.py).

The JSON report holds no wall-clock values, so the same driver, scenarios, episodes and seed
give a byte-identical report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from roadloop_core.fsio import atomic_write_json
from roadloop_core.registry import TopicRegistry
from roadloop_sim.drivers import driver_name, make_driver
from roadloop_sim.episode import EpisodeLog, run_episode
from roadloop_sim.metrics import aggregate, episode_metrics
from roadloop_sim.over_ros.config import OverRosConfig
from roadloop_sim.parallel import PerProcess, map_episodes, worker_count
from roadloop_sim.protocol import Simulator
from roadloop_sim.scenarios import Scenario, ScenarioSet, episode_plan

if TYPE_CHECKING:
    from roadloop_vehicle.params import VehicleParams

__all__ = ["evaluate", "write_report"]

REPORT_FORMAT = "roadloop-sim-eval/1"


def _rounded(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return v


def _path(log: EpisodeLog, sim_rate_hz: int, every_s: float = 0.5) -> dict[str, list[float]]:
    """The driven path (map frame, 0.1 m, every 0.5 s and the last point) for reports and the loop's plots."""
    step = max(1, round(every_s * sim_rate_hz))
    pts = log.samples[::step] + ([log.samples[-1]] if (len(log.samples) - 1) % step else [])
    return {"x": [round(s.x, 1) for s in pts], "y": [round(s.y, 1) for s in pts]}


def evaluate(
    driver: str,
    *,
    scenarios: str | None = None,
    episodes: int = 6,
    seed: int = 0,
    plots: Path | None = None,
    scenario_set: ScenarioSet,
    registry: TopicRegistry,
    vehicle: VehicleParams | None = None,
    simulator: Simulator | None = None,
    progress: bool = True,
    over_ros: OverRosConfig | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run `episodes` episodes with `driver` and return the report (per episode + aggregate).

    `vehicle`: the onboard parameters a `bundle:` driver runs on. `over_ros`: a `bundle:` driver runs
    as the drive_node and safety_node processes on a ROS 2 graph instead of in this process.
    `jobs`: worker processes for the episodes (0 = one per core); the report is the same for any.
    """
    selected = scenario_set.select(scenarios)
    plan = episode_plan(selected, episodes, seed)
    serial_only = (
        "--over-ros (one ROS 2 graph)" if over_ros is not None
        else "a given simulator (e.g. one CARLA server)" if simulator is not None
        else None
    )  # fmt: skip
    workers = worker_count(jobs, len(plan), serial_only)
    if over_ros is not None:
        ros = _ros_driver(driver, registry, vehicle, over_ros, scenario_set.simulation.policy_rate_hz)
        drivers: PerProcess[Any] = PerProcess(lambda: ros)
    else:
        drivers = PerProcess(lambda: make_driver(driver, registry, vehicle))
    sims: PerProcess[Simulator] = PerProcess(lambda: simulator or _highway(scenario_set, registry))
    # one process names its bar after the driver (a bundle: its model); workers load theirs after the fork
    label = driver_name(driver, drivers.get()) if workers == 1 else f"{driver} ({workers} workers)"

    def one(item: tuple[int, tuple[Scenario, int]]) -> dict[str, Any]:
        k, (sc, s) = item
        drv = drivers.get()
        log = run_episode(
            sims.get(), drv, sc.name, s, registry=registry, cfg=scenario_set.simulation,
            driver_label=driver_name(driver, drv),
        )  # fmt: skip
        m = {"index": k, **episode_metrics(log), "path": _path(log, scenario_set.simulation.sim_rate_hz)}
        if plots is not None:
            from roadloop_sim.plots import plot_episode

            plot_episode(log, m, Path(plots) / f"{k:03d}_{sc.name}_s{s}.png")
        return m

    results: list[dict[str, Any]] = []
    try:
        bar = tqdm(total=len(plan), desc=f"eval {label}", unit="episode", disable=not progress)
        with bar:
            for m in map_episodes(one, list(enumerate(plan)), workers):
                results.append(m)
                bar.update(1)
    finally:
        drv_here = drivers.here()
        close = getattr(drv_here, "close", None)
        if close is not None:
            close()
        sim_here = sims.here()
        if simulator is None and sim_here is not None:
            sim_here.close()
    if plots is not None and results:
        from roadloop_sim.plots import plot_summary

        plot_summary(results, str(results[0]["driver"]), Path(plots) / "summary.png")
    report = {
        "format": REPORT_FORMAT,
        "driver": driver,
        **({"over_ros": True} if over_ros is not None else {}),  # the onboard node processes drove over DDS
        "scenarios": [sc.name for sc in selected],
        "episodes_requested": episodes,
        "seed": seed,
        "simulation": {
            "sim_rate_hz": scenario_set.simulation.sim_rate_hz,
            "policy_rate_hz": scenario_set.simulation.policy_rate_hz,
        },
        "summary": aggregate(results),
        "episodes": results,
    }
    return dict(_rounded(report))


def _highway(scenario_set: ScenarioSet, registry: TopicRegistry) -> Simulator:
    from roadloop_sim.highway import HighwayEnvSimulator

    return HighwayEnvSimulator(scenario_set, registry)


def _ros_driver(
    driver: str, registry: TopicRegistry, vehicle: VehicleParams | None, config: OverRosConfig, policy_rate_hz: int
) -> Any:
    from roadloop_sim.errors import DriverError

    name, _, path = driver.partition(":")
    if name != "bundle" or not path:
        raise DriverError(f"--over-ros drives with the onboard nodes: it needs --driver bundle:PATH, not '{driver}'")
    if not Path(path).is_dir():
        raise DriverError(f"driver bundle:{path}: no such bundle folder")
    if vehicle is None:
        raise DriverError(f"driver bundle:{path}: needs the vehicle parameters (config/vehicle.yaml)")
    from roadloop_sim.over_ros.driver import RosDriver

    return RosDriver(Path(path), registry, params=vehicle, config=config, policy_rate_hz=policy_rate_hz)


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write the report atomically (temp + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, report, indent=2, sort_keys=True)
