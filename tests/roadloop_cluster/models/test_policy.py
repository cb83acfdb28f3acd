"""The policy's shapes, variants and contract behaviour (table-driven over configurations)."""

from __future__ import annotations

import pytest
import torch

from roadloop_cluster.models import DrivingPolicy, EgoStatusMLP, ModelConfig, ResNetEncoder, SmallCNN, build_policy

CASES = [
    # variant, encoder, image_size, horizon, channels
    ("camera", "small", [32, 32], 6, [8, 16]),
    ("camera", "small", [64, 48], 8, [16, 32, 64, 64]),
    ("camera", "resnet", [64, 64], 8, [16, 32]),
    ("state", "small", [64, 64], 4, [8]),
]


@pytest.mark.parametrize(("variant", "encoder", "size", "horizon", "channels"), CASES)
def test_outputs_follow_the_bundle_contract(
    variant: str, encoder: str, size: list[int], horizon: int, channels: list[int]
) -> None:
    cfg = ModelConfig(variant=variant, encoder=encoder, image_size=size, horizon=horizon, channels=channels, hidden=32)
    model = build_policy(cfg, step_scale=2.0).eval()
    b = 3
    image = torch.rand(b, 3, *size) if variant == "camera" else None
    wp, speed = model(torch.randn(b, 4), torch.randn(b, 2), image)
    assert wp.shape == (b, horizon, 2)
    assert speed.shape == (b, 1)
    assert (model.encoder is None) == (variant == "state")
    assert model.scale == 2.0


def test_camera_variant_needs_an_image() -> None:
    model = DrivingPolicy(ModelConfig(channels=[8]))
    with pytest.raises(ValueError, match="image"):
        model(torch.zeros(1, 4), torch.zeros(1, 2), None)


def test_image_changes_the_prediction() -> None:
    torch.manual_seed(0)
    model = DrivingPolicy(ModelConfig(image_size=[32, 32], channels=[8, 16])).eval()
    ego, route = torch.zeros(1, 4), torch.zeros(1, 2)
    a, _ = model(ego, route, torch.zeros(1, 3, 32, 32))
    b, _ = model(ego, route, torch.ones(1, 3, 32, 32))
    assert not torch.equal(a, b)


@pytest.mark.parametrize(("cls", "channels"), [(SmallCNN, [8, 16, 24]), (ResNetEncoder, [8, 16, 24])])
def test_encoders_pool_to_their_last_width(cls: type[SmallCNN] | type[ResNetEncoder], channels: list[int]) -> None:
    enc = cls(channels)
    assert enc(torch.rand(2, 3, 40, 56)).shape == (2, channels[-1])
    assert enc.out_dim == channels[-1]


def test_waypoints_are_cumulative_displacements() -> None:
    """The GRU emits displacements: with the delta head zeroed and biased, waypoints grow linearly."""
    model = DrivingPolicy(ModelConfig(variant="state", horizon=5), step_scale=1.5).eval()
    with torch.no_grad():
        model.delta.weight.zero_()
        model.delta.bias.copy_(torch.tensor([2.0, -1.0]))
    wp, _ = model(torch.zeros(1, 4), torch.zeros(1, 2))
    expected = torch.tensor([[2.0 * 1.5 * k, -1.5 * k] for k in range(1, 6)])
    assert torch.allclose(wp[0], expected)


def test_ego_status_mlp_shape() -> None:
    assert EgoStatusMLP(horizon=7)(torch.zeros(5, 4)).shape == (5, 7, 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [("variant", "lidar"), ("encoder", "vit"), ("image_size", [8, 8]), ("horizon", 0), ("channels", [])],
)
def test_bad_model_config_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{field: value})  # type: ignore[arg-type]
