"""CARLA as a roadloop Simulator (client API 0.9.16).

- synchronous mode, fixed step 1 / sim_rate_hz (0.05 s at the default 20 Hz), the traffic
  manager synchronous too, seeded from the episode seed;
- sensors on the ego: front RGB camera (perspective), IMU, GNSS, collision and lane-invasion;
  odometry from the ego transform and velocities; all converted from CARLA's left-handed frame
  (x forward, y right, yaw clockwise in degrees) to ROS ENU (y -> -y, yaw -> -yaw, radians);
- the route: the map's waypoints from the scenario's spawn point, `waypoint.next(1 m)` for the
  route length (+ margin), with the same-direction side lanes (`get_left_lane/get_right_lane`);
- `AckermannDriveStamped` -> `carla.VehicleControl` (steer = -angle / max wheel angle; throttle
  and brake from the same speed loop as the highway backend) or, with `control: ackermann`,
  `carla.VehicleAckermannControl` (CARLA's own speed/steer controller);
- truth: collisions from the collision sensor (vehicles/walkers -> "vehicle", anything else ->
  "static"), off-road when no driving-lane waypoint lies under the ego (`project_to_road=False`),
  lane invasions counted in /diagnostics.
Unreachable server: "cannot reach CARLA at HOST:PORT within N s" (a TCP probe first, so this
error is the same with or without the client installed).
"""

from __future__ import annotations

import math
import queue
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from roadloop_core.config import dataclass_from_dict, load_yaml
from roadloop_core.registry import TopicRegistry
from roadloop_sim.errors import CarlaUnavailableError, ScenarioError, SimError
from roadloop_sim.geometry import arc_lengths, project, wrap_angle
from roadloop_sim.protocol import AgentState, EgoSample, PrivilegedState, StepResult, Truth, end_reason
from roadloop_sim.scenarios import Scenario, ScenarioSet, SimulationConfig, load_scenarios
from roadloop_sim.sensor_messages import MessageFactory

__all__ = [
    "CarlaCameraConfig",
    "CarlaConfig",
    "CarlaSimulator",
    "carla_scenario_set",
    "carla_scenarios",
    "load_carla_config",
    "probe_server",
]

FloatArray = npt.NDArray[np.float64]
SENSOR_ROLES = ("camera", "imu", "gnss", "odometry", "route", "diagnostics")


@dataclass(frozen=True)
class CarlaCameraConfig:
    width: int = 320
    height: int = 160
    fov: float = 90.0
    x: float = 1.5  # m ahead of the vehicle origin
    z: float = 2.4  # m above it


@dataclass(frozen=True)
class CarlaConfig:
    host: str = "localhost"
    port: int = 2000
    timeout_s: float = 10.0
    vehicle: str = "vehicle.lincoln.mkz_2020"
    control: str = "vehicle_control"
    camera: CarlaCameraConfig = field(default_factory=CarlaCameraConfig)
    scenarios: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.control not in ("vehicle_control", "ackermann"):
            raise ValueError(f"control must be vehicle_control or ackermann, not '{self.control}'")


def load_carla_config(path: Path, host: str | None = None, port: int | None = None) -> CarlaConfig:
    """The `carla:` section of a scenario set (config/scenarios.yaml); host/port may be overridden (CLI, env)."""
    raw = dict(load_yaml(path).get("carla") or {})
    if host is not None:
        raw["host"] = host
    if port is not None:
        raw["port"] = port
    return dataclass_from_dict(CarlaConfig, raw, f"{path}: carla")


def carla_scenarios(cfg: CarlaConfig, where: str = "carla.scenarios") -> dict[str, Scenario]:
    out = {}
    for name, body in cfg.scenarios.items():
        if not isinstance(body, dict):
            raise ScenarioError(f"{where}.{name}: expected a mapping")
        sc = dataclass_from_dict(Scenario, {"name": str(name), **body}, f"{where}.{name}")
        if not sc.env.startswith("carla:"):
            raise ScenarioError(f"{where}.{name}.env: must be carla:<Town>, not '{sc.env}'")
        out[str(name)] = sc
    return out


def carla_scenario_set(path: Path) -> ScenarioSet:
    """The CARLA scenarios as a ScenarioSet (shared `simulation:` settings), for record/evaluate."""
    base = load_scenarios(path)
    return ScenarioSet(
        simulation=base.simulation, scenarios=carla_scenarios(load_carla_config(path)), source=base.source
    )


def probe_server(host: str, port: int, timeout_s: float) -> None:
    """Raise CarlaUnavailableError unless something accepts TCP connections at host:port in time."""
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            with socket.create_connection((host, port), timeout=min(left, 1.0)):
                return
        except OSError as err:
            last = err
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    raise CarlaUnavailableError(
        f"cannot reach CARLA at {host}:{port} within {timeout_s:g} s ({last or 'timed out'})"
    ) from last


def _import_carla() -> Any:
    try:
        import carla
    except ImportError as err:
        raise CarlaUnavailableError(
            "the carla client is not installed (pip install carla==0.9.16, matching the server)"
        ) from err
    return carla


class CarlaSimulator:
    """The Simulator protocol on a CARLA server. Scenarios come from the `carla:` config section."""

    def __init__(self, carla_cfg: CarlaConfig, sim_cfg: SimulationConfig, registry: TopicRegistry) -> None:
        self.carla_cfg = carla_cfg
        self.cfg = sim_cfg
        self.registry = registry
        self.scenarios = carla_scenarios(self.carla_cfg)
        self.factory = MessageFactory(self.registry.typestore)
        rate = self.cfg.sim_rate_hz
        self._period = {
            role: max(1, round(rate / min(self.registry[role].rate_hz, rate)))
            for role in SENSOR_ROLES
            if role in self.registry.topics
        }
        self._actors: list[Any] = []
        self._queues: dict[str, queue.Queue[Any]] = {}
        self._client: Any = None
        self._world: Any = None
        self._scenario: Scenario | None = None

    # ------------------------------------------------------------------------------ connection
    def connect(self) -> None:
        c = self.carla_cfg
        probe_server(c.host, c.port, c.timeout_s)
        carla = _import_carla()
        try:
            self._client = carla.Client(c.host, c.port)
            self._client.set_timeout(c.timeout_s)
            self._client.get_server_version()
        except RuntimeError as err:  # the client raises RuntimeError on time-outs
            raise CarlaUnavailableError(
                f"cannot reach CARLA at {c.host}:{c.port} within {c.timeout_s:g} s ({err})"
            ) from err
        self._carla = carla

    def get(self, name: str) -> Scenario:
        try:
            return self.scenarios[name]
        except KeyError:
            raise ScenarioError(f"unknown CARLA scenario '{name}'; valid: {', '.join(self.scenarios)}") from None

    # ------------------------------------------------------------------------------ protocol
    def reset(self, scenario: str, seed: int) -> StepResult:
        sc = self.get(scenario)
        if self._client is None:
            self.connect()
        self._destroy_actors()
        town = sc.env.split(":", 1)[1]
        world = self._client.get_world()
        if not world.get_map().name.endswith(town):
            world = self._client.load_world(town)
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = 1.0 / self.cfg.sim_rate_hz
        world.apply_settings(settings)
        tm = self._client.get_trafficmanager()
        tm.set_synchronous_mode(True)
        tm.set_random_device_seed(seed)
        world.set_pedestrians_seed(seed)
        self._world, self._map, self._scenario, self._seed = world, world.get_map(), sc, seed
        bp = world.get_blueprint_library()
        spawns = self._map.get_spawn_points()
        spawn = spawns[int(sc.env_config.get("spawn_point", 0)) % len(spawns)]
        ego = world.try_spawn_actor(bp.find(self.carla_cfg.vehicle), spawn)
        if ego is None:
            raise SimError(
                f"CARLA scenario '{sc.name}': cannot spawn the ego at spawn point {sc.env_config.get('spawn_point', 0)}"
            )
        self._ego = ego
        self._actors.append(ego)
        self._spawn_traffic(bp, spawns, spawn, int(sc.env_config.get("npc_vehicles", 0)), seed, tm)
        self._attach_sensors(bp, ego)
        physics = ego.get_physics_control()
        self._max_wheel_angle = math.radians(float(max(w.max_steer_angle for w in physics.wheels[:2])))
        front, rear = physics.wheels[0].position, physics.wheels[2].position  # world coordinates, cm
        span = math.dist((front.x, front.y, front.z), (rear.x, rear.y, rear.z)) / 100.0
        self._wheelbase = span if span > 0.5 else 2.9
        self._build_lanes(spawn.location)
        self._k = 0
        self._collision: str | None = None
        self._crashed = False
        self._lane_invasions = 0
        self._offroad_steps = 0
        self._progress = 0.0
        self._done = False
        self._frame = world.tick()
        self._prev = self._ego_state()
        self._accel = (0.0, 0.0, 0.0)
        x, y = self._prev[0], self._prev[1]
        self._s_start, _ = project(self._route, self._route_s, x, y)
        self._s_last = self._s_start
        msgs: list[tuple[str, int, Any]] = []
        sample = self._sample()
        self._publish_due(msgs, sample)
        return StepResult(
            self._time_ns(), msgs, Truth(None, sample.off_road, 0.0, self._route_length, False, ""), self._privileged()
        )

    def step(self, command: Any) -> StepResult:
        if self._scenario is None or self._world is None:
            raise SimError("step() before reset()")
        if self._done:
            raise SimError("step() after the episode ended; call reset()")
        dt = 1.0 / self.cfg.sim_rate_hz
        msgs: list[tuple[str, int, Any]] = []
        samples: list[EgoSample] = []
        collision: str | None = None
        for _ in range(self.cfg.substeps):
            self._apply(command)
            self._frame = self._world.tick()
            self._k += 1
            state = self._ego_state()
            _, _, yaw0, sp0 = self._prev
            yaw_rate = wrap_angle(state[2] - yaw0) / dt
            self._accel = ((state[3] - sp0) / dt, state[3] * yaw_rate, yaw_rate)
            self._prev = state
            if self._collision is not None and not self._crashed:
                self._crashed = True
                collision = self._collision
            sample = self._sample()
            samples.append(sample)
            self._offroad_steps = self._offroad_steps + 1 if sample.off_road else 0
            self._update_progress(sample.x, sample.y)
            self._publish_due(msgs, sample)
        reason = end_reason(
            progress_m=self._progress,
            route_length_m=self._route_length,
            collision=collision,
            offroad_s=self._offroad_steps * dt,
            offroad_terminal_s=self.cfg.offroad_terminal_s,
            time_s=self._k * dt,
            max_duration_s=self._scenario.max_duration_s,
        )
        self._done = bool(reason)
        truth = Truth(
            collision,
            samples[-1].off_road,
            min(self._progress, self._route_length),
            self._route_length,
            self._done,
            reason,
            tuple(samples),
        )
        return StepResult(self._time_ns(), msgs, truth, self._privileged())

    def close(self) -> None:
        self._destroy_actors()
        if self._world is not None:
            settings = self._world.get_settings()
            settings.synchronous_mode = False
            settings.fixed_delta_seconds = None
            self._world.apply_settings(settings)  # leave the server free-running for the next user
            self._client.get_trafficmanager().set_synchronous_mode(False)
            self._world = None

    # ------------------------------------------------------------------------------ internals
    def _spawn_traffic(self, bp: Any, spawns: list[Any], ego_spawn: Any, n: int, seed: int, tm: Any) -> None:
        rng = np.random.default_rng(seed)
        cars = [b for b in bp.filter("vehicle.*") if int(b.get_attribute("number_of_wheels").as_int()) == 4]
        cars.sort(key=lambda b: b.id)
        order = rng.permutation(len(spawns))
        for i in order[: n + 1]:
            sp = spawns[int(i)]
            if sp.location.distance(ego_spawn.location) < 10.0:
                continue
            npc = self._world.try_spawn_actor(cars[int(rng.integers(len(cars)))], sp)
            if npc is not None:
                npc.set_autopilot(True, tm.get_port())
                self._actors.append(npc)

    def _attach_sensors(self, bp: Any, ego: Any) -> None:
        carla = self._carla
        cam_cfg = self.carla_cfg.camera
        specs: list[tuple[str, str, dict[str, str], Any]] = [
            ("camera", "sensor.camera.rgb",
             {"image_size_x": str(cam_cfg.width), "image_size_y": str(cam_cfg.height), "fov": str(cam_cfg.fov)},
             carla.Transform(carla.Location(x=cam_cfg.x, z=cam_cfg.z))),
            ("imu", "sensor.other.imu", {}, carla.Transform()),
            ("gnss", "sensor.other.gnss", {}, carla.Transform()),
        ]  # fmt: skip
        self._queues = {}
        for role, type_id, attrs, transform in specs:
            blueprint = bp.find(type_id)
            for k, v in attrs.items():
                blueprint.set_attribute(k, v)
            sensor = self._world.spawn_actor(blueprint, transform, attach_to=ego)
            q: queue.Queue[Any] = queue.Queue()
            sensor.listen(q.put)
            self._queues[role] = q
            self._actors.append(sensor)
        collision = self._world.spawn_actor(bp.find("sensor.other.collision"), carla.Transform(), attach_to=ego)
        collision.listen(self._on_collision)
        lane = self._world.spawn_actor(bp.find("sensor.other.lane_invasion"), carla.Transform(), attach_to=ego)
        lane.listen(self._on_lane_invasion)
        self._actors += [collision, lane]

    def _on_collision(self, event: Any) -> None:
        other = str(getattr(event.other_actor, "type_id", ""))
        kind = "vehicle" if other.startswith(("vehicle.", "walker.")) else "static"
        if self._collision is None:
            self._collision = kind

    def _on_lane_invasion(self, event: Any) -> None:
        self._lane_invasions += 1

    def _sensor(self, role: str) -> Any:
        """The `role` sensor's data of the current frame (synchronous mode: it arrives with the tick)."""
        q = self._queues[role]
        while True:
            try:
                data = q.get(timeout=self.carla_cfg.timeout_s)
            except queue.Empty:
                raise SimError(
                    f"CARLA: no {role} data for frame {self._frame} within {self.carla_cfg.timeout_s:g} s"
                ) from None
            if data.frame >= self._frame:
                return data

    def _apply(self, command: Any) -> None:
        carla = self._carla
        steer = float(command.drive.steering_angle)
        v_cmd = float(command.drive.speed)
        if self.carla_cfg.control == "ackermann":
            drive = command.drive
            control = carla.VehicleAckermannControl(
                steer=-steer,  # CARLA steers right-positive
                steer_speed=float(drive.steering_angle_velocity),
                speed=v_cmd,
                acceleration=float(drive.acceleration),
                jerk=float(drive.jerk),
            )
            self._ego.apply_ackermann_control(control)
            return
        v = self._prev[3]
        a = self.cfg.speed_gain * (v_cmd - v)
        a_lim = float(command.drive.acceleration)
        if a_lim > 0:
            a = min(max(a, -a_lim), a_lim)
        lo, hi = self.cfg.accel_range
        a = min(max(a, lo), hi)
        throttle = min(max(a / hi, 0.0), 1.0) if a > 0 else 0.0
        brake = min(max(a / lo, 0.0), 1.0) if a < 0 else 0.0
        wheel = min(max(-steer / self._max_wheel_angle, -1.0), 1.0)  # ROS left-positive -> CARLA right-positive
        self._ego.apply_control(carla.VehicleControl(throttle=throttle, steer=wheel, brake=brake))

    def _ego_state(self) -> tuple[float, float, float, float]:
        """(x, y, yaw, speed) in ROS ENU."""
        tf = self._ego.get_transform()
        vel = self._ego.get_velocity()
        return (
            float(tf.location.x),
            -float(tf.location.y),
            -math.radians(float(tf.rotation.yaw)),
            math.hypot(float(vel.x), float(vel.y)),
        )

    def _sample(self) -> EgoSample:
        x, y, yaw, sp = self._prev
        loc = self._ego.get_location()
        wp = self._map.get_waypoint(loc, project_to_road=False, lane_type=self._carla.LaneType.Driving)
        a_lon, a_lat, yaw_rate = self._accel
        return EgoSample(self._k / self.cfg.sim_rate_hz, x, y, yaw, sp, a_lon, a_lat, yaw_rate, wp is None)

    def _build_lanes(self, start: Any) -> None:
        assert self._scenario is not None
        wp = self._map.get_waypoint(start)
        need = self._scenario.route_length_m + 200.0
        centre = [wp]
        total = 0.0
        while total < need:
            nxt = wp.next(1.0)
            if not nxt:
                break
            wp = nxt[0]  # junctions: the first branch, deterministic
            centre.append(wp)
            total += 1.0

        def side(w: Any, left: bool) -> Any:
            s = w.get_left_lane() if left else w.get_right_lane()
            if s is None or s.lane_type != self._carla.LaneType.Driving or (s.lane_id > 0) != (w.lane_id > 0):
                return None
            return s

        def poly(ws: list[Any]) -> FloatArray:
            return np.array([[w.transform.location.x, -w.transform.location.y] for w in ws], dtype=np.float64)

        sides: dict[bool, list[FloatArray]] = {True: [], False: []}
        for left in (True, False):
            offset = 1
            while True:
                ws = []
                for w in centre:
                    s: Any = w
                    for _ in range(offset):
                        s = side(s, left) if s is not None else None
                    if s is None:
                        break
                    ws.append(s)
                if len(ws) < len(centre) // 2:  # a side lane must run along at least half the route
                    break
                sides[left].append(poly(ws))
                offset += 1
        lanes = [*reversed(sides[True]), poly(centre), *sides[False]]  # leftmost ... rightmost
        n_left = len(sides[True])
        self._lanes = tuple(lanes)
        self._route_lane = n_left
        self._lanes_s = tuple(arc_lengths(p) for p in lanes)
        self._route = self._lanes[self._route_lane]
        self._route_s = self._lanes_s[self._route_lane]
        self._route_length = float(min(self._scenario.route_length_m, float(self._route_s[-1]) - 10.0))

    def _update_progress(self, x: float, y: float) -> None:
        i0 = max(0, int(np.searchsorted(self._route_s, self._s_last - 20.0)))
        i1 = min(len(self._route), max(int(np.searchsorted(self._route_s, self._s_last + 60.0)) + 2, i0 + 2))
        s, _ = project(self._route[i0:i1], self._route_s[i0:i1], x, y)
        self._s_last = s
        self._progress = max(self._progress, s - self._s_start)

    def _time_ns(self) -> int:
        return self.cfg.start_time_s * 1_000_000_000 + self._k * 1_000_000_000 // self.cfg.sim_rate_hz

    def _publish_due(self, msgs: list[tuple[str, int, Any]], sample: EgoSample) -> None:
        k, stamp, f = self._k, self._time_ns(), self.factory
        # sensor queues are drained every tick so that stale frames never pile up
        cam = self._sensor("camera")
        imu = self._sensor("imu")
        gnss = self._sensor("gnss")
        for role, p in self._period.items():
            if k % p:
                continue
            name = self.registry[role].name
            if role == "camera":
                bgra = np.frombuffer(cam.raw_data, dtype=np.uint8).reshape(cam.height, cam.width, 4)
                msgs.append((name, stamp, f.image(bgra[:, :, 2::-1], stamp)))
            elif role == "imu":
                acc, gyro = imu.accelerometer, imu.gyroscope
                msgs.append((name, stamp, f.imu(stamp, sample.yaw, float(acc.x), -float(acc.y), -float(gyro.z))))
            elif role == "gnss":
                msgs.append(
                    (name, stamp, f.fix(stamp, float(gnss.latitude), float(gnss.longitude), float(gnss.altitude)))
                )
            elif role == "odometry":
                vel = self._ego.get_velocity()
                vx, vy = float(vel.x), -float(vel.y)
                c, s = math.cos(sample.yaw), math.sin(sample.yaw)
                msgs.append(
                    (
                        name,
                        stamp,
                        f.odometry(
                            stamp, sample.x, sample.y, sample.yaw, c * vx + s * vy, -s * vx + c * vy, self._accel[2]
                        ),
                    )
                )
            elif role == "route":
                i = min(
                    range(len(self._lanes)),
                    key=lambda j: abs(project(self._lanes[j], self._lanes_s[j], sample.x, sample.y)[1]),
                )
                poly, s_arr = self._lanes[i], self._lanes_s[i]
                s_ego, _ = project(poly, s_arr, sample.x, sample.y)
                ahead = np.arange(
                    max(0.0, s_ego - 4.0), min(float(s_arr[-1]), s_ego + self.cfg.route_publish_ahead_m), 2.0
                )
                pts = np.stack([np.interp(ahead, s_arr, poly[:, 0]), np.interp(ahead, s_arr, poly[:, 1])], axis=1)
                msgs.append((name, stamp, f.path(stamp, pts)))
            elif role == "diagnostics":
                assert self._scenario is not None
                values = [
                    ("scenario", self._scenario.name),
                    ("seed", str(self._seed)),
                    ("progress_m", f"{self._progress:.1f}"),
                    ("collision", str(self._crashed).lower()),
                    ("off_road", str(sample.off_road).lower()),
                    ("lane_invasions", str(self._lane_invasions)),
                ]
                level = 0 if not (self._crashed or sample.off_road) else 1
                msgs.append((name, stamp, f.diagnostics(stamp, "roadloop_sim: episode (carla)", level, "", values)))

    def _privileged(self) -> PrivilegedState:
        assert self._scenario is not None
        x, y, yaw, sp = self._prev
        others = []
        for a in self._world.get_actors().filter("vehicle.*"):
            if a.id == self._ego.id:
                continue
            tf, v, bb = a.get_transform(), a.get_velocity(), a.bounding_box
            others.append(
                AgentState(float(tf.location.x), -float(tf.location.y), -math.radians(float(tf.rotation.yaw)),
                           math.hypot(float(v.x), float(v.y)), 2.0 * float(bb.extent.x), 2.0 * float(bb.extent.y))
            )  # fmt: skip
        bb = self._ego.bounding_box
        return PrivilegedState(
            ego=AgentState(x, y, yaw, sp, 2.0 * float(bb.extent.x), 2.0 * float(bb.extent.y)),
            lanes=self._lanes,
            route_lane=self._route_lane,
            wheelbase=self._wheelbase,
            vehicles=tuple(others),
            speed_limit=self._scenario.cruise_speed,
            max_steering_angle=min(self.cfg.max_steering_angle, self._max_wheel_angle),
            speed_gain=self.cfg.speed_gain,
        )

    def _destroy_actors(self) -> None:
        for a in reversed(self._actors):
            try:
                if hasattr(a, "stop"):
                    a.stop()
                a.destroy()
            except RuntimeError:
                pass  # already gone with a reloaded world
        self._actors = []
