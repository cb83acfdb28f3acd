"""highway-env as a roadloop Simulator.

What it publishes (topic names/types from the registry, rates = min(registry rate, sim rate)):
camera = highway-env's TOP-DOWN raster centred on the ego (rotated so the ego faces right, or
map-aligned with `camera.align_with_ego: false`; rgb8; not a perspective camera), IMU (specific
force and yaw rate from the ego's motion, optional Gaussian noise), odometry (map pose, base_link
twist), GNSS (ENU -> WGS84 around a fixed origin), route (the current lane's centreline ahead,
latched) and a diagnostics status.

How it drives: AckermannDriveStamped -> ContinuousAction [acceleration, steering]. The steering
angle goes straight to the front wheel (ROS: + = left; highway-env's y axis points down, so the
sign flips). The commanded speed is tracked by a P controller a = k (v_cmd - v), limited by
`drive.acceleration` when it is > 0 and by `accel_range`.

Known highway-env traps handled here: SDL's dummy driver renders black frames (offscreen is
forced); ContinuousAction crashes in merge/roundabout/two-way (not offered, see scenarios.py);
off-road is not terminal in highway-env (counted here and terminal after `offroad_terminal_s`).
The physics is stepped here (road.act/road.step) rather than through env.step so that every
physics step yields IMU/odometry samples and no unused observation/reward is computed.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from roadloop_core.registry import TopicRegistry
from roadloop_sim.errors import ScenarioError, SimError
from roadloop_sim.geometry import arc_lengths, project, wrap_angle
from roadloop_sim.protocol import AgentState, EgoSample, PrivilegedState, StepResult, Truth, end_reason
from roadloop_sim.scenarios import Scenario, ScenarioSet
from roadloop_sim.sensor_messages import MessageFactory

__all__ = ["HighwayEnvSimulator"]

# highway-env draws nothing under SDL's "dummy" video driver; "offscreen" renders for real.
if os.environ.get("SDL_VIDEODRIVER") in (None, "", "dummy"):
    os.environ["SDL_VIDEODRIVER"] = "offscreen"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
# SDL otherwise turns SIGTERM and SIGINT into quit events nobody reads: a recording or evaluation
# would keep running when told to stop (and a worker process would outlive its pool)
os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")

FloatArray = npt.NDArray[np.float64]
LANE_SAMPLE_M = 1.0
SENSOR_ROLES = ("camera", "imu", "gnss", "odometry", "route", "diagnostics")


def _flip(points: FloatArray) -> FloatArray:
    """highway-env frame (y down) -> ROS map frame (y up)."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, 1] = -out[:, 1]
    return out


class HighwayEnvSimulator:
    """The Simulator protocol on highway-env. One instance runs one episode at a time."""

    wheelbase = 5.0  # highway-env's kinematic bicycle: yaw rate = v sin(beta) / (L / 2), L = 5 m

    def __init__(self, scenarios: ScenarioSet, registry: TopicRegistry) -> None:
        self.scenarios = scenarios
        self.registry = registry
        self.cfg = self.scenarios.simulation
        self.factory = MessageFactory(self.registry.typestore)
        self._envs: dict[str, Any] = {}
        self._env: Any = None
        self._scenario: Scenario | None = None
        rate = self.cfg.sim_rate_hz
        self._period = {
            role: max(1, round(rate / min(self.registry[role].rate_hz, rate)))
            for role in SENSOR_ROLES
            if role in self.registry.topics
        }

    # ----------------------------------------------------------------------------------- protocol
    def reset(self, scenario: str, seed: int) -> StepResult:
        sc = self.scenarios.get(scenario)
        self._scenario = sc
        self._seed = seed
        env = self._make_env(sc)
        self._env = env
        try:
            env.reset(seed=seed)
        except Exception as err:  # highway-env raises assorted errors for bad configs
            raise SimError(f"scenario '{sc.name}' ({sc.env}): reset failed: {type(err).__name__}: {err}") from err
        self._rng = np.random.default_rng(seed)
        self._k = 0
        ego = env.vehicle
        if not sc.npc_collisions:
            for v in env.road.vehicles:  # a pair is checked if either side checks: the ego still collides
                v.check_collisions = v is ego
        self._build_lanes(ego)
        self._prev = self._ego_kinematics()
        self._accel = (0.0, 0.0, 0.0)
        self._crashed = False
        self._offroad_steps = 0
        self._offroad_total = 0
        self._progress = 0.0
        self._done = False
        s, _ = project(self._route, self._route_s, *self._ego_xy())
        self._s_start = s
        self._s_last = s
        msgs: list[tuple[str, int, Any]] = []
        sample = self._sample()
        self._publish_due(msgs, sample)
        truth = Truth(None, sample.off_road, 0.0, self._route_length, False, "", (sample,))
        return StepResult(self._time_ns(), msgs, truth, self._privileged())

    def step(self, command: Any) -> StepResult:
        if self._env is None or self._scenario is None:
            raise SimError("step() before reset()")
        if self._done:
            raise SimError("step() after the episode ended; call reset()")
        env = self._env
        steer = float(command.drive.steering_angle)
        v_cmd = float(command.drive.speed)
        a_lim = float(command.drive.acceleration)
        lo, hi = self.cfg.accel_range
        max_steer = self.cfg.max_steering_angle
        dt = 1.0 / self.cfg.sim_rate_hz
        msgs: list[tuple[str, int, Any]] = []
        samples: list[EgoSample] = []
        collision: str | None = None
        for _ in range(self.cfg.substeps):
            a = self.cfg.speed_gain * (v_cmd - float(env.vehicle.speed))
            if a_lim > 0:
                a = min(max(a, -a_lim), a_lim)
            a = min(max(a, lo), hi)
            delta = -min(max(steer, -max_steer), max_steer)  # ROS left-positive -> highway-env y-down
            env.action_type.act(np.array([2 * (a - lo) / (hi - lo) - 1, delta / max_steer]))
            env.road.act()
            env.road.step(dt)
            env.steps += 1
            env.time += dt
            self._k += 1
            self._update_motion(dt)
            if env.vehicle.crashed and not self._crashed:
                self._crashed = True
                collision = self._collision_kind()
            sample = self._sample()
            samples.append(sample)
            self._offroad_steps = self._offroad_steps + 1 if sample.off_road else 0
            self._offroad_total += int(sample.off_road)
            self._update_progress()
            self._publish_due(msgs, sample)
        reason = end_reason(
            progress_m=self._progress,
            route_length_m=self._route_length,
            collision=collision,
            offroad_s=self._offroad_steps * dt,
            offroad_terminal_s=self.cfg.offroad_terminal_s,
            time_s=self._k / self.cfg.sim_rate_hz,
            max_duration_s=self._scenario.max_duration_s,
        )
        self._done = bool(reason)
        truth = Truth(
            collision=collision,
            off_road=samples[-1].off_road,
            progress_m=min(self._progress, self._route_length),
            route_length_m=self._route_length,
            done=self._done,
            reason=reason,
            samples=tuple(samples),
        )
        return StepResult(self._time_ns(), msgs, truth, self._privileged())

    def camera_frame(self) -> npt.NDArray[np.uint8]:
        """The camera raster now: (height, width, 3) uint8 RGB, top-down, centred on the ego."""
        if self._env is None:
            raise SimError("camera_frame() before reset()")
        frame = np.asarray(self._env.render(), dtype=np.uint8)
        if not self.cfg.camera.align_with_ego:
            return frame
        return self._rotate_to_ego(frame, float(self._env.vehicle.heading))

    def _render_size(self) -> tuple[int, int]:
        """(width, height) highway-env renders: a square around the ego large enough to rotate when aligned."""
        cam = self.cfg.camera
        if not cam.align_with_ego:
            return cam.width, cam.height
        cx, cy = cam.centering[0] * cam.width, cam.centering[1] * cam.height
        reach = max(math.hypot(x - cx, y - cy) for x in (0, cam.width) for y in (0, cam.height))
        side = 2 * math.ceil(reach) + 2
        return side, side

    def _rotate_to_ego(self, frame: npt.NDArray[np.uint8], heading: float) -> npt.NDArray[np.uint8]:
        """Nearest-pixel rotation of the square render (ego at its centre) so the ego faces +u."""
        cam = self.cfg.camera
        du = np.arange(cam.width) + 0.5 - cam.centering[0] * cam.width
        dv = np.arange(cam.height) + 0.5 - cam.centering[1] * cam.height
        u, v = np.meshgrid(du, dv)
        c, s = math.cos(heading), math.sin(heading)  # screen axes: x right, y down, as highway-env's
        side = frame.shape[0]
        x = np.clip(np.floor(side / 2 + c * u - s * v).astype(np.intp), 0, side - 1)
        y = np.clip(np.floor(side / 2 + s * u + c * v).astype(np.intp), 0, side - 1)
        return np.ascontiguousarray(frame[y, x])

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self._env = None

    # ---------------------------------------------------------------------------------- internals
    def _make_env(self, sc: Scenario) -> Any:
        if sc.name in self._envs:
            return self._envs[sc.name]
        import gymnasium as gym
        import highway_env  # noqa: F401  (registers the environments)

        cam = self.cfg.camera
        render_w, render_h = self._render_size()
        config: dict[str, Any] = {
            **sc.env_config,
            "action": {
                "type": "ContinuousAction",
                "longitudinal": True,
                "lateral": True,
                "acceleration_range": list(self.cfg.accel_range),
                "steering_range": [-self.cfg.max_steering_angle, self.cfg.max_steering_angle],
            },
            "observation": {"type": "Kinematics"},
            "simulation_frequency": self.cfg.sim_rate_hz,
            "policy_frequency": self.cfg.policy_rate_hz,
            "screen_width": render_w,
            "screen_height": render_h,
            "scaling": cam.scaling,
            "centering_position": [0.5, 0.5] if cam.align_with_ego else list(cam.centering),
            "offscreen_rendering": True,
            "show_trajectories": False,
            "duration": 10_000,
        }
        try:
            with warnings.catch_warnings():
                # racetrack-v0/u-turn-v0 are "out of date" only in favour of connected-lane variants;
                # v0 is what was tested with ContinuousAction here, so the notice is noise for users
                warnings.filterwarnings("ignore", message=".*is out of date.*")
                env = gym.make(sc.env, render_mode="rgb_array", config=config).unwrapped
        except Exception as err:
            raise ScenarioError(f"scenario '{sc.name}': cannot create {sc.env}: {err}") from err
        self._envs[sc.name] = env
        return env

    def _build_lanes(self, ego: Any) -> None:
        """Centrelines of the ego's lane and its side lanes, following the lane graph for the route."""
        assert self._scenario is not None
        net = self._env.road.network
        start_from, start_to, start_id = ego.lane_index
        lane0 = net.get_lane(ego.lane_index)
        s0, _ = lane0.local_coordinates(ego.position)
        need = s0 + self._scenario.route_length_m + 200.0
        edges = [(start_from, start_to)]
        total = float(lane0.length)
        while total < need and len(edges) < 200:
            nxt = sorted(net.graph.get(edges[-1][1], {}).keys())
            if not nxt:
                break
            edge = (edges[-1][1], nxt[0])
            edges.append(edge)
            total += float(net.graph[edge[0]][edge[1]][0].length)
        n_lanes = len(net.graph[start_from][start_to])
        lanes = []
        for i in range(n_lanes):
            pts: list[FloatArray] = []
            for j, (a, b) in enumerate(edges):
                group = net.graph[a][b]
                lane = group[min(i, len(group) - 1)]
                first = max(0.0, s0 - 30.0) if j == 0 else 0.0
                last = min(float(lane.length), need if j == 0 else float(lane.length))
                ss = np.arange(first, last, LANE_SAMPLE_M)
                pts.append(np.array([lane.position(float(s), 0.0) for s in ss]))
            lanes.append(_flip(np.concatenate(pts)))
        self._lanes = tuple(lanes)
        self._lanes_s = tuple(arc_lengths(p) for p in lanes)
        self._route_lane = int(start_id)
        self._route = self._lanes[self._route_lane]
        self._route_s = self._lanes_s[self._route_lane]
        x, y = self._ego_xy()
        s_ego, _ = project(self._route, self._route_s, x, y)
        available = float(self._route_s[-1]) - s_ego - 10.0
        self._route_length = float(min(self._scenario.route_length_m, available))
        if self._route_length <= 10.0:
            raise SimError(f"scenario '{self._scenario.name}': the road ahead is only {available:.0f} m long")

    def _ego_xy(self) -> tuple[float, float]:
        p = self._env.vehicle.position
        return float(p[0]), -float(p[1])

    def _ego_kinematics(self) -> tuple[float, float, float, float]:
        """(vx, vy, yaw, speed) of the ego in the ROS map frame."""
        v = self._env.vehicle
        beta = math.atan(0.5 * math.tan(float(v.action.get("steering", 0.0)))) if hasattr(v, "action") else 0.0
        yaw = -float(v.heading)
        course = -(float(v.heading) + beta)
        sp = float(v.speed)
        return sp * math.cos(course), sp * math.sin(course), yaw, sp

    def _update_motion(self, dt: float) -> None:
        """Body-frame acceleration a_x = dv/dt, a_y = v * yaw rate (centripetal), and the yaw rate.

        Differentiating the kinematic model's velocity vector instead would turn every instant
        change of its slip angle (steering has no dynamics there) into a lateral-acceleration spike.
        """
        _, _, yaw0, sp0 = self._prev
        vx, vy, yaw, sp = self._ego_kinematics()
        yaw_rate = wrap_angle(yaw - yaw0) / dt
        self._accel = ((sp - sp0) / dt, sp * yaw_rate, yaw_rate)
        self._prev = (vx, vy, yaw, sp)

    def _sample(self) -> EgoSample:
        v = self._env.vehicle
        x, y = self._ego_xy()
        a_lon, a_lat, yaw_rate = self._accel
        return EgoSample(
            t=self._k / self.cfg.sim_rate_hz,
            x=x,
            y=y,
            yaw=-float(v.heading),
            speed=float(v.speed),
            accel_lon=a_lon,
            accel_lat=a_lat,
            yaw_rate=yaw_rate,
            off_road=not bool(v.on_road),
        )

    def _collision_kind(self) -> str:
        for obj in getattr(self._env.road, "objects", []):
            if getattr(obj, "crashed", False) or getattr(obj, "hit", False):
                return "static"
        return "vehicle"

    def _update_progress(self) -> None:
        x, y = self._ego_xy()
        # project only onto a window around the last position: a looping track can pass close to itself
        i0 = int(np.searchsorted(self._route_s, self._s_last - 20.0))
        i1 = int(np.searchsorted(self._route_s, self._s_last + 60.0)) + 2
        i0, i1 = max(0, i0), min(len(self._route), max(i1, i0 + 2))
        s, _ = project(self._route[i0:i1], self._route_s[i0:i1], x, y)
        self._s_last = s
        self._progress = max(self._progress, s - self._s_start)

    def _time_ns(self) -> int:
        return self.cfg.start_time_s * 1_000_000_000 + self._k * 1_000_000_000 // self.cfg.sim_rate_hz

    def _current_lane(self, x: float, y: float) -> int:
        best, best_d = 0, math.inf
        for i, (poly, s) in enumerate(zip(self._lanes, self._lanes_s, strict=True)):
            d = abs(project(poly, s, x, y)[1])
            if d < best_d:
                best, best_d = i, d
        return best

    def _publish_due(self, msgs: list[tuple[str, int, Any]], sample: EgoSample) -> None:
        k, stamp, reg, f = self._k, self._time_ns(), self.registry, self.factory
        due = [role for role, p in self._period.items() if k % p == 0]
        for role in due:
            name = reg[role].name
            if role == "camera":
                msgs.append((name, stamp, f.image(self.camera_frame(), stamp)))
            elif role == "imu":
                a_lon, a_lat, yaw_rate = self._accel
                n = self.cfg.imu_noise
                if n.accel_std > 0 or n.gyro_std > 0:
                    a_lon += float(self._rng.normal(0.0, n.accel_std))
                    a_lat += float(self._rng.normal(0.0, n.accel_std))
                    yaw_rate += float(self._rng.normal(0.0, n.gyro_std))
                msgs.append((name, stamp, f.imu(stamp, sample.yaw, a_lon, a_lat, yaw_rate)))
            elif role == "odometry":
                vx, vy, yaw, _ = self._prev
                c, s = math.cos(yaw), math.sin(yaw)
                v_lon, v_lat = c * vx + s * vy, -s * vx + c * vy
                msgs.append((name, stamp, f.odometry(stamp, sample.x, sample.y, yaw, v_lon, v_lat, self._accel[2])))
            elif role == "gnss":
                msgs.append((name, stamp, f.navsatfix(stamp, sample.x, sample.y, self.cfg.geodetic_origin)))
            elif role == "route":
                msgs.append((name, stamp, f.path(stamp, self._route_ahead(sample.x, sample.y))))
            elif role == "diagnostics":
                assert self._scenario is not None
                level = 0 if not (self._crashed or sample.off_road) else 1
                values = [
                    ("scenario", self._scenario.name),
                    ("seed", str(self._seed)),
                    ("progress_m", f"{self._progress:.1f}"),
                    ("route_length_m", f"{self._route_length:.1f}"),
                    ("collision", str(self._crashed).lower()),
                    ("off_road", str(sample.off_road).lower()),
                ]
                msgs.append((name, stamp, f.diagnostics(stamp, "roadloop_sim: episode", level, "", values)))

    def _route_ahead(self, x: float, y: float) -> FloatArray:
        """The current lane's centreline from just behind the ego to `route_publish_ahead_m` ahead (2 m apart)."""
        i = self._current_lane(x, y)
        poly, s = self._lanes[i], self._lanes_s[i]
        s_ego, _ = project(poly, s, x, y)
        ahead = np.arange(max(0.0, s_ego - 4.0), min(float(s[-1]), s_ego + self.cfg.route_publish_ahead_m), 2.0)
        return np.stack([np.interp(ahead, s, poly[:, 0]), np.interp(ahead, s, poly[:, 1])], axis=1)

    def _privileged(self) -> PrivilegedState:
        assert self._scenario is not None
        ego_v = self._env.vehicle
        x, y = self._ego_xy()
        others = tuple(
            AgentState(
                float(v.position[0]),
                -float(v.position[1]),
                -float(v.heading),
                float(v.speed),
                float(v.LENGTH),
                float(v.WIDTH),
            )
            for v in self._env.road.vehicles
            if v is not ego_v
        ) + tuple(
            AgentState(
                float(o.position[0]), -float(o.position[1]), -float(o.heading), 0.0, float(o.LENGTH), float(o.WIDTH)
            )
            for o in getattr(self._env.road, "objects", [])
            if getattr(o, "collidable", True) and getattr(o, "solid", True)
        )
        return PrivilegedState(
            ego=AgentState(x, y, -float(ego_v.heading), float(ego_v.speed), float(ego_v.LENGTH), float(ego_v.WIDTH)),
            lanes=self._lanes,
            route_lane=self._route_lane,
            wheelbase=self.wheelbase,
            vehicles=others,
            speed_limit=self._scenario.cruise_speed,
            max_steering_angle=self.cfg.max_steering_angle,
            speed_gain=self.cfg.speed_gain,
        )
