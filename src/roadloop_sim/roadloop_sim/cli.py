"""`roadloop sim ...`: record demonstrations and score drivers closed loop."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from roadloop_core.config import config_dir
from roadloop_core.fsio import atomic_write_json
from roadloop_core.registry import TopicRegistry, load_registry
from roadloop_sim.errors import SimError
from roadloop_sim.protocol import Simulator
from roadloop_sim.scenarios import ScenarioSet

if TYPE_CHECKING:
    from roadloop_sim.drivers.expert_labels import ExpertLabeler
    from roadloop_vehicle.params import VehicleParams

__all__ = ["app"]

app = typer.Typer(
    name="sim",
    help="Simulation (highway-env by default): record episodes as bags, evaluate drivers closed loop.",
    no_args_is_help=True,
    add_completion=False,
)

BACKEND_HELP = (
    "highway (highway-env, default, no GPU) or carla (a CARLA 0.9.16 server; scenarios from the carla: section)."
)


class Backend(str, Enum):
    highway = "highway"
    carla = "carla"


def _scenarios_path(scenarios_file: Path | None) -> Path:
    return scenarios_file if scenarios_file is not None else config_dir() / "scenarios.yaml"


def _registry() -> TopicRegistry:
    return load_registry(config_dir() / "topics.yaml")


def _vehicle(params: Path | None, needed: bool) -> VehicleParams | None:
    """The onboard parameters a `bundle:` driver runs on (loaded only when a bundle may drive)."""
    if not needed:
        return None
    from roadloop_vehicle.params import load_vehicle_params

    return load_vehicle_params(params if params is not None else config_dir() / "vehicle.yaml")


def _labeler(scenario_set: ScenarioSet, registry: TopicRegistry) -> ExpertLabeler:
    """The DAgger labeller, its trajectory horizon and spacing the dataset's labels (config/dataset.yaml)."""
    from roadloop_core.contract.observation import ObservationSpec
    from roadloop_sim.drivers.expert_labels import ExpertLabeler

    for role in ("expert_command", "expert_trajectory"):
        if role not in registry.topics:
            raise SimError(f"{config_dir() / 'topics.yaml'}: no '{role}' role, which --label-with-expert writes")
    spec = ObservationSpec.from_config(config_dir() / "dataset.yaml")
    return ExpertLabeler(scenario_set.simulation, spec.label_horizon, spec.label_dt_s, registry.typestore)


@contextmanager
def _backend(
    backend: Backend,
    scenarios_file: Path | None,
    registry: TopicRegistry,
    host: str | None,
    port: int | None,
    timeout: float | None,
) -> Iterator[tuple[ScenarioSet, Simulator | None]]:
    """The scenario set and, for CARLA, a connected simulator (fails fast when unreachable), closed after use."""
    from roadloop_sim.scenarios import load_scenarios

    path = _scenarios_path(scenarios_file)
    if backend is Backend.highway:
        yield load_scenarios(path), None
        return
    from roadloop_sim.carla_sim import CarlaSimulator, carla_scenario_set, load_carla_config

    cfg = load_carla_config(path, host=host or os.environ.get("CARLA_HOST"), port=port)
    if timeout is not None:
        cfg = dataclasses.replace(cfg, timeout_s=timeout)
    scenario_set = carla_scenario_set(path)
    sim = CarlaSimulator(cfg, scenario_set.simulation, registry)
    sim.connect()
    try:
        yield scenario_set, sim
    finally:
        sim.close()


# Options both `record` and `eval` take: where scenarios come from and which simulator runs them.
ScenariosFileOpt = Annotated[
    Path | None, typer.Option("--scenarios-file", help="Scenario set (default config/scenarios.yaml).")
]
BackendOpt = Annotated[Backend, typer.Option("--backend", help=BACKEND_HELP)]
CarlaHostOpt = Annotated[
    str | None, typer.Option("--carla-host", help="CARLA host (default: $CARLA_HOST, else config).")
]
CarlaPortOpt = Annotated[int | None, typer.Option("--carla-port", help="CARLA port (default: the config's, 2000).")]
CarlaTimeoutOpt = Annotated[float | None, typer.Option("--carla-timeout", help="Seconds to wait for the CARLA server.")]
VehicleParamsOpt = Annotated[
    Path | None,
    typer.Option("--params", help="Vehicle parameters a bundle: driver runs on (default: config/vehicle.yaml)."),
]
JobsOpt = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=0,
        help="Episodes run in this many worker processes (0: one per core); the results are the same for any "
        "number. Highway-env only (one CARLA server or ROS 2 graph serves one episode at a time).",
    ),
]


SEED_HELP = (
    "Base seed S: episode k plays scenario k mod n with seed S*1000 + that scenario's (k div n)-th seed; "
    "past its last seed, (S+1)*1000 + its first, and so on (no episode repeats)."
)
SCENARIOS_HELP = "Comma-separated scenario names from config/scenarios.yaml (default: all of them, round-robin)."
DRIVER_HELP = "Who drives: expert | constant | lanekeep | bundle:PATH (a model bundle run by the onboard pipeline)."


@app.command("record")
def record(
    out: Path = typer.Option(..., "--out", help="Folder for the bags (one mcap bag per episode)."),
    scenarios: str = typer.Option("all", "--scenarios", help=SCENARIOS_HELP),
    episodes: int = typer.Option(2, "--episodes", min=1, help="Number of episodes to record."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    driver: str = typer.Option("expert", "--driver", help=DRIVER_HELP),
    intervene_on: Path | None = typer.Option(
        None,
        "--intervene-on",
        help="An eval report (JSON): replay its failed episodes with the expert taking over before the failure; "
        "records from the takeover on (custom data roadloop.intervention=true).",
    ),
    takeover_lead_s: float = typer.Option(
        2.0, "--takeover-lead", help="Seconds before the first infraction at which the expert takes over."
    ),
    label_with_expert: bool = typer.Option(
        False,
        "--label-with-expert",
        help="DAgger: the driver drives, the privileged expert labels every state it visits (its command and "
        "rolled-out trajectory, K waypoints every dt of config/dataset.yaml, on the registry's expert_command / "
        "expert_trajectory topics; custom data roadloop.dagger=true).",
    ),
    beta: float = typer.Option(
        0.0, "--beta", min=0.0, max=1.0, help="With --label-with-expert: share of states the expert drives."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write each bag's episode metrics (and DAgger label counts) here."
    ),
    scenarios_file: ScenariosFileOpt = None,
    backend: BackendOpt = Backend.highway,
    carla_host: CarlaHostOpt = None,
    carla_port: CarlaPortOpt = None,
    carla_timeout: CarlaTimeoutOpt = None,
    params: VehicleParamsOpt = None,
    jobs: JobsOpt = 1,
    distro: str | None = typer.Option(
        None,
        "--distro",
        help="ROS distro whose rosbag2 must read the bags: humble (metadata version 5) or jazzy (version 9); "
        "default: config/topics.yaml's typestore.",
    ),
) -> None:
    """Record episodes as rosbag2 mcap bags with every registry topic (same seed -> same messages)."""
    from roadloop_sim.record import record_episodes

    registry = _registry()
    # an eval report's episodes are usually a bundle's: the takeover replays them with it
    vehicle = _vehicle(params, driver.startswith("bundle:") or intervene_on is not None)
    with _backend(backend, scenarios_file, registry, carla_host, carla_port, carla_timeout) as (scenario_set, sim):
        labeler = _labeler(scenario_set, registry) if label_with_expert else None
        done = record_episodes(
            out,
            scenarios=scenarios,
            episodes=episodes,
            seed=seed,
            driver=driver,
            intervene_on=intervene_on,
            takeover_lead_s=takeover_lead_s,
            scenario_set=scenario_set,
            registry=registry,
            vehicle=vehicle,
            simulator=sim,
            distro=distro,
            labeler=labeler,
            beta=beta,
            jobs=jobs,
        )
    if json_out is not None:
        rows = [{"bag": str(ep.path), **ep.metrics} for ep in done]
        atomic_write_json(json_out, {"driver": driver, "beta": beta, "episodes": rows}, default=str)
    for ep in done:
        m = ep.metrics
        typer.echo(
            f"{ep.path}  {m['scenario']} seed {m['seed']}: "
            f"RC {m['route_completion']:.0f}% DS {m['driving_score']:.1f} ({m['end_reason']})"
        )
    typer.echo(f"{len(done)} bag(s) in {out}")


@app.command("eval")
def evaluate_cmd(
    driver: str = typer.Option("expert", "--driver", help=DRIVER_HELP),
    scenarios: str = typer.Option("all", "--scenarios", help=SCENARIOS_HELP),
    episodes: int = typer.Option(6, "--episodes", min=1, help="Number of episodes."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report here (identical on a rerun)."),
    plots: Path | None = typer.Option(
        None, "--plots", help="Folder for PNGs: each episode's path over the road and speed profile."
    ),
    scenarios_file: ScenariosFileOpt = None,
    backend: BackendOpt = Backend.highway,
    carla_host: CarlaHostOpt = None,
    carla_port: CarlaPortOpt = None,
    carla_timeout: CarlaTimeoutOpt = None,
    params: VehicleParamsOpt = None,
    jobs: JobsOpt = 1,
    over_ros: bool = typer.Option(
        False,
        "--over-ros",
        help="A bundle: driver runs as the drive_node and safety_node processes on a ROS 2 graph "
        "(sensor topics and /clock out, /control/command in, in lockstep) instead of in this process.",
    ),
) -> None:
    """Drive closed loop and score like CARLA Leaderboard 2.0: DS = mean(RC x IP), success, infractions/km, comfort."""
    from roadloop_sim.evaluate import evaluate, write_report
    from roadloop_sim.over_ros.config import load_over_ros_config

    registry = _registry()
    vehicle = _vehicle(params, driver.startswith("bundle:"))
    ros_cfg = load_over_ros_config(_scenarios_path(scenarios_file)) if over_ros else None
    with _backend(backend, scenarios_file, registry, carla_host, carla_port, carla_timeout) as (scenario_set, sim):
        report = evaluate(
            driver,
            scenarios=scenarios,
            episodes=episodes,
            seed=seed,
            plots=plots,
            scenario_set=scenario_set,
            registry=registry,
            vehicle=vehicle,
            simulator=sim,
            over_ros=ros_cfg,
            jobs=jobs,
        )
    if json_out is not None:
        write_report(report, json_out)
    for e in report["episodes"]:
        inf = ", ".join(f"{k} {v}" for k, v in e["infractions"].items() if v) or "no infractions"
        typer.echo(
            f"{e['index']:3d} {e['scenario']:<14} seed {e['seed']:<6} DS {e['driving_score']:6.1f}  "
            f"RC {e['route_completion']:5.1f}%  {e['end_reason']:<14} {inf}"
        )
    s = report["summary"]
    typer.echo(
        f"{driver}: DS {s['driving_score']:.1f}  RC {s['route_completion']:.1f}%  IP {s['infraction_penalty']:.3f}  "
        f"success {100 * s['success_rate']:.0f}%  infractions/km {s['infractions_per_km']:.2f}  "
        f"mean speed {s['mean_speed']:.1f} m/s  comfort {s['comfort']:.2f}"
    )


@app.command("compare")
def compare_cmd(
    candidate: Path = typer.Argument(..., help="`sim eval --json` report of the candidate driver."),
    incumbent: Path = typer.Argument(..., help="`sim eval --json` report of the incumbent, on the same episodes."),
    margin: float = typer.Option(0.0, "--margin", help="DS points the candidate must gain (the CI's lower bound)."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="Of the confidence interval."),
    resamples: int = typer.Option(10_000, "--resamples", min=100, help="Bootstrap resamples of the episode pairs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the resampling (the same inputs give the same interval)."),
) -> None:
    """Compare two drivers on the same episodes: per-scenario DS and the paired bootstrap CI of the DS gain.

    Run `sim eval` for both with the same --scenarios, --episodes and --seed; the episodes are paired
    by scenario and seed. "better" means the CI's lower bound is above --margin.
    """
    from roadloop_sim.stats import bootstrap_mean_ci, paired_differences

    reports = [_eval_report(path) for path in (candidate, incumbent)]
    _, diff = paired_differences(reports[0]["episodes"], reports[1]["episodes"])
    ci = bootstrap_mean_ci(diff, confidence=confidence, resamples=resamples, seed=seed)
    for who, report in zip(("candidate", "incumbent"), reports, strict=True):
        s = report["summary"]
        per = ", ".join(f"{k} {v:.1f}" for k, v in (s.get("driving_score_by_scenario") or {}).items())
        typer.echo(
            f"{who:<9} {report.get('driver')}: DS {s['driving_score']:.1f} ({per})  "
            f"infractions/km {s['infractions_per_km']:.2f}  collisions "
            f"{sum(s['infractions'].get(k, 0) for k in ('collision_vehicle', 'collision_static'))}"
        )
    verdict = "better" if ci.low > margin else "NOT significantly better"
    typer.echo(
        f"paired DS difference {ci.mean:+.2f} over {ci.n} episodes, {100 * confidence:.0f} % CI "
        f"[{ci.low:+.2f}, {ci.high:+.2f}] ({resamples} resamples, seed {seed}): {verdict} (margin {margin:g})"
    )


def _eval_report(path: Path) -> dict[str, Any]:
    """A `sim eval --json` report; anything else is one clear error naming the file."""
    import json

    from roadloop_sim.errors import SimError

    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimError(f"{path}: no such eval report") from None
    except (OSError, ValueError) as err:
        raise SimError(f"{path}: cannot read the eval report: {err}") from err
    if not isinstance(report, dict) or not isinstance(report.get("episodes"), list) or "summary" not in report:
        raise SimError(f"{path}: not a `roadloop sim eval --json` report (no summary/episodes)")
    return report


@app.command("scenarios")
def scenarios_cmd(
    scenarios_file: Path | None = typer.Option(
        None, "--scenarios-file", help="Scenario set (default config/scenarios.yaml)."
    ),
) -> None:
    """List the scenarios (highway-env and CARLA) with their route, time limit, cruise speed and seeds."""
    from roadloop_sim.carla_sim import carla_scenario_set
    from roadloop_sim.scenarios import load_scenarios

    path = _scenarios_path(scenarios_file)
    for backend, sset in (("highway", load_scenarios(path)), ("carla", carla_scenario_set(path))):
        for sc in sset.scenarios.values():
            typer.echo(
                f"{backend:<8} {sc.name:<16} {sc.env:<14} route {sc.route_length_m:5.0f} m  "
                f"limit {sc.max_duration_s:3.0f} s  cruise {sc.cruise_speed:4.1f} m/s  "
                f"seeds {list(sc.seeds)}  {sc.description}"
            )
