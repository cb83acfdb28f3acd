"""Running mean / variance (Chan et al. parallel merge) so statistics come out of the build pass itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RunningStats"]


@dataclass
class RunningStats:
    """Per-element mean and M2 of arrays with a fixed trailing shape, in float64."""

    count: int = 0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    m2: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def update(self, batch: np.ndarray) -> None:
        """Add a batch (N, *shape)."""
        if len(batch) == 0:
            return
        x = batch.astype(np.float64)
        other = RunningStats(len(x), x.mean(axis=0), ((x - x.mean(axis=0)) ** 2).sum(axis=0))
        self.merge(other)

    def merge(self, other: RunningStats) -> None:
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean.copy(), other.m2.copy()
            return
        n = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / n)
        self.m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / n)
        self.count = n

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count) if self.count else self.m2

    def to_json(self) -> dict[str, Any]:
        """Mean/std as (nested) lists shaped like one sample of the array."""
        return {"count": self.count, "mean": self.mean.tolist(), "std": self.std.tolist()}
