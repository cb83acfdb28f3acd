"""Train/val splits: by bag (stable as bags are added), or by time blocks inside bags (few bags).

By bag, a bag's split is drawn from its content hash, so it never moves when other bags join.
By time, each bag's span is cut into blocks of about `split_block_s`; a share `val_fraction` of
them (at least one) is val, drawn from the bag's hash and the block's number. With `shrink` (what
`split_by: auto` asks for), a bag shorter than two such blocks is cut into shorter ones instead --
about 1 / val_fraction of them, each at least twice the gap kept clear at a boundary -- so a single
short drive (the 60 s a user records first) still has a val split. A sample is kept
only if its whole window -- from its ego history's start to its label horizon's end -- lies in
blocks of its own split, so train and val samples are at least history + horizon apart in time:
no label of one split covers a moment the other observes or labels.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from roadloop_cluster.data.errors import DataError

__all__ = ["BlockPlan", "assign_splits", "block_count", "plan_time_blocks", "split_of"]


def _draw(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_of(sha256: str, salt: str, val_fraction: float) -> str:
    """A bag's split from its content hash alone: stable whatever other bags are built with it."""
    u = int(_draw(f"{salt}:{sha256}")[:12], 16) / float(1 << 48)
    return "val" if u < val_fraction else "train"


def assign_splits(shas: list[str], salt: str, val_fraction: float) -> list[str]:
    splits = [split_of(s, salt, val_fraction) for s in shas]
    # Few bags: train always exists and val too from two bags on (the bag with the highest/lowest draw moves).
    draw = [_draw(f"{salt}:{s}") for s in shas]
    if "train" not in splits:
        splits[draw.index(max(draw))] = "train"
    if val_fraction > 0 and len(shas) >= 2 and "val" not in splits:
        splits[draw.index(min(d for d, s in zip(draw, splits, strict=True) if s == "train"))] = "val"
    return splits


def block_count(span_s: float, block_s: float, val_fraction: float, gap_s: float, shrink: bool) -> int:
    """How many time blocks a bag of `span_s` is cut into (< 2: it cannot be split by time)."""
    n = max(1, round(span_s / block_s))
    if n >= 2 or not shrink or val_fraction <= 0:
        return n
    # shorter blocks: enough for val_fraction to be one of them, each long enough to keep samples after
    # losing the gap at a boundary
    wanted = math.ceil(1.0 / val_fraction - 1e-9)
    fits = math.floor(span_s / (2.0 * gap_s)) if gap_s > 0 else wanted
    return max(1, min(wanted, fits))


@dataclass(frozen=True)
class BlockPlan:
    """One bag's time blocks and which samples each split keeps."""

    edges_ns: tuple[int, ...]  # block i is [edges[i], edges[i+1])
    block_splits: tuple[str, ...]
    block_samples: tuple[int, ...]  # samples each block keeps
    runs: dict[str, list[tuple[int, int]]]  # split -> [lo, hi) row ranges of the bag's samples it keeps

    def count(self, split: str) -> int:
        return sum(hi - lo for lo, hi in self.runs.get(split, []))


def plan_time_blocks(
    stamps_ns: NDArray[np.int64],
    sha256: str,
    salt: str,
    val_fraction: float,
    block_s: float,
    before_ns: int,
    after_ns: int,
    where: str,
    shrink: bool = False,
) -> BlockPlan:
    """Blocks over a bag's sample stamps (sorted) and the rows each split keeps; `before_ns`/`after_ns`: how
    far a sample's inputs reach back and its labels ahead (each sample's window stays in its own split);
    `shrink`: a bag shorter than two blocks gets shorter blocks (see `block_count`)."""
    if len(stamps_ns) == 0:
        raise DataError(f"{where}: no samples to split")
    t0, t1 = int(stamps_ns[0]), int(stamps_ns[-1])
    span = t1 - t0
    gap_s = (before_ns + after_ns) / 1e9
    n = block_count(span / 1e9, block_s, val_fraction, gap_s, shrink)
    if n < 2 or val_fraction <= 0:
        why = "val_fraction is 0" if val_fraction <= 0 else f"its samples span {span / 1e9:.1f} s"
        raise DataError(
            f"{where}: cannot split one bag into train and val by time ({why}; build.split_block_s is "
            f"{block_s:g} s): lower build.split_block_s to at most {max(span / 2e9, 0.1):.1f} s (more than the "
            f"{gap_s:g} s gap a block loses at a boundary: label horizon + ego history), or add bags"
        )
    edges = (*(t0 + (span * i) // n for i in range(n)), t1 + 1)
    n_val = min(n - 1, max(1, round(val_fraction * n)))
    order = sorted(range(n), key=lambda i: _draw(f"{salt}:{sha256}:{i}"))
    val = set(order[:n_val])
    block_splits = tuple("val" if i in val else "train" for i in range(n))
    # a sample keeps its split if no block of the other split meets [t - before, t + after]
    block = np.searchsorted(np.asarray(edges), stamps_ns, side="right") - 1
    first = np.clip(np.searchsorted(np.asarray(edges), stamps_ns - before_ns, side="right") - 1, 0, n - 1)
    last = np.clip(np.searchsorted(np.asarray(edges), stamps_ns + after_ns, side="right") - 1, 0, n - 1)
    is_val = np.array([s == "val" for s in block_splits])
    cum = np.concatenate([[0], np.cumsum(is_val)])  # val blocks in [first, last] = cum[last + 1] - cum[first]
    vals = cum[last + 1] - cum[first]
    width = last - first + 1
    keep_val = (vals == width) & is_val[block]
    keep_train = (vals == 0) & ~is_val[block]
    runs = {"train": _runs(keep_train), "val": _runs(keep_val)}
    kept = np.bincount(block[keep_train | keep_val], minlength=n)
    plan = BlockPlan(edges, block_splits, tuple(int(k) for k in kept), runs)
    if plan.count("val") == 0 or plan.count("train") == 0:
        empty = "val" if plan.count("val") == 0 else "train"
        raise DataError(
            f"{where}: time blocks of {span / n / 1e9:.1f} s leave split '{empty}' empty once {gap_s:g} s (label "
            f"horizon + ego history) are kept clear at each boundary: raise build.split_block_s above "
            f"{2 * gap_s:g} s, or add bags"
        )
    return plan


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[lo, hi) ranges where `mask` is true."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return [(int(lo), int(hi)) for lo, hi in zip(change[::2], change[1::2], strict=True)]
