"""The policy's shapes and contract behaviour, table-driven over configurations and the data they fit."""

from __future__ import annotations

import pytest
import torch

from roadloop_cluster.models import (
    DrivingPolicy,
    EgoStatusMLP,
    ModelArgs,
    ModelConfig,
    ResNetEncoder,
    SmallCNN,
    build_policy,
)
from roadloop_core.contract.observation import ObservationSpec


def args(camera: bool = True, size: tuple[int, int] = (32, 32), horizon: int = 6, **cfg: object) -> ModelArgs:
    """The args of a model for data observed with a camera (or not), an image size and a horizon."""
    obs = ObservationSpec(
        camera="camera" if camera else None, image_height=size[0], image_width=size[1], label_horizon=horizon
    )
    return ModelArgs.from_observation(ModelConfig(**cfg), obs)  # type: ignore[arg-type]


def inputs(a: ModelArgs, batch: int) -> dict[str, torch.Tensor]:
    return {name: torch.rand(batch, *shape) for name, shape in a.inputs.items()}


CASES = [
    # camera, encoder, image size (H, W), horizon, channels
    (True, "small", (32, 32), 6, [8, 16]),
    (True, "small", (64, 48), 8, [16, 32, 64, 64]),
    (True, "small", (32, 48), 6, [8, 16]),
    (True, "resnet", (64, 64), 8, [16, 32]),
    (False, "small", (64, 64), 4, [8]),
]


@pytest.mark.parametrize(("camera", "encoder", "size", "horizon", "channels"), CASES)
def test_outputs_follow_the_tensor_table(
    camera: bool, encoder: str, size: tuple[int, int], horizon: int, channels: list[int]
) -> None:
    a = args(camera, size, horizon, encoder=encoder, channels=channels, hidden=32)
    model = build_policy(a, step_scale=2.0).eval()
    b = 3
    wp, speed = model(inputs(a, b))
    assert wp.shape == (b, horizon, 2)
    assert speed.shape == (b, 1)
    assert (model.encoder is None) == (not camera)
    assert a.image_size == (size if camera else None)
    assert model.scale == 2.0


def test_a_missing_input_is_named() -> None:
    model = DrivingPolicy(args(channels=[8]))
    with pytest.raises(ValueError, match="image"):
        model({"ego_state": torch.zeros(1, 4), "route_target": torch.zeros(1, 2)})


def test_image_changes_the_prediction() -> None:
    torch.manual_seed(0)
    model = DrivingPolicy(args(channels=[8, 16])).eval()
    ego, route = torch.zeros(1, 4), torch.zeros(1, 2)
    a, _ = model({"image": torch.zeros(1, 3, 32, 32), "ego_state": ego, "route_target": route})
    b, _ = model({"image": torch.ones(1, 3, 32, 32), "ego_state": ego, "route_target": route})
    assert not torch.equal(a, b)


@pytest.mark.parametrize(("cls", "channels"), [(SmallCNN, [8, 16, 24]), (ResNetEncoder, [8, 16, 24])])
def test_encoders_pool_to_their_last_width(cls: type[SmallCNN] | type[ResNetEncoder], channels: list[int]) -> None:
    enc = cls(channels)
    assert enc(torch.rand(2, 3, 40, 56)).shape == (2, channels[-1])
    assert enc.out_dim == channels[-1]


def test_waypoints_are_cumulative_displacements() -> None:
    """The GRU emits displacements: with the delta head zeroed and biased, waypoints grow linearly."""
    model = DrivingPolicy(args(camera=False, horizon=5), step_scale=1.5).eval()
    with torch.no_grad():
        model.delta.weight.zero_()
        model.delta.bias.copy_(torch.tensor([2.0, -1.0]))
    wp, _ = model({"ego_state": torch.zeros(1, 4), "route_target": torch.zeros(1, 2)})
    expected = torch.tensor([[2.0 * 1.5 * k, -1.5 * k] for k in range(1, 6)])
    assert torch.allclose(wp[0], expected)


def test_ego_status_mlp_shape() -> None:
    assert EgoStatusMLP(horizon=7, ego_dim=4)(torch.zeros(5, 4)).shape == (5, 7, 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [("encoder", "vit"), ("channels", []), ("hidden", 0)],
)
def test_bad_model_config_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{field: value})  # type: ignore[arg-type]
