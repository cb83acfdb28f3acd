"""Test helpers (not a test module): a tiny real ONNX policy, signed bundles, synthetic drive bags.

Loaded by path from other areas' tests (`tests/roadloop_sim/drivers/`) and the benchmark.
The ONNX graph follows the bundle contract's tensor names and shapes, and its outputs
depend on every input so a wrong normalisation or a swapped tensor shows in the results:
    waypoints[k]  = route_target * (k+1)/K + mean(image) * 1e-3   (+ NaN when nan=True; no image term
                                                                    in the state-only form; + NaN while
                                                                    the ego moves when nan_when_moving=True,
                                                                    so it passes the warm-up at rest)
    target_speed  = 0.5 * ego_state[0] + 5
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from roadloop_core.bag import BagWriter
from roadloop_core.bundle import Manifest, TensorSpec, generate_keypair, load_private_key, write_bundle
from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import TopicRegistry, load_registry
from roadloop_core.typesys import typestore_for

K = 8


def tiny_policy(
    path: Path,
    height: int = 64,
    width: int = 64,
    *,
    nan: bool = False,
    horizon: int = K,
    image: bool = True,
    nan_when_moving: bool = False,
) -> Path:
    """`image=False`: a state-only model (no image input; waypoints without the image term)."""
    steps = np.arange(1, horizon + 1, dtype=np.float32).reshape(1, horizon, 1) / horizon
    inits = [
        numpy_helper.from_array(steps, "steps"),
        numpy_helper.from_array(np.array([1, 1, 2], np.int64), "shape_r"),
        numpy_helper.from_array(np.array([[0.5], [0.0], [0.0], [0.0]], np.float32), "w_speed"),
        numpy_helper.from_array(np.array([[5.0]], np.float32), "b_speed"),
        numpy_helper.from_array(np.array(1e-3 if not nan else math.nan, np.float32), "img_gain"),
    ]
    inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    # without an image the term is img_gain * 0: zero, or NaN for a NaN model
    term = [helper.make_node("ReduceMean", ["image"], ["img_mean"], keepdims=0)] if image else []
    term.append(helper.make_node("Mul", ["img_mean" if image else "zero", "img_gain"], ["img_term"]))
    # sqrt(-0.5 speed) * 0: zero at rest (the warm-up input), NaN once the ego moves forward
    moving = [
        helper.make_node("Neg", ["s0"], ["neg_s0"]),
        helper.make_node("Sqrt", ["neg_s0"], ["root_s0"]),
        helper.make_node("Mul", ["root_s0", "zero"], ["moving_term"]),
        helper.make_node("Add", ["wp1", "moving_term"], ["waypoints"]),
    ]
    nodes = [
        helper.make_node("Reshape", ["route_target", "shape_r"], ["r3"]),
        helper.make_node("Mul", ["r3", "steps"], ["wp0"]),
        *term,
        helper.make_node("Add", ["wp0", "img_term"], ["wp1" if nan_when_moving else "waypoints"]),
        helper.make_node("MatMul", ["ego_state", "w_speed"], ["s0"]),
        helper.make_node("Add", ["s0", "b_speed"], ["target_speed"]),
        *(moving if nan_when_moving else []),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_policy",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, width])] * image
        + [
            helper.make_tensor_value_info("ego_state", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("route_target", TensorProto.FLOAT, [1, 2]),
        ],
        [
            helper.make_tensor_value_info("waypoints", TensorProto.FLOAT, [1, horizon, 2]),
            helper.make_tensor_value_info("target_speed", TensorProto.FLOAT, [1, 1]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="roadloop-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def keys(dir: Path) -> tuple[Path, Path]:
    """(private, public) key files, generated once per folder."""
    if (dir / "signing.key").exists():
        return dir / "signing.key", dir / "signing.pub"
    return generate_keypair(dir)


def make_bundle(
    out: Path,
    private_key: Path,
    *,
    onnx_path: Path | None = None,
    observation: ObservationSpec | None = None,
    version: int = 1,
    name: str = "tiny",
    nan: bool = False,
    nan_when_moving: bool = False,
) -> Path:
    obs = observation or ObservationSpec.from_config(config_dir() / "dataset.yaml")
    k, camera = obs.label_horizon, obs.camera is not None
    tiny = out.parent / f".{out.name}.onnx"
    src = onnx_path or tiny_policy(
        tiny, obs.image_height, obs.image_width, nan=nan, horizon=k, image=camera, nan_when_moving=nan_when_moving
    )
    image = TensorSpec("image", (1, 3, obs.image_height, obs.image_width), normalization={"scale": 1 / 255})
    manifest = Manifest(
        name=name,
        version=version,
        inputs=(image,) * camera
        + (
            TensorSpec("ego_state", (1, 4), normalization={"mean": [0.0, 0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0, 1.0]}),
            TensorSpec("route_target", (1, 2), normalization={"mean": [0.0, 0.0], "std": [1.0, 1.0]}),
        ),
        outputs=(TensorSpec("waypoints", (1, k, 2)), TensorSpec("target_speed", (1, 1))),
        observation=obs,
        dataset_id="synthetic",
        created="2026-01-01T00:00:00Z",
    )
    write_bundle(out, files={"policy.onnx": src}, manifest=manifest, signing_key=load_private_key(private_key))
    return out


def _yaw_quat(store: Any, yaw: float) -> Any:
    return store.types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def drive_messages(
    registry: TopicRegistry,
    *,
    seconds: float = 3.0,
    camera_hz: float = 10.0,
    odom_hz: float = 50.0,
    imu_hz: float = 50.0,
    width: int = 128,
    height: int = 64,
    speed: float = 5.0,
    skip_roles: tuple[str, ...] = (),
    camera_gap: tuple[float, float] | None = None,
) -> list[tuple[str, int, Any]]:
    """(topic, receive ns, msg) of a car driving straight along x at `speed`, route along x."""
    store = typestore_for(registry.typestore)
    T = store.types
    t0 = 1_700_000_000 * 1_000_000_000

    def hdr(ns: int, frame: str) -> Any:
        return T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame
        )

    msgs: list[tuple[str, int, Any]] = []
    if "route" not in skip_roles:
        poses = [
            T["geometry_msgs/msg/PoseStamped"](
                header=hdr(t0, "map"),
                pose=T["geometry_msgs/msg/Pose"](
                    position=T["geometry_msgs/msg/Point"](x=float(x), y=0.0, z=0.0), orientation=_yaw_quat(store, 0.0)
                ),
            )
            for x in range(0, 500, 5)
        ]
        msgs.append((registry["route"].name, t0, T["nav_msgs/msg/Path"](header=hdr(t0, "map"), poses=poses)))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)

    def ticks(hz: float) -> list[int]:
        return [t0 + round(i * 1e9 / hz) + 1000 for i in range(int(seconds * hz))]

    if "camera" not in skip_roles:
        for i, t in enumerate(ticks(camera_hz)):
            if camera_gap and camera_gap[0] <= (t - t0) / 1e9 < camera_gap[1]:
                continue
            img = np.roll(image, i, axis=1)
            msgs.append(
                (
                    registry["camera"].name,
                    t + 2_000_000,  # arrives 2 ms after its stamp
                    T["sensor_msgs/msg/Image"](
                        header=hdr(t, "camera"),
                        height=height,
                        width=width,
                        encoding="rgb8",
                        is_bigendian=0,
                        step=width * 3,
                        data=img.reshape(-1),
                    ),
                )
            )
    Vec3, Cov = T["geometry_msgs/msg/Vector3"], np.zeros(9)
    if "imu" not in skip_roles:
        for t in ticks(imu_hz):
            msgs.append(
                (
                    registry["imu"].name,
                    t,
                    T["sensor_msgs/msg/Imu"](
                        header=hdr(t, "imu"),
                        orientation=_yaw_quat(store, 0.0),
                        orientation_covariance=Cov,
                        angular_velocity=Vec3(x=0.0, y=0.0, z=0.0),
                        angular_velocity_covariance=Cov,
                        linear_acceleration=Vec3(x=0.0, y=0.0, z=9.81),
                        linear_acceleration_covariance=Cov,
                    ),
                )
            )
    if "odometry" not in skip_roles:
        for t in ticks(odom_hz):
            x = speed * (t - t0) / 1e9
            pose = T["geometry_msgs/msg/PoseWithCovariance"](
                pose=T["geometry_msgs/msg/Pose"](
                    position=T["geometry_msgs/msg/Point"](x=x, y=0.0, z=0.0), orientation=_yaw_quat(store, 0.0)
                ),
                covariance=np.zeros(36),
            )
            twist = T["geometry_msgs/msg/TwistWithCovariance"](
                twist=T["geometry_msgs/msg/Twist"](
                    linear=Vec3(x=speed, y=0.0, z=0.0), angular=Vec3(x=0.0, y=0.0, z=0.0)
                ),
                covariance=np.zeros(36),
            )
            msgs.append(
                (
                    registry["odometry"].name,
                    t,
                    T["nav_msgs/msg/Odometry"](
                        header=hdr(t, "map"), child_frame_id="base_link", pose=pose, twist=twist
                    ),
                )
            )
    msgs.sort(key=lambda m: m[1])
    return msgs


def write_drive_bag(path: Path, registry: TopicRegistry | None = None, **kwargs: Any) -> Path:
    reg = registry or load_registry(config_dir() / "topics.yaml")
    msgs = drive_messages(reg, **kwargs)
    with BagWriter(path, distro=reg.typestore) as w:
        for role in ("camera", "imu", "odometry", "route"):
            if role not in kwargs.get("skip_roles", ()):
                w.add_topic(reg[role].name, reg[role].type, reg[role].qos)
        for topic, ts, msg in msgs:
            w.write_msg(topic, ts, msg)
    return path
