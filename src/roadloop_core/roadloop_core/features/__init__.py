"""Shared features (pure numpy, no torch): the dataset builder and the vehicle call exactly these.

    spec = ObservationSpec.from_config(CONFIG / "dataset.yaml")  # its `observation:` section
    sync = FrameSynchronizer(spec)
    for role, msg in messages:                    # decoded messages by registry role, in arrival order
        for frame in sync.push(role, msg):        # stamp = msg.header.stamp unless passed
            feats = compute_features(frame, spec) # image (H,W,3) uint8 | None, ego_state[4], route_target[2]
    sync.drops                                    # Counter of dropped frames by reason

Labels (future waypoints, command) are not here: only the dataset builder, which
can look into the future of a bag, computes them.
"""

from roadloop_core.features.compute import EGO_STATE_FIELDS, Features, compute_features
from roadloop_core.features.errors import FeatureError
from roadloop_core.features.geometry import OdomSample, Pose2D, Route, interpolate_odometry, route_target, to_ego_frame
from roadloop_core.features.image import image_msg_to_rgb, resize_box
from roadloop_core.features.msg_fields import odom_sample
from roadloop_core.features.spec import ObservationSpec
from roadloop_core.features.sync import DROP_REASONS, Frame, FrameSynchronizer

__all__ = [
    "DROP_REASONS",
    "EGO_STATE_FIELDS",
    "FeatureError",
    "Features",
    "Frame",
    "FrameSynchronizer",
    "ObservationSpec",
    "OdomSample",
    "Pose2D",
    "Route",
    "compute_features",
    "image_msg_to_rgb",
    "interpolate_odometry",
    "odom_sample",
    "resize_box",
    "route_target",
    "to_ego_frame",
]
