"""Dataset reading for training: index checks, model args from the dataset, streamed resumable deterministic batches."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from roadloop_cluster.models import ModelArgs, ModelConfig
from roadloop_cluster.train.data import BatchStream, ShardSplit, SplitData, read_dataset_info
from roadloop_cluster.train.errors import TrainError
from roadloop_core.contract.tensors import EGO_STATE, EGO_STATE_ARRAY, model_inputs
from roadloop_core.errors import RoadloopError


def test_the_builders_dataset_reads_for_training(camera_dataset: Path) -> None:
    info = read_dataset_info(camera_dataset)
    assert info.index.format == "roadloop-dataset/1"
    obs = info.observation
    assert (obs.label_horizon, obs.label_dt_s, obs.image_height, obs.image_width) == (6, 0.5, 32, 48)
    for split in ("train", "val"):
        for entry in info.index.splits[split].shards:
            path = camera_dataset / entry.file
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
            with np.load(path) as z:
                n = entry.count
                assert z["image"].shape == (n, 32, 48, 3) and z["image"].dtype == np.uint8
                assert z["ego_state"].shape == (n, 4) and z["waypoints"].shape == (n, 6, 2)
                assert z["stamp_ns"].dtype == np.int64 and z["source"].dtype == np.int32
    data = SplitData(info, "train", model_inputs(obs))
    assert len(data) == info.index.splits["train"].count
    b = data.batch(np.array([0, 5], np.int64))
    assert b.inputs["image"].shape == (2, 3, 32, 48) and float(b.inputs["image"].max()) <= 1.0
    assert b.targets["waypoints"].shape == (2, 6, 2) and b.targets["target_speed"].shape == (2, 1)
    mean, std = info.stat("ego_state")
    expected = (data.arrays["ego_state"][[0, 5]] - mean) / std
    assert np.allclose(b.inputs["ego_state"].numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(b.targets["target_speed"].numpy()[:, 0], data.arrays["command"][[0, 5], 1])


def test_model_args_come_from_the_dataset(camera_dataset: Path, state_dataset: Path) -> None:
    """Image size, camera/state-only mode, horizon and dt: the dataset's, never the training config's."""
    camera = ModelArgs.from_dataset(ModelConfig(), read_dataset_info(camera_dataset).index)
    assert camera.inputs == {"image": (3, 32, 48), "ego_state": (4,), "route_target": (2,)}
    assert (camera.horizon, camera.dt, camera.image_size, camera.uses_image) == (6, 0.5, (32, 48), True)
    state = ModelArgs.from_dataset(ModelConfig(), read_dataset_info(state_dataset).index)
    assert state.inputs == {"ego_state": (4,), "route_target": (2,)} and not state.uses_image
    assert state.image_size is None and state.vector_inputs == ["ego_state", "route_target"]


def _broken(src: Path, dst: Path, edit: str) -> Path:
    shutil.copytree(src, dst)
    index = json.loads((dst / "index.json").read_text())
    if edit == "format":
        index["format"] = "something/9"
    elif edit == "no-val":
        index["splits"]["val"]["shards"] = []
    elif edit == "no-stats":
        del index["stats"]["waypoints"]
    elif edit == "bad-count":
        index["splits"]["train"]["shards"][1]["count"] = "many"
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
        ("bad-count", r"field 'splits.train.shards\[1\].count' must be an integer"),
        ("no-index", "no dataset here"),
    ],
)
def test_bad_index_is_one_clear_error(camera_dataset: Path, tmp_path: Path, edit: str, message: str) -> None:
    root = _broken(camera_dataset, tmp_path / "ds", edit)
    with pytest.raises(RoadloopError, match=message) as err:
        read_dataset_info(root)
    assert "index.json" in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def train_split(state_dataset: Path) -> ShardSplit:
    return ShardSplit(read_dataset_info(state_dataset), "train", (EGO_STATE,))


def test_streamed_batches_equal_the_in_memory_ones(camera_dataset: Path) -> None:
    info = read_dataset_info(camera_dataset)
    inputs = model_inputs(info.observation)
    streamed, loaded = ShardSplit(info, "train", inputs), SplitData(info, "train", inputs)
    idx = np.array([130, 2, 64, 63, 200], np.int64)  # across shards, out of order
    a, b = streamed.batch(idx), loaded.batch(idx)
    for part in ("inputs", "targets"):
        x, y = getattr(a, part), getattr(b, part)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert torch.equal(a.raw_speed, b.raw_speed) and np.array_equal(a.index, idx)


def test_ranks_split_each_global_batch_and_cover_the_epoch_once(train_split: ShardSplit) -> None:
    streams = [BatchStream(train_split, 24, r, 3, seed=7) for r in range(3)]
    per_rank = [s.epoch_batches() for s in streams]
    steps = len(train_split) // 24
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == steps
    seen = np.concatenate([np.concatenate(b) for b in per_rank])
    assert len(seen) == len(set(seen.tolist())) == steps * 24


def test_order_is_independent_of_world_size(train_split: ShardSplit) -> None:
    one = BatchStream(train_split, 24, 0, 1, seed=3).epoch_batches()
    two = [BatchStream(train_split, 24, r, 2, seed=3).epoch_batches() for r in range(2)]
    for step, global_batch in enumerate(one):
        assert np.array_equal(global_batch, np.concatenate([two[0][step], two[1][step]]))


def test_reading_stays_inside_a_window_of_shards(train_split: ShardSplit) -> None:
    """Window 1: the sequence is shard after shard (in the epoch's shard order), rows shuffled inside."""
    seq = BatchStream(train_split, 24, 0, 1, seed=5, window=1).order()
    offsets = train_split.offsets
    shard_of = np.searchsorted(offsets, seq, side="right") - 1
    runs = shard_of[np.r_[True, shard_of[1:] != shard_of[:-1]]]
    assert len(runs) == len(offsets) - 1 and sorted(runs.tolist()) == list(range(len(offsets) - 1))
    assert np.array_equal(np.sort(seq), np.arange(len(train_split)))
    first = seq[shard_of == shard_of[0]]
    assert not np.array_equal(first, np.sort(first))  # shuffled within the shard
    assert not np.array_equal(seq, BatchStream(train_split, 24, 0, 1, seed=5, window=2).order())


def test_resume_on_fewer_ranks_continues_at_the_next_unseen_sample(train_split: ShardSplit) -> None:
    two = [BatchStream(train_split, 24, r, 2, seed=2) for r in range(2)]
    seen = []
    for _ in range(3):
        seen += [two[r].epoch_batches()[0] for r in range(2)]
        for s in two:
            s.advance()
    one = BatchStream(train_split, 24, 0, 1, seed=2)
    one.load_state_dict(two[0].state_dict())
    seen += one.epoch_batches()
    ids = np.concatenate(seen)
    assert len(ids) == len(set(ids.tolist())) == (len(train_split) // 24) * 24
    assert np.array_equal(ids, BatchStream(train_split, 24, 0, 1, seed=2).order()[: len(ids)])


def test_a_checkpoint_of_another_data_order_is_refused(train_split: ShardSplit) -> None:
    state = BatchStream(train_split, 24, 0, 1, seed=2, window=4).state_dict()
    with pytest.raises(TrainError, match=r"data order window 4, this run has 2: resume with the same run.seed"):
        BatchStream(train_split, 24, 0, 1, seed=2, window=2).load_state_dict(state)


def test_resume_from_state_continues_the_same_sequence(train_split: ShardSplit) -> None:
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


@pytest.mark.parametrize(("batch", "world", "message"), [(25, 2, "not divisible"), (None, 1, "fewer than one batch")])
def test_impossible_batches_are_refused(train_split: SplitData, batch: int | None, world: int, message: str) -> None:
    with pytest.raises(TrainError, match=message):
        BatchStream(train_split, batch or len(train_split) + 1, 0, world, seed=0)


def test_describe_names_shard_and_row(train_split: ShardSplit) -> None:
    assert train_split.describe(np.array([65], np.int64)) == "shards/train-00001.npz rows 1"  # 64-sample shards


def test_speed_for_the_baselines_is_the_raw_ego_speed(state_dataset: Path) -> None:
    data = SplitData(read_dataset_info(state_dataset), "train", (EGO_STATE,))
    b = data.batch(np.array([3, 4], np.int64))
    speed = data.arrays[EGO_STATE_ARRAY.name][[3, 4], EGO_STATE_ARRAY.field("speed")]
    np.testing.assert_array_equal(b.raw_speed.numpy(), speed)
