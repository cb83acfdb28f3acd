"""The vehicle's path (messages one by one through the shared feature code) and the builder agree exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from roadloop_cluster.data import BuildOptions, build_dataset, load_dataset_config, read_dataset_index
from roadloop_core.bag import open_bag
from roadloop_core.config import config_dir
from roadloop_core.features import Features, FrameSynchronizer, compute_features
from roadloop_core.registry import load_registry

from .test_build import shard_arrays


def online_features(bag_path: Path) -> dict[int, Features]:
    """What an ObservationAssembler computes: decode each message as it arrives, push it, featurise frames."""
    spec = load_dataset_config().observation
    reg = load_registry(config_dir() / "topics.yaml")
    role_of = {reg[r].name: r for r in spec.roles()}
    sync = FrameSynchronizer(spec)
    out: dict[int, Features] = {}
    with open_bag(bag_path) as bag:
        for raw in bag.messages():  # every topic, as a subscriber set would see the bag replayed
            role = role_of.get(raw.topic)
            if role is None:
                continue
            for frame in sync.push(role, bag.decode(raw)):
                out[frame.stamp_ns] = compute_features(frame, spec)
    return out


def test_vehicle_and_builder_compute_identical_features(bag_root: Path, tmp_path: Path) -> None:
    bag = sorted(p.parent for p in bag_root.rglob("metadata.yaml"))[1]
    index = build_dataset([bag], tmp_path / "ds", BuildOptions(progress=False))
    a = shard_arrays(tmp_path / "ds", "train")
    online = online_features(bag)
    assert len(a["stamp_ns"]) == index.count > 0
    # the builder keeps every online frame but those without a full label horizon
    assert len(online) - len(a["stamp_ns"]) == index.drops["no_future"]
    for i, stamp in enumerate(a["stamp_ns"].tolist()):
        f = online[stamp]
        assert set(f.values) == {"image", "ego_state", "route_target"}
        for name, value in f.values.items():
            np.testing.assert_array_equal(value, a[name][i])
    assert read_dataset_index(tmp_path / "ds").observation == load_dataset_config().observation
