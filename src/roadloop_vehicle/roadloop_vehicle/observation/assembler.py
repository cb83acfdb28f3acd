"""ObservationAssembler: the vehicle side of the shared feature code.

It decodes only the roles the observation spec consumes and hands them to the
very `FrameSynchronizer` and `compute_features` the dataset builder uses, so the
policy sees on the car exactly what it was trained on.

Route targets (`route_source`), as the vehicle supports them: `topic` -- from the route role's
topic, as in training; `none` -- the model has no route input and none is read; `hindsight` --
the model was trained on the logged future path, which no car can observe: its route input is
fed from the route role's topic (a planner's route stands in for where the drive went), and a
spec without a route role is refused.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rosbags.typesys.store import Typestore

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import RoadloopError
from roadloop_core.features import Features, FrameSynchronizer, compute_features
from roadloop_core.registry import TopicRegistry
from roadloop_vehicle.errors import ObservationError

__all__ = ["ObservationAssembler"]


class ObservationAssembler:
    """`step(role, cdr_bytes) -> list[Features]` (usually zero or one)."""

    def __init__(self, spec: ObservationSpec, registry: TopicRegistry, typestore: Typestore) -> None:
        if spec.route_source == "hindsight" and spec.route is None:
            raise ObservationError(
                "observation: route_source hindsight, route null: the model has a route input, which a vehicle "
                "cannot fill from the logged future; name the route role the car's planner publishes (observation."
                "route), or retrain with route_source: none"
            )
        self.spec = spec
        self.typestore = typestore
        self.sync = FrameSynchronizer(spec, onboard=True)
        roles = spec.roles(onboard=True)
        self.typenames = {role: registry[role].type for role in roles}
        self.topics = {role: registry[role].name for role in roles}

    @property
    def drops(self) -> Counter[str]:
        return self.sync.drops

    def wants(self, role: str) -> bool:
        return role in self.typenames

    def decode(self, role: str, data: bytes | memoryview) -> Any:
        try:
            # A memoryview: rosbags then slices off the CDR header without copying, so an image's pixels
            # stay a view of the received bytes all the way to `image_to_numpy` (the resize copies).
            return self.typestore.deserialize_cdr(memoryview(data), self.typenames[role])
        except Exception as err:  # rosbags raises plain struct/Index errors on truncated CDR
            raise ObservationError(f"{self.topics[role]}: cannot decode {self.typenames[role]}: {err!r}") from err

    def step(self, role: str, data: bytes | memoryview) -> list[Features]:
        if role not in self.typenames:
            return []
        msg = self.decode(role, data)
        try:
            return [compute_features(frame, self.spec) for frame in self.sync.push(role, msg)]
        except RoadloopError as err:
            raise ObservationError(f"{self.topics[role]}: {err}") from err

    def push_decoded(self, role: str, msg: Any) -> list[Features]:
        """Same as `step` for an already-decoded message (the simulator hands those over)."""
        if role not in self.typenames:
            return []
        try:
            return [compute_features(frame, self.spec) for frame in self.sync.push(role, msg)]
        except RoadloopError as err:
            raise ObservationError(f"{self.topics[role]}: {err}") from err
