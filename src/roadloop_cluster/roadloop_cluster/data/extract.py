"""One bag -> spooled sample arrays + drop counts + statistics + findings (runs in a pool worker).

Samples are appended to raw per-array files as they are produced, so a worker's
memory stays bounded by the label horizon whatever the bag's length. The bag checks
(`roadloop_cluster.data.check`: topics, rates, clocks, frame conventions) run on the same
message stream; a bag with an error finding is skipped with all of them, and so is any
failure inside a bag (truncated file, corrupt chunk, undecodable message), with its reason;
the build carries on with the others.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from roadloop_cluster.data.check import PATH, readable_roles, topic_findings
from roadloop_cluster.data.config import DatasetConfig
from roadloop_cluster.data.conventions import Finding
from roadloop_cluster.data.discover import bag_sha256
from roadloop_cluster.data.errors import DataError
from roadloop_cluster.data.lazy import read_roles
from roadloop_cluster.data.probe import BagProbe
from roadloop_cluster.data.samples import Sample, SampleBuilder
from roadloop_cluster.data.stats import RunningStats
from roadloop_core.bag import open_bag
from roadloop_core.contract.tensors import SOURCE_ARRAY, STAMP_ARRAY, DatasetArray, dataset_arrays, stats_arrays
from roadloop_core.errors import RoadloopError
from roadloop_core.registry import load_registry
from roadloop_core.typesys import typestore_for

__all__ = ["BagJob", "BagResult", "extract_bag", "read_spool"]
_FLUSH = 128


@dataclass(frozen=True)
class BagJob:
    bag: Path
    spool: Path
    config: DatasetConfig
    registry_path: Path


@dataclass
class BagResult:
    bag: Path
    sha256: str
    count: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # findings the bag was taken with
    drops: dict[str, int] = field(default_factory=dict)
    stats: dict[str, RunningStats] = field(default_factory=dict)
    shapes: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)


def _stack(samples: list[Sample], array: DatasetArray) -> np.ndarray:
    """One array of a block of samples, as the tensor table names and types it."""
    if array is STAMP_ARRAY:
        out = np.array([s.features.stamp_ns for s in samples], dtype=np.int64)
    elif array.kind == "feature":
        out = np.stack([s.features[array.name] for s in samples])
    else:
        out = np.stack([s.labels[array.name] for s in samples])
    if out.dtype != np.dtype(array.dtype):
        raise DataError(f"array '{array.name}' came out as {out.dtype}; the tensor table says {array.dtype}")
    return out


class _Spool:
    def __init__(self, folder: Path, arrays: tuple[DatasetArray, ...]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.arrays = arrays
        self.files: dict[str, BinaryIO] = {a.name: open(folder / f"{a.name}.bin", "wb") for a in arrays}  # noqa: SIM115
        self.buf: list[Sample] = []
        self.count = 0
        self.stats = {a.name: RunningStats() for a in stats_arrays() if a in arrays}
        self.shapes: dict[str, tuple[tuple[int, ...], str]] = {}

    def add(self, sample: Sample) -> None:
        self.buf.append(sample)
        if len(self.buf) >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        b = self.buf
        arrays = {a.name: _stack(b, a) for a in self.arrays}
        for name, arr in arrays.items():
            self.shapes[name] = (arr.shape[1:], arr.dtype.str)
            self.files[name].write(np.ascontiguousarray(arr).tobytes())
        for name, st in self.stats.items():
            st.update(arrays[name])
        self.count += len(b)
        self.buf = []

    def close(self) -> None:
        self.flush()
        for f in self.files.values():
            f.close()


def extract_bag(job: BagJob) -> BagResult:
    """Stream one bag through the SampleBuilder into `job.spool`; never raises for a bad bag."""
    result = BagResult(job.bag, "")
    spool: _Spool | None = None
    sha: Future[str] | None = None
    try:
        # hashing reads the whole bag again: overlap it with the extraction (hashlib and file reads drop the GIL)
        hasher = ThreadPoolExecutor(max_workers=1)
        sha = hasher.submit(bag_sha256, job.bag)
        hasher.shutdown(wait=False)
        reg = load_registry(job.registry_path)
        cfg = job.config
        spec = cfg.observation
        with open_bag(job.bag, distro=reg.typestore) as bag:
            info = bag.info
            # the reader recovers what a damaged bag still holds and lists what disagrees with its metadata;
            # a dataset must not silently take half a drive, so such a bag is skipped with its problems
            if bag.problems:
                result.error = "truncated or inconsistent: " + "; ".join(bag.problems)
                return result
            bag_topics = {t.name: t.type for t in info.topics}
            driven = cfg  # what the car did: the bag's checks (command vs motion) are of it
            labels = cfg.build.labels.for_bag({r: t.name for r, t in reg.topics.items()}, bag_topics)
            if labels is not cfg.build.labels:  # a DAgger drive: the expert's labels of the states the policy visited
                cfg = dataclasses.replace(cfg, build=dataclasses.replace(cfg.build, labels=labels))
            findings: list[Finding] = topic_findings(cfg, reg, bag_topics)
            roles = readable_roles(cfg, reg, bag_topics) | readable_roles(driven, reg, bag_topics)
            role_of = {name: r for r, name in roles.items()}
            probe = BagProbe(driven, reg, list(role_of.values()), info.start_ns, info.end_ns)
            complete = not findings  # a bag missing a topic is still read for the other findings
            builder = SampleBuilder(spec, labels, waypoints_from_path=reg[labels.waypoints].type == PATH)
            # every array of the dataset but `source`, which the assembly numbers
            spool = _Spool(job.spool, tuple(a for a in dataset_arrays(spec) if a is not SOURCE_ARRAY))
            for role, receive_ns, msg in read_roles(bag, typestore_for(reg.typestore), role_of):
                probe.observe(role, receive_ns, msg)
                if complete:
                    for sample in builder.step(role, msg, getattr(msg, "stamp_ns", None)):
                        spool.add(sample)
            for sample in builder.finish():  # plan-labelled frames at the bag's end
                spool.add(sample)
            spool.close()
            findings += probe.findings()
        errors = [f.text() for f in findings if f.severity == "error"]
        result.warnings = [f.line() for f in findings if f.severity == "warning"]
        if errors:
            result.error = "refused: " + "; ".join(errors)
            return result
        result.count = spool.count
        result.drops = dict(sorted(builder.all_drops().items()))
        result.stats = spool.stats
        result.shapes = spool.shapes
        if result.count == 0:
            result.error = "no usable samples" + _drop_note(builder.all_drops())
    except RoadloopError as err:
        result.error = str(err)
    except Exception as err:  # a corrupt bag can fail anywhere inside rosbags/mcap/zstd: skip it, with the reason
        result.error = f"unreadable: {type(err).__name__}: {err}"
    finally:
        if spool is not None:
            for f in spool.files.values():
                f.close()
        if sha is not None:
            try:
                result.sha256 = sha.result()
            except OSError as err:
                result.error = result.error or f"unreadable: {err}"
    if result.error is not None:
        result.count = 0
        shutil.rmtree(job.spool, ignore_errors=True)
    return result


def _drop_note(drops: Counter[str]) -> str:
    top = ", ".join(f"{k} {v}" for k, v in drops.most_common(3))
    return f" (dropped: {top})" if top else ""


def read_spool(folder: Path, result: BagResult, name: str) -> np.ndarray:
    """The spooled array `name` of a finished bag, memory-mapped."""
    shape, dtype = result.shapes[name]
    return np.memmap(folder / f"{name}.bin", dtype=np.dtype(dtype), mode="r", shape=(result.count, *shape))
