"""Resumable checkpoints with torch.distributed.checkpoint (DCP).

RUN/checkpoints/step-<N>/ holds one DCP checkpoint: model and optimizer (replicated tensors written
once), the scheduler, step, epoch and data-loader position, and every rank's RNG states under its
own key. It is written under a `.tmp` name, renamed when every rank is done, and only then does
`latest` (temp + fsync + rename) point at it; the last K are kept. A kill at any moment therefore
leaves `latest` naming a complete checkpoint.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.filesystem import FileSystemReader
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from roadloop_cluster.train.errors import TrainError
from roadloop_core.fsio import atomic_write_bytes

__all__ = ["checkpoint_dir", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

PREFIX = "step-"


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def latest_checkpoint(run_dir: Path) -> Path | None:
    marker = checkpoint_dir(run_dir) / "latest"
    if not marker.is_file():
        return None
    path = checkpoint_dir(run_dir) / marker.read_text(encoding="utf-8").strip()
    if not (path / ".metadata").is_file():
        raise TrainError(f"{marker}: points at {path.name}, which is not a complete checkpoint")
    return path


def _rng_state() -> bytes:
    # One opaque leaf: DCP stores non-tensor leaves as pickled bytes, and a flat leaf keeps the
    # state's nested tuples out of DCP's key flattening.
    return pickle.dumps((torch.get_rng_state(), np.random.get_state(), random.getstate()))


def _set_rng_state(blob: bytes) -> None:
    torch_state, np_state, py_state = pickle.loads(blob)
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)
    random.setstate(py_state)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def save_checkpoint(
    run_dir: Path, step: int, model: nn.Module, optim: torch.optim.Optimizer, trainer: dict[str, Any], keep: int
) -> Path:
    """Collective: every rank calls it with the same step; returns the final checkpoint folder."""
    rank = dist.get_rank() if dist.is_initialized() else 0
    root = checkpoint_dir(run_dir)
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f"{final.name}.tmp"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    _barrier()
    msd, osd = get_state_dict(model, optim)
    state = {"model": msd, "optim": osd, "trainer": trainer, f"rng_rank{rank}": _rng_state()}
    dcp_save(state, checkpoint_id=tmp)
    _barrier()
    if rank == 0:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_bytes(root / "latest", final.name.encode())
        done = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir() and not p.name.endswith(".tmp"))
        for old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def load_checkpoint(
    path: Path, model: nn.Module, optim: torch.optim.Optimizer, trainer: dict[str, Any]
) -> dict[str, Any]:
    """Load model/optimizer in place and restore this rank's RNG (if it saved one).

    `trainer` is a template with the saved structure (DCP loads only the keys asked for); the
    loaded trainer state is returned.
    """
    rank = dist.get_rank() if dist.is_initialized() else 0
    keys = FileSystemReader(path).read_metadata().state_dict_metadata
    msd, osd = get_state_dict(model, optim)
    state: dict[str, Any] = {"model": msd, "optim": osd, "trainer": trainer}
    rng_key = f"rng_rank{rank}"
    has_rng = rng_key in keys
    if has_rng:
        state[rng_key] = _rng_state()
    try:
        dcp_load(state, checkpoint_id=path)
    except Exception as err:
        raise TrainError(f"{path}: cannot load checkpoint: {err}") from err
    set_state_dict(model, optim, model_state_dict=state["model"], optim_state_dict=state["optim"])
    if has_rng:
        _set_rng_state(state[rng_key])
    return dict(state["trainer"])
