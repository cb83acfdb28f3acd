"""Open-loop metrics and the two baselines they are always reported beside.

Baselines: constant velocity (straight ahead at the current speed), the ego-status-only MLP, and the
kinematic CTRA extrapolation (constant turn rate and acceleration from the ego state: what the
`ctra` prior of the policy predicts by itself).

Convention: waypoint k (0-based) is the ego position at t = (k+1)*dt in the ego frame of the
current sample. L2@Ts is the mean over samples of the Euclidean error of the waypoint at exactly
t = T (UniAD's "L2 at T", not ST-P3's average over 0..T); ADE averages the error over all K
waypoints, FDE is the error of the last one. All in metres.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from roadloop_cluster.models.policy import EgoStatusMLP
from roadloop_cluster.models.prior import ctra
from roadloop_cluster.train.data import SplitData
from roadloop_core.contract.tensors import EGO_STATE, EGO_STATE_ARRAY, WAYPOINTS, WAYPOINTS_ARRAY

__all__ = [
    "ErrorSums",
    "constant_velocity",
    "evaluate_baselines",
    "metrics_from_sums",
    "step_scale",
    "train_ego_baseline",
]

L2_TIMES = (1.0, 2.0, 3.0)


class ErrorSums:
    """Per-waypoint sums of L2 error and the sample count; all-reducible as one tensor."""

    def __init__(self, horizon: int) -> None:
        self.sums = torch.zeros(horizon + 1, dtype=torch.float64)

    def add(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        err = torch.linalg.vector_norm(pred.detach().double().cpu() - gt.double().cpu(), dim=-1)
        self.sums[:-1] += err.sum(dim=0)
        self.sums[-1] += err.shape[0]


def metrics_from_sums(sums: torch.Tensor, dt: float) -> dict[str, float]:
    count = float(sums[-1])
    per_step = (sums[:-1] / max(count, 1.0)).tolist()
    out = {"ade": float(np.mean(per_step)), "fde": per_step[-1]}
    for t in L2_TIMES:
        k = round(t / dt) - 1
        if 0 <= k < len(per_step) and abs((k + 1) * dt - t) < 1e-6:
            out[f"l2_{t:g}s"] = per_step[k]
    return out


def constant_velocity(speed: torch.Tensor, horizon: int, dt: float) -> torch.Tensor:
    """Straight ahead at the current speed: waypoint k at (v * (k+1) * dt, 0)."""
    t = torch.arange(1, horizon + 1, dtype=torch.float32) * dt
    x = speed.float()[:, None] * t[None, :]
    return torch.stack([x, torch.zeros_like(x)], dim=-1)


def step_scale(waypoints: NDArray[np.float32]) -> float:
    """Mean |displacement| per waypoint step; nan-robust so one bad label cannot poison the model's scale."""
    mean = float(np.nanmean(np.abs(np.diff(waypoints, axis=1, prepend=0.0))))
    return max(mean, 1e-3)


def train_ego_baseline(train: SplitData, horizon: int, steps: int, seed: int) -> EgoStatusMLP:
    """Fit the ego-status-only MLP full-batch with Adam (deterministic for a given seed)."""
    torch.manual_seed(seed)
    a = train.arrays
    ego_state, wp = a[EGO_STATE_ARRAY.name], a[WAYPOINTS_ARRAY.name]
    model = EgoStatusMLP(horizon, ego_state.shape[1], step_scale(wp))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    finite = np.isfinite(ego_state).all(axis=1) & np.isfinite(wp).all(axis=(1, 2))
    b = train.batch(np.flatnonzero(finite).astype(np.int64))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = (model(b.inputs[EGO_STATE.name]) - b.targets[WAYPOINTS.name]).abs().mean()
        loss.backward()
        opt.step()
    return model.eval()


def evaluate_baselines(val: SplitData, ego: EgoStatusMLP, horizon: int, dt: float) -> dict[str, dict[str, float]]:
    cv, em, kin = ErrorSums(horizon), ErrorSums(horizon), ErrorSums(horizon)
    raw = val.arrays[EGO_STATE_ARRAY.name]
    with torch.no_grad():
        for lo in range(0, len(val), 1024):
            idx = np.arange(lo, min(lo + 1024, len(val)), dtype=np.int64)
            b = val.batch(idx)
            cv.add(constant_velocity(b.raw_speed, horizon, dt), b.targets[WAYPOINTS.name])
            em.add(ego(b.inputs[EGO_STATE.name]), b.targets[WAYPOINTS.name])
            kin.add(ctra(torch.from_numpy(raw[idx]).double(), horizon, dt), b.targets[WAYPOINTS.name])
    return {
        "constant_velocity": metrics_from_sums(cv.sums, dt),
        "ego_mlp": metrics_from_sums(em.sums, dt),
        "kinematic_ctra": metrics_from_sums(kin.sums, dt),
    }
