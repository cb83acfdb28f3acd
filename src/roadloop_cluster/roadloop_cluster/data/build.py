"""`roadloop data build`: bags -> fixed-size shards + index.json, reproducibly and atomically.

1. check the configuration against the topic registry (every problem at once); 2. find bags under
the inputs; 3. stream each bag through the bag checks and the SampleBuilder in a process pool
(spooling samples to disk, statistics in the same pass; a bag with an error finding is skipped
with all of them); 4. order the usable bags by content hash, split them by bag (hash-based, stable
as bags are added) or, with fewer bags than a split needs, by time blocks inside each bag
(`roadloop_cluster.data.splits`), cut each split into fixed-size shards; 5. write index.json last
and rename the finished folder into place. Until that rename nothing at the output path changes,
so an interrupted build never looks like a dataset.
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

from roadloop_cluster.data.check import PATH, needed_roles, registry_findings
from roadloop_cluster.data.config import DatasetConfig, load_dataset_config
from roadloop_cluster.data.discover import find_bags
from roadloop_cluster.data.errors import DataError, NoUsableInputError
from roadloop_cluster.data.extract import BagJob, BagResult, extract_bag, read_spool
from roadloop_cluster.data.shards import ShardWriter
from roadloop_cluster.data.splits import BlockPlan, assign_splits, plan_time_blocks, split_of
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
    TimeBlock,
    write_dataset_index,
)
from roadloop_core.contract.tensors import (
    COMMAND_ARRAY,
    ROUTE_TARGET_ARRAY,
    SOURCE_ARRAY,
    STAMP_ARRAY,
    WAYPOINTS_ARRAY,
    dataset_arrays,
    stats_arrays,
)
from roadloop_core.fsio import fsync_dir
from roadloop_core.registry import TopicRegistry, load_registry

__all__ = ["BuildOptions", "build_dataset", "dataset_id", "split_of"]


@dataclass(frozen=True)
class BuildOptions:
    config_path: Path | None = None  # default config/dataset.yaml
    registry_path: Path | None = None  # default config/topics.yaml
    workers: int | None = None  # None: the config's build.workers
    overwrite: bool = False
    progress: bool = True


_assign_splits = assign_splits  # the name earlier callers (and tests) use


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
    problems = registry_findings(cfg, reg)
    if problems:
        where = opts.config_path or config_dir() / "dataset.yaml"
        raise DataError(
            f"{where} and {registry_path} disagree ({len(problems)} problem(s)):\n"
            + "\n".join(f"  {f.line()}" for f in problems)
        )
    topics = {role: [reg[role].name, reg[role].type] for role in needed_roles(cfg)}
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
        index = _assemble(tmp, cfg, reg, topics, jobs, results, opts.progress, log)
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
        for res in results:
            for w in res.warnings:
                log(f"{res.bag}: {w}")
        for s in index.skipped:
            log(f"skipped {s.path}: {s.reason}")
    return index


def _array_sources(cfg: DatasetConfig, reg: TopicRegistry) -> dict[str, str]:
    """Where the labels (and a hindsight route target) come from, in words, for the index."""
    spec, labels = cfg.observation, cfg.build.labels
    wp = reg[labels.waypoints]
    out = {
        WAYPOINTS_ARRAY.name: (
            f"poses of {wp.name} (role {labels.waypoints}, nav_msgs/Path in the ego frame) nearest the frame"
            if wp.type == PATH
            else f"logged future of {wp.name} (role {labels.waypoints}) at t + k * {spec.label_dt_s:g} s, ego frame"
        ),
        COMMAND_ARRAY.name: (
            f"drive of {reg[labels.command].name} (role {labels.command}) nearest the frame"
            + (f", steering_angle / {labels.steering_ratio:g}" if labels.steering_ratio != 1.0 else "")
        ),
    }
    if spec.route_source == "hindsight":
        out[ROUTE_TARGET_ARRAY.name] = (
            f"HINDSIGHT: the logged future path of {reg[spec.odometry].name} {spec.route_lookahead_m:g} m ahead "
            "(not a planner's route)"
        )
    elif spec.route_source == "topic" and spec.route is not None:
        out[ROUTE_TARGET_ARRAY.name] = (
            f"route {reg[spec.route].name} (role {spec.route}) {spec.route_lookahead_m:g} m ahead"
        )
    return out


def _split_plans(
    cfg: DatasetConfig, good: list[tuple[BagResult, Path]], log: Callable[[str], None] | None
) -> tuple[str, list[str], list[BlockPlan | None]]:
    """(split_by, each bag's split ("time" when split inside it), each bag's block plan or None).

    `auto` splits by bag from two usable bags on and inside the one bag otherwise (a bag shorter than two
    blocks of `split_block_s` gets shorter ones); when that bag is too short even for those, the dataset has
    no val split and `log` says what to change (an explicit `split_by: time` is an error then)."""
    b = cfg.build
    by = b.split_by if b.split_by != "auto" else ("bag" if len(good) >= 2 or b.val_fraction == 0 else "time")
    by_bag = assign_splits([r.sha256 for r, _ in good], b.split_salt, b.val_fraction)
    if by == "bag":
        return by, by_bag, [None] * len(good)
    spec = cfg.observation
    before = spec.history_ns + (round(spec.ego_history_dt_s * 1e9) if spec.ego_history_steps else 0)
    after = round(spec.label_horizon * spec.label_dt_s * 1e9)
    plans: list[BlockPlan | None] = []
    try:
        for res, folder in good:
            stamps = np.asarray(read_spool(folder, res, STAMP_ARRAY.name))
            plans.append(
                plan_time_blocks(
                    stamps,
                    res.sha256,
                    b.split_salt,
                    b.val_fraction,
                    b.split_block_s,
                    before,
                    after,
                    str(res.bag),
                    shrink=b.split_by == "auto",
                )
            )
    except DataError as err:
        if b.split_by == "time":
            raise
        if log:
            log(f"no val split (training needs one): {err}")
        return "bag", by_bag, [None] * len(good)
    return by, ["time"] * len(good), plans


def _rows(split: str, bag_split: str, plan: BlockPlan | None, count: int) -> list[tuple[int, int]]:
    """The [lo, hi) row ranges of one bag's samples that go into `split`."""
    if plan is not None:
        return plan.runs.get(split, [])
    return [(0, count)] if bag_split == split else []


def _assemble(
    tmp: Path,
    cfg: DatasetConfig,
    reg: TopicRegistry,
    topics: dict[str, list[str]],
    jobs: list[BagJob],
    results: list[BagResult],
    progress: bool,
    log: Callable[[str], None] | None = None,
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
        if len(skipped) == 1:
            raise NoUsableInputError(f"no usable bags among 1: {Path(skipped[0].path).name}: {skipped[0].reason}")
        reasons = "\n".join(f"  {s.path}: {s.reason}" for s in skipped)
        raise NoUsableInputError(f"no usable bags among {len(results)} (`roadloop data check` says more):\n{reasons}")
    spec = cfg.observation
    split_by, splits, plans = _split_plans(cfg, good, log)
    names = tuple(a.name for a in dataset_arrays(spec))
    shards_dir = tmp / "shards"
    split_index: dict[str, Split] = {}
    total = sum(r.count for r, _ in good)
    bar = tqdm(total=total, desc="shards", unit="sample", disable=not progress, leave=False)
    try:
        for split in SPLITS:
            writer = ShardWriter(shards_dir, split, cfg.build.shard_size, names)
            for src, ((res, folder), s, plan) in enumerate(zip(good, splits, plans, strict=True)):
                for run_lo, run_hi in _rows(split, s, plan, res.count):
                    for lo in range(run_lo, run_hi, cfg.build.shard_size):
                        hi = min(run_hi, lo + cfg.build.shard_size)
                        batch = {n: read_spool(folder, res, n)[lo:hi] for n in names if n != SOURCE_ARRAY.name}
                        batch[SOURCE_ARRAY.name] = np.full(hi - lo, src, dtype=np.dtype(SOURCE_ARRAY.dtype))
                        writer.add(batch)
                        bar.update(hi - lo)
            shards = tuple(writer.close())
            split_index[split] = Split(sum(sh.count for sh in shards), shards)
    finally:
        bar.close()
    stat_split = "train" if split_index["train"].count else "val"
    stats = _statistics(good, splits, plans, stat_split, cfg.build.shard_size)
    drops: Counter[str] = Counter()
    for res, _ in good:
        drops.update(res.drops)
    stats_index: dict[str, ArrayStats] = {}
    for array in stats_arrays():
        if array.name not in stats:
            continue  # not in this dataset (a route target without a route, an ego history not asked for)
        st = stats[array.name]
        if array.pooled_stats:  # flat per-coordinate (x, y) figures beside the per-step ones
            steps = array.resolve(spec)[0]
            flat = RunningStats(st.count * steps, st.mean.mean(axis=0), _pooled_m2(st))
            entry = ArrayStats(st.count, flat.mean.tolist(), flat.std.tolist(), st.mean.tolist(), st.std.tolist())
        else:
            entry = ArrayStats(st.count, st.mean.tolist(), st.std.tolist())
        stats_index[array.name] = entry
    blocks: list[TimeBlock] = []
    for src, plan in enumerate(plans):
        if plan is not None:
            for i, bs in enumerate(plan.block_splits):
                blocks.append(TimeBlock(src, bs, plan.edges_ns[i], plan.edges_ns[i + 1], plan.block_samples[i]))
    gap = 0.0
    if split_by == "time":
        gap = (spec.history_ns + (round(spec.ego_history_dt_s * 1e9) if spec.ego_history_steps else 0)) / 1e9
        gap += spec.label_horizon * spec.label_dt_s
    return DatasetIndex(
        dataset_id=dataset_id(cfg, topics, [r.sha256 for r, _ in good]),
        count=sum(sp.count for sp in split_index.values()),
        arrays=names,
        observation=spec,
        topics={role: (name, typename) for role, (name, typename) in topics.items()},
        splits=split_index,
        stats=stats_index,
        stats_split=stat_split,
        sources=tuple(
            Source(str(r.bag), r.sha256, s, r.count if p is None else p.count("train") + p.count("val"))
            for (r, _), s, p in zip(good, splits, plans, strict=True)
        ),
        drops=dict(sorted(drops.items())),
        skipped=tuple(skipped),
        config=cfg.to_dict(),
        split_by=split_by,
        split_gap_s=round(gap, 9),
        time_blocks=tuple(blocks),
        array_sources=_array_sources(cfg, reg),
    )


def _statistics(
    good: list[tuple[BagResult, Path]],
    splits: list[str],
    plans: list[BlockPlan | None],
    stat_split: str,
    chunk: int,
) -> dict[str, RunningStats]:
    """Running statistics of the `stat_split` samples: merged per bag from the build pass for whole bags,
    from the spooled rows a split keeps for bags split by time (in bag order, so the same every build)."""
    present = set(good[0][0].stats) if good else set()
    stats: dict[str, RunningStats] = {a.name: RunningStats() for a in stats_arrays() if a.name in present}
    for (res, folder), s, plan in zip(good, splits, plans, strict=True):
        if plan is None:
            if s == stat_split:
                for n, st in stats.items():
                    st.merge(res.stats[n])
            continue
        for lo_run, hi_run in plan.runs.get(stat_split, []):
            for lo in range(lo_run, hi_run, chunk):
                hi = min(hi_run, lo + chunk)
                for n, st in stats.items():
                    st.update(np.asarray(read_spool(folder, res, n)[lo:hi]))
    return stats


def _pooled_m2(st: RunningStats) -> np.ndarray:
    """M2 over all K steps pooled per coordinate, from the per-step means and M2s."""
    if st.count == 0:
        return np.zeros(2)
    grand = st.mean.mean(axis=0)
    return np.asarray(st.m2.sum(axis=0) + st.count * ((st.mean - grand) ** 2).sum(axis=0), dtype=np.float64)
