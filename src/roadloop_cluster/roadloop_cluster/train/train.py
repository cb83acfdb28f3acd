"""The training entry one rank runs under torchrun: read it top to bottom.

`roadloop train` launches it; by hand: `torchrun --nproc-per-node 2 -m roadloop_cluster.train.train
--config config/train.yaml --data DATASET --out RUN`. Resumes from RUN/checkpoints/latest if present.
Batches stream from the memory-mapped shards; DDP or FSDP2 (and LocalSGD) come from parallelize.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from roadloop_cluster.models import ModelArgs
from roadloop_cluster.train import parallelize as par
from roadloop_cluster.train import steps
from roadloop_cluster.train.checkpoint import Checkpointer
from roadloop_cluster.train.config import load_train_config, with_run_sizes
from roadloop_cluster.train.data import BatchStream, ShardSplit, read_dataset_info
from roadloop_core.config import dataclass_to_dict
from roadloop_core.contract.tensors import model_inputs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    for flag in ("--config", "--data", "--out"):
        p.add_argument(flag, type=Path, required=True)
    p.add_argument("--epochs", type=int, help="override the config's run.epochs")
    p.add_argument("--batch-size", type=int, help="override the config's run.batch_size (global)")
    p.add_argument("--init-from", type=Path, help="start from this run's weights (RUN folder or model.pt)")
    args = p.parse_args(argv)
    cfg, out = with_run_sizes(load_train_config(args.config), args.epochs, args.batch_size), args.out
    out.mkdir(parents=True, exist_ok=True)
    d = par.init_distributed(cfg.run)
    torch.manual_seed(cfg.run.seed)  # same initial weights on every rank (DDP also broadcasts them)

    info = read_dataset_info(args.data)
    margs = ModelArgs.from_dataset(cfg.model, info.index)  # image size, inputs, horizon, dt: the dataset's
    inputs = model_inputs(info.observation)
    train, val = ShardSplit(info, "train", inputs), ShardSplit(info, "val", inputs)
    model = steps.build_model(margs, train, info)  # scaled to the data (and its prior's residual)
    if args.init_from is not None:  # before parallelize: DDP broadcasts rank 0's weights, FSDP2 shards them
        steps.init_weights(model, args.init_from)
    model = model.to(d.device)
    wrapped = par.parallelize(model, d, cfg.run)  # .module: DDP, or the FSDP2-sharded model itself
    stream = BatchStream(train, cfg.run.batch_size, d.rank, d.world_size, cfg.run.seed, cfg.run.shuffle_window_shards)
    total = stream.steps_per_epoch * cfg.run.epochs
    optim, sched = steps.build_optimizer(model, cfg.optim, total)
    scaler = par.grad_scaler(d, cfg.run.amp)

    prog = steps.resume(out, model, optim, sched, stream)
    wrapped.resume(prog.step)
    ckpt = Checkpointer(out, cfg.run.keep_checkpoints, d.checkpoint_group)
    base = steps.baselines(out, info, cfg, margs) if d.is_main else {}  # the launcher usually made them already
    log, trace = steps.Logger(out, d, total, prog.step), steps.SampleTrace(out, d, cfg.run.trace_samples)
    while stream.epoch < cfg.run.epochs:
        t_epoch = time.perf_counter()
        batches = stream.epoch_batches()
        for i, idx in enumerate(batches):
            t, c = time.perf_counter(), time.process_time()
            b = train.batch(idx).to(d.device)
            trace.step(stream.epoch, prog.step + 1, idx)
            optim.zero_grad(set_to_none=True)
            per_sample, _ = steps.forward_loss(wrapped.module, b, d, cfg)
            scaler.scale(per_sample.mean()).backward()  # type: ignore[no-untyped-call]
            scaler.unscale_(optim)
            gnorm = par.clip_grad_norm(model, cfg.optim.grad_clip)
            stats = par.all_reduce_sum(torch.stack([per_sample.detach().sum().cpu(), gnorm.detach().cpu()]).double(), d)
            if steps.diverged(stats, scaler.is_enabled()):  # every rank sees the same reduced values: all stop together
                steps.report_nonfinite(out, prog.step, per_sample, b, train, d)
                ckpt.close()  # the last good checkpoint is published before this rank exits
                log.close()
                return par.shutdown()
            scaler.step(optim)
            scaler.update()
            wrapped.after_optimizer_step(model)
            sched.step()
            stream.advance()
            prog.step, prog.samples = prog.step + 1, prog.samples + cfg.run.batch_size
            prog.train_s, prog.cpu_s = prog.train_s + time.perf_counter() - t, prog.cpu_s + time.process_time() - c
            log.step(prog.step, stats, float(sched.get_last_lr()[0]), d, cfg.run.batch_size, cfg.run.log_every)
            if prog.step % cfg.run.checkpoint_every == 0 and i + 1 < len(batches):
                steps.checkpoint(ckpt, prog, model, optim, sched, stream)
        metrics = steps.validate(model, val, d, cfg)
        prog.history.append({"epoch": stream.epoch, "step": prog.step, **metrics})
        log.epoch(stream.epoch, prog.step, metrics, base)
        stream.next_epoch()
        prog.epoch_s.append(time.perf_counter() - t_epoch)
        steps.checkpoint(ckpt, prog, model, optim, sched, stream)

    ckpt.close()
    log.close()
    weights, summary = par.full_state_dict(model), prog.summary(d, base) | par.describe(model, cfg.run)
    if d.is_main:
        steps.write_outputs(out, model, weights, dataclass_to_dict(cfg), info, summary)
    par.shutdown()


if __name__ == "__main__":
    main()
    # Skip interpreter teardown: destroying DDP's reducer joins gloo's worker threads while holding the
    # GIL, and a worker still releasing a finished barrier needs the GIL -> a rare exit deadlock.
    # Everything this rank wrote is already fsynced and renamed into place.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
