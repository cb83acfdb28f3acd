"""Reading a dataset (contract "Dataset on disk") for training: pre-flight checks and resumable batches.

The trainer keeps its own sampler instead of a streaming IterableDataset: the epoch's order is ONE
global permutation (seeded by seed and epoch, independent of the number of ranks) and step s of an
epoch uses samples [s*G, (s+1)*G) of it, rank r taking its slice of b = G / world_size. The whole
loader state is therefore (epoch, samples consumed), which makes resume bit-exact and lets an
elastic restart with another world size continue exactly where the last checkpoint stopped.
Splits are loaded into memory (uint8 images stay uint8), which suits the datasets trained here.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from roadloop_cluster.models.config import ModelConfig
from roadloop_cluster.train.errors import DatasetMismatchError, TrainError

__all__ = ["Batch", "BatchStream", "DatasetInfo", "SplitData", "check_compatible", "read_dataset_info"]

FORMAT = "roadloop-dataset/1"
ARRAYS = ("ego_state", "route_target", "waypoints", "command")


@dataclass(frozen=True)
class DatasetInfo:
    root: Path
    index: dict[str, Any]

    @property
    def dataset_id(self) -> str:
        return str(self.index.get("dataset_id", ""))

    @property
    def horizon(self) -> int:
        return int(self.index["label"]["horizon"])

    @property
    def dt(self) -> float:
        return float(self.index["label"]["dt"])

    def stat(self, name: str) -> tuple[list[float], list[float]]:
        """(mean, std) of an array; a std of ~0 becomes 1 so normalising never divides by zero."""
        s = self.index["stats"][name]
        std = [float(x) if float(x) > 1e-6 else 1.0 for x in s["std"]]
        return [float(x) for x in s["mean"]], std

    def shard_files(self, split: str) -> list[Path]:
        return [self.root / "shards" / Path(sh["file"]).name for sh in self.index["splits"][split]["shards"]]


def read_dataset_info(root: Path) -> DatasetInfo:
    """Read DATASET/index.json; a missing or malformed index is one TrainError naming the file/field."""
    path = root / "index.json"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainError(f"{path}: no dataset index (a dataset exists only once index.json is written)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise TrainError(f"{path}: unreadable dataset index: {err}") from err
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise TrainError(f"{path}: format is {index.get('format')!r}, expected {FORMAT!r}")
    for key in ("label", "splits", "stats"):
        if not isinstance(index.get(key), dict):
            raise TrainError(f"{path}: field '{key}' missing or not a mapping")
    for split in ("train", "val"):
        if not index["splits"].get(split, {}).get("shards"):
            raise TrainError(f"{path}: split '{split}' has no shards")
    for name in ("ego_state", "route_target", "waypoints"):
        if name not in index["stats"]:
            raise TrainError(f"{path}: stats.{name} missing")
    return DatasetInfo(root, index)


def _npz_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Array shapes of an .npz from the .npy headers alone (no pixel data read)."""
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                with zf.open(name) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0
                    if version != (1, 0):
                        read = np.lib.format.read_array_header_2_0
                    shape, _, _ = read(f)
                    shapes[name.removesuffix(".npy")] = tuple(shape)
    except (OSError, zipfile.BadZipFile, ValueError) as err:
        raise TrainError(f"{path}: unreadable shard: {err}") from err
    return shapes


def check_compatible(info: DatasetInfo, cfg: ModelConfig) -> None:
    """Fail before any process starts when the dataset's feature spec does not fit the model config."""
    where = info.root / "index.json"
    if info.horizon != cfg.horizon:
        raise DatasetMismatchError(f"{where}: label.horizon is {info.horizon}, model.horizon is {cfg.horizon}")
    if abs(info.dt - cfg.dt) > 1e-9:
        raise DatasetMismatchError(f"{where}: label.dt is {info.dt}, model.dt is {cfg.dt}")
    first = info.shard_files("train")[0]
    shapes = _npz_shapes(first)
    want = {"ego_state": (4,), "route_target": (2,), "waypoints": (cfg.horizon, 2), "command": (2,)}
    for name, tail in want.items():
        if name not in shapes:
            raise DatasetMismatchError(f"{first}: array '{name}' missing")
        if shapes[name][1:] != tail:
            raise DatasetMismatchError(f"{first}: array '{name}' has shape {shapes[name]}, expected (N, *{tail})")
    if cfg.uses_image:
        if "image" not in shapes:
            raise DatasetMismatchError(
                f"{first}: state-only dataset (no 'image' array) but model.variant is 'camera'; "
                "use model.variant: state or a dataset with camera images"
            )
        h, w = cfg.image_size
        if shapes["image"][1:] != (h, w, 3):
            raise DatasetMismatchError(
                f"{first}: array 'image' has shape {shapes['image']}, model.image_size expects (N, {h}, {w}, 3)"
            )


class SplitData:
    """One split in memory, plus where every sample came from (shard file, row) for error messages."""

    def __init__(self, info: DatasetInfo, split: str, with_image: bool) -> None:
        parts: dict[str, list[NDArray[Any]]] = {k: [] for k in (*ARRAYS, "image")}
        self.files = info.shard_files(split)
        shard_of: list[NDArray[np.int32]] = []
        row: list[NDArray[np.int32]] = []
        for i, path in enumerate(self.files):
            try:
                with np.load(path) as z:
                    for name in ARRAYS + (("image",) if with_image else ()):
                        parts[name].append(np.asarray(z[name]))
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
                raise TrainError(f"{path}: cannot read shard: {err}") from err
            n = len(parts["ego_state"][-1])
            shard_of.append(np.full(n, i, np.int32))
            row.append(np.arange(n, dtype=np.int32))
        self.arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
        self.shard_of = np.concatenate(shard_of)
        self.row = np.concatenate(row)
        mean, std = info.stat("ego_state")
        self.ego_mean, self.ego_std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        mean, std = info.stat("route_target")
        self.route_mean, self.route_std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def __len__(self) -> int:
        return len(self.shard_of)

    def batch(self, idx: NDArray[np.int64]) -> Batch:
        a = self.arrays
        image = None
        if "image" in a:
            image = torch.from_numpy(a["image"][idx]).permute(0, 3, 1, 2).float().div_(255.0)
        return Batch(
            image=image,
            ego_state=torch.from_numpy((a["ego_state"][idx] - self.ego_mean) / self.ego_std),
            route_target=torch.from_numpy((a["route_target"][idx] - self.route_mean) / self.route_std),
            raw_speed=torch.from_numpy(a["ego_state"][idx, 0].copy()),
            waypoints=torch.from_numpy(a["waypoints"][idx]),
            target_speed=torch.from_numpy(a["command"][idx, 1:2].copy()),
            index=idx,
        )

    def describe(self, idx: NDArray[np.int64]) -> str:
        """'shards/train-00003.npz rows 4, 9' for error messages."""
        by_file: dict[str, list[int]] = {}
        for i in idx:
            by_file.setdefault(f"shards/{self.files[self.shard_of[i]].name}", []).append(int(self.row[i]))
        return "; ".join(f"{f} rows {', '.join(map(str, rows[:8]))}" for f, rows in by_file.items())


@dataclass
class Batch:
    image: torch.Tensor | None
    ego_state: torch.Tensor
    route_target: torch.Tensor
    raw_speed: torch.Tensor
    waypoints: torch.Tensor
    target_speed: torch.Tensor
    index: NDArray[np.int64]

    def to(self, device: torch.device) -> Batch:
        def mv(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=True)

        img = None if self.image is None else mv(self.image)
        return Batch(
            img,
            mv(self.ego_state),
            mv(self.route_target),
            mv(self.raw_speed),
            mv(self.waypoints),
            mv(self.target_speed),
            self.index,
        )


class BatchStream:
    """Deterministic, resumable batches for one rank; state = (epoch, samples consumed this epoch)."""

    def __init__(self, data: SplitData, global_batch: int, rank: int, world_size: int, seed: int) -> None:
        if global_batch % world_size:
            raise TrainError(f"run.batch_size {global_batch} is not divisible by the {world_size} ranks")
        if len(data) < global_batch:
            raise TrainError(f"train split has {len(data)} samples, fewer than one batch of {global_batch}")
        self.data, self.global_batch, self.rank, self.seed = data, global_batch, rank, seed
        self.local = global_batch // world_size
        self.epoch, self.consumed = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return len(self.data) // self.global_batch

    def _perm(self) -> NDArray[np.int64]:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.data))

    def epoch_batches(self) -> list[NDArray[np.int64]]:
        """This rank's remaining index batches of the current epoch (drop-last, same count on every rank)."""
        perm = self._perm()
        out = []
        for start in range(self.consumed, self.steps_per_epoch * self.global_batch, self.global_batch):
            lo = start + self.rank * self.local
            out.append(perm[lo : lo + self.local])
        return out

    def advance(self) -> None:
        self.consumed += self.global_batch

    def next_epoch(self) -> None:
        self.epoch, self.consumed = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
