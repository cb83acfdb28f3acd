"""train.steps' pure rules: when a step's reduced statistics stop training."""

from __future__ import annotations

import math

import pytest
import torch

from roadloop_cluster.train.steps import diverged

INF, NAN = math.inf, math.nan


@pytest.mark.parametrize(
    ("loss_sum", "grad_norm", "loss_scaled", "stop"),
    [
        (1.5, 0.3, False, False),
        (1.5, 0.3, True, False),
        (NAN, 0.3, False, True),  # a non-finite loss always stops
        (INF, 0.3, True, True),
        (NAN, INF, True, True),
        (1.5, INF, False, True),  # fp32/bf16: an inf gradient norm is divergence
        (1.5, NAN, False, True),
        (1.5, INF, True, False),  # fp16 loss scaling: the scaler's overflow, that step is skipped
        (1.5, NAN, True, False),
    ],
)
def test_which_steps_stop_training(loss_sum: float, grad_norm: float, loss_scaled: bool, stop: bool) -> None:
    assert diverged(torch.tensor([loss_sum, grad_norm], dtype=torch.float64), loss_scaled) is stop
