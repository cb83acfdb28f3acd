"""A stand-in for the `carla` client module, following the 0.9.16 Python API the backend uses.

CARLA cannot run here; this fake lets the backend's own logic (frame conversion, sensor
queues, route building, control mapping, truth) execute. It is NOT evidence that the backend
works against a real server: the live tests in test_carla_backend.py are (CARLA_HOST).
World: a straight 3-lane road along +x (CARLA's y to the right), lanes 3.5 m wide; the ego
moves with a kinematic bicycle driven by throttle/brake/steer; other vehicles stand still.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LANE_W = 3.5
ROAD_LEN = 2000.0


@dataclass
class Vector3D:
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass
class Location(Vector3D):
    def distance(self, other: Location) -> float:
        return math.dist((self.x, self.y, self.z), (other.x, other.y, other.z))


@dataclass
class Rotation:
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


@dataclass
class Transform:
    location: Location = field(default_factory=Location)
    rotation: Rotation = field(default_factory=Rotation)


@dataclass
class VehicleControl:
    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0


@dataclass
class VehicleAckermannControl:
    steer: float = 0.0
    steer_speed: float = 0.0
    speed: float = 0.0
    acceleration: float = 0.0
    jerk: float = 0.0


class LaneType:
    Driving = "Driving"
    Sidewalk = "Sidewalk"


class Waypoint:
    def __init__(self, s: float, lane: int) -> None:
        self.s, self.lane = s, lane  # lane 0..2 from the left; CARLA y grows to the right
        self.lane_id = -(lane + 1)
        self.lane_type = LaneType.Driving
        self.transform = Transform(Location(s, (lane - 1) * LANE_W, 0.0), Rotation())

    def next(self, d: float) -> list[Waypoint]:
        return [Waypoint(self.s + d, self.lane)] if self.s + d < ROAD_LEN else []

    def get_left_lane(self) -> Waypoint | None:
        return Waypoint(self.s, self.lane - 1) if self.lane > 0 else None

    def get_right_lane(self) -> Waypoint | None:
        return Waypoint(self.s, self.lane + 1) if self.lane < 2 else None


class Map:
    name = "Carla/Maps/Town04"

    def get_spawn_points(self) -> list[Transform]:
        return [Transform(Location(20.0 + 30.0 * i, (i % 3 - 1) * LANE_W, 0.5)) for i in range(12)]

    def get_waypoint(self, loc: Location, project_to_road: bool = True, lane_type: Any = None) -> Waypoint | None:
        lane = round(loc.y / LANE_W) + 1
        if not project_to_road and (abs(loc.y) > 1.5 * LANE_W or not 0 <= loc.x < ROAD_LEN):
            return None
        return Waypoint(max(0.0, loc.x), min(max(lane, 0), 2))


class Attribute:
    def __init__(self, v: str) -> None:
        self.v = v

    def as_int(self) -> int:
        return int(self.v)


class Blueprint:
    def __init__(self, id: str) -> None:
        self.id = id
        self.attrs: dict[str, str] = {"number_of_wheels": "4"}

    def set_attribute(self, k: str, v: str) -> None:
        self.attrs[k] = v

    def get_attribute(self, k: str) -> Attribute:
        return Attribute(self.attrs[k])


class BlueprintLibrary:
    def find(self, id: str) -> Blueprint:
        return Blueprint(id)

    def filter(self, pattern: str) -> list[Blueprint]:
        return [Blueprint("vehicle.audi.a2"), Blueprint("vehicle.tesla.model3")]


@dataclass
class Wheel:
    max_steer_angle: float
    position: Vector3D


class Actor:
    _ids = 0

    def __init__(self, world: World, bp: Blueprint, tf: Transform, parent: Actor | None = None) -> None:
        Actor._ids += 1
        self.id, self.world, self.type_id, self.parent = Actor._ids, world, bp.id, parent
        self.attrs = bp.attrs
        self.tf = Transform(Location(tf.location.x, tf.location.y, tf.location.z), Rotation(yaw=tf.rotation.yaw))
        self.speed = 0.0
        self.control: Any = VehicleControl()
        self.callback: Callable[[Any], None] | None = None
        self.bounding_box = type("BB", (), {"extent": Vector3D(2.4, 1.0, 0.8)})()

    # vehicles
    def get_transform(self) -> Transform:
        return self.tf

    def get_location(self) -> Location:
        return self.tf.location

    def get_velocity(self) -> Vector3D:
        yaw = math.radians(self.tf.rotation.yaw)
        return Vector3D(self.speed * math.cos(yaw), self.speed * math.sin(yaw), 0.0)

    def get_physics_control(self) -> Any:
        x, y = self.tf.location.x * 100, self.tf.location.y * 100
        wheels = [Wheel(70.0, Vector3D(x + 140, y - 80)), Wheel(70.0, Vector3D(x + 140, y + 80)),
                  Wheel(0.0, Vector3D(x - 150, y - 80)), Wheel(0.0, Vector3D(x - 150, y + 80))]  # fmt: skip
        return type("Physics", (), {"wheels": wheels})()

    def apply_control(self, c: VehicleControl) -> None:
        self.control = c

    def apply_ackermann_control(self, c: VehicleAckermannControl) -> None:
        self.control = c

    def set_autopilot(self, on: bool, port: int) -> None:
        pass

    # sensors
    def listen(self, cb: Callable[[Any], None]) -> None:
        self.callback = cb

    def stop(self) -> None:
        self.callback = None

    def destroy(self) -> None:
        if self in self.world.actors:
            self.world.actors.remove(self)

    def physics(self, dt: float) -> None:
        c = self.control
        if isinstance(c, VehicleAckermannControl):
            a, steer_rad = max(-8.0, min(4.0, 2.0 * (c.speed - self.speed))), c.steer
        else:
            a, steer_rad = 4.0 * c.throttle - 8.0 * c.brake, c.steer * math.radians(70.0)
        self.speed = max(0.0, self.speed + a * dt)
        yaw = math.radians(self.tf.rotation.yaw)
        self.tf.location.x += self.speed * math.cos(yaw) * dt
        self.tf.location.y += self.speed * math.sin(yaw) * dt
        self.tf.rotation.yaw += math.degrees(self.speed * math.tan(steer_rad) / 2.9 * dt)


class ActorList(list[Actor]):
    def filter(self, pattern: str) -> ActorList:
        prefix = pattern.rstrip("*")
        return ActorList(a for a in self if a.type_id.startswith(prefix))


class Settings:
    synchronous_mode = False
    fixed_delta_seconds: float | None = None


class World:
    def __init__(self) -> None:
        self.actors: list[Actor] = []
        self.frame = 0
        self.settings = Settings()
        self.map = Map()

    def get_map(self) -> Map:
        return self.map

    def get_settings(self) -> Settings:
        return self.settings

    def apply_settings(self, s: Settings) -> None:
        self.settings = s

    def set_pedestrians_seed(self, seed: int) -> None:
        pass

    def get_blueprint_library(self) -> BlueprintLibrary:
        return BlueprintLibrary()

    def try_spawn_actor(self, bp: Blueprint, tf: Transform) -> Actor | None:
        if any(a.parent is None and a.tf.location.distance(tf.location) < 2.0 for a in self.actors):
            return None
        return self.spawn_actor(bp, tf)

    def spawn_actor(self, bp: Blueprint, tf: Transform, attach_to: Actor | None = None) -> Actor:
        a = Actor(self, bp, tf, attach_to)
        self.actors.append(a)
        return a

    def get_actors(self) -> ActorList:
        return ActorList(a for a in self.actors if a.parent is None)

    def tick(self) -> int:
        dt = self.settings.fixed_delta_seconds or 0.05
        self.frame += 1
        for a in list(self.actors):
            if a.parent is None and a.type_id.startswith("vehicle.") and a.control is not None:
                a.physics(dt)
        for s in [a for a in self.actors if a.parent is not None and a.callback is not None]:
            data = self._data(s)
            if data is not None and s.callback is not None:  # event sensors report only events
                s.callback(data)
        return self.frame

    def _data(self, s: Actor) -> Any:
        ego = s.parent
        assert ego is not None
        if s.type_id == "sensor.camera.rgb":
            w, h = int(s.attrs["image_size_x"]), int(s.attrs["image_size_y"])
            px = bytearray(w * h * 4)
            px[0::4] = bytes((i * 7 + self.frame) % 256 for i in range(w * h))  # B
            px[2::4] = bytes(200 for _ in range(w * h))  # R
            return type("Image", (), {"frame": self.frame, "width": w, "height": h, "raw_data": bytes(px)})()
        if s.type_id == "sensor.other.imu":
            acc, gyro = Vector3D(0.1, 0.0, 9.81), Vector3D(0.0, 0.0, 0.0)
            return type("Imu", (), {"frame": self.frame, "accelerometer": acc, "gyroscope": gyro})()
        if s.type_id == "sensor.other.gnss":
            lat, lon = 48.0 - ego.tf.location.y * 1e-5, 11.0 + ego.tf.location.x * 1e-5
            return type("Gnss", (), {"frame": self.frame, "latitude": lat, "longitude": lon, "altitude": 500.0})()
        if s.type_id == "sensor.other.collision":
            near = [o for o in self.get_actors() if o is not ego and o.type_id.startswith("vehicle.")]
            hit = next((o for o in near if o.tf.location.distance(ego.tf.location) < 4.0), None)
            return type("Collision", (), {"frame": self.frame, "other_actor": hit})() if hit else None
        return None


class TrafficManager:
    def set_synchronous_mode(self, on: bool) -> None:
        pass

    def set_random_device_seed(self, seed: int) -> None:
        pass

    def get_port(self) -> int:
        return 8000


class Client:
    def __init__(self, host: str, port: int) -> None:
        self.world = World()

    def set_timeout(self, s: float) -> None:
        pass

    def get_server_version(self) -> str:
        return "0.9.16"

    def get_world(self) -> World:
        return self.world

    def load_world(self, town: str) -> World:
        return self.world

    def get_trafficmanager(self) -> TrafficManager:
        return TrafficManager()
