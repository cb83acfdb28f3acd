"""Sharded, shuffled, resumable torch loading of a roadloop dataset.

    ds = ShardDataset(root, "train", seed=0, shuffle_buffer=1024, rank=rank, world_size=world)
    loader = make_loader(ds, batch_size=64, num_workers=2)   # a ResumableLoader around a DataLoader
    loader.load_state_dict(ckpt["data"])                     # optional: resume mid-epoch
    for epoch in range(start_epoch, epochs):
        loader.set_epoch(epoch)                              # no-op for the epoch a resumed state is in
        for batch in loader:                                 # dict of tensors, leading dim = batch
            ...train step...
            ckpt["data"] = loader.state_dict()               # save with the model, per rank

How work is split. Per (seed, epoch) the shard order is permuted (same on every
rank); the concatenated rows form the epoch's stream. Stream position p belongs to
rank p % world_size, and that rank's q-th position to DataLoader worker q % num_workers.
So every sample is read exactly once per epoch across ranks x workers, and ranks hold
within one sample of each other (their batch counts differ by at most one; with DDP
wrap the loop in `model.join()` or use `drop_last`). Each worker shuffles its positions
with a buffer of `shuffle_buffer` (seeded by seed, epoch, rank, worker), reading rows
from memory-mapped shards.

How resume works. Every sample carries `_worker` (the worker that produced it) and
`_index` (its dataset-wide id). The ResumableLoader counts the samples it handed out
per worker; `state_dict()` is (epoch, those counts, ...). A resumed worker replays its
deterministic order and skips what was consumed, so nothing repeats and nothing is
skipped. Resume needs the same dataset, seed, world_size and num_workers (checked).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from roadloop_cluster.data.errors import DataError
from roadloop_cluster.data.shards import open_npz_mmap
from roadloop_core.contract.dataset_index import INDEX_FILE, read_dataset_index

__all__ = ["ResumableLoader", "ShardDataset", "make_loader"]

_OPEN_SHARDS = 8


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardDataset(IterableDataset[dict[str, torch.Tensor]]):
    """An IterableDataset over one split's shards; see the module docstring for the contract."""

    def __init__(
        self,
        root: Path | str,
        split: str = "train",
        *,
        seed: int = 0,
        shuffle_buffer: int = 1024,
        rank: int | None = None,
        world_size: int | None = None,
        open_shards: int = _OPEN_SHARDS,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.index = read_dataset_index(self.root)
        if split not in self.index.splits:
            raise DataError(f"{self.root / INDEX_FILE}: no split '{split}' (has {', '.join(self.index.splits)})")
        self.split = split
        self.seed = seed
        self.shuffle_buffer = max(1, shuffle_buffer)
        d_rank, d_world = _dist_rank_world()
        self.rank = d_rank if rank is None else rank
        self.world_size = d_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise DataError(f"rank {self.rank} is outside world_size {self.world_size}")
        shards = self.index.splits[split].shards
        self.files = [self.root / sh.file for sh in shards]
        self.counts = np.array([sh.count for sh in shards], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])  # canonical id of each shard's row 0
        self.num_samples = int(self.offsets[-1])
        self.epoch = 0
        self.num_workers: int | None = None  # set by ResumableLoader or a loaded state
        self.consumed: dict[int, int] = {}
        self.open_shards = max(1, open_shards)
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    # -- epoch and state ---------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Start epoch `epoch` from its beginning (call before iterating each epoch)."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.consumed = {}

    def samples_for_rank(self, rank: int | None = None) -> int:
        """How many samples rank `rank` (default: this one) sees per epoch."""
        r = self.rank if rank is None else rank
        return len(range(r, self.num_samples, self.world_size))

    def account(self, batch: dict[str, torch.Tensor]) -> None:
        """Record that `batch` (as produced by one worker) was consumed; ResumableLoader calls this."""
        workers = batch["_worker"]
        if len(workers) == 0:
            return
        wid = int(workers[0])
        self.consumed[wid] = self.consumed.get(wid, 0) + len(workers)

    def state_dict(self) -> dict[str, Any]:
        return {
            "dataset_id": self.index.dataset_id,
            "split": self.split,
            "seed": self.seed,
            "shuffle_buffer": self.shuffle_buffer,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_workers": self.num_workers,
            "epoch": self.epoch,
            "consumed": {str(k): v for k, v in sorted(self.consumed.items())},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` (from state_dict() of the same rank of an earlier run)."""
        for key in ("dataset_id", "split", "seed", "shuffle_buffer", "rank", "world_size"):
            mine = self.state_dict()[key]
            if state.get(key) != mine:
                raise DataError(f"loader state: {key} is {state.get(key)!r}, this loader has {mine!r}")
        self.epoch = int(state["epoch"])
        self.num_workers = state.get("num_workers")
        self.consumed = {int(k): int(v) for k, v in state.get("consumed", {}).items()}

    # -- the epoch's order -------------------------------------------------------------------

    def shard_order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        return rng.permutation(len(self.files))

    def worker_order(self, worker: int, num_workers: int) -> np.ndarray:
        """Canonical sample ids (shard offset + row) this rank's `worker` yields this epoch, in order."""
        order = self.shard_order()
        counts = self.counts[order]
        stream_start = np.concatenate([[0], np.cumsum(counts)])
        mine = np.arange(self.rank, self.num_samples, self.world_size, dtype=np.int64)[worker::num_workers]
        shard_pos = np.searchsorted(stream_start, mine, side="right") - 1
        ids = self.offsets[order[shard_pos]] + (mine - stream_start[shard_pos])
        return self._shuffle(ids, np.random.default_rng([self.seed, self.epoch, self.rank, worker]))

    def _shuffle(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Buffered shuffle: a reservoir of `shuffle_buffer` ids, a random one swapped out per new id."""
        b = self.shuffle_buffer
        if b <= 1 or len(ids) <= 1:
            return ids
        out = np.empty_like(ids)
        buf = list(ids[:b])
        picks = rng.integers(0, b, size=max(0, len(ids) - b))
        k = 0
        for i, new in enumerate(ids[b:]):
            j = int(picks[i])
            out[k] = buf[j]
            buf[j] = new
            k += 1
        out[k:] = rng.permutation(np.array(buf, dtype=ids.dtype))
        return out

    # -- reading -----------------------------------------------------------------------------

    def _shard(self, i: int) -> dict[str, np.ndarray]:
        arrays = self._cache.get(i)
        if arrays is None:
            arrays = open_npz_mmap(self.files[i])
            self._cache[i] = arrays
            if len(self._cache) > self.open_shards:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(i)
        return arrays

    def read(self, ids: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Arrays `names` of the samples with canonical ids `ids`, in that order (copies, read from the
        memory-mapped shards: only the rows asked for are paged in)."""
        ids = np.asarray(ids, dtype=np.int64)
        shard_of = np.searchsorted(self.offsets, ids, side="right") - 1
        out: dict[str, np.ndarray] = {}
        for shard in np.unique(shard_of):
            sel = np.flatnonzero(shard_of == shard)
            arrays = self._shard(int(shard))
            rows = ids[sel] - self.offsets[shard]
            for name in names:
                if name not in arrays:
                    raise DataError(f"{self.files[int(shard)]}: array '{name}' missing")
                src = arrays[name]
                if name not in out:
                    out[name] = np.empty((len(ids), *src.shape[1:]), dtype=src.dtype)
                out[name][sel] = src[rows]
        return out

    def sample(self, sample_id: int) -> dict[str, torch.Tensor]:
        """One sample by canonical id, as tensors (image stays uint8 (H, W, 3))."""
        shard = int(np.searchsorted(self.offsets, sample_id, side="right")) - 1
        row = sample_id - int(self.offsets[shard])
        arrays = self._shard(shard)
        out = {name: torch.from_numpy(np.array(arr[row])) for name, arr in arrays.items()}
        out["_index"] = torch.tensor(sample_id, dtype=torch.int64)
        return out

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        if self.consumed and self.num_workers not in (None, max(nw, 1)) and sum(self.consumed.values()):
            raise DataError(
                f"loader state was saved with {self.num_workers} worker(s) per rank; resume with the same number "
                f"(this DataLoader has {nw})"
            )
        order = self.worker_order(wid, nw)[self.consumed.get(wid, 0) :]
        worker = torch.tensor(wid, dtype=torch.int64)
        for sample_id in order:
            out = self.sample(int(sample_id))
            out["_worker"] = worker
            yield out


class ResumableLoader:
    """A DataLoader over a ShardDataset that counts what it hands out, for `state_dict()`."""

    def __init__(self, dataset: ShardDataset, **dataloader_kwargs: Any) -> None:
        if dataloader_kwargs.get("persistent_workers"):
            raise DataError("ResumableLoader needs persistent_workers=False (workers must see each epoch's state)")
        self.dataset = dataset
        self.kwargs = dataloader_kwargs
        self.num_workers = int(dataloader_kwargs.get("num_workers", 0))

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        ds = self.dataset
        if ds.consumed and ds.num_workers not in (None, max(self.num_workers, 1)):
            raise DataError(
                f"loader state was saved with {ds.num_workers} worker(s) per rank; this loader has "
                f"{max(self.num_workers, 1)}: resume with the same --workers"
            )
        ds.num_workers = max(self.num_workers, 1)
        for batch in DataLoader(ds, **self.kwargs):
            ds.account(batch)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return self.dataset.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dataset.load_state_dict(state)


def make_loader(
    dataset: ShardDataset,
    batch_size: int,
    *,
    num_workers: int = 2,
    drop_last: bool = False,
    pin_memory: bool = False,
    prefetch_factor: int | None = 4,
) -> ResumableLoader:
    """A ResumableLoader with settings that keep the exactly-once and resume guarantees."""
    kwargs: dict[str, Any] = {
        "batch_size": batch_size,
        "num_workers": num_workers,
        "drop_last": drop_last,
        "pin_memory": pin_memory,
        "persistent_workers": False,
    }
    if num_workers > 0:
        kwargs["prefetch_factor"] = prefetch_factor
    return ResumableLoader(dataset, **kwargs)
