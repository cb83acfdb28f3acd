"""Everything distributed lives here; the model and the training entry stay oblivious of it.

torchrun sets RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE and the rendezvous; we pick the device
(cuda:LOCAL_RANK when CUDA is present, else CPU), the backend (NCCL on GPU, gloo on CPU), the
intra-op threads (cores / local ranks on CPU), AMP, and compose the parallelism the torchtitan way,
one step at a time on the plain model:

- `run.parallel: ddp`: DistributedDataParallel, optionally with a gradient-compression hook
  (`run.comm_hook`) or LocalSGD (`run.local_sgd_period`: ranks step on their own gradients and
  average parameters every N steps, after `run.local_sgd_start_step` steps of plain DDP);
- `run.parallel: fsdp`: FSDP2 (`fully_shard`) on a 1-D device mesh: the image encoder and the
  state MLP are each a unit, the root unit holds the rest (fusion, GRU, heads), so a rank keeps
  1/world of every parameter and of the optimizer state between uses.

Checkpoints (DCP) store parameters by name whatever the wrapping, so a run can resume under
either. A rank also asks the kernel to SIGKILL it when its launcher dies (PR_SET_PDEATHSIG): a
SIGKILLed `roadloop train` or torchrun agent cannot leave ranks behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from roadloop_cluster.train.config import RunConfig
from roadloop_core.lifetime import die_with_parent

__all__ = [
    "Dist",
    "Parallel",
    "all_reduce_sum",
    "autocast",
    "clip_grad_norm",
    "describe",
    "die_with_parent",
    "full_state_dict",
    "grad_scaler",
    "init_distributed",
    "parallelize",
    "shutdown",
]


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    backend: str
    threads: int
    # a group of its own for asynchronous checkpoint saves: their collectives run on a background
    # thread and must not interleave with the training step's on the default group
    checkpoint_group: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(run: RunConfig) -> Dist:
    """Join the process group torchrun prepared (or a world of one when run without torchrun)."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env:  # started by a torchrun agent: its death must be ours
        die_with_parent()
    rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    local_rank, local_world = int(env.get("LOCAL_RANK", "0")), int(env.get("LOCAL_WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        device, backend = torch.device("cuda", local_rank), "cpu:gloo,cuda:nccl"
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
    group = dist.new_group(backend="gloo") if run.async_checkpoint else None
    return Dist(rank, world, local_rank, local_world, device, backend, threads, group)


class Parallel:
    """The wrapped model to run forward on, and what has to happen after each optimizer step."""

    def __init__(self, module: nn.Module, averager: Any = None, hook_state: Any = None) -> None:
        self.module, self.averager, self.hook_state = module, averager, hook_state

    def after_optimizer_step(self, model: nn.Module) -> None:
        if self.averager is not None:
            self.averager.average_parameters(model.parameters())

    def resume(self, step: int) -> None:
        """Continue LocalSGD's step counters where a checkpoint left them (they decide when to average)."""
        if self.averager is not None:
            self.averager.step = step
            self.hook_state.iter = step


def parallelize(model: nn.Module, d: Dist, run: RunConfig) -> Parallel:
    model.to(d.device)
    if run.parallel == "fsdp":
        return Parallel(_fully_shard(model, d))
    # DDP without find_unused_parameters (every parameter gets a gradient every step)
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
    elif run.local_sgd_period:
        return _local_sgd(ddp, d, run)
    return Parallel(ddp)


def _fully_shard(model: nn.Module, d: Dist) -> nn.Module:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(d.device.type, (d.world_size,), mesh_dim_names=("dp",))
    for name in ("encoder", "state_mlp"):
        unit = getattr(model, name, None)
        if isinstance(unit, nn.Module) and any(True for _ in unit.parameters()):
            fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)  # the root: the GRU unrolls K times inside one gathered forward
    return model


def _local_sgd(ddp: DistributedDataParallel, d: Dist, run: RunConfig) -> Parallel:
    """Post-local-SGD: plain DDP for `local_sgd_start_step` steps, then gradients are all-reduced only
    inside a node (`local_sgd_intra_node`) or not at all, and parameters are averaged over every rank
    every `local_sgd_period` steps: one all-reduce per period over the slow inter-site links."""
    from torch.distributed.algorithms.ddp_comm_hooks import post_localSGD_hook
    from torch.distributed.algorithms.model_averaging.averagers import PeriodicModelAverager

    subgroup = None
    if run.local_sgd_intra_node and d.local_world_size > 1:
        subgroup, _ = dist.new_subgroups(group_size=d.local_world_size)  # type: ignore[no-untyped-call]
    state = post_localSGD_hook.PostLocalSGDState(  # type: ignore[no-untyped-call]
        process_group=None,
        subgroup=subgroup,
        start_localSGD_iter=run.local_sgd_start_step,
        post_local_gradient_allreduce=subgroup is not None,
    )
    ddp.register_comm_hook(state, post_localSGD_hook.post_localSGD_hook)
    averager = PeriodicModelAverager(period=run.local_sgd_period, warmup_steps=run.local_sgd_start_step)
    return Parallel(ddp, averager, state)


def clip_grad_norm(model: nn.Module, max_norm: float) -> torch.Tensor:
    """Clip to `max_norm`; the total norm as a plain tensor (FSDP2's is a DTensor over the shards)."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    full = getattr(norm, "full_tensor", None)
    return full() if callable(full) else norm


def describe(model: nn.Module, run: RunConfig) -> dict[str, Any]:
    """For metrics.json: the wrapping, and the parameters this rank holds (1/world of them under FSDP2)."""
    local = 0
    for p in model.parameters():
        to_local = getattr(p, "to_local", None)
        local += (to_local() if callable(to_local) else p).numel()
    sync = f"local_sgd every {run.local_sgd_period}" if run.local_sgd_period else run.comm_hook
    return {"parallel": run.parallel, "gradient_sync": sync, "parameters": sum(p.numel() for p in model.parameters()),
            "parameters_on_rank0": local}  # fmt: skip


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Collective: every parameter and buffer whole, on the CPU, on rank 0 (FSDP2 gathers its shards)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    full = get_model_state_dict(model, options=opts)
    return {k: v.detach().cpu() for k, v in full.items() if isinstance(v, torch.Tensor)}


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
