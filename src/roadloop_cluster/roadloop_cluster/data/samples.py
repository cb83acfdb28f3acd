"""SampleBuilder: the builder's pure core, decoded messages in -> labelled samples out.

Features come from the shared `roadloop_core.features` code (what the vehicle runs);
this class adds what only an offline builder can know, the future: K ego poses at
dt from interpolated odometry, expressed in the frame's ego frame, and the driver's
recorded command nearest the frame. A frame waits (bounded: horizon x rate frames)
until odometry covers its whole horizon; frames at the end of a bag without a full
future are dropped as `no_future`.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import COMMAND_ARRAY, WAYPOINTS_ARRAY
from roadloop_core.features import Features, FrameSynchronizer, Pose2D, compute_features
from roadloop_core.features.geometry import bracket, interpolate_odometry, to_ego_frame
from roadloop_core.features.msg_fields import OdomRef
from roadloop_core.stamps import header_stamp_ns

__all__ = ["Sample", "SampleBuilder"]


@dataclass(frozen=True)
class Sample:
    """One frame's features and its labels, both by dataset array name (`roadloop_core.contract.tensors`)."""

    features: Features
    labels: dict[str, np.ndarray]  # waypoints (K, 2) float32 ego frame; command (2,) float32 steering rad, speed m/s


class SampleBuilder:
    """`step(role, msg)` -> samples whose labels became known; `finish()` at the end of the bag."""

    def __init__(self, spec: ObservationSpec, command_role: str, command_slop_s: float) -> None:
        self.spec = spec
        self.command_role = command_role
        self.sync = FrameSynchronizer(spec)
        self.drops: Counter[str] = Counter()
        self._cmd_slop = round(command_slop_s * 1e9)
        self._horizon_ns = [round(k * spec.label_dt_s * 1e9) for k in range(1, spec.label_horizon + 1)]
        self._odom: deque[OdomRef] = deque()
        self._cmds: deque[tuple[int, Any]] = deque()
        self._pending: deque[tuple[Features, Pose2D]] = deque()

    def step(self, role: str, msg: Any, stamp_ns: int | None = None) -> list[Sample]:
        t = header_stamp_ns(msg) if stamp_ns is None else stamp_ns
        if role == self.command_role:
            if not self._cmds or t > self._cmds[-1][0]:
                self._cmds.append((t, msg))  # read only if a frame picks it
            return self._resolve(t) if self._pending else []
        is_odom = role == self.spec.odometry
        if is_odom and (not self._odom or t > self._odom[-1].stamp_ns):
            self._odom.append(OdomRef(t, msg))
        for frame in self.sync.push(role, msg, t):
            self._pending.append((compute_features(frame, self.spec), frame.pose))
        if not is_odom:
            return []
        return self._resolve(t)  # labels complete only when odometry advances

    def finish(self) -> list[Sample]:
        """End of the bag: frames without a full future horizon are dropped."""
        self.sync.flush()
        if self._pending:
            self.drops["no_future"] += len(self._pending)
            self._pending.clear()
        return []

    def all_drops(self) -> Counter[str]:
        return self.sync.drops + self.drops

    def _resolve(self, now_ns: int) -> list[Sample]:
        out: list[Sample] = []
        last_horizon = self._horizon_ns[-1]
        while self._pending and self._odom:
            feats, pose = self._pending[0]
            if self._odom[-1].stamp_ns < feats.stamp_ns + last_horizon:
                break  # the future is not recorded yet
            self._pending.popleft()
            sample = self._label(feats, pose)
            if sample is not None:
                out.append(sample)
        self._trim(now_ns)
        return out

    def _label(self, feats: Features, pose: Pose2D) -> Sample | None:
        slop = self.spec.slop_ns
        future = np.empty((len(self._horizon_ns), 2), dtype=np.float64)
        for k, dt in enumerate(self._horizon_ns):
            t = feats.stamp_ns + dt
            br = bracket(self._odom, t)
            if br is None or br[1].stamp_ns - t > slop or (t - br[0].stamp_ns > slop and br[1].stamp_ns != t):
                self.drops["label_odometry_gap"] += 1
                return None
            if br[1].stamp_ns == t:  # exact hit: the position needs no neighbour (nor its decoding)
                hit = br[1].sample()
                future[k] = (hit.x, hit.y)
            else:
                p = interpolate_odometry(br[0].sample(), br[1].sample(), t)
                future[k] = (p.x, p.y)
        best: tuple[int, Any] | None = None
        for cmd in self._cmds:  # nearest command; on a tie the later one (the reaction to this frame)
            if abs(cmd[0] - feats.stamp_ns) <= self._cmd_slop and (
                best is None or abs(cmd[0] - feats.stamp_ns) <= abs(best[0] - feats.stamp_ns)
            ):
                best = cmd
        if best is None:
            self.drops["command_missing"] += 1
            return None
        drive = best[1].drive
        waypoints = to_ego_frame(pose, future).astype(np.float32)
        command = np.array([drive.steering_angle, drive.speed], dtype=np.float32)
        return Sample(feats, {WAYPOINTS_ARRAY.name: waypoints, COMMAND_ARRAY.name: command})

    def _trim(self, now_ns: int) -> None:
        """Forget odometry and commands no pending or future frame can need (frames still inside the
        synchronizer are at most a slop older than the newest stamp, `now_ns`)."""
        oldest = self._pending[0][0].stamp_ns if self._pending else now_ns
        keep_from = oldest - 2 * max(self.spec.slop_ns, self._cmd_slop) - self.spec.period_ns
        while len(self._odom) > 2 and self._odom[1].stamp_ns < keep_from:
            self._odom.popleft()
        while len(self._cmds) > 1 and self._cmds[0][0] < keep_from - self._cmd_slop:
            self._cmds.popleft()
