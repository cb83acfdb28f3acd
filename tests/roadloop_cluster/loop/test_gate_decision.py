"""The gate's decision, table-tested: publish only a candidate strictly above the incumbent plus the margin."""

from __future__ import annotations

import pytest

from roadloop_cluster.loop.gate_decision import decide


@pytest.mark.parametrize(
    ("candidate", "incumbent", "margin", "publish"),
    [
        (70.9, 70.3, 0.0, True),
        (70.3, 70.3, 0.0, False),  # a tie is not a win
        (69.7, 70.9, 0.0, False),
        (72.0, 70.0, 2.0, False),  # exactly the margin is not above it
        (72.1, 70.0, 2.0, True),
        (50.0, 55.0, -10.0, True),  # a negative margin tolerates a loss (documented, not the default)
    ],
)
def test_decide(candidate: float, incumbent: float, margin: float, publish: bool) -> None:
    d = decide(candidate, incumbent, margin)
    assert d.publish is publish
    assert (d.candidate_ds, d.incumbent_ds, d.margin) == (candidate, incumbent, margin)
