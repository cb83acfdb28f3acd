"""Reading a dataset for training (index: `roadloop_core.contract.dataset_index`, arrays and tensors:
`roadloop_core.contract.tensors`): pre-flight checks and resumable batches.

The trainer keeps its own sampler instead of a streaming IterableDataset: the epoch's order is ONE
global permutation (seeded by seed and epoch, independent of the number of ranks) and step s of an
epoch uses samples [s*G, (s+1)*G) of it, rank r taking its slice of b = G / world_size. The whole
loader state is therefore (epoch, samples consumed), which makes resume bit-exact and lets an
elastic restart with another world size continue exactly where the last checkpoint stopped.
Splits are loaded into memory (uint8 images stay uint8), which suits the datasets trained here.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from roadloop_cluster.train.errors import DatasetMismatchError, TrainError
from roadloop_core.contract.dataset_index import INDEX_FILE, DatasetIndex, read_dataset_index
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import ARRAYS, EGO_STATE_ARRAY, OUTPUTS, ModelTensor, model_inputs, stats_arrays

__all__ = ["Batch", "BatchStream", "DatasetInfo", "SplitData", "check_shards", "read_dataset_info"]

_SPEED = EGO_STATE_ARRAY.field("speed")


@dataclass(frozen=True)
class DatasetInfo:
    root: Path
    index: DatasetIndex

    @property
    def dataset_id(self) -> str:
        return self.index.dataset_id

    @property
    def observation(self) -> ObservationSpec:
        return self.index.observation

    def stat(self, name: str) -> tuple[list[Any], list[Any]]:
        """(mean, std) of an array, nested like one sample; a std of ~0 becomes 1 so normalising never divides by
        zero."""
        s = self.index.stats[name]
        std = np.asarray(s.std, dtype=np.float64)
        return np.asarray(s.mean, dtype=np.float64).tolist(), np.where(std > 1e-6, std, 1.0).tolist()

    def normalization(self) -> dict[str, tuple[list[Any], list[Any]]]:
        """(mean, std) of every array a "stats"-normalised model input reads, by array name."""
        return {
            t.array.name: self.stat(t.array.name) for t in model_inputs(self.observation) if t.normalization == "stats"
        }

    def shard_files(self, split: str) -> list[Path]:
        return [self.root / "shards" / Path(sh.file).name for sh in self.index.split(split).shards]


def read_dataset_info(root: Path) -> DatasetInfo:
    """The dataset index, plus what training needs of it: both splits with shards, every statistic."""
    index = read_dataset_index(root)
    path = root / INDEX_FILE
    for split in ("train", "val"):
        if split not in index.splits or not index.splits[split].shards:
            raise TrainError(
                f"{path}: split '{split}' has no shards; training needs both: rebuild with build.val_fraction > 0 "
                "(one bag is split inside by time blocks, build.split_by: auto or time)"
            )
    for array in stats_arrays(index.observation):
        if array.name not in index.stats:
            raise TrainError(f"{path}: stats.{array.name} missing")
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


def _arrays_read(inputs: Sequence[ModelTensor]) -> list[str]:
    """Arrays behind `inputs` and the outputs, plus the ego state (the baselines' speed), without repeats."""
    names = [t.array.name for t in (*inputs, *OUTPUTS)] + [EGO_STATE_ARRAY.name]
    return list(dict.fromkeys(names))


def check_shards(info: DatasetInfo) -> None:
    """Fail before any process starts when the first train shard's arrays are not what index.json's
    observation spec says they are (the model is shaped from the index, so they must agree)."""
    first = info.shard_files("train")[0]
    shapes = _npz_shapes(first)
    arrays = {a.name: a for a in ARRAYS}
    for name in _arrays_read(model_inputs(info.observation)):
        want = arrays[name].resolve(info.observation)
        if name not in shapes:
            raise DatasetMismatchError(f"{first}: array '{name}' missing")
        if shapes[name][1:] != want:
            raise DatasetMismatchError(
                f"{first}: array '{name}' has shape {shapes[name]}, {info.root / INDEX_FILE} says (N, *{want})"
            )


class SplitData:
    """One split in memory, plus where every sample came from (shard file, row) for error messages.

    `inputs` are the model tensors its batches carry (the model's, or the ego state alone for the
    baselines); batches always carry every output's target.
    """

    def __init__(self, info: DatasetInfo, split: str, inputs: Sequence[ModelTensor]) -> None:
        self.inputs = tuple(inputs)
        names = _arrays_read(self.inputs)
        parts: dict[str, list[NDArray[Any]]] = {k: [] for k in names}
        self.files = info.shard_files(split)
        shard_of: list[NDArray[np.int32]] = []
        row: list[NDArray[np.int32]] = []
        for i, path in enumerate(self.files):
            try:
                with np.load(path) as z:
                    for name in names:
                        parts[name].append(np.asarray(z[name]))
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
                raise TrainError(f"{path}: cannot read shard: {err}") from err
            n = len(parts[names[0]][-1])
            shard_of.append(np.full(n, i, np.int32))
            row.append(np.arange(n, dtype=np.int32))
        self.arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
        self.shard_of = np.concatenate(shard_of)
        self.row = np.concatenate(row)
        self.norm: dict[str, tuple[NDArray[np.float32], NDArray[np.float32]]] = {}
        for t in self.inputs:
            if t.normalization == "stats":
                mean, std = info.stat(t.array.name)
                self.norm[t.name] = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def __len__(self) -> int:
        return len(self.shard_of)

    def _input(self, t: ModelTensor, idx: NDArray[np.int64]) -> torch.Tensor:
        x = self.arrays[t.array.name][idx]
        if t.normalization == "stats":
            mean, std = self.norm[t.name]
            return torch.from_numpy((x - mean) / std)
        out = torch.from_numpy(x)
        if t.channels_first:
            out = out.permute(0, 3, 1, 2)
        out = out.float()
        if t.normalization == "scale":
            assert t.scale is not None
            out = out.div_(1.0 / t.scale)  # x / 255 exactly, as the vehicle's x * (1/255) within rounding
        return out

    def _target(self, t: ModelTensor, idx: NDArray[np.int64]) -> torch.Tensor:
        y = self.arrays[t.array.name]
        col = t.column_index
        return torch.from_numpy(y[idx] if col is None else y[idx, col : col + 1].copy())

    def batch(self, idx: NDArray[np.int64]) -> Batch:
        return Batch(
            inputs={t.name: self._input(t, idx) for t in self.inputs},
            targets={t.name: self._target(t, idx) for t in OUTPUTS},
            raw_speed=torch.from_numpy(self.arrays[EGO_STATE_ARRAY.name][idx, _SPEED].copy()),
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
    """Model inputs and output targets by tensor name (`roadloop_core.contract.tensors`)."""

    inputs: dict[str, torch.Tensor]
    targets: dict[str, torch.Tensor]
    raw_speed: torch.Tensor  # ego speed in m/s, not normalised (the constant-velocity baseline)
    index: NDArray[np.int64]

    def to(self, device: torch.device) -> Batch:
        def mv(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=True)

        return Batch(
            {k: mv(v) for k, v in self.inputs.items()},
            {k: mv(v) for k, v in self.targets.items()},
            mv(self.raw_speed),
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
