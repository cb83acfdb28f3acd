"""Shared features (pure numpy, no torch): the dataset builder and the vehicle call exactly these.

    spec = ObservationSpec.from_config(path)      # config/dataset.yaml `observation:`
    sync = FrameSynchronizer(spec)
    for role, msg in messages:                    # decoded messages by registry role, in arrival order
        for frame in sync.push(role, msg):        # stamp = msg.header.stamp unless passed
            feats = compute_features(frame, spec) # feats[name]: the tensor table's feature arrays by name
    sync.drops                                    # Counter of dropped frames by reason

Labels (future waypoints, command) are not here: only the dataset builder, which
can look into the future of a bag, computes them.
"""

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.features.compute import EGO_STATE_FIELDS, FEATURES, Features, compute_features, model_image
from roadloop_core.features.errors import FeatureError
from roadloop_core.features.geometry import (
    OdomSample,
    Pose2D,
    Route,
    interpolate_odometry,
    lookahead_point,
    to_ego_frame,
)
from roadloop_core.features.image import resize_box
from roadloop_core.features.msg_fields import odom_sample
from roadloop_core.features.sync import DROP_REASONS, Frame, FrameSynchronizer

__all__ = [
    "DROP_REASONS",
    "EGO_STATE_FIELDS",
    "FEATURES",
    "FeatureError",
    "Features",
    "Frame",
    "FrameSynchronizer",
    "ObservationSpec",
    "OdomSample",
    "Pose2D",
    "Route",
    "compute_features",
    "interpolate_odometry",
    "lookahead_point",
    "model_image",
    "odom_sample",
    "resize_box",
    "to_ego_frame",
]
