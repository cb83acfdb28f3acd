"""compute_features: a synchronized Frame -> the model's input features (pure numpy).

One function per feature array of the tensor table (`roadloop_core.contract.tensors`), in `FEATURES`;
`compute_features` runs those the observation spec has (no image in state-only mode, no route target
with `route_source: none`, an ego history with `ego_history_steps`), so the dataset builder and the
vehicle get the same arrays by the same names from the same frames.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import numpy as np

from roadloop_core.codec import image_to_numpy
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import (
    EGO_HISTORY_ARRAY,
    EGO_STATE_ARRAY,
    IMAGE_ARRAY,
    ROUTE_TARGET_ARRAY,
    feature_arrays,
)
from roadloop_core.features.errors import FeatureError
from roadloop_core.features.geometry import lookahead_point, to_ego_frame
from roadloop_core.features.image import resize_box
from roadloop_core.features.semantic import semantic_bev
from roadloop_core.features.sync import Frame

__all__ = ["EGO_STATE_FIELDS", "FEATURES", "Features", "compute_features", "model_image"]

EGO_STATE_FIELDS = EGO_STATE_ARRAY.fields


@dataclass(frozen=True)
class Features:
    """Model inputs of one frame by dataset array name, not normalised (the ego state float32[4], ...)."""

    stamp_ns: int
    values: Mapping[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]


def model_image(msg: object, height: int, width: int) -> np.ndarray:
    """A sensor_msgs/Image as the model's (height, width, 3) uint8 RGB input.

    Decoding is `roadloop_core.codec.image_to_numpy` (a view of the message's bytes); mono images
    become three equal channels (a zero-stride view), then the deterministic box resize copies.
    """
    pixels = image_to_numpy(msg)
    if pixels.dtype != np.uint8:
        enc = getattr(msg, "encoding", "?")
        raise FeatureError(f"image encoding '{enc}' is not 8-bit; the model takes rgb8, bgr8, rgba8, bgra8 or mono8")
    if pixels.shape[2] == 1:
        pixels = np.broadcast_to(pixels, (*pixels.shape[:2], 3))
    return resize_box(pixels, height, width)


def _image(frame: Frame, spec: ObservationSpec) -> np.ndarray:
    if frame.image is None:
        raise FeatureError("a camera-mode frame without an image")
    if spec.image_mode == "semantic":
        route = to_ego_frame(frame.pose, frame.route.points) if frame.route is not None else None
        pixels = image_to_numpy(frame.image)
        if pixels.dtype != np.uint8 or pixels.shape[2] != 3:
            enc = getattr(frame.image, "encoding", "?")
            raise FeatureError(f"image encoding '{enc}': the semantic view takes an rgb8 top-down raster")
        return semantic_bev(pixels, route, spec)
    return model_image(frame.image, spec.image_height, spec.image_width)


def _ego_state(frame: Frame, spec: ObservationSpec) -> np.ndarray:
    """Speed, yaw rate, ax, ay: yaw rate and accelerations from the IMU; without one (`imu: null`) from
    odometry (yaw rate from the twist, ax from the bracketing speeds, ay = v * yaw rate)."""
    pose = frame.pose
    if frame.imu is not None:
        yaw_rate, ax, ay = frame.imu.yaw_rate, frame.imu.accel_x, frame.imu.accel_y
    else:
        yaw_rate, ax, ay = pose.yaw_rate, pose.accel, pose.speed * pose.yaw_rate
    return np.array([pose.speed, yaw_rate, ax, ay], dtype=np.float32)


def _route_target(frame: Frame, spec: ObservationSpec) -> np.ndarray:
    """The route point `route_lookahead_m` ahead, in the ego frame."""
    if frame.route is None:
        raise FeatureError("a route target needs a route, and this frame has none (no route topic is read)")
    target_map = lookahead_point(frame.route, frame.pose, spec.route_lookahead_m)
    return to_ego_frame(frame.pose, target_map).astype(np.float32)


def _ego_history(frame: Frame, spec: ObservationSpec) -> np.ndarray:
    """Speed, yaw rate, acceleration and heading change at t - j * ego_history_dt_s (the synchronizer's)."""
    if frame.history is None:
        raise FeatureError("an ego history needs ego_history_steps > 0 in the synchronizer's spec")
    return frame.history.astype(np.float32)


FEATURES: dict[str, Callable[[Frame, ObservationSpec], np.ndarray]] = {
    IMAGE_ARRAY.name: _image,
    EGO_STATE_ARRAY.name: _ego_state,
    ROUTE_TARGET_ARRAY.name: _route_target,
    EGO_HISTORY_ARRAY.name: _ego_history,
}


def compute_features(frame: Frame, spec: ObservationSpec, *, without: Collection[str] = ()) -> Features:
    """The feature arrays `spec` observes, for `frame` (but those in `without`: the dataset builder
    computes a hindsight route target from the logged future itself)."""
    return Features(
        frame.stamp_ns, {a.name: FEATURES[a.name](frame, spec) for a in feature_arrays(spec) if a.name not in without}
    )
