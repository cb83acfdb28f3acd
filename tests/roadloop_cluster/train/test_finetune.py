"""`--init-from` (fine-tuning a production model) and the rare-event loss weights."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from roadloop_cluster.train.config import OptimConfig
from roadloop_cluster.train.data import Batch
from roadloop_cluster.train.errors import TrainError
from roadloop_cluster.train.steps import rare_event_weights
from roadloop_cluster.train.train import main
from roadloop_core.contract.tensors import TARGET_SPEED, WAYPOINTS


def test_init_from_starts_at_the_earlier_weights_and_refuses_another_models(
    camera_dataset: Path, state_dataset: Path, write_config: Callable[..., Path], single_rank_env: None,
    tmp_path: Path,
) -> None:  # fmt: skip
    cfg = write_config(run={"epochs": 1, "checkpoint_every": 100})
    first, tuned = tmp_path / "first", tmp_path / "tuned"
    main(["--config", str(cfg), "--data", str(camera_dataset), "--out", str(first)])
    cfg0 = write_config(optim={"lr": 1e-12, "warmup_steps": 1}, run={"epochs": 1, "checkpoint_every": 100})
    main(["--config", str(cfg0), "--data", str(camera_dataset), "--out", str(tuned), "--init-from", str(first)])
    a = torch.load(first / "model.pt", weights_only=True)
    b = torch.load(tuned / "model.pt", weights_only=True)
    # a learning rate of ~0 keeps the start: the fine-tune began at the first run's weights, not at random ones
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    before = json.loads((first / "metrics.json").read_text())["val"]["l2_3s"]
    assert json.loads((tuned / "metrics.json").read_text())["val"]["l2_3s"] == pytest.approx(before, abs=1e-4)
    with pytest.raises(TrainError, match="not this model's weights"):
        main(["--config", str(cfg), "--data", str(state_dataset), "--out", str(tmp_path / "x"), "--init-from",
              str(first)])  # fmt: skip
    with pytest.raises(TrainError, match="cannot read"):
        main(["--config", str(cfg), "--data", str(camera_dataset), "--out", str(tmp_path / "y"), "--init-from",
              str(tmp_path / "missing.pt")])  # fmt: skip


def test_braking_and_lane_change_samples_weigh_more() -> None:
    dt = 0.5
    cruise = torch.tensor([[10.0 * (k + 1), 0.0] for k in range(8)])  # 20 m/s straight
    brake = cruise.clone()
    change = cruise.clone()
    change[:, 1] = torch.linspace(0.3, 3.5, 8)  # ends 3.5 m to the left
    wp = torch.stack([cruise, brake, change])
    speed = torch.tensor([[20.0], [16.0], [20.0]])  # the second wants 4 m/s less than it drives
    b = Batch({}, {WAYPOINTS.name: wp, TARGET_SPEED.name: speed}, torch.full((3,), 20.0), np.arange(3))
    o = OptimConfig(brake_weight=2.0, lane_change_weight=1.0)
    assert rare_event_weights(b, dt, o).tolist() == [1.0, 3.0, 2.0]
    with pytest.raises(ValueError, match="brake_weight"):
        OptimConfig(brake_weight=-1.0)
