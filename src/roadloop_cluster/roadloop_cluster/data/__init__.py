"""Datasets from rosbags: the builder (`roadloop data build|info`) and sharded, resumable torch loading.

    build_dataset([Path("bags/")], Path("ds"))          # shards + index.json (roadloop_core.contract.dataset_index)
    ds = ShardDataset("ds", "train", seed=0, shuffle_buffer=1024, rank=r, world_size=w)
    loader = make_loader(ds, batch_size=64, num_workers=2)

The torch parts (`ShardDataset`, `ResumableLoader`, `make_loader`) are imported on
first use, so building datasets never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roadloop_cluster.data.build import BuildOptions, build_dataset
from roadloop_cluster.data.config import BuildConfig, DatasetConfig, load_dataset_config
from roadloop_cluster.data.errors import DataError, NoUsableInputError
from roadloop_core.contract.dataset_index import DatasetIndex, read_dataset_index

if TYPE_CHECKING:
    from roadloop_cluster.data.loader import ResumableLoader, ShardDataset, make_loader

__all__ = [
    "BuildConfig",
    "BuildOptions",
    "DataError",
    "DatasetConfig",
    "DatasetIndex",
    "NoUsableInputError",
    "ResumableLoader",
    "ShardDataset",
    "build_dataset",
    "load_dataset_config",
    "make_loader",
    "read_dataset_index",
]


def __getattr__(name: str) -> Any:
    if name in ("ShardDataset", "ResumableLoader", "make_loader"):
        from roadloop_cluster.data import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'roadloop_cluster.data' has no attribute {name!r}")
