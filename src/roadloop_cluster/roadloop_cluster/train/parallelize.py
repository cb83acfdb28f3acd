"""Everything distributed lives here; the model and the training entry stay oblivious of it.

torchrun sets RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE and the rendezvous; we pick the device
(cuda:LOCAL_RANK when CUDA is present, else CPU), the backend (NCCL on GPU, gloo on CPU), the
intra-op threads (cores / local ranks on CPU), AMP, and wrap the model in DDP with an optional
gradient-compression communication hook.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from roadloop_cluster.train.config import RunConfig

__all__ = ["Dist", "all_reduce_sum", "autocast", "grad_scaler", "init_distributed", "parallelize", "shutdown"]


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    backend: str
    threads: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(run: RunConfig) -> Dist:
    """Join the process group torchrun prepared (or a world of one when run without torchrun)."""
    env = os.environ
    rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    local_rank, local_world = int(env.get("LOCAL_RANK", "0")), int(env.get("LOCAL_WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    # One intra-op thread per core share: ranks on a node must not oversubscribe its cores, and a
    # fixed count keeps CPU kernels' reduction order (hence resume) bit-exact.
    threads = run.threads_per_rank or max(1, (os.cpu_count() or 1) // local_world)
    torch.set_num_threads(threads)
    if not dist.is_initialized():
        env.setdefault("MASTER_ADDR", "127.0.0.1")
        env.setdefault("MASTER_PORT", "29500")
        timeout = timedelta(seconds=run.collective_timeout_s)
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    return Dist(rank, world, local_rank, local_world, device, backend, threads)


def parallelize(model: nn.Module, d: Dist, run: RunConfig) -> DistributedDataParallel:
    """DDP without find_unused_parameters (every parameter gets a gradient every step)."""
    model.to(d.device)
    ddp = DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    if run.comm_hook == "fp16":
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
    elif run.comm_hook == "powersgd":
        from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook

        state = powerSGD_hook.PowerSGDState(
            process_group=None, matrix_approximation_rank=run.powersgd_rank, start_powerSGD_iter=10
        )
        ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
    return ddp


def _amp_dtype(d: Dist, amp: str) -> torch.dtype | None:
    if d.device.type != "cuda" or amp == "none":
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


@contextlib.contextmanager
def autocast(d: Dist, amp: str) -> Iterator[None]:
    """Mixed precision on GPU only; CPU runs fp32 so that resume stays bit-exact."""
    dtype = _amp_dtype(d, amp)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield


def grad_scaler(d: Dist, amp: str) -> torch.amp.GradScaler:
    """Loss scaling is needed for fp16 only; disabled (a no-op) otherwise."""
    return torch.amp.GradScaler("cuda", enabled=_amp_dtype(d, amp) == torch.float16)


def all_reduce_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """Sum a small CPU tensor over ranks (moved to the device for NCCL)."""
    if d.world_size == 1:
        return t
    x = t.to(d.device)
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x.cpu()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
