"""The gate's decision, pure: is the candidate *significantly* better than the incumbent on the same episodes?

Both drove the same (scenario, seed) episodes. The per-episode DS difference (candidate - incumbent)
gets a seeded percentile bootstrap confidence interval (`roadloop_sim.stats`); the candidate is
published only when the interval's lower bound is above the margin. A tie, a gain within the noise
or a loss all keep the incumbent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from roadloop_sim.stats import MeanCI, bootstrap_mean_ci, paired_differences

__all__ = ["GateDecision", "decide"]


@dataclass(frozen=True)
class GateDecision:
    publish: bool
    difference: MeanCI  # of candidate - incumbent DS over the paired episodes
    margin: float


def decide(
    candidate: Sequence[Mapping[str, Any]],
    incumbent: Sequence[Mapping[str, Any]],
    margin: float,
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
    key: str = "ds",
) -> GateDecision:
    """Publish iff the lower bound of the `confidence` CI of the mean paired difference of `key` is above `margin`.

    `candidate`/`incumbent`: per-episode rows with scenario, seed and `key`; they must cover the same episodes.
    """
    _, diff = paired_differences(candidate, incumbent, key)
    ci = bootstrap_mean_ci(diff, confidence=confidence, resamples=resamples, seed=seed)
    return GateDecision(ci.low > margin, ci, margin)
