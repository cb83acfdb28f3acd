"""The gate's decision, table-tested on per-episode rows: publish only a candidate significantly better on the
same episodes (the lower bound of the paired bootstrap CI above the margin)."""

from __future__ import annotations

import numpy as np
import pytest

from roadloop_cluster.loop.gate_decision import decide
from roadloop_sim.errors import SimError

N = 32
RNG = np.random.default_rng(11)
HARDNESS = RNG.uniform(30.0, 100.0, N)  # how well anyone does on each episode: shared by both drivers
NOISE = RNG.normal(0.0, 6.0, N)


def _rows(ds: np.ndarray) -> list[dict[str, object]]:
    names = ("highway_light", "highway_dense")
    return [{"scenario": names[i % 2], "seed": 7000 + i // 2, "ds": float(v)} for i, v in enumerate(ds)]


@pytest.mark.parametrize(
    ("candidate", "margin", "publish", "ci"),
    [
        (HARDNESS, 0.0, False, (0.0, 0.0)),  # the same driving: CI [0, 0], a tie is not a win
        (HARDNESS + 5.0, 0.0, True, (5.0, 5.0)),  # 5 points better on every episode
        (HARDNESS + 5.0, 5.0, False, (5.0, 5.0)),  # exactly the margin is not above it
        (HARDNESS + 0.6 + NOISE, 0.0, False, None),  # the "0.6-point win": noise, straddles 0
        (HARDNESS + 8.0 + NOISE, 0.0, True, None),  # clearly better despite the noise
        (HARDNESS + 8.0 + NOISE, 10.0, False, None),  # better, but not by the margin asked for
        (HARDNESS - 3.0 + NOISE, 0.0, False, None),  # worse
        (HARDNESS - 20.0, -25.0, True, (-20.0, -20.0)),  # a negative margin tolerates a bounded loss
    ],
)
def test_decide(candidate: np.ndarray, margin: float, publish: bool, ci: tuple[float, float] | None) -> None:
    d = decide(_rows(candidate), _rows(HARDNESS), margin)
    assert d.publish is publish
    assert d.difference.n == N and d.difference.resamples == 10_000 and d.margin == margin
    assert d.difference.low <= d.difference.mean <= d.difference.high
    if ci is not None:
        assert (d.difference.low, d.difference.high) == pytest.approx(ci, abs=1e-9)


def test_a_noisy_small_gain_straddles_zero() -> None:
    d = decide(_rows(HARDNESS + 0.6 + NOISE), _rows(HARDNESS), 0.0)
    assert d.difference.low < 0.0 < d.difference.high


def test_the_verdict_is_deterministic_and_seeded() -> None:
    cand, inc = _rows(HARDNESS + 3.0 + NOISE), _rows(HARDNESS)
    assert decide(cand, inc, 0.0, seed=4) == decide(cand, inc, 0.0, seed=4)
    assert decide(cand, inc, 0.0, seed=4).difference.low != decide(cand, inc, 0.0, seed=5).difference.low


def test_evaluations_of_different_episodes_are_not_compared() -> None:
    with pytest.raises(SimError, match="did not drive the same episodes"):
        decide(_rows(HARDNESS)[1:], _rows(HARDNESS)[:-1], 0.0)
