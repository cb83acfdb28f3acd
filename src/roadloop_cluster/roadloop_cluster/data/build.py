"""`roadloop data build`: bags -> fixed-size shards + index.json, reproducibly and atomically.

1. find bags under the inputs; 2. stream each bag through the SampleBuilder in a
process pool (spooling samples to disk, statistics in the same pass); 3. order the
usable bags by content hash, split them by bag (hash-based, stable as bags are
added), cut each split into fixed-size shards; 4. write index.json last and rename
the finished folder into place. Until that rename nothing at the output path
changes, so an interrupted build never looks like a dataset.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from roadloop_cluster.data.config import DatasetConfig, load_dataset_config
from roadloop_cluster.data.discover import find_bags
from roadloop_cluster.data.errors import DataError, NoUsableInputError
from roadloop_cluster.data.extract import BagJob, BagResult, extract_bag, read_spool
from roadloop_cluster.data.shards import ShardWriter
from roadloop_cluster.data.stats import RunningStats
from roadloop_core.config import config_dir
from roadloop_core.contract.dataset_index import (
    DATASET_FORMAT,
    INDEX_FILE,
    SPLITS,
    ArrayStats,
    DatasetIndex,
    Skipped,
    Source,
    Split,
    write_dataset_index,
)
from roadloop_core.contract.tensors import SOURCE_ARRAY, dataset_arrays, stats_arrays
from roadloop_core.fsio import fsync_dir
from roadloop_core.registry import load_registry

__all__ = ["BuildOptions", "build_dataset", "dataset_id", "split_of"]


@dataclass(frozen=True)
class BuildOptions:
    config_path: Path | None = None  # default config/dataset.yaml
    registry_path: Path | None = None  # default config/topics.yaml
    workers: int | None = None  # None: the config's build.workers
    overwrite: bool = False
    progress: bool = True


def split_of(sha256: str, salt: str, val_fraction: float) -> str:
    """A bag's split from its content hash alone: stable whatever other bags are built with it."""
    u = int(hashlib.sha256(f"{salt}:{sha256}".encode()).hexdigest()[:12], 16) / float(1 << 48)
    return "val" if u < val_fraction else "train"


def _assign_splits(shas: list[str], salt: str, val_fraction: float) -> list[str]:
    splits = [split_of(s, salt, val_fraction) for s in shas]
    # Few bags: train always exists and val too from two bags on (the bag with the highest/lowest draw moves).
    draw = [hashlib.sha256(f"{salt}:{s}".encode()).hexdigest() for s in shas]
    if "train" not in splits:
        splits[draw.index(max(draw))] = "train"
    if val_fraction > 0 and len(shas) >= 2 and "val" not in splits:
        splits[draw.index(min(d for d, s in zip(draw, splits, strict=True) if s == "train"))] = "val"
    return splits


def dataset_id(config: DatasetConfig, topics: dict[str, list[str]], shas: list[str]) -> str:
    """Hash of everything that determines the shards: format, config, topic mapping, input bag contents."""
    blob = json.dumps(
        {"format": DATASET_FORMAT, "config": config.to_dict(), "topics": topics, "sources": shas},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _run_jobs(jobs: list[BagJob], workers: int, progress: bool) -> list[BagResult]:
    bar = tqdm(total=len(jobs), desc="bags", unit="bag", disable=not progress, leave=False)
    results: list[BagResult] = []
    try:
        if workers <= 1:
            for job in jobs:
                results.append(extract_bag(job))
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")  # no inherited threads or torch state in workers
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = [pool.submit(extract_bag, job) for job in jobs]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
    finally:
        bar.close()
    order = {job.bag: i for i, job in enumerate(jobs)}
    return sorted(results, key=lambda r: order[r.bag])


def _check_output(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir() or (any(out.iterdir()) and not (out / INDEX_FILE).is_file()):
        raise DataError(f"{out}: exists and is not a roadloop dataset; choose another --out")
    if (out / INDEX_FILE).is_file() and not overwrite:
        raise DataError(f"{out}: a dataset already exists there; pass --overwrite to replace it")


def build_dataset(
    inputs: list[Path], out: Path, options: BuildOptions | None = None, log: Callable[[str], None] | None = None
) -> DatasetIndex:
    """Build a dataset at `out` from the bags at or under `inputs`; returns the written index."""
    opts = options or BuildOptions()
    cfg = load_dataset_config(opts.config_path)
    registry_path = opts.registry_path or config_dir() / "topics.yaml"
    reg = load_registry(registry_path)
    spec = cfg.observation
    roles = [*spec.roles(), cfg.build.command]
    topics = {role: [reg[role].name, reg[role].type] for role in roles}  # unknown roles fail here, once
    out = out.resolve()
    _check_output(out, opts.overwrite)
    bags = find_bags(inputs)
    if not bags:
        raise NoUsableInputError(f"no rosbag2 bags found under {', '.join(map(str, inputs))}")
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "shards").mkdir(parents=True)
    try:
        workers = opts.workers if opts.workers is not None else cfg.build.workers
        workers = workers or min(os.cpu_count() or 1, len(bags))
        spool = tmp / "_spool"
        jobs = [BagJob(b, spool / f"{i:05d}", cfg, registry_path) for i, b in enumerate(bags)]
        results = _run_jobs(jobs, min(workers, len(bags)), opts.progress)
        index = _assemble(tmp, cfg, topics, jobs, results, opts.progress)
        write_dataset_index(tmp, index)
        shutil.rmtree(spool, ignore_errors=True)
        fsync_dir(tmp / "shards")
        fsync_dir(tmp)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            trash = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, trash)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
        fsync_dir(out.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if log:
        for s in index.skipped:
            log(f"skipped {s.path}: {s.reason}")
    return index


def _assemble(
    tmp: Path,
    cfg: DatasetConfig,
    topics: dict[str, list[str]],
    jobs: list[BagJob],
    results: list[BagResult],
    progress: bool,
) -> DatasetIndex:
    skipped: list[Skipped] = []
    seen: dict[str, Path] = {}
    good: list[tuple[BagResult, Path]] = []
    for job, res in sorted(zip(jobs, results, strict=True), key=lambda jr: (jr[1].sha256, str(jr[1].bag))):
        if res.error is not None:
            skipped.append(Skipped(str(res.bag), res.error))
        elif res.sha256 in seen:
            skipped.append(Skipped(str(res.bag), f"duplicate of {seen[res.sha256]} (same content)"))
        else:
            seen[res.sha256] = res.bag
            good.append((res, job.spool))
    skipped.sort(key=lambda s: s.path)
    if not good:
        reasons = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in skipped[:3])
        raise NoUsableInputError(f"no usable bags among {len(results)}: {reasons}")
    spec = cfg.observation
    splits = _assign_splits([r.sha256 for r, _ in good], cfg.build.split_salt, cfg.build.val_fraction)
    names = tuple(a.name for a in dataset_arrays(spec))
    shards_dir = tmp / "shards"
    split_index: dict[str, Split] = {}
    total = sum(r.count for r, _ in good)
    bar = tqdm(total=total, desc="shards", unit="sample", disable=not progress, leave=False)
    try:
        for split in SPLITS:
            writer = ShardWriter(shards_dir, split, cfg.build.shard_size, names)
            for src, ((res, folder), s) in enumerate(zip(good, splits, strict=True)):
                if s != split:
                    continue
                for lo in range(0, res.count, cfg.build.shard_size):
                    hi = min(res.count, lo + cfg.build.shard_size)
                    batch = {n: read_spool(folder, res, n)[lo:hi] for n in names if n != SOURCE_ARRAY.name}
                    batch[SOURCE_ARRAY.name] = np.full(hi - lo, src, dtype=np.dtype(SOURCE_ARRAY.dtype))
                    writer.add(batch)
                    bar.update(hi - lo)
            shards = tuple(writer.close())
            split_index[split] = Split(sum(sh.count for sh in shards), shards)
    finally:
        bar.close()
    stats: dict[str, RunningStats] = {a.name: RunningStats() for a in stats_arrays()}
    stat_split = "train" if split_index["train"].count else "val"
    for (res, _), s in zip(good, splits, strict=True):
        if s == stat_split:
            for n, st in stats.items():
                st.merge(res.stats[n])
    drops: Counter[str] = Counter()
    for res, _ in good:
        drops.update(res.drops)
    stats_index: dict[str, ArrayStats] = {}
    for array in stats_arrays():
        st = stats[array.name]
        if array.pooled_stats:  # flat per-coordinate (x, y) figures beside the per-step ones
            steps = array.resolve(spec)[0]
            flat = RunningStats(st.count * steps, st.mean.mean(axis=0), _pooled_m2(st))
            entry = ArrayStats(st.count, flat.mean.tolist(), flat.std.tolist(), st.mean.tolist(), st.std.tolist())
        else:
            entry = ArrayStats(st.count, st.mean.tolist(), st.std.tolist())
        stats_index[array.name] = entry
    return DatasetIndex(
        dataset_id=dataset_id(cfg, topics, [r.sha256 for r, _ in good]),
        count=total,
        arrays=names,
        observation=spec,
        topics={role: (name, typename) for role, (name, typename) in topics.items()},
        splits=split_index,
        stats=stats_index,
        stats_split=stat_split,
        sources=tuple(Source(str(r.bag), r.sha256, s, r.count) for (r, _), s in zip(good, splits, strict=True)),
        drops=dict(sorted(drops.items())),
        skipped=tuple(skipped),
        config=cfg.to_dict(),
    )


def _pooled_m2(st: RunningStats) -> np.ndarray:
    """M2 over all K steps pooled per coordinate, from the per-step means and M2s."""
    if st.count == 0:
        return np.zeros(2)
    grand = st.mean.mean(axis=0)
    return np.asarray(st.m2.sum(axis=0) + st.count * ((st.mean - grand) ** 2).sum(axis=0), dtype=np.float64)
