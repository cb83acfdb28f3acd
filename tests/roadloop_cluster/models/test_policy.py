"""The policy's shapes and contract behaviour, table-driven over configurations and the data they fit."""

from __future__ import annotations

import math

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
from roadloop_cluster.models.prior import ctra
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


# -- real logs: no route input, an ego history, the kinematic prior ----------------------------------------

REAL_OBS = ObservationSpec(camera=None, route=None, route_source="none", ego_history_steps=10, label_horizon=8)


def test_a_model_without_route_input_takes_the_ego_history() -> None:
    a = ModelArgs.from_observation(ModelConfig(hidden=32), REAL_OBS)
    assert a.inputs == {"ego_state": (4,), "ego_history": (10, 4)} and a.route_dim == 0
    model = build_policy(a).eval()
    wp, speed = model(inputs(a, 3))
    assert wp.shape == (3, 8, 2) and speed.shape == (3, 1)
    history = inputs(a, 1)
    other = {**history, "ego_history": history["ego_history"] + 1.0}
    assert not torch.equal(model(history)[0], model(other)[0])  # the history reaches the prediction


@pytest.mark.parametrize(
    ("ego", "k", "expected"),
    [
        ((30.0, 0.0, 0.0), 7, (120.0, 0.0)),  # constant velocity, 4 s
        ((30.0, 0.05, 0.0), 7, (600 * math.sin(0.2), 600 * (1 - math.cos(0.2)))),  # a 600 m radius left curve
        ((30.0, -0.05, 0.0), 7, (600 * math.sin(0.2), -600 * (1 - math.cos(0.2)))),
        ((10.0, 0.0, 1.0), 7, (48.0, 0.0)),  # accelerating at 1 m/s²
        ((20.0, 0.0, -5.0), 7, (40.0, 0.0)),  # braking: stops after 4 s and 40 m, never reverses
        ((20.0, 0.0, -5.0), 1, (17.5, 0.0)),
    ],
)
def test_ctra_prior(ego: tuple[float, float, float], k: int, expected: tuple[float, float]) -> None:
    state = torch.tensor([[ego[0], ego[1], ego[2], 0.0]], dtype=torch.float64)
    got = ctra(state, 8, 0.5)
    assert got.shape == (1, 8, 2)
    assert got[0, k].tolist() == pytest.approx(expected, abs=1e-3)


def test_an_untrained_model_with_a_prior_predicts_the_prior() -> None:
    """The correction head starts at zero, so training starts from physics; the prior de-normalises the ego
    state with the training statistics it keeps as buffers (exported with the graph)."""
    mean, std = [29.0, 0.0, 0.0, 0.0], [2.0, 0.02, 0.3, 0.5]
    a = ModelArgs.from_observation(ModelConfig(hidden=32, prior="ctra"), REAL_OBS)
    model = build_policy(a, step_scale=0.2, ego_state_norm=(mean, std)).eval()
    raw = torch.tensor([[31.0, 0.04, 0.5, 0.0]])
    x = inputs(a, 1)
    x["ego_state"] = (raw - torch.tensor(mean)) / torch.tensor(std)
    wp, _ = model(x)
    torch.testing.assert_close(wp, ctra(raw, 8, 0.5))
    assert set(model.state_dict()) >= {"ego_mean", "ego_std", "step_scale"}
    with pytest.raises(ValueError, match="prior must be one of none, ctra"):
        ModelConfig(prior="bicycle")
