"""compute_features: a synchronized Frame -> the model's input features (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roadloop_core.features.geometry import route_target, to_ego_frame
from roadloop_core.features.image import image_msg_to_rgb, resize_box
from roadloop_core.features.spec import ObservationSpec
from roadloop_core.features.sync import Frame

__all__ = ["EGO_STATE_FIELDS", "Features", "compute_features"]

EGO_STATE_FIELDS = ("speed", "yaw_rate", "accel_x", "accel_y")


@dataclass(frozen=True)
class Features:
    """Model inputs of one frame: `image` (H, W, 3) uint8 or None, `ego_state` float32[4], `route_target` float32[2]."""

    stamp_ns: int
    image: np.ndarray | None
    ego_state: np.ndarray
    route_target: np.ndarray


def compute_features(frame: Frame, spec: ObservationSpec) -> Features:
    """Features of `frame`: resized image, ego state (speed, yaw rate, ax, ay) and ego-frame route target.

    Yaw rate and accelerations come from the IMU; without one (`imu: null`) from
    odometry (yaw rate from the twist, ax from the bracketing speeds, ay = v * yaw rate).
    """
    pose = frame.pose
    if frame.imu is not None:
        yaw_rate, ax, ay = frame.imu.yaw_rate, frame.imu.accel_x, frame.imu.accel_y
    else:
        yaw_rate, ax, ay = pose.yaw_rate, pose.accel, pose.speed * pose.yaw_rate
    ego = np.array([pose.speed, yaw_rate, ax, ay], dtype=np.float32)
    target_map = route_target(frame.route, pose, spec.route_lookahead_m)
    target = to_ego_frame(pose, target_map).astype(np.float32)
    image = None
    if spec.camera is not None and frame.image is not None:
        image = resize_box(image_msg_to_rgb(frame.image), spec.image_height, spec.image_width)
    return Features(frame.stamp_ns, image, ego, target)
