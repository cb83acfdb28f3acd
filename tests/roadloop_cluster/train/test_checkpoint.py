"""DCP checkpoints round-trip model, optimizer, trainer state and RNG; `latest` is atomic; last K kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from roadloop_cluster.models import DrivingPolicy, ModelArgs, ModelConfig
from roadloop_cluster.train.checkpoint import Checkpointer, latest_checkpoint, load_checkpoint, save_checkpoint
from roadloop_cluster.train.errors import TrainError
from roadloop_cluster.train.steps import pack, unpack
from roadloop_core.contract.observation import ObservationSpec


def _trained(seed: int) -> tuple[DrivingPolicy, torch.optim.AdamW]:
    torch.manual_seed(seed)
    args = ModelArgs.from_observation(
        ModelConfig(hidden=16, state_hidden=8), ObservationSpec(camera=None, label_horizon=3)
    )
    model = DrivingPolicy(args)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        optim.zero_grad()
        wp, speed = model({"ego_state": torch.randn(4, 4), "route_target": torch.randn(4, 2)})
        (wp.square().mean() + speed.square().mean()).backward()  # type: ignore[no-untyped-call]
        optim.step()
    return model, optim


@pytest.fixture
def world_of_one(single_rank_env: None) -> None:
    dist.init_process_group("gloo")


def test_round_trip_restores_everything(tmp_path: Path, world_of_one: None) -> None:
    model, optim = _trained(0)
    trainer = {"step": 3, "data": pack({"epoch": 1, "consumed": 64}), "sched": b"s", "history": pack([1.5])}
    torch.manual_seed(123)
    path = save_checkpoint(tmp_path, 3, model, optim, trainer, keep=2)
    after_save = torch.rand(5)

    other, other_optim = _trained(1)
    template = {"step": 0, "data": b"", "sched": b"", "history": b""}
    state = load_checkpoint(path, other, other_optim, template)
    assert torch.equal(torch.rand(5), after_save)  # RNG restored to the moment of saving
    assert state["step"] == 3 and unpack(state["data"]) == {"epoch": 1, "consumed": 64}
    assert unpack(state["history"]) == [1.5]
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    sa, sb = optim.state_dict()["state"], other_optim.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) and torch.equal(sa[k]["step"], sb[k]["step"])


def test_latest_marker_and_keep_last_k(tmp_path: Path, world_of_one: None) -> None:
    model, optim = _trained(0)
    trainer = {"step": 0, "data": b"", "sched": b"", "history": b""}
    for step in (2, 4, 6, 8):
        save_checkpoint(tmp_path, step, model, optim, {**trainer, "step": step}, keep=2)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["step-00000006", "step-00000008"]
    assert latest_checkpoint(tmp_path) == root / "step-00000008"
    assert not list(root.glob(".*tmp*"))


def test_no_checkpoint_and_dangling_marker(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "checkpoints" / "step-00000004.tmp").mkdir(parents=True)  # a save killed half-way
    (tmp_path / "checkpoints" / "latest").write_text("step-00000004")
    with pytest.raises(TrainError, match="not a complete checkpoint"):
        latest_checkpoint(tmp_path)


def test_asynchronous_saves_publish_after_writing_and_round_trip(tmp_path: Path, world_of_one: None) -> None:
    model, optim = _trained(0)
    trainer = {"step": 2, "data": pack({"epoch": 0, "consumed": 32}), "sched": b"s", "history": pack([])}
    ckpt = Checkpointer(tmp_path, keep=2, group=dist.new_group(backend="gloo"))
    ckpt.save(2, model, optim, trainer)
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # training goes on while the save is written: the checkpoint keeps the snapshot
        for p in model.parameters():
            p.add_(1.0)
    ckpt.save(4, model, optim, {**trainer, "step": 4})  # waits for step 2's save to be written and published
    assert (tmp_path / "checkpoints" / "step-00000002" / ".metadata").is_file()
    ckpt.close()
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-00000004"

    other, other_optim = _trained(1)
    template = {"step": 0, "data": b"", "sched": b"", "history": b""}
    state = load_checkpoint(tmp_path / "checkpoints" / "step-00000002", other, other_optim, template)
    assert state["step"] == 2
    assert all(torch.equal(snapshot[k], v) for k, v in other.state_dict().items())
