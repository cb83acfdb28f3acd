"""SampleBuilder: the builder's pure core, decoded messages in -> labelled samples out.

Features come from the shared `roadloop_core.features` code (what the vehicle runs); this class
adds what only an offline builder can know, the future, from the label sources of
`build.labels` (`LabelConfig`): the K waypoints at dt (the logged future of an odometry role,
interpolated and expressed in the frame's ego frame, or the poses of a nav_msgs/Path role such
as an expert's plan), the command label (the `drive` of an AckermannDriveStamped role nearest
the frame, steering divided by `steering_ratio`), and with `route_source: hindsight` the route
target (the logged path `route_lookahead_m` ahead). A frame waits (bounded: horizon x rate
frames) until the label sources have advanced a whole horizon past it; frames at the end of a
bag without a full future are dropped as `no_future`. Labels that are a plan (a Path) need no
future: a frame waits only for the label slop, and the bag's last frames are labelled too (in a
DAgger drive those are the lead-up to the failure, the states that matter most).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from roadloop_cluster.data.config import LabelConfig
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import COMMAND_ARRAY, ROUTE_TARGET_ARRAY, WAYPOINTS_ARRAY
from roadloop_core.features import Features, FrameSynchronizer, Pose2D, compute_features
from roadloop_core.features.geometry import bracket, interpolate_odometry, to_ego_frame
from roadloop_core.features.msg_fields import OdomRef, route_points
from roadloop_core.stamps import header_stamp_ns

__all__ = ["LABEL_DROPS", "Sample", "SampleBuilder", "hindsight_target"]

# Reasons the builder drops a frame the synchronizer emitted.
LABEL_DROPS = ("no_future", "label_odometry_gap", "label_waypoints_short", "label_waypoints_missing", "command_missing")


@dataclass(frozen=True)
class Sample:
    """One frame's features and its labels, both by dataset array name (`roadloop_core.contract.tensors`)."""

    features: Features
    labels: dict[str, np.ndarray]  # waypoints (K, 2) float32 ego frame; command (2,) float32 steering rad, speed m/s


def hindsight_target(pose: Pose2D, path_xy: np.ndarray, lookahead_m: float) -> np.ndarray:
    """The map-frame point `lookahead_m` along the logged path from `pose` (its position, then the
    positions after it): the route target a planner following the drive would have given. Past the
    path's end the last segment is extended; a path that never moves extends along the heading."""
    pts = np.vstack([[pose.x, pose.y], np.asarray(path_xy, dtype=np.float64).reshape(-1, 2)])
    seg = np.diff(pts, axis=0)
    length = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(length)])
    if cum[-1] <= 1e-9:
        return np.array([pose.x + lookahead_m * math.cos(pose.yaw), pose.y + lookahead_m * math.sin(pose.yaw)])
    if lookahead_m >= cum[-1]:
        last = int(np.flatnonzero(length > 0)[-1])
        return np.asarray(pts[-1] + seg[last] / length[last] * (lookahead_m - cum[-1]), dtype=np.float64)
    j = int(np.searchsorted(cum, lookahead_m, side="right")) - 1
    frac = (lookahead_m - cum[j]) / length[j]
    return np.asarray(pts[j] + seg[j] * frac, dtype=np.float64)


class SampleBuilder:
    """`step(role, msg)` -> samples whose labels became known; `finish()` at the end of the bag.

    `waypoints_from_path`: the waypoint role is a nav_msgs/Path (an expert's plan, ego frame),
    not an odometry whose future is taken.
    """

    def __init__(self, spec: ObservationSpec, labels: LabelConfig, *, waypoints_from_path: bool = False) -> None:
        self.spec = spec
        self.labels = labels
        self.sync = FrameSynchronizer(spec)
        self.drops: Counter[str] = Counter()
        self._hindsight = spec.route_source == "hindsight"
        self._without = (ROUTE_TARGET_ARRAY.name,) if self._hindsight else ()
        self._path_role = labels.waypoints if waypoints_from_path else None
        # odometry whose future is read: the waypoint role's, and the ego's own for a hindsight route
        tracks = [] if waypoints_from_path else [labels.waypoints]
        if self._hindsight:
            tracks.append(spec.odometry)
        self._tracks: dict[str, deque[OdomRef]] = {r: deque() for r in dict.fromkeys(tracks)}
        self._label_slop = round(labels.slop_s * 1e9)
        self._horizon_ns = [round(k * spec.label_dt_s * 1e9) for k in range(1, spec.label_horizon + 1)]
        self._cmds: deque[tuple[int, Any]] = deque()
        self._paths: deque[tuple[int, Any]] = deque()
        self._pending: deque[tuple[Features, Pose2D]] = deque()
        self._clock = -(2**62)

    def step(self, role: str, msg: Any, stamp_ns: int | None = None) -> list[Sample]:
        t = header_stamp_ns(msg) if stamp_ns is None else stamp_ns
        self._clock = max(self._clock, t)
        track = self._tracks.get(role)
        if track is not None and (not track or t > track[-1].stamp_ns):
            track.append(OdomRef(t, msg))
        if role == self.labels.command and (not self._cmds or t > self._cmds[-1][0]):
            self._cmds.append((t, msg))  # read only if a frame picks it
        if role == self._path_role and (not self._paths or t > self._paths[-1][0]):
            self._paths.append((t, msg))
        for frame in self.sync.push(role, msg, t):
            self._pending.append((compute_features(frame, self.spec, without=self._without), frame.pose))
        return self._resolve() if self._pending else []

    def finish(self) -> list[Sample]:
        """End of the bag: frames without a full future horizon are dropped (plan labels need none)."""
        self.sync.flush()
        if self._pending and not self._tracks:
            out = [s for s in (self._label(*p) for p in self._pending) if s is not None]
            self._pending.clear()
            return out
        if self._pending:
            self.drops["no_future"] += len(self._pending)
            self._pending.clear()
        return []

    def all_drops(self) -> Counter[str]:
        return self.sync.drops + self.drops

    def _ready(self, t: int) -> bool:
        """Whether every label source has advanced a whole horizon past the frame at `t`."""
        if not self._tracks:  # a plan's waypoints and the command: the nearest within the slop have come
            return self._clock > t + self._label_slop
        until = t + self._horizon_ns[-1]
        return all(track and track[-1].stamp_ns >= until for track in self._tracks.values())

    def _resolve(self) -> list[Sample]:
        out: list[Sample] = []
        while self._pending and self._ready(self._pending[0][0].stamp_ns):
            feats, pose = self._pending.popleft()
            sample = self._label(feats, pose)
            if sample is not None:
                out.append(sample)
        self._trim()
        return out

    def _future(self, track: deque[OdomRef], t: int) -> np.ndarray | None:
        """Map-frame positions of `track` at t + k dt (k = 1..K), None on a gap wider than the slop."""
        slop = self.spec.slop_ns
        future = np.empty((len(self._horizon_ns), 2), dtype=np.float64)
        for k, dt in enumerate(self._horizon_ns):
            at = t + dt
            br = bracket(track, at)
            if br is None or br[1].stamp_ns - at > slop or (at - br[0].stamp_ns > slop and br[1].stamp_ns != at):
                return None
            if br[1].stamp_ns == at:  # exact hit: the position needs no neighbour (nor its decoding)
                hit = br[1].sample()
                future[k] = (hit.x, hit.y)
            else:
                p = interpolate_odometry(br[0].sample(), br[1].sample(), at)
                future[k] = (p.x, p.y)
        return future

    def _nearest(self, msgs: deque[tuple[int, Any]], t: int) -> Any | None:
        """The message nearest `t` within the label slop; on a tie the later one (the reaction to the frame)."""
        best: tuple[int, Any] | None = None
        for m in msgs:
            if abs(m[0] - t) <= self._label_slop and (best is None or abs(m[0] - t) <= abs(best[0] - t)):
                best = m
        return None if best is None else best[1]

    def _waypoints(self, t: int, pose: Pose2D) -> np.ndarray | None:
        if self._path_role is None:
            future = self._future(self._tracks[self.labels.waypoints], t)
            if future is None:
                self.drops["label_odometry_gap"] += 1
                return None
            return to_ego_frame(pose, future).astype(np.float32)
        plan = self._nearest(self._paths, t)
        if plan is None:
            self.drops["label_waypoints_missing"] += 1
            return None
        points = route_points(plan)  # ego frame at its stamp, as the policy's own trajectory
        if len(points) < self.spec.label_horizon:
            self.drops["label_waypoints_short"] += 1
            return None
        return points[: self.spec.label_horizon].astype(np.float32)

    def _route_target(self, t: int, pose: Pose2D) -> np.ndarray:
        ahead: list[tuple[float, float]] = []
        x, y, travelled = pose.x, pose.y, 0.0
        for ref in self._tracks[self.spec.odometry]:  # in stamp order; decoded only as far as the look-ahead
            if ref.stamp_ns <= t:
                continue
            if ref.stamp_ns > t + self._horizon_ns[-1] or travelled > self.spec.route_lookahead_m:
                break
            s = ref.sample()
            travelled += math.hypot(s.x - x, s.y - y)
            x, y = s.x, s.y
            ahead.append((x, y))
        path = np.array(ahead, dtype=np.float64).reshape(-1, 2)
        return to_ego_frame(pose, hindsight_target(pose, path, self.spec.route_lookahead_m)).astype(np.float32)

    def _label(self, feats: Features, pose: Pose2D) -> Sample | None:
        t = feats.stamp_ns
        waypoints = self._waypoints(t, pose)
        if waypoints is None:
            return None
        cmd = self._nearest(self._cmds, t)
        if cmd is None:
            self.drops["command_missing"] += 1
            return None
        drive = cmd.drive
        command = np.array([drive.steering_angle / self.labels.steering_ratio, drive.speed], dtype=np.float32)
        if self._hindsight:
            feats = Features(t, {**feats.values, ROUTE_TARGET_ARRAY.name: self._route_target(t, pose)})
        return Sample(feats, {WAYPOINTS_ARRAY.name: waypoints, COMMAND_ARRAY.name: command})

    def _trim(self) -> None:
        """Forget odometry and label messages no pending or future frame can need (frames still inside the
        synchronizer are at most a slop older than the newest stamp)."""
        oldest = self._pending[0][0].stamp_ns if self._pending else self._clock
        keep_from = oldest - 2 * max(self.spec.slop_ns, self._label_slop) - self.spec.period_ns
        for track in self._tracks.values():
            while len(track) > 2 and track[1].stamp_ns < keep_from:
                track.popleft()
        for msgs in (self._cmds, self._paths):
            while len(msgs) > 1 and msgs[0][0] < keep_from - self._label_slop:
                msgs.popleft()
