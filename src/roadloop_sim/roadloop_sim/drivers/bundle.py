"""`--driver bundle:PATH`: a trained model bundle driving in the simulator through the onboard pipeline.

The driver is the vehicle's own `roadloop_vehicle.pipeline.Pipeline` (observation
assembly -> policy runtime -> controller -> safety supervisor) fed the simulator's
serialized messages (`wants_raw`), exactly as a bag replay or the car feeds it, with
the parameters of config/vehicle.yaml; the bundle is verified against the vehicle's
public key (`drive_node.public_key`) like any bundle the car would load.

Between two policy frames the last command is repeated (what the actuators do);
before the first frame of an episode the car holds its speed, straight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roadloop_core.registry import TopicRegistry
from roadloop_sim.errors import DriverError
from roadloop_sim.protocol import Observation
from roadloop_sim.sensor_messages import MessageFactory
from roadloop_vehicle.params import VehicleParams
from roadloop_vehicle.pipeline import Pipeline

__all__ = ["BundleDriver"]


class BundleDriver:
    name = "bundle"
    wants_raw = True

    def __init__(
        self,
        bundle: Path,
        registry: TopicRegistry,
        *,
        params: VehicleParams,
        public_key: Path | None = None,
    ) -> None:
        self.pipeline = Pipeline(params, bundle, registry=registry, public_key=public_key)
        refused = [e for e in self.pipeline.manager.drain_events() if e.kind == "refused"]
        if refused:
            raise DriverError(f"driver bundle:{bundle}: bundle refused: {refused[0].reason}")
        self.pipeline.manager.begin_frame()  # activate now: every episode is driven by this one model
        model = self.pipeline.manager.active
        self.name = f"bundle:{model.label}" if model is not None else "bundle"
        self.registry = self.pipeline.registry
        self.factory = MessageFactory(self.registry.typestore)
        self.last_trajectory: Any = None
        self._last_command: Any = None
        self.frames = 0

    def reset(self, scenario: str, seed: int) -> None:
        self.pipeline.reset()
        self.last_trajectory = None
        self._last_command = None

    def act(self, obs: Observation) -> Any:
        for raw in obs.raw:
            for out in self.pipeline.step(raw):
                if out.role == "command":
                    self._last_command = out.msg
                elif out.role == "trajectory":
                    self.last_trajectory = out.msg
                    self.frames += 1
        if self._last_command is not None:
            return self._last_command
        odom = obs.messages.get(self.registry["odometry"].name)
        speed = float(odom.twist.twist.linear.x) if odom is not None else 0.0
        return self.factory.command(obs.time_ns, 0.0, speed)
