"""Pre-flight checks, then torchrun's own launcher (torch.distributed.run) starting the ranks."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from roadloop_cluster.models import ModelArgs
from roadloop_cluster.train import steps
from roadloop_cluster.train.config import load_train_config, with_run_sizes
from roadloop_cluster.train.data import check_shards, read_dataset_info
from roadloop_cluster.train.errors import NonFiniteLossError, TrainError

__all__ = ["launch", "torchrun_args"]


def torchrun_args(
    nproc: int,
    max_restarts: int,
    nnodes: str | None,
    rdzv_endpoint: str | None,
    rdzv_id: str,
    last_call_s: int = 30,
) -> list[str]:
    """Standalone on one machine; c10d rendezvous (elastic MIN:MAX nodes) when --nnodes is given, closing a
    round `last_call_s` after MIN nodes are in (the wait for late nodes before starting without them)."""
    if nnodes is None:
        head = ["--standalone", "--nnodes", "1"]
    else:
        if not rdzv_endpoint:
            raise TrainError("--nnodes needs --rdzv-endpoint HOST:PORT (the c10d rendezvous every node joins)")
        head = ["--nnodes", nnodes, "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint, "--rdzv-id", rdzv_id]
        head += ["--rdzv-conf", f"last_call_timeout={last_call_s}"]
    return [*head, "--nproc-per-node", str(nproc), "--max-restarts", str(max_restarts)]


def _failures(out: Path) -> list[dict[str, Any]]:
    found = []
    for p in sorted(out.glob("failure-rank*.json")):
        try:
            found.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return found


def launch(
    config: Path,
    data: Path,
    out: Path,
    nproc: int = 1,
    max_restarts: int = 0,
    nnodes: str | None = None,
    rdzv_endpoint: str | None = None,
    rdzv_id: str = "roadloop",
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Check config and dataset (before any process starts), run the ranks, return metrics.json.

    `epochs`/`batch_size` override the config's `run:` values (None: the config's); `init_from`: a RUN folder or
    model.pt whose weights training starts from (fine-tuning), checked against the model before any rank starts."""
    cfg = with_run_sizes(load_train_config(config), epochs, batch_size)
    info = read_dataset_info(data)
    check_shards(info)
    model_args = ModelArgs.from_dataset(cfg.model, info.index)
    if nproc < 1:
        raise TrainError(f"--nproc must be >= 1, got {nproc}")
    if nnodes is None and cfg.run.batch_size % nproc:
        where = "--batch-size" if batch_size is not None else f"{config}: run.batch_size"
        raise TrainError(f"{where} {cfg.run.batch_size} is not divisible by --nproc {nproc}")
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and nproc > gpus:
        raise TrainError(f"--nproc {nproc} but {gpus} GPU(s) visible: one rank per GPU (NCCL), use --nproc {gpus}")
    if init_from is not None:
        from roadloop_cluster.models import build_policy

        steps.init_weights(build_policy(model_args), init_from)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("failure-rank*.json"):
        stale.unlink()
    # Baselines (constant velocity, ego-status MLP) here, once, so no rank ever waits on rank 0 for them,
    # on the threads a rank would use (a fixed run.threads_per_rank is what the ranks get too)
    if cfg.run.threads_per_rank:
        torch.set_num_threads(cfg.run.threads_per_rank)
    steps.baselines(out, info, cfg, model_args)

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = torchrun_args(nproc, max_restarts, nnodes, rdzv_endpoint, rdzv_id, cfg.run.rendezvous_last_call_s)
    args += ["--module", "roadloop_cluster.train.train"]
    args += ["--config", str(config.resolve()), "--data", str(data.resolve()), "--out", str(out.resolve())]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if batch_size is not None:
        args += ["--batch-size", str(batch_size)]
    if init_from is not None:
        args += ["--init-from", str(init_from.resolve())]
    # A restarted group must not meet the killed group's gloo addresses: with the agent's shared
    # rendezvous store the process-group keys of the previous attempt are still there and a new rank
    # can read a dead peer's address (seen as a hang/"Connection refused" on restart). Without sharing,
    # rank 0 of every attempt hosts a fresh store on a port the agent picks for that round.
    os.environ["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    sys.stdout.flush()
    try:
        run(parse_args(args))  # type: ignore[no-untyped-call]
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        raise TrainError(
            f"training failed after {max_restarts} restart(s): rank {rank}: "
            f"{failure.message or 'exit ' + str(failure.exitcode)}"
            f" (resume with the same command; checkpoints in {out / 'checkpoints'})"
        ) from None
    failures = _failures(out)
    if failures:
        from roadloop_cluster.train.checkpoint import latest_checkpoint

        last = latest_checkpoint(out)
        kept = f"last good checkpoint kept: {last}" if last else "no checkpoint had been written"
        raise NonFiniteLossError(f"{'; '.join(f['message'] for f in failures)}; {kept}")
    metrics_path = out / "metrics.json"
    if not metrics_path.is_file():
        raise TrainError(f"{metrics_path}: training ended without writing its metrics")
    return dict(json.loads(metrics_path.read_text()))
