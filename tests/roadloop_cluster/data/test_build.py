"""`roadloop data build|info` end to end on synthetic bags (real bags, real processes, real files)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from roadloop_cluster.data import BuildOptions, NoUsableInputError, build_dataset, read_dataset_index
from roadloop_cluster.data.errors import DataError
from tests.support.drive_bags import SynthDrive, _Track

from .conftest import truncate_bag


def shard_arrays(root: Path, split: str) -> dict[str, np.ndarray]:
    index = read_dataset_index(root)
    parts: dict[str, list[np.ndarray]] = {}
    for sh in index.splits[split].shards:
        with np.load(root / sh.file) as z:
            for k in z.files:
                parts.setdefault(k, []).append(z[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


def roadloop(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from roadloop_core.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def test_index_describes_the_dataset(dataset: Path) -> None:
    index = read_dataset_index(dataset)
    assert index.format == "roadloop-dataset/1"
    assert (index.observation.label_horizon, index.observation.label_dt_s) == (8, 0.5)
    assert len(index.sources) == 3 and index.skipped == ()
    assert {s.split for s in index.sources} == {"train", "val"}
    assert index.count == sum(s.samples for s in index.sources) > 0
    assert index.drops["no_future"] > 0  # the last 4 s of every drive have no full horizon
    assert index.arrays == ("image", "ego_state", "route_target", "waypoints", "command", "stamp_ns", "source")
    for split in ("train", "val"):
        shards = index.splits[split].shards
        assert [sh.count for sh in shards[:-1]] == [16] * (len(shards) - 1)  # fixed size but the last
        assert sum(sh.count for sh in shards) == index.splits[split].count


def test_the_index_reads_back_to_the_same_bytes(dataset: Path) -> None:
    """One reader, one writer: what the builder wrote parses and serialises to exactly the same file."""
    from roadloop_core.contract.dataset_index import write_dataset_index

    copy = dataset.parent / "reread"
    copy.mkdir(exist_ok=True)
    write_dataset_index(copy, read_dataset_index(dataset))
    assert (copy / "index.json").read_bytes() == (dataset / "index.json").read_bytes()
    label = json.loads((dataset / "index.json").read_text())["label"]
    assert label == {"horizon": 8, "dt": 0.5}  # written from the observation spec, kept for readers of the file


def test_shard_arrays_follow_the_contract(dataset: Path) -> None:
    index = read_dataset_index(dataset)
    a = shard_arrays(dataset, "train")
    n = index.splits["train"].count
    h, w = index.observation.image_height, index.observation.image_width
    expected = {
        "image": ((n, h, w, 3), np.uint8),
        "ego_state": ((n, 4), np.float32),
        "route_target": ((n, 2), np.float32),
        "waypoints": ((n, 8, 2), np.float32),
        "command": ((n, 2), np.float32),
        "stamp_ns": ((n,), np.int64),
        "source": ((n,), np.int32),
    }
    assert {k: (v.shape, v.dtype) for k, v in a.items()} == expected


def test_splits_are_by_bag(dataset: Path) -> None:
    index = read_dataset_index(dataset)
    for split in ("train", "val"):
        sources = set(shard_arrays(dataset, split)["source"].tolist())
        assert sources == {i for i, s in enumerate(index.sources) if s.split == split}


def test_statistics_match_the_train_shards(dataset: Path) -> None:
    index = read_dataset_index(dataset)
    a = shard_arrays(dataset, "train")
    for name in ("ego_state", "route_target", "command"):
        np.testing.assert_allclose(index.stats[name].mean, a[name].mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(index.stats[name].std, a[name].std(axis=0), rtol=1e-4, atol=1e-6)
    wp = a["waypoints"]
    per_step = index.stats["waypoints"].per_step_mean
    np.testing.assert_allclose(per_step, wp.mean(axis=0), rtol=1e-5, atol=1e-5)  # type: ignore[arg-type]
    np.testing.assert_allclose(index.stats["waypoints"].std, wp.reshape(-1, 2).std(axis=0), rtol=1e-4)


def test_labels_match_the_true_trajectory(dataset: Path) -> None:
    index = read_dataset_index(dataset)
    a = shard_arrays(dataset, "train")
    src = index.sources[int(a["source"][0])]
    seed = int(Path(src.path).name.removeprefix("drive"))
    drive = SynthDrive(duration_s=8.0, seed=seed)
    track = _Track(drive)
    for i in np.flatnonzero(a["source"] == a["source"][0])[::7]:
        t = (int(a["stamp_ns"][i]) - drive.start_ns) * 1e-9
        x, y, yaw, v, _, _ = track.at(t)
        c, s = math.cos(yaw), math.sin(yaw)
        for k in range(8):
            fx, fy, *_ = track.at(t + 0.5 * (k + 1))
            expected = (c * (fx - x) + s * (fy - y), -s * (fx - x) + c * (fy - y))
            np.testing.assert_allclose(a["waypoints"][i, k], expected, atol=0.02)
        assert a["command"][i, 1] == pytest.approx(v, abs=1e-3)  # the recorded speed command
        assert a["ego_state"][i, 0] == pytest.approx(v, abs=1e-3)


def test_building_twice_gives_the_same_id_and_bytes(dataset: Path, bag_root: Path, small_shard_config: Path) -> None:
    again = dataset.parent / "again"
    build_dataset([bag_root], again, BuildOptions(config_path=small_shard_config, workers=1, progress=False))
    first, second = read_dataset_index(dataset), read_dataset_index(again)
    assert first.dataset_id == second.dataset_id
    assert first.splits == second.splits  # same files, counts and sha256
    for sh in first.splits["train"].shards + first.splits["val"].shards:
        assert (dataset / sh.file).read_bytes() == (again / sh.file).read_bytes()


def test_state_only_build_from_a_bag_without_camera(
    no_camera_bag: Path, state_only_config: Path, tmp_path: Path
) -> None:
    index = build_dataset([no_camera_bag], tmp_path / "ds", BuildOptions(config_path=state_only_config, progress=False))
    assert index.observation.camera is None
    assert index.count > 0 and "image" not in index.arrays
    a = shard_arrays(tmp_path / "ds", "train")
    assert "image" not in a and len(a["ego_state"]) == index.count
    steps = np.diff(a["stamp_ns"])
    assert (steps == 100_000_000).all()  # the 10 Hz sample clock


def test_bad_bags_are_skipped_and_listed(bag_root: Path, no_camera_bag: Path, tmp_path: Path) -> None:
    good = sorted(p.parent for p in bag_root.rglob("metadata.yaml"))[0]
    broken = truncate_bag(good, tmp_path / "in" / "truncated")
    index = build_dataset([good, broken, no_camera_bag], tmp_path / "ds", BuildOptions(progress=False))
    reasons = {Path(s.path).name: s.reason for s in index.skipped}
    assert reasons.keys() == {"truncated", no_camera_bag.name}
    # the bag layer refuses the damaged file (or, recovering it, reports what disagrees with metadata.yaml)
    assert re.search(r"damaged|truncated", reasons["truncated"]), reasons["truncated"]
    assert reasons[no_camera_bag.name] == (
        "refused: /sensors/camera/front/image (camera): not in the bag (observation.camera) -> record "
        "/sensors/camera/front/image, or set observation.camera to another role; a log without video: set "
        "observation.camera: null (state-only)"
    )
    assert [Path(s.path) for s in index.sources] == [good]


def test_duplicate_bags_count_once(bag_root: Path, tmp_path: Path) -> None:
    """A hub store may hold the same bag twice under different names: content decides."""
    import shutil

    good = sorted(p.parent for p in bag_root.rglob("metadata.yaml"))[0]
    store = tmp_path / "blobs"
    for name in ("ab/ab12", "cd/cd34"):
        shutil.copytree(good, store / name)
    index = build_dataset([store], tmp_path / "ds", BuildOptions(progress=False))
    assert len(index.sources) == 1
    assert index.skipped[0].reason.startswith("duplicate of ")


def test_symlinked_bags_are_found(bag_root: Path, tmp_path: Path) -> None:
    """`roadloop hub export-bags` hands over a folder of symlinks into the hub's blob store."""
    from roadloop_cluster.data.discover import find_bags

    bags = sorted(p.parent for p in bag_root.rglob("metadata.yaml"))
    links = tmp_path / "export"
    links.mkdir()
    for i, b in enumerate(bags):
        (links / f"car{i}__drive").symlink_to(b, target_is_directory=True)
    (links / "loop").symlink_to(links, target_is_directory=True)  # a cycle is not followed
    assert find_bags([links]) == sorted(links / f"car{i}__drive" for i in range(len(bags)))


def test_nothing_usable_is_exit_2_and_leaves_nothing(bag_root: Path, tmp_path: Path) -> None:
    good = sorted(p.parent for p in bag_root.rglob("metadata.yaml"))[0]
    broken = truncate_bag(good, tmp_path / "in" / "only")
    out = tmp_path / "ds"
    res = roadloop("data", "build", str(broken), "--out", str(out), "-q")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no usable bags among 1" in lines[0] and re.search("damaged|truncated", lines[0])
    assert not out.exists()
    assert os.listdir(tmp_path) == ["in"]  # no temp folder left behind
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoUsableInputError, match="no rosbag2 bags found"):
        build_dataset([tmp_path / "empty"], out)


def test_output_is_protected(dataset: Path, tmp_path: Path, bag_root: Path) -> None:
    with pytest.raises(DataError, match="already exists there; pass --overwrite"):
        build_dataset([bag_root], dataset, BuildOptions(progress=False))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="is not a roadloop dataset"):
        build_dataset([bag_root], other, BuildOptions(progress=False))


def test_cli_info_shows_counts_drops_stats_sources(dataset: Path, tmp_path: Path) -> None:
    res = roadloop("data", "info", str(dataset), "--plot", str(tmp_path / "ds.png"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "ds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = read_dataset_index(dataset)
    for text in ("train", "val", "no_future", "ego_state", "route_target", index.dataset_id):
        assert text in res.stdout
    assert str(index.splits["train"].count) in res.stdout


def test_info_on_an_unfinished_dataset_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    res = roadloop("data", "info", str(tmp_path / "half"))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "index.json" in res.stderr


def test_index_is_valid_json_written_last(dataset: Path) -> None:
    index = json.loads((dataset / "index.json").read_text())
    assert not any(p.name.startswith(".") for p in dataset.rglob("*"))  # no temp files left
    assert all((dataset / sh["file"]).is_file() for s in index["splits"].values() for sh in s["shards"])
