"""safety_node: gates the drive frames on /control/command_raw -> /control/command, and publishes /diagnostics.

A separate process from drive_node: a monitor must not share a process (or a GIL,
or a crash) with what it monitors. The stage (`roadloop_vehicle.safety.stage.SafetyStage`, which
replay runs too) judges each drive frame as it arrives and, looking at the clock twice per command
period, stops the car when frames stop coming; this file only moves bytes and time in and out.
Staleness and the watchdog run on `io.monotonic_ns()` (a wall-clock step must not delay
the detection of a dead camera or drive node); stamps of what it publishes are node-clock time.
Under use_sim_time both are the replayed /clock, so a played bag is judged on the bag's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import load_registry
from roadloop_vehicle.errors import InterfaceError
from roadloop_vehicle.nodes.entry import node_main
from roadloop_vehicle.output_messages import Emit
from roadloop_vehicle.params import SafetyParams, resolve_path
from roadloop_vehicle.ros.io import NodeIO
from roadloop_vehicle.safety.core import SafetyCore
from roadloop_vehicle.safety.stage import SafetyStage
from roadloop_vehicle.safety.supervisor import observed_roles

__all__ = ["SafetyNode", "main", "wire_safety"]


@dataclass
class SafetyNode:
    stage: SafetyStage

    @property
    def core(self) -> SafetyCore:
        return self.stage.core


def wire_safety(io: NodeIO, base: Path) -> SafetyNode:
    """Wire the safety stage to `io`; relative paths in the parameters resolve against `base` (the config folder)."""
    params = io.parameters(SafetyParams)
    registry = load_registry(resolve_path(params.topics_config, base))
    io.use_registry(registry)
    # the drive node's model reads these (its bundle must match this observation spec): they are monitored
    observed = observed_roles(ObservationSpec.from_config(resolve_path(params.observation_config, base)))
    core = SafetyCore(
        params.safety, params.vehicle_limits, registry, params.diagnostics_period_s, observed_roles=observed
    )
    stage = SafetyStage(core, registry)
    publishers = {role: io.publisher(role) for role in ("command", "diagnostics")}

    def send(emits: list[Emit]) -> None:
        for e in emits:
            publishers[e.role](e.msg)
        out = stage.last
        if emits and out is not None and out.changed:
            (io.info if not out.faults else io.warn)(f"safety: {out.state.value} {out.reason}")

    def seen(role: str) -> Callable[[bytes, int], None]:
        return lambda data, now: stage.seen(role, io.monotonic_ns())

    for role in stage.watched_roles:
        io.subscribe(role, seen(role))

    def on_frame(data: bytes, now_ns: int) -> None:
        mono = io.monotonic_ns()
        try:
            emits = stage.on_frame(data, mono, io.now_ns() - mono)
        except InterfaceError as err:  # not judged, so not a command: the watchdog stops the car if none follow
            io.error(f"safety: frame refused: {err}")
            return
        send(emits)

    def on_tick() -> None:
        mono = io.monotonic_ns()
        if mono > 0:  # under use_sim_time the clock reads 0 until the first /clock
            send(stage.tick(mono, io.now_ns() - mono))

    io.subscribe("command_raw", on_frame)
    # twice per period: every watchdog slot gets a look even when the timer runs late by up to half a period
    io.timer(core.tick_period_s / 2, on_tick)
    io.info(f"safety_node: gating {registry['command_raw'].name} -> {registry['command'].name}")
    return SafetyNode(stage)


def main(args: list[str] | None = None) -> None:
    node_main("safety_node", wire_safety, args)


if __name__ == "__main__":
    main()
