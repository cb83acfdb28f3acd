"""Recording episodes as rosbag2 mcap bags (one per episode), including expert interventions.

`record_episodes(out, ...)` runs `--episodes` episodes and writes `out/<NNN>_<scenario>_s<seed>/`.
A bag is written under a hidden `.partial` name and renamed only once closed, so a folder
with the final name is always a complete bag. A `.partial/<bag>` left by a killed run holds
every chunk that run flushed: it is never deleted, but moved aside to
`.partial/<bag>.interrupted[-N]` (said on stderr) where `roadloop bag reindex` recovers it.
Custom data: roadloop.scenario, roadloop.seed, roadloop.episode, roadloop.driver,
roadloop.intervention (+ roadloop.takeover_s).

Interventions (the loop's round 2): `intervene_on=EVAL_JSON` replays every failed episode of a
`roadloop sim eval` report with the same scenario, seed and driver, lets the expert take over
`takeover_lead_s` before the first infraction (from the start if the route was simply not
finished) and records from the takeover on, so the bag holds the expert's corrections in the
states the policy led into.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from roadloop_core.bag import BagWriter
from roadloop_core.fsio import fsync_dir, fsync_tree
from roadloop_core.registry import TopicRegistry
from roadloop_sim.drivers import ExpertDriver, driver_name, make_driver
from roadloop_sim.drivers.expert_labels import ExpertLabeler
from roadloop_sim.episode import EpisodeLog, run_episode
from roadloop_sim.errors import SimError
from roadloop_sim.highway import HighwayEnvSimulator
from roadloop_sim.metrics import episode_metrics
from roadloop_sim.parallel import PerProcess, map_episodes, worker_count
from roadloop_sim.protocol import Simulator
from roadloop_sim.scenarios import ScenarioSet, episode_plan

if TYPE_CHECKING:
    from roadloop_vehicle.params import VehicleParams

__all__ = ["FAILURE_WINDOW_S", "EpisodeJob", "RecordedEpisode", "interventions_from_report", "label_counts",
           "record_episodes"]  # fmt: skip

# A labelled state this long before an infraction counts as a "failure" state (the lead-up the expert corrects).
FAILURE_WINDOW_S = 3.0


@dataclass(frozen=True)
class EpisodeJob:
    index: int
    scenario: str
    seed: int
    driver: str
    takeover_s: float | None = None


@dataclass(frozen=True)
class RecordedEpisode:
    path: Path
    job: EpisodeJob
    metrics: dict[str, Any]


def interventions_from_report(report_path: Path, lead_s: float = 2.0, driver: str | None = None) -> list[EpisodeJob]:
    """The failed episodes of an eval report as takeover jobs (expert from failure - lead_s)."""
    try:
        report = json.loads(Path(report_path).read_text())
        episodes = report["episodes"]
        default_driver = str(report.get("driver", "expert"))
    except FileNotFoundError:
        raise SimError(f"{report_path}: no such eval report") from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise SimError(f"{report_path}: not a roadloop sim eval report ({type(err).__name__}: {err})") from err
    jobs = []
    for i, ep in enumerate(episodes):
        try:
            if ep["success"]:
                continue
            first = ep.get("first_infraction_s")
            takeover = max(0.0, float(first) - lead_s) if first is not None else 0.0
            jobs.append(
                EpisodeJob(
                    int(ep.get("index", i)), str(ep["scenario"]), int(ep["seed"]), driver or default_driver, takeover
                )
            )
        except (KeyError, TypeError, ValueError) as err:
            raise SimError(f"{report_path}: episodes[{i}]: missing or bad field {err}") from err
    return jobs


def label_counts(log: EpisodeLog) -> dict[str, int]:
    """How many labelled states of a DAgger episode were of each kind (a state may be several)."""
    starts = [i.t for i in log.infractions]
    near_failure = [any(t0 - FAILURE_WINDOW_S <= s.t <= t0 for t0 in starts) for s in log.labelled]
    return {
        "states": len(log.labelled),
        "failure": sum(near_failure),
        "near_miss": sum(s.near_miss for s in log.labelled),
        "disagreement": sum(s.disagreement for s in log.labelled),
        "expert_drove": sum(s.expert_drove for s in log.labelled),
        "other": sum(not (f or s.near_miss or s.disagreement) for f, s in zip(near_failure, log.labelled, strict=True)),
    }


def _keep_interrupted(partial: Path) -> Path:
    """Move a killed run's unfinished bag out of the way (never delete it): `<bag>.interrupted[-N]`."""
    n, aside = 1, partial.with_name(f"{partial.name}.interrupted")
    while aside.exists():
        n += 1
        aside = partial.with_name(f"{partial.name}.interrupted-{n}")
    os.replace(partial, aside)
    fsync_dir(partial.parent)
    print(
        f"roadloop: kept the unfinished bag of an interrupted run as {aside} "
        f"(recover what it holds with `roadloop bag reindex {aside}`)",
        file=sys.stderr,
    )
    return aside


def record_episodes(
    out: Path,
    *,
    scenarios: str | None = None,
    episodes: int = 2,
    seed: int = 0,
    driver: str = "expert",
    intervene_on: Path | None = None,
    takeover_lead_s: float = 2.0,
    scenario_set: ScenarioSet,
    registry: TopicRegistry,
    vehicle: VehicleParams | None = None,
    simulator: Simulator | None = None,
    progress: bool = True,
    distro: str | None = None,
    labeler: ExpertLabeler | None = None,
    beta: float = 0.0,
    jobs: int = 1,
) -> list[RecordedEpisode]:
    """Record episodes (or the interventions of an eval report) as bags under `out`.

    `vehicle`: the onboard parameters for a `bundle:` driver (of `driver` or of the report's episodes).
    `distro` is the ROS distro whose rosbag2 must read the bags (humble: metadata version 5, jazzy:
    9); default the registry's typestore. `labeler` (DAgger): the expert labels every state the driver
    visits, and drives each state with probability `beta` (custom data roadloop.dagger=true); the bags
    then also hold the registry's expert_command / expert_trajectory topics (the labels).
    `jobs`: worker processes for the episodes (0 = one per core); the bags are the same for any.
    """
    if labeler is not None and intervene_on is not None:
        raise SimError("record: labelling with the expert (DAgger) and replaying interventions are exclusive")
    if not 0.0 <= beta <= 1.0:
        raise SimError(f"record: beta must be within [0, 1], got {beta}")
    bag_distro = distro or registry.typestore
    if intervene_on is not None:
        todo = interventions_from_report(intervene_on, takeover_lead_s, None if driver == "expert" else driver)
    else:
        plan = episode_plan(scenario_set.select(scenarios), episodes, seed)
        todo = [EpisodeJob(k, sc.name, s, driver) for k, (sc, s) in enumerate(plan)]
    for job in todo:
        scenario_set.get(job.scenario)  # fail before any work on an unknown name
    workers = worker_count(jobs, len(todo), None if simulator is None else "a given simulator (e.g. one CARLA server)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def final_of(job: EpisodeJob) -> Path:
        suffix = "_intervention" if job.takeover_s is not None else "_dagger" if labeler is not None else ""
        return out / f"{job.index:03d}_{job.scenario}_s{job.seed}{suffix}"

    # every clash is found, and every killed run's bag moved aside, before the first episode runs
    for job in todo:
        final = final_of(job)
        if final.exists():
            raise SimError(f"{final}: already exists (choose another --out or remove it)")
    for job in todo:
        partial = out / ".partial" / final_of(job).name
        if partial.exists() or partial.is_symlink():
            _keep_interrupted(partial)  # a killed run's flushed chunks: recoverable, so never deleted
    sims: PerProcess[Simulator] = PerProcess(lambda: simulator or HighwayEnvSimulator(scenario_set, registry))
    cfg = scenario_set.simulation
    done: list[RecordedEpisode] = []
    total_m = sum(scenario_set.get(j.scenario).route_length_m for j in todo)
    bar = tqdm(
        total=round(total_m),
        desc=f"recording {len(todo)} episode(s)" + (f" on {workers} workers" if workers > 1 else ""),
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} m of route [{elapsed}<{remaining}]",
        disable=not progress,
    )
    # one process moves the bar as the car drives; workers report each episode's metres when it ends
    on_step = (lambda dm: bar.update(dm)) if workers == 1 else None

    def one(job: EpisodeJob) -> tuple[RecordedEpisode, float]:
        final = final_of(job)
        partial = out / ".partial" / final.name
        partial.parent.mkdir(exist_ok=True)
        drv = make_driver(job.driver, registry, vehicle)
        label = driver_name(job.driver, drv)
        custom = {
            "roadloop.scenario": job.scenario,
            "roadloop.seed": str(job.seed),
            "roadloop.episode": str(job.index),
            "roadloop.driver": label if job.takeover_s is None else f"{label}+expert",
            "roadloop.intervention": "true" if job.takeover_s is not None else "false",
        }
        if job.takeover_s is not None:
            custom["roadloop.takeover_s"] = f"{job.takeover_s:.3f}"
        if labeler is not None:
            custom |= {"roadloop.dagger": "true", "roadloop.beta": f"{beta:g}"}
        writer = BagWriter(partial, distro=bag_distro, custom_data=custom)
        label_roles = [registry[r] for r in ("expert_command", "expert_trajectory")] if labeler else []
        for spec in [*registry.recorded(), *label_roles]:
            writer.add_topic(spec.name, spec.type, spec.qos)
        try:
            log = run_episode(
                sims.get(),
                drv,
                job.scenario,
                job.seed,
                registry=registry,
                cfg=cfg,
                driver_label=custom["roadloop.driver"],
                writer=writer,
                takeover_driver=ExpertDriver(distro=registry.typestore) if job.takeover_s is not None else None,
                takeover_s=job.takeover_s,
                on_step=on_step,
                labeler=labeler,
                beta=beta,
            )
        finally:
            writer.close()
        fsync_tree(partial)
        os.replace(partial, final)
        fsync_dir(final.parent)
        metrics = episode_metrics(log)
        if labeler is not None:
            metrics["labelled"] = label_counts(log)
        return RecordedEpisode(final, job, metrics), (log.progress_m if on_step is not None else 0.0)

    try:
        for rec, driven_m in map_episodes(one, todo, workers):
            bar.update(max(0.0, scenario_set.get(rec.job.scenario).route_length_m - driven_m))
            done.append(rec)
    finally:
        bar.close()
        staging = out / ".partial"
        if staging.is_dir() and not any(staging.iterdir()):
            staging.rmdir()
        sim_here = sims.here()
        if simulator is None and sim_here is not None:
            sim_here.close()
    return done
