"""Reading a dataset for training (index: `roadloop_core.contract.dataset_index`, arrays and tensors:
`roadloop_core.contract.tensors`): pre-flight checks and resumable, streamed batches.

Training streams: a rank reads only the rows of its own batches, from the memory-mapped shards
(`roadloop_cluster.data.loader.ShardDataset`, which keeps a few shards open), so its memory does
not grow with the dataset. The epoch's order is ONE global sequence seeded by (seed, epoch) and
independent of the number of ranks: the shards in ShardDataset's per-epoch permutation, cut into
windows of `window` shards whose rows are shuffled within the window (a batch touches at most
two windows, so reading stays local however large the dataset is). Step s of an epoch uses
positions [s*G, (s+1)*G) of that sequence, rank r taking its slice of b = G / world_size. The
whole loader state is therefore (epoch, samples consumed): resume is bit-exact, an elastic restart
with another world size continues at the next unseen sample, and each sample is trained once per
epoch (drop-last: the final G-remainder of the sequence waits for another epoch's order).

`SplitData` loads a split's small arrays into memory, for what needs them all at once: the
baselines (ego state and labels, no images), the model's step scale, benchmarks comparing paths.
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

from roadloop_cluster.data.errors import DataError
from roadloop_cluster.data.loader import ShardDataset
from roadloop_cluster.train.errors import DatasetMismatchError, TrainError
from roadloop_core.contract.dataset_index import INDEX_FILE, DatasetIndex, read_dataset_index
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import ARRAYS, EGO_STATE_ARRAY, OUTPUTS, ModelTensor, model_inputs, stats_arrays

__all__ = ["Batch", "BatchStream", "DatasetInfo", "ShardSplit", "SplitData", "check_shards", "read_dataset_info"]

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


class _Tensors:
    """Model tensors from raw shard arrays: normalisation, channels-first images, target columns."""

    def __init__(self, info: DatasetInfo, inputs: Sequence[ModelTensor]) -> None:
        self.inputs = tuple(inputs)
        self.names = _arrays_read(self.inputs)
        self.norm: dict[str, tuple[NDArray[np.float32], NDArray[np.float32]]] = {}
        for t in self.inputs:
            if t.normalization == "stats":
                mean, std = info.stat(t.array.name)
                self.norm[t.name] = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def _input(self, t: ModelTensor, x: NDArray[Any]) -> torch.Tensor:
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

    @staticmethod
    def _target(t: ModelTensor, y: NDArray[Any]) -> torch.Tensor:
        col = t.column_index
        return torch.from_numpy(np.ascontiguousarray(y if col is None else y[:, col : col + 1]))

    def batch(self, rows: dict[str, NDArray[Any]], idx: NDArray[np.int64]) -> Batch:
        """`rows`: the batch's rows of every array in `names`, by array name."""
        return Batch(
            inputs={t.name: self._input(t, rows[t.array.name]) for t in self.inputs},
            targets={t.name: self._target(t, rows[t.array.name]) for t in OUTPUTS},
            raw_speed=torch.from_numpy(np.ascontiguousarray(rows[EGO_STATE_ARRAY.name][:, _SPEED])),
            index=idx,
        )


class ShardSplit:
    """One split read on demand from its memory-mapped shards; samples are named by canonical id
    (shard offset + row, in index order). `inputs` are the model tensors its batches carry; batches
    always carry every output's target."""

    def __init__(self, info: DatasetInfo, split: str, inputs: Sequence[ModelTensor], *, open_shards: int = 8) -> None:
        try:
            self.ds = ShardDataset(info.root, split, rank=0, world_size=1, open_shards=open_shards)
        except DataError as err:
            raise TrainError(str(err)) from err
        self.tensors = _Tensors(info, inputs)
        self.inputs = self.tensors.inputs

    def __len__(self) -> int:
        return self.ds.num_samples

    @property
    def offsets(self) -> NDArray[np.int64]:
        return self.ds.offsets

    def array(self, name: str) -> NDArray[Any]:
        """One (small) array of the whole split, e.g. the labels for the model's step scale."""
        return self.rows(np.arange(len(self), dtype=np.int64), [name])[name]

    def rows(self, idx: NDArray[np.int64], names: Sequence[str]) -> dict[str, NDArray[Any]]:
        try:
            return self.ds.read(idx, list(names))
        except (DataError, OSError, ValueError) as err:
            raise TrainError(f"cannot read shard: {err}") from err

    def batch(self, idx: NDArray[np.int64]) -> Batch:
        return self.tensors.batch(self.rows(idx, self.tensors.names), idx)

    def describe(self, idx: NDArray[np.int64]) -> str:
        """'shards/train-00003.npz rows 4, 9' for error messages."""
        shard_of = np.searchsorted(self.offsets, idx, side="right") - 1
        by_file: dict[str, list[int]] = {}
        for i, s in zip(idx, shard_of, strict=True):
            by_file.setdefault(f"shards/{self.ds.files[s].name}", []).append(int(i - self.offsets[s]))
        return "; ".join(f"{f} rows {', '.join(map(str, rows[:8]))}" for f, rows in by_file.items())


class SplitData:
    """One split's arrays in memory (concatenated in canonical order): for the baselines (ego state and
    labels only) and for measuring the streamed path against an in-memory one."""

    def __init__(self, info: DatasetInfo, split: str, inputs: Sequence[ModelTensor]) -> None:
        stream = ShardSplit(info, split, inputs)
        self.tensors, self.inputs = stream.tensors, stream.inputs
        self.arrays = stream.rows(np.arange(len(stream), dtype=np.int64), stream.tensors.names)
        self._describe = stream.describe

    def __len__(self) -> int:
        return len(self.arrays[EGO_STATE_ARRAY.name])

    def batch(self, idx: NDArray[np.int64]) -> Batch:
        return self.tensors.batch({k: v[idx] for k, v in self.arrays.items()}, idx)

    def describe(self, idx: NDArray[np.int64]) -> str:
        return self._describe(idx)


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

    def __init__(
        self, data: ShardSplit, global_batch: int, rank: int, world_size: int, seed: int, window: int = 4
    ) -> None:
        if global_batch % world_size:
            raise TrainError(f"run.batch_size {global_batch} is not divisible by the {world_size} ranks")
        if len(data) < global_batch:
            raise TrainError(f"train split has {len(data)} samples, fewer than one batch of {global_batch}")
        self.data, self.global_batch, self.rank, self.seed = data, global_batch, rank, seed
        self.window = max(1, window)
        self.local = global_batch // world_size
        self.epoch, self.consumed = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return len(self.data) // self.global_batch

    def order(self) -> NDArray[np.int64]:
        """The epoch's global sequence of canonical sample ids (the same for every world size)."""
        ds, offsets = self.data.ds, self.data.offsets
        ds.seed = self.seed
        ds.set_epoch(self.epoch)
        shards = ds.shard_order()
        parts = []
        for w, lo in enumerate(range(0, len(shards), self.window)):
            ids = np.concatenate(
                [np.arange(offsets[s], offsets[s + 1], dtype=np.int64) for s in shards[lo : lo + self.window]]
            )
            parts.append(np.random.default_rng([self.seed, self.epoch, w]).permutation(ids))
        return np.concatenate(parts)

    def epoch_batches(self) -> list[NDArray[np.int64]]:
        """This rank's remaining index batches of the current epoch (drop-last, same count on every rank)."""
        seq = self.order()
        out = []
        for start in range(self.consumed, self.steps_per_epoch * self.global_batch, self.global_batch):
            lo = start + self.rank * self.local
            out.append(seq[lo : lo + self.local])
        return out

    def advance(self) -> None:
        self.consumed += self.global_batch

    def next_epoch(self) -> None:
        self.epoch, self.consumed = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed, "window": self.window}

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key in ("seed", "window"):
            if key in state and int(state[key]) != getattr(self, key):
                raise TrainError(
                    f"checkpoint was trained with data order {key} {state[key]}, this run has {getattr(self, key)}: "
                    "resume with the same run.seed and run.shuffle_window_shards"
                )
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
