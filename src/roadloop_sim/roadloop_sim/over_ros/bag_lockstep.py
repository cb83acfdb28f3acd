"""A recorded bag through the onboard node processes in lockstep: the graph computes what `roadloop replay` does.

Replay steps its Pipeline on the bag's receive stamps: before each message the safety watchdog looks at
the clock, then the message goes through the drive stage and each frame it completes is judged. The
graph gets the same inputs in the same order when its /clock is stepped, never raced (a loaded machine
makes the run slower, never different):

    for each group of messages sharing a receive stamp r, in the bag's order:
      - a watchdog stop due at a slot s <= r (no command since s - staleness, see `SafetyCore.tick`):
        /clock <- s, then wait for the safety node's stop stamped s;
      - /clock <- r, the group's messages (the recorded CDR bytes, registry QoS), then wait for the
        command of each frame they complete (`FramePredictor`: the drive node's own assembler).

/clock takes only those values, so every watchdog decision the graph makes falls where replay makes one;
one that finds commands fresh stops nothing and so is the same whenever it runs. A stop is waited for
at the slot's own time: the safety node's watchdog timer runs every half period on /clock from 0 (it is
created before the node's first /clock), so it calls at every slot's time (`safety.core.watchdog_slot_ns`);
nodes that saw another /clock before keep another phase. /clock stays there until the stop came,
so no later message reaches a node before it (the frames of a recovering camera would otherwise clear it).
Where a stop is due is worked out here, before any message is sent, by a `SafetyCore` of the same
parameters fed the predicted frames: `lockstep_plan` is pure and the same for a bag, every time.
`BagLockstep` plays a plan through a `RosLink`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from roadloop_core.bag import RawMessage, open_bag
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import TopicRegistry, load_registry
from roadloop_core.typesys import typestore_for
from roadloop_sim.errors import DriverError
from roadloop_sim.over_ros.link import RosLink
from roadloop_sim.over_ros.lockstep import CommandBox, FramePredictor
from roadloop_vehicle.params import VehicleParams
from roadloop_vehicle.pipeline import PRODUCED_ROLES, load_observation_spec
from roadloop_vehicle.safety.core import SafetyCore
from roadloop_vehicle.safety.supervisor import observed_roles

__all__ = ["BagLockstep", "LockstepStep", "bag_inputs", "lockstep_plan", "plan_bag"]


@dataclass(frozen=True)
class LockstepStep:
    clock_ns: int  # /clock before the messages
    messages: list[RawMessage] = field(default_factory=list)
    awaits: list[int] = field(default_factory=list)  # the stamps of the commands this step must bring
    stop: bool = False  # a watchdog stop (awaits its slot), else a message group (awaits its frames)


def bag_inputs(bag_path: Path, registry: TopicRegistry) -> list[RawMessage]:
    """The bag's messages replay takes as input (every registry topic it holds but those the pipeline
    produces), in replay's order, as bytes."""
    with open_bag(bag_path) as bag:
        present = {t.name for t in bag.info.topics}
        inputs = [registry[r].name for r in registry.topics if registry[r].name in present and r not in PRODUCED_ROLES]
        return [RawMessage(m.topic, m.typename, m.timestamp_ns, bytes(m.data)) for m in bag.messages(topics=inputs)]


def lockstep_plan(
    messages: Iterable[RawMessage], params: VehicleParams, registry: TopicRegistry, observation: ObservationSpec
) -> list[LockstepStep]:
    """The steps that feed `messages` (in receive order) to the nodes as replay feeds them to its Pipeline."""
    s = params.safety
    watchdog = SafetyCore(
        s.safety, s.vehicle_limits, registry, s.diagnostics_period_s, observed_roles=observed_roles(observation)
    )
    predictor = FramePredictor(observation, registry)
    store = typestore_for(registry.typestore)
    roles = {t.name: role for role, t in registry.topics.items()}
    steps: list[LockstepStep] = []
    for r, group in groupby(messages, key=lambda m: m.timestamp_ns):
        batch = list(group)
        if watchdog.tick(r, {}) is not None:  # a stop, stamped with its slot's time
            assert watchdog.decided_at_ns is not None
            steps.append(LockstepStep(watchdog.decided_at_ns, awaits=[watchdog.decided_at_ns], stop=True))
        decoded = [(m.topic, r, store.deserialize_cdr(m.data, registry[roles[m.topic]].type))
                   for m in batch if m.topic in roles]  # fmt: skip
        frames = predictor.frames(decoded)
        for stamp in frames:
            watchdog.on_command(watchdog.frame_time(stamp, r), {}, None)
        steps.append(LockstepStep(r, batch, frames))
    return steps


def plan_bag(bag_path: Path, params: VehicleParams) -> list[LockstepStep]:
    """`lockstep_plan` of a bag, with the registry and observation spec `params` name (as replay reads them)."""
    registry = load_registry(params.path(params.drive.topics_config))
    return lockstep_plan(bag_inputs(bag_path, registry), params, registry, load_observation_spec(params))


class BagLockstep:
    """Plays lockstep steps through `link`; its commands arrive in `box` (the link's)."""

    REPEAT_CLOCK_S = 0.2  # /clock is best-effort: while a command is awaited, the current time is sent again

    def __init__(
        self, link: RosLink, box: CommandBox, *, deadline_s: float, check: Callable[[], None] | None = None
    ) -> None:
        """`deadline_s`: wall-clock seconds a command may take (passed only by a dead or hung node);
        `check`: called while waiting (raise there when a node died)."""
        self.link = link
        self.box = box
        self.deadline_s = deadline_s
        self.check = check

    def play(self, steps: Iterable[LockstepStep]) -> None:
        for step in steps:
            self.link.clock(step.clock_ns)
            self.link.publish(step.messages)
            for stamp in step.awaits:
                self._wait(stamp, step)

    def _wait(self, stamp: int, step: LockstepStep) -> None:
        what = f"the watchdog stop at /clock {step.clock_ns} ns" if step.stop else f"the frame stamped {stamp} ns"
        end = time.monotonic() + self.deadline_s
        while True:
            try:
                self.box.wait(stamp, min(self.REPEAT_CLOCK_S, max(0.0, end - time.monotonic())), what)
            except DriverError:
                if self.check is not None:
                    self.check()
                if time.monotonic() >= end:
                    raise DriverError(f"lockstep: no command for {what} within {self.deadline_s:g} s") from None
                self.link.clock(step.clock_ns)
                continue
            return
