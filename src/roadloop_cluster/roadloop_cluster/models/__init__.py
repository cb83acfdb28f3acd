"""Driving policies written by hand: CNN encoders, the GRU waypoint policy and the ego-status baseline."""

from roadloop_cluster.models.config import ModelArgs, ModelConfig
from roadloop_cluster.models.encoders import ResNetEncoder, SmallCNN, build_encoder
from roadloop_cluster.models.policy import DrivingPolicy, EgoStatusMLP, build_policy

__all__ = [
    "DrivingPolicy",
    "EgoStatusMLP",
    "ModelArgs",
    "ModelConfig",
    "ResNetEncoder",
    "SmallCNN",
    "build_encoder",
    "build_policy",
]
