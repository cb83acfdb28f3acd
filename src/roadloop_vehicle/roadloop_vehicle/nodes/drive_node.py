"""drive_node: the drive stage (observation -> policy -> controller) in one process.

It publishes the trajectory, one drive frame per observation frame on command_raw (what the
safety node judges; see `roadloop_vehicle.frame`) and the model's status on /diagnostics; the
stage (`roadloop_vehicle.drive.DriveStage`) is the one replay runs, this file only moves bytes.

Model loading (verification, ONNX session, warm-up) runs on a loader thread, never
in a message callback; the callback only picks up a loaded model between frames.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import load_registry
from roadloop_vehicle.drive import DriveCore, DriveStage
from roadloop_vehicle.model_manager.manager import ModelManager
from roadloop_vehicle.nodes.entry import node_main
from roadloop_vehicle.output_messages import Emit
from roadloop_vehicle.params import DriveParams, resolve_path
from roadloop_vehicle.ros.io import NodeIO

__all__ = ["DriveNode", "main", "wire_drive"]


@dataclass
class DriveNode:
    core: DriveCore
    loader: threading.Thread
    stop: threading.Event


def _load_loop(manager: ModelManager, params: DriveParams, base: Path, stop: threading.Event) -> None:
    """The loader thread: `offer`/`poll_current` report every fault as a `refused` event and never raise,
    so one bad bundle cannot end the thread and leave the car without later updates."""
    if params.bundle:
        manager.offer(resolve_path(params.bundle, base))
        return
    while not stop.is_set():
        manager.poll_current()
        stop.wait(params.model_manager.poll_period_s)


def wire_drive(io: NodeIO, base: Path, *, start_loader: bool = True) -> DriveNode:
    """Wire the drive core to `io`; relative paths in the parameters resolve against `base` (the config folder)."""
    params = io.parameters(DriveParams)
    registry = load_registry(resolve_path(params.topics_config, base))
    io.use_registry(registry)
    observation = ObservationSpec.from_config(resolve_path(params.observation_config, base))
    manager = ModelManager(params.model_manager, params.runtime, observation, resolve_path(params.public_key, base))
    core = DriveCore(params, registry, observation, manager)
    stage = DriveStage(core)
    publishers = {role: io.publisher(role) for role in ("trajectory", "command_raw", "diagnostics")}

    def send(emits: list[Emit]) -> None:
        # command_raw first: the safety node (and the actuators after it) wait on it, the trajectory's
        # serialisation can follow (the order across topics is no contract; replay keeps the stage's order)
        for e in sorted(emits, key=lambda e: e.role != "command_raw"):
            publishers[e.role](e.msg)
        for ev in stage.events:
            (io.warn if ev.kind in ("refused", "rolled_back", "fell_back") else io.info)(
                f"model {ev.kind} {ev.label} {ev.reason}"
            )

    def on_message(role: str, data: bytes, now_ns: int) -> None:
        send(stage.step(role, data, now_ns))

    def subscriber(role: str) -> Callable[[bytes, int], None]:
        return lambda data, now: on_message(role, data, now)

    for role in observation.roles(onboard=True):
        io.subscribe(role, subscriber(role))
    # the loader runs on the machine's time: its news goes out by that clock even while a replayed /clock stands
    io.timer(params.model_manager.poll_period_s, lambda: send(stage.tick(io.now_ns())), steady=True)
    stop = threading.Event()
    loader = threading.Thread(target=_load_loop, args=(manager, params, base, stop), name="model-loader", daemon=True)
    if start_loader:
        loader.start()
    observed = ", ".join(observation.roles(onboard=True))
    io.info(f"drive_node: observing {observed}; models from {params.bundle or 'current'}")
    return DriveNode(core, loader, stop)


def main(args: list[str] | None = None) -> None:
    node_main("drive_node", wire_drive, args)


if __name__ == "__main__":
    main()
