"""The assembler must produce exactly the dataset builder's features from the same messages."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from roadloop_core.config import config_dir
from roadloop_core.features import FrameSynchronizer, ObservationSpec, compute_features
from roadloop_core.registry import load_registry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.observation import ObservationAssembler


def test_identical_features_to_the_shared_feature_code(fx: ModuleType) -> None:
    reg = load_registry(config_dir() / "topics.yaml")
    spec = ObservationSpec.from_config(config_dir() / "dataset.yaml")
    store = typestore_for(reg.typestore)
    msgs = fx.drive_messages(reg, seconds=2.0)
    roles = {s.name: r for r, s in reg.topics.items()}

    asm = ObservationAssembler(spec, reg, store)
    ours = []
    for topic, _, msg in msgs:
        ours += asm.step(roles[topic], store.serialize_cdr(msg, reg[roles[topic]].type))

    sync = FrameSynchronizer(spec)  # what the dataset builder runs
    theirs = [compute_features(f, spec) for topic, _, msg in msgs for f in sync.push(roles[topic], msg)]

    assert len(ours) == len(theirs) == 20
    for a, b in zip(ours, theirs, strict=True):
        assert a.stamp_ns == b.stamp_ns
        assert list(a.values) == list(b.values) == ["image", "ego_state", "route_target"]
        for name in a.values:
            np.testing.assert_array_equal(a[name], b[name])
    assert ours[0]["image"].shape == (spec.image_height, spec.image_width, 3)
    assert ours[5]["ego_state"][0] == np.float32(5.0)  # speed from odometry


def test_undecodable_message_names_the_topic(fx: ModuleType) -> None:
    import pytest

    from roadloop_vehicle.errors import ObservationError

    reg = load_registry(config_dir() / "topics.yaml")
    asm = ObservationAssembler(
        ObservationSpec.from_config(config_dir() / "dataset.yaml"), reg, typestore_for(reg.typestore)
    )
    with pytest.raises(ObservationError, match="/localization/odometry"):
        asm.step("odometry", b"\x00\x01\x00\x00garbage")
    assert asm.step("gnss", b"ignored") == []  # roles the spec does not use are not decoded
