"""The gate's decision, pure: does the candidate beat the incumbent by the configured margin?"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GateDecision", "decide"]


@dataclass(frozen=True)
class GateDecision:
    publish: bool
    candidate_ds: float
    incumbent_ds: float
    margin: float


def decide(candidate_ds: float, incumbent_ds: float, margin: float) -> GateDecision:
    """Publish only a candidate whose driving score is strictly above the incumbent's plus `margin` points."""
    return GateDecision(candidate_ds > incumbent_ds + margin, candidate_ds, incumbent_ds, margin)
