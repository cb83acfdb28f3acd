"""Resumable checkpoints with torch.distributed.checkpoint (DCP).

RUN/checkpoints/step-<N>/ holds one DCP checkpoint: model and optimizer (replicated tensors written
once), the scheduler, step, epoch and data-loader position, and every rank's RNG states under its
own key. It is written under a `.tmp` name, renamed when every rank is done, and only then does
`latest` (temp + fsync + rename) point at it; the last K are kept. A kill at any moment therefore
leaves `latest` naming a complete checkpoint.

Asynchronous saves (DCP `async_save`) copy the state to CPU memory on the training thread (the
snapshot, so a resume is as bit-exact as from a blocking save) and write it on a background
thread, on a process group of their own. DCP's coordinator (rank 0) writes `.metadata` only after
every rank's data is written, so rank 0 renames the folder and moves `latest` as soon as its own
save completes; the next save (and the end of training) first waits for the previous one.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.filesystem import FileSystemReader
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import async_save as dcp_async_save
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from roadloop_cluster.train.errors import TrainError
from roadloop_core.fsio import atomic_write_bytes

__all__ = ["Checkpointer", "checkpoint_dir", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

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


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _prepare(run_dir: Path, step: int) -> tuple[Path, Path]:
    """Collective: the (tmp, final) folders of step `step`, the tmp one empty."""
    root = checkpoint_dir(run_dir)
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f"{final.name}.tmp"
    if _rank() == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    _barrier()
    return tmp, final


def _publish(tmp: Path, final: Path, keep: int) -> None:
    """Rank 0, once `tmp` holds a complete checkpoint: rename it, point `latest` at it, drop the oldest."""
    root = final.parent
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_bytes(root / "latest", final.name.encode())
    done = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _state(model: nn.Module, optim: torch.optim.Optimizer, trainer: dict[str, Any]) -> dict[str, Any]:
    msd, osd = get_state_dict(model, optim)
    return {"model": msd, "optim": osd, "trainer": trainer, f"rng_rank{_rank()}": _rng_state()}


def save_checkpoint(
    run_dir: Path, step: int, model: nn.Module, optim: torch.optim.Optimizer, trainer: dict[str, Any], keep: int
) -> Path:
    """Collective, blocking: every rank calls it with the same step; returns the final checkpoint folder."""
    tmp, final = _prepare(run_dir, step)
    dcp_save(_state(model, optim, trainer), checkpoint_id=tmp)
    _barrier()
    if _rank() == 0:
        _publish(tmp, final, keep)
    _barrier()
    return final


class Checkpointer:
    """One rank's checkpoint writer: asynchronous on `group` (a gloo group of its own), or blocking
    when `group` is None."""

    def __init__(self, run_dir: Path, keep: int, group: Any = None) -> None:
        self.run_dir, self.keep, self.group = run_dir, keep, group
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="checkpoint") if group is not None else None
        self._pending: Future[None] | None = None

    def save(self, step: int, model: nn.Module, optim: torch.optim.Optimizer, trainer: dict[str, Any]) -> None:
        """Collective. Returns once the state is snapshotted (async) or written (blocking)."""
        if self._pool is None:
            save_checkpoint(self.run_dir, step, model, optim, trainer, self.keep)
            return
        self.wait()
        tmp, final = _prepare(self.run_dir, step)
        written = dcp_async_save(_state(model, optim, trainer), checkpoint_id=tmp, process_group=self.group)
        self._pending = self._pool.submit(self._finish, written, tmp, final)

    def _finish(self, written: Any, tmp: Path, final: Path) -> None:
        written.result()
        if _rank() == 0:
            _publish(tmp, final, self.keep)

    def wait(self) -> None:
        """Until the last save is written and published; its failure is raised here."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            pending.result()
        except Exception as err:
            raise TrainError(f"{self.run_dir / 'checkpoints'}: asynchronous checkpoint failed: {err}") from err

    def close(self) -> None:
        self.wait()
        if self._pool is not None:
            self._pool.shutdown()
        _barrier()  # rank 0 has published: no rank reads `latest` or exits before


def load_checkpoint(
    path: Path, model: nn.Module, optim: torch.optim.Optimizer, trainer: dict[str, Any]
) -> dict[str, Any]:
    """Load model/optimizer in place and restore this rank's RNG (if it saved one).

    `trainer` is a template with the saved structure (DCP loads only the keys asked for); the
    loaded trainer state is returned.
    """
    rank = _rank()
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
