"""ShardDataset: exactly once per epoch over ranks x workers, deterministic shuffling, mid-epoch resume."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from roadloop_cluster.data import DataError, ShardDataset, make_loader
from roadloop_core.contract.dataset_index import read_dataset_index


def ids_of(batches: list[dict[str, torch.Tensor]]) -> list[int]:
    return [i for b in batches for i in b["_index"].tolist()]


def epoch_ids(root: Path, rank: int, world: int, workers: int, epoch: int = 0, seed: int = 3) -> list[int]:
    ds = ShardDataset(root, "train", seed=seed, shuffle_buffer=8, rank=rank, world_size=world)
    loader = make_loader(ds, batch_size=5, num_workers=workers)
    loader.set_epoch(epoch)
    return ids_of(list(loader))


@pytest.mark.parametrize("workers", [0, 1, 2])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_every_sample_exactly_once_per_epoch(dataset: Path, world: int, workers: int) -> None:
    n = ShardDataset(dataset, "train").num_samples
    per_rank = [epoch_ids(dataset, r, world, workers) for r in range(world)]
    seen = Counter(i for ids in per_rank for i in ids)
    assert sorted(seen) == list(range(n)) and set(seen.values()) == {1}
    sizes = [len(ids) for ids in per_rank]
    assert max(sizes) - min(sizes) <= 1  # ranks stay balanced for DDP


def test_shuffle_is_deterministic_per_seed_and_epoch(dataset: Path) -> None:
    a = epoch_ids(dataset, 0, 1, 0, epoch=0)
    assert a == epoch_ids(dataset, 0, 1, 0, epoch=0)
    assert a != epoch_ids(dataset, 0, 1, 0, epoch=1)
    assert a != epoch_ids(dataset, 0, 1, 0, epoch=0, seed=4)
    assert a != sorted(a)


@pytest.mark.parametrize(("world", "workers"), [(1, 0), (2, 2), (3, 1)])
def test_resume_mid_epoch_without_repeats_or_skips(dataset: Path, world: int, workers: int) -> None:
    for rank in range(world):
        full = epoch_ids(dataset, rank, world, workers, epoch=1)
        ds = ShardDataset(dataset, "train", seed=3, shuffle_buffer=8, rank=rank, world_size=world)
        loader = make_loader(ds, batch_size=5, num_workers=workers)
        loader.set_epoch(1)
        first: list[dict[str, torch.Tensor]] = []
        for batch in loader:
            first.append(batch)
            if len(first) == 3:
                break
        state = json.loads(json.dumps(loader.state_dict()))  # what a checkpoint stores
        del loader, ds

        ds2 = ShardDataset(dataset, "train", seed=3, shuffle_buffer=8, rank=rank, world_size=world)
        resumed = make_loader(ds2, batch_size=5, num_workers=workers)
        resumed.load_state_dict(state)
        resumed.set_epoch(1)  # the trainer's loop calls it again: it must not restart the epoch
        rest = list(resumed)
        got = ids_of(first) + ids_of(rest)
        assert sorted(got) == sorted(full) and len(got) == len(set(got))
        if workers == 0:
            assert got == full  # one stream: even the order is the uninterrupted one
        resumed.set_epoch(2)
        nxt = epoch_ids(dataset, rank, world, workers, epoch=2)
        assert sorted(ids_of(list(resumed))) == sorted(nxt)  # the next epoch is whole again


def test_resume_checks_the_setup(dataset: Path) -> None:
    ds = ShardDataset(dataset, "train", seed=3, rank=0, world_size=2)
    loader = make_loader(ds, batch_size=4, num_workers=2)
    next(iter(loader))
    state = loader.state_dict()
    with pytest.raises(DataError, match="world_size is 2, this loader has 3"):
        ShardDataset(dataset, "train", seed=3, rank=0, world_size=3).load_state_dict(state)
    other = ShardDataset(dataset, "train", seed=3, rank=0, world_size=2)
    other.load_state_dict(state)
    with pytest.raises(DataError, match="saved with 2 worker"):
        next(iter(make_loader(other, batch_size=4, num_workers=1)))


def test_samples_are_the_shard_contents(dataset: Path) -> None:
    ds = ShardDataset(dataset, "val", shuffle_buffer=1)
    batch = next(iter(make_loader(ds, batch_size=4, num_workers=0)))
    obs = read_dataset_index(dataset).observation
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (obs.image_height, obs.image_width, 3)
    assert batch["waypoints"].shape == (4, 8, 2)
    s = ds.sample(int(batch["_index"][2]))
    assert torch.equal(s["ego_state"], batch["ego_state"][2])


def test_unknown_split_and_bad_rank(dataset: Path) -> None:
    with pytest.raises(DataError, match="no split 'test'"):
        ShardDataset(dataset, "test")
    with pytest.raises(DataError, match="outside world_size"):
        ShardDataset(dataset, "train", rank=2, world_size=2)
