"""Round trips and pure helpers of the data package: shard files, CDR stamps, statistics, splits."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from roadloop_cluster.data.build import _assign_splits, dataset_id, split_of
from roadloop_cluster.data.config import DatasetConfig
from roadloop_cluster.data.errors import DataError
from roadloop_cluster.data.lazy import LazyMessage, cdr_header_stamp_ns
from roadloop_cluster.data.shards import ShardWriter, open_npz_mmap, write_npz, write_npz_parts
from roadloop_cluster.data.stats import RunningStats
from roadloop_core.codec import image_to_numpy
from roadloop_core.typesys import typestore_for
from tests.support.drive_bags import _header, _pose, _quat, _vec

RNG = np.random.default_rng(0)
ARRAYS = {
    "image": RNG.integers(0, 256, (10, 4, 5, 3), dtype=np.uint8),
    "ego_state": RNG.normal(size=(10, 4)).astype(np.float32),
    "stamp_ns": np.arange(10, dtype=np.int64) * 10**8,
}


def test_npz_round_trip_matches_numpy(tmp_path: Path) -> None:
    write_npz(tmp_path / "a.npz", ARRAYS)
    np.savez(tmp_path / "ref.npz", **ARRAYS)  # type: ignore[arg-type]
    with np.load(tmp_path / "a.npz") as z:
        assert list(z.files) == list(ARRAYS)
        for k, v in ARRAYS.items():
            np.testing.assert_array_equal(z[k], v)
    with zipfile.ZipFile(tmp_path / "a.npz") as mine, zipfile.ZipFile(tmp_path / "ref.npz") as ref:
        for k in ARRAYS:  # member bytes are numpy's own .npy encoding
            assert mine.read(f"{k}.npy") == ref.read(f"{k}.npy")
    mm = open_npz_mmap(tmp_path / "a.npz")
    for k, v in ARRAYS.items():
        np.testing.assert_array_equal(mm[k], v)


def test_npz_bytes_are_reproducible_and_blockwise_identical(tmp_path: Path) -> None:
    write_npz(tmp_path / "a.npz", ARRAYS)
    write_npz(tmp_path / "b.npz", ARRAYS)
    write_npz_parts(tmp_path / "c.npz", {k: [v[:3], v[3:4], v[4:]] for k, v in ARRAYS.items()})
    a = (tmp_path / "a.npz").read_bytes()
    assert a == (tmp_path / "b.npz").read_bytes() == (tmp_path / "c.npz").read_bytes()


def test_shard_writer_cuts_fixed_sizes(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "train", 4, tuple(ARRAYS))
    w.add({k: v[:3] for k, v in ARRAYS.items()})
    w.add({k: v[3:] for k, v in ARRAYS.items()})
    shards = w.close()
    assert [s.count for s in shards] == [4, 4, 2]
    got = np.concatenate([np.load(tmp_path / Path(s.file).name)["stamp_ns"] for s in shards])
    np.testing.assert_array_equal(got, ARRAYS["stamp_ns"])


def test_compressed_or_garbage_shards_are_refused(tmp_path: Path) -> None:
    np.savez_compressed(tmp_path / "z.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="compressed"):
        open_npz_mmap(tmp_path / "z.npz")
    (tmp_path / "g.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="unreadable shard"):
        open_npz_mmap(tmp_path / "g.npz")


@pytest.mark.parametrize(
    ("typename", "sec", "nanosec"),
    [
        ("sensor_msgs/msg/Imu", 0, 0),
        ("nav_msgs/msg/Odometry", 1_700_000_000, 999_999_999),
        ("ackermann_msgs/msg/AckermannDriveStamped", 12, 5),
    ],
)
def _message(store: Any, typename: str, ns: int) -> Any:
    t = store.types
    header = _header(store, ns, "base_link")
    if typename == "sensor_msgs/msg/Imu":
        z9 = np.zeros(9)
        return t[typename](header, _quat(store, 0.0), z9, _vec(store, 0, 0, 1), z9, _vec(store, 1, 2, 3), z9)
    if typename == "nav_msgs/msg/Odometry":
        cov = np.zeros(36)
        pose = t["geometry_msgs/msg/PoseWithCovariance"](_pose(store, 1.0, 2.0, 0.3), cov)
        twist = t["geometry_msgs/msg/TwistWithCovariance"](
            t["geometry_msgs/msg/Twist"](_vec(store, 1, 0, 0), _vec(store, 0, 0, 0)), cov
        )
        return t[typename](header, "base_link", pose, twist)
    drive = t["ackermann_msgs/msg/AckermannDrive"](0.1, 0.0, 5.0, 0.0, 0.0)
    return t[typename](header, drive)


@pytest.mark.parametrize(
    ("typename", "sec", "nanosec"),
    [
        ("sensor_msgs/msg/Imu", 0, 0),
        ("nav_msgs/msg/Odometry", 1_700_000_000, 999_999_999),
        ("ackermann_msgs/msg/AckermannDriveStamped", 12, 5),
    ],
)
def test_lazy_message_stamp_from_cdr(typename: str, sec: int, nanosec: int) -> None:
    store = typestore_for("jazzy")
    ns = sec * 10**9 + nanosec
    data = store.serialize_cdr(_message(store, typename, ns), typename)
    assert cdr_header_stamp_ns(data) == ns
    lazy = LazyMessage(store, typename, data)
    assert lazy.stamp_ns == ns
    assert lazy.header.stamp.nanosec == nanosec  # decoded on first attribute access
    assert lazy.decoded() is lazy.decoded()  # once


def test_running_stats_merge_equals_numpy() -> None:
    x = RNG.normal(3.0, 2.0, size=(101, 8, 2))
    st = RunningStats()
    for lo in range(0, 101, 17):
        part = RunningStats()
        part.update(x[lo : lo + 17])
        st.merge(part)
    np.testing.assert_allclose(st.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(st.std, x.std(axis=0), rtol=1e-12)


@pytest.mark.parametrize(
    ("n", "val_fraction", "expect_val"),
    [(1, 0.2, False), (2, 0.2, True), (10, 0.0, False), (10, 0.5, True)],
)
def test_splits_are_per_bag_deterministic_and_both_exist(n: int, val_fraction: float, expect_val: bool) -> None:
    shas = [f"{i:064x}" for i in range(n)]
    splits = _assign_splits(shas, "salt", val_fraction)
    assert splits == _assign_splits(shas, "salt", val_fraction)
    assert "train" in splits and ("val" in splits) == expect_val
    if n == 10 and val_fraction == 0.5:  # hash-drawn: a bag keeps its split whatever else is built with it
        assert [split_of(s, "salt", 0.5) for s in shas] == splits


def test_dataset_id_depends_on_config_topics_and_inputs() -> None:
    cfg = DatasetConfig()
    topics = {"camera": ["/cam", "sensor_msgs/msg/Image"]}
    base = dataset_id(cfg, topics, ["a", "b"])
    assert base == dataset_id(DatasetConfig(), dict(topics), ["a", "b"])
    assert base != dataset_id(cfg, topics, ["a", "c"])
    assert base != dataset_id(cfg, {"camera": ["/other", "sensor_msgs/msg/Image"]}, ["a", "b"])


@pytest.mark.parametrize(("encoding", "channels"), [("rgb8", 3), ("mono8", 1), ("bgra8", 4)])
def test_lazy_image_is_a_view_of_the_bag_bytes_and_decodes_like_the_typestore(encoding: str, channels: int) -> None:
    """The builder's camera path: pixels stay in the (chunk's) bytes until the one decoder reads them."""
    store = typestore_for("jazzy")
    pixels = RNG.integers(0, 256, size=(3, 5 * channels + 2), dtype=np.uint8)  # 2 bytes of row padding
    msg = store.types["sensor_msgs/msg/Image"](
        _header(store, 1_700_000_000_123_456_789, "cam"), 3, 5, encoding, 0, 5 * channels + 2, pixels.ravel()
    )
    data = bytearray(store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    lazy = LazyMessage(store, "sensor_msgs/msg/Image", memoryview(data))
    assert lazy.stamp_ns == 1_700_000_000_123_456_789
    ref = store.deserialize_cdr(bytes(data), "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(image_to_numpy(lazy), image_to_numpy(ref))
    before = image_to_numpy(lazy).copy()
    data[len(data) - pixels.size] ^= 0xFF  # the first pixel's first byte: seen through the view, nothing was copied
    assert not np.array_equal(image_to_numpy(lazy), before)
