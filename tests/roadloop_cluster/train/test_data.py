"""Dataset reading for training: index checks, pre-flight compatibility, resumable deterministic batches."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from roadloop_cluster.models import ModelConfig
from roadloop_cluster.train.data import BatchStream, SplitData, check_compatible, read_dataset_info
from roadloop_cluster.train.errors import DatasetMismatchError, TrainError


def test_synthetic_dataset_round_trips(camera_dataset: Path) -> None:
    info = read_dataset_info(camera_dataset)
    assert info.index["format"] == "roadloop-dataset/1"
    assert (info.horizon, info.dt) == (6, 0.5)
    assert info.index["observation"]["image_height"] == 32
    for split in ("train", "val"):
        for entry in info.index["splits"][split]["shards"]:
            path = camera_dataset / entry["file"]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
            with np.load(path) as z:
                n = entry["count"]
                assert z["image"].shape == (n, 32, 32, 3) and z["image"].dtype == np.uint8
                assert z["ego_state"].shape == (n, 4) and z["waypoints"].shape == (n, 6, 2)
                assert z["stamp_ns"].dtype == np.int64 and z["source"].dtype == np.int32
    data = SplitData(info, "train", with_image=True)
    assert len(data) == info.index["splits"]["train"]["count"]
    b = data.batch(np.array([0, 5], np.int64))
    assert b.image is not None and b.image.shape == (2, 3, 32, 32) and float(b.image.max()) <= 1.0
    mean, std = info.stat("ego_state")
    assert np.allclose(b.ego_state.numpy(), (data.arrays["ego_state"][[0, 5]] - mean) / std, atol=1e-6)


def _broken(src: Path, dst: Path, edit: str) -> Path:
    shutil.copytree(src, dst)
    index = json.loads((dst / "index.json").read_text())
    if edit == "format":
        index["format"] = "something/9"
    elif edit == "no-val":
        index["splits"]["val"]["shards"] = []
    elif edit == "no-stats":
        del index["stats"]["waypoints"]
    elif edit == "no-index":
        (dst / "index.json").unlink()
        return dst
    (dst / "index.json").write_text(json.dumps(index))
    return dst


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("format", "format is 'something/9'"),
        ("no-val", "split 'val' has no shards"),
        ("no-stats", "stats.waypoints missing"),
        ("no-index", "no dataset index"),
    ],
)
def test_bad_index_is_one_clear_error(camera_dataset: Path, tmp_path: Path, edit: str, message: str) -> None:
    root = _broken(camera_dataset, tmp_path / "ds", edit)
    with pytest.raises(TrainError, match=message) as err:
        read_dataset_info(root)
    assert "index.json" in str(err.value) and "\n" not in str(err.value)


MISMATCHES = [
    # model overrides, which dataset, expected message
    ({"horizon": 8}, "camera", "label.horizon is 6, model.horizon is 8"),
    ({"dt": 0.25}, "camera", "label.dt is 0.5, model.dt is 0.25"),
    ({"image_size": [64, 64]}, "camera", "model.image_size expects"),
    ({}, "state", "state-only dataset"),
]


@pytest.mark.parametrize(("override", "which", "message"), MISMATCHES)
def test_feature_spec_mismatch_is_caught(
    camera_dataset: Path, state_dataset: Path, override: dict[str, object], which: str, message: str
) -> None:
    base: dict[str, object] = {"image_size": [32, 32], "horizon": 6, "dt": 0.5}
    cfg = ModelConfig(**(base | override))  # type: ignore[arg-type]
    root = camera_dataset if which == "camera" else state_dataset
    with pytest.raises(DatasetMismatchError, match=message):
        check_compatible(read_dataset_info(root), cfg)


def test_matching_specs_pass(camera_dataset: Path, state_dataset: Path) -> None:
    check_compatible(read_dataset_info(camera_dataset), ModelConfig(image_size=[32, 32], horizon=6))
    check_compatible(read_dataset_info(state_dataset), ModelConfig(variant="state", horizon=6))


@pytest.fixture(scope="module")
def train_split(tmp_path_factory: pytest.TempPathFactory) -> SplitData:
    from roadloop_cluster.train.synthetic import write_synthetic_dataset

    root = write_synthetic_dataset(tmp_path_factory.mktemp("ds"), 100, 20, image_size=None, shard_size=30)
    return SplitData(read_dataset_info(root), "train", with_image=False)


def test_ranks_split_each_global_batch_and_cover_the_epoch_once(train_split: SplitData) -> None:
    streams = [BatchStream(train_split, 24, r, 3, seed=7) for r in range(3)]
    per_rank = [s.epoch_batches() for s in streams]
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == 100 // 24
    seen = np.concatenate([np.concatenate(b) for b in per_rank])
    assert len(seen) == len(set(seen.tolist())) == 4 * 24


def test_order_is_independent_of_world_size(train_split: SplitData) -> None:
    one = BatchStream(train_split, 24, 0, 1, seed=3).epoch_batches()
    two = [BatchStream(train_split, 24, r, 2, seed=3).epoch_batches() for r in range(2)]
    for step, global_batch in enumerate(one):
        assert np.array_equal(global_batch, np.concatenate([two[0][step], two[1][step]]))


def test_resume_from_state_continues_the_same_sequence(train_split: SplitData) -> None:
    ref = BatchStream(train_split, 20, 1, 2, seed=1)
    full = []
    for _ in range(2):
        full += ref.epoch_batches()
        ref.next_epoch()
    s = BatchStream(train_split, 20, 1, 2, seed=1)
    got = []
    for b in s.epoch_batches()[:3]:
        got.append(b)
        s.advance()
    state = s.state_dict()
    resumed = BatchStream(train_split, 20, 1, 2, seed=1)
    resumed.load_state_dict(state)
    got += resumed.epoch_batches()
    resumed.next_epoch()
    got += resumed.epoch_batches()
    assert len(got) == len(full) and all(np.array_equal(a, b) for a, b in zip(got, full, strict=True))
    assert not np.array_equal(full[0], full[len(full) // 2])  # epochs are reshuffled


@pytest.mark.parametrize(("batch", "world", "message"), [(25, 2, "not divisible"), (200, 1, "fewer than one batch")])
def test_impossible_batches_are_refused(train_split: SplitData, batch: int, world: int, message: str) -> None:
    with pytest.raises(TrainError, match=message):
        BatchStream(train_split, batch, 0, world, seed=0)


def test_describe_names_shard_and_row(train_split: SplitData) -> None:
    assert train_split.describe(np.array([31], np.int64)) == "shards/train-00001.npz rows 1"
