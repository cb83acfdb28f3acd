"""Open-loop metrics (convention: waypoint k at t=(k+1)*dt, L2@T = error at exactly T) and baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from roadloop_cluster.train.metrics import ErrorSums, constant_velocity, metrics_from_sums


@pytest.mark.parametrize(
    ("errors", "dt", "expected"),
    [
        # per-waypoint errors of one sample (x offsets), dt -> metrics
        ([1, 2, 3, 4, 5, 6], 0.5, {"ade": 3.5, "fde": 6.0, "l2_1s": 2.0, "l2_2s": 4.0, "l2_3s": 6.0}),
        ([1, 2, 3, 4, 5, 6, 7, 8], 0.5, {"ade": 4.5, "fde": 8.0, "l2_1s": 2.0, "l2_2s": 4.0, "l2_3s": 6.0}),
        ([3, 6, 9], 1.0, {"ade": 6.0, "fde": 9.0, "l2_1s": 3.0, "l2_2s": 6.0, "l2_3s": 9.0}),
        ([2, 4], 0.5, {"ade": 3.0, "fde": 4.0, "l2_1s": 4.0}),
    ],
)
def test_metrics_from_errors(errors: list[float], dt: float, expected: dict[str, float]) -> None:
    k = len(errors)
    gt = torch.zeros(1, k, 2)
    pred = torch.zeros(1, k, 2)
    pred[0, :, 0] = torch.tensor(errors, dtype=torch.float32)
    sums = ErrorSums(k)
    sums.add(pred, gt)
    assert metrics_from_sums(sums.sums, dt) == pytest.approx(expected)


def test_errors_are_euclidean_and_averaged_over_samples() -> None:
    sums = ErrorSums(1)
    sums.add(torch.tensor([[[3.0, 4.0]], [[0.0, 1.0]]]), torch.zeros(2, 1, 2))
    assert metrics_from_sums(sums.sums, 1.0)["l2_1s"] == pytest.approx(3.0)


def test_constant_velocity_drives_straight_at_current_speed() -> None:
    cv = constant_velocity(torch.tensor([2.0, 10.0]), horizon=3, dt=0.5)
    assert torch.allclose(cv[1], torch.tensor([[5.0, 0.0], [10.0, 0.0], [15.0, 0.0]]))
    assert torch.allclose(cv[0, :, 0], torch.tensor([1.0, 2.0, 3.0]))


def _arc(v: float, w: float, horizon: int, dt: float) -> np.ndarray:
    """Ego-frame future of constant speed `v` and yaw rate `w` (a straight line when w = 0)."""
    t = np.arange(1, horizon + 1) * dt
    if w == 0:
        return np.stack([v * t, np.zeros_like(t)], axis=1)
    return np.stack([v / w * np.sin(w * t), v / w * (1 - np.cos(w * t))], axis=1)


def test_constant_velocity_is_exact_on_straight_constant_speed_driving() -> None:
    cv = constant_velocity(torch.tensor([7.0]), 6, 0.5)[0].numpy()
    assert np.allclose(_arc(7.0, 0.0, 6, 0.5), cv, atol=1e-5)
    turning = _arc(7.0, 0.2, 6, 0.5)
    assert math.hypot(*(turning[-1] - cv[-1])) > 1.0
