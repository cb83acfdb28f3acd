"""Simulation speed: real-time factor with the camera rendered, and what recording a bag costs.

- `rtf <scenario>`: simulated seconds per wall second of the highway-env backend alone (fixed
  command, every registry sensor message built, the camera raster rendered at the default
  resolution), target >= 5x on one core;
- `closed-loop rtf (expert)`: the same with the expert deciding every policy period;
- `record/eval steps ratio`: steps/s of the same expert episode written to an mcap bag vs not
  written, measured side by side (target >= 0.8).
"""

from __future__ import annotations

import time

from benchmarks.common import Bench
from roadloop_core.bag import BagWriter
from roadloop_core.config import config_dir
from roadloop_core.registry import load_registry
from roadloop_sim.drivers import ExpertDriver
from roadloop_sim.episode import run_episode
from roadloop_sim.highway import HighwayEnvSimulator
from roadloop_sim.scenarios import load_scenarios
from roadloop_sim.sensor_messages import MessageFactory


def run(bench: Bench) -> None:
    scenarios = load_scenarios(config_dir() / "scenarios.yaml")
    registry = load_registry(config_dir() / "topics.yaml")
    sim = HighwayEnvSimulator(scenarios, registry)
    cfg = scenarios.simulation
    factory = MessageFactory(registry.typestore)
    cam = f"{cfg.camera.width}x{cfg.camera.height}"
    steps = 60 if bench.quick else 200  # policy periods (10 Hz): 6 s or 20 s of simulated time
    for name in ("highway_light", "highway_dense", "racetrack"):
        res = sim.reset(name, 0)
        sim.step(factory.command(res.time_ns, 0.0, 15.0))  # warm the renderer
        res = sim.reset(name, 0)
        t0 = time.perf_counter()
        n = 0
        while n < steps and not res.truth.done:
            res = sim.step(factory.command(res.time_ns, 0.0, 15.0))
            n += 1
        wall = time.perf_counter() - t0
        sim_s = n / cfg.policy_rate_hz
        rtf = sim_s / wall
        bench.figure(
            f"rtf {name} (camera {cam})",
            rtf,
            "x",
            target=">= 5",
            ok=rtf >= 5.0,
            detail=f"{n * cfg.substeps / wall:.0f} physics steps/s at {cfg.sim_rate_hz} Hz",
        )

    sim.reset("highway_dense", 0)
    t0 = time.perf_counter()
    frames = 50 if bench.quick else 200
    for _ in range(frames):
        sim.camera_frame()  # the camera alone: what one 10 Hz frame costs at the default resolution
    per_frame_ms = (time.perf_counter() - t0) / frames * 1e3
    bench.figure(f"camera render {cam}", per_frame_ms, "ms/frame", detail="highway_dense, offscreen pygame")

    def episode(record: bool, tag: str) -> tuple[float, float]:
        writer = None
        if record:
            writer = BagWriter(
                bench.workdir / f"bag-{tag}", distro=registry.typestore, custom_data={"roadloop.driver": "expert"}
            )
            for spec in registry.recorded():
                writer.add_topic(spec.name, spec.type, spec.qos)
        t0 = time.perf_counter()
        log = run_episode(
            sim, ExpertDriver(), "highway_dense", 1, registry=registry, cfg=cfg, driver_label="expert", writer=writer
        )
        if writer is not None:
            writer.close()
        wall = time.perf_counter() - t0
        return len(log.samples) / wall, log.duration_s / wall

    rounds = 1 if bench.quick else 2
    plain = [episode(False, f"p{i}") for i in range(rounds)]
    recorded = [episode(True, f"r{i}") for i in range(rounds)]
    best_plain = max(p[0] for p in plain)
    best_rec = max(r[0] for r in recorded)
    bench.figure(
        "closed-loop rtf highway_dense (expert)",
        max(p[1] for p in plain),
        "x",
        target=">= 5",
        ok=max(p[1] for p in plain) >= 5.0,
    )
    bench.figure("closed-loop rtf highway_dense (expert, recording)", max(r[1] for r in recorded), "x")
    ratio = best_rec / best_plain
    bench.figure(
        "record/eval steps ratio",
        ratio,
        "",
        target=">= 0.8",
        ok=ratio >= 0.8,
        detail=f"{best_rec:.0f} vs {best_plain:.0f} physics steps/s (best of {rounds})",
    )
    sim.close()
