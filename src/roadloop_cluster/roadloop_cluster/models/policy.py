"""The end-to-end driving policy (TransFuser/TCP spirit): image encoder + state MLP -> GRU -> waypoints.

Inputs and outputs are the tensor table's (`roadloop_core.contract.tensors`): `forward` takes the
input tensors by name, normalised as the table says (image only when the data has one), and
returns the outputs in table order (waypoints (B,K,2) metres in the ego frame, target speed (B,1)
m/s). The model knows nothing of distribution; roadloop_cluster.train.parallelize wraps it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from roadloop_cluster.models.config import ModelArgs
from roadloop_cluster.models.encoders import build_encoder
from roadloop_cluster.models.prior import ctra
from roadloop_core.contract.tensors import EGO_STATE, IMAGE, ROUTE_TARGET

__all__ = ["DrivingPolicy", "EgoStatusMLP", "build_policy"]


class DrivingPolicy(nn.Module):
    """Fuses image features with ego state and route target; a GRUCell unrolls K waypoint deltas.

    As in TransFuser, each GRU step sees the current waypoint and the (normalised) route target and
    emits the next displacement; waypoints are the cumulative sum, scaled to metres by `step_scale`
    (a typical displacement per step, taken from the dataset so the network works near unit scale).
    With a kinematic prior (`model.prior: ctra`) the GRU's waypoints are a correction added to the
    prior's, which is computed inside the graph from the ego state (de-normalised with the training
    statistics `ego_state_norm`, kept as buffers); the displacement head starts at zero, so an
    untrained model predicts the prior.
    """

    def __init__(
        self,
        args: ModelArgs,
        step_scale: float = 1.0,
        ego_state_norm: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.args = args
        cfg = args.config
        self.encoder = build_encoder(cfg.encoder, cfg.channels) if args.uses_image else None
        img_dim = self.encoder.out_dim if self.encoder is not None else 0
        state_dim = sum(args.vector_dim(name) for name in args.vector_inputs)
        self.state_mlp = nn.Sequential(
            nn.Linear(state_dim, cfg.state_hidden), nn.ReLU(), nn.Linear(cfg.state_hidden, cfg.state_hidden), nn.ReLU()
        )
        self.fuse = nn.Sequential(nn.Linear(img_dim + cfg.state_hidden, cfg.hidden), nn.ReLU())
        self.gru = nn.GRUCell(input_size=2 + args.route_dim, hidden_size=cfg.hidden)
        self.delta = nn.Linear(cfg.hidden, 2)
        self.speed = nn.Sequential(nn.Linear(cfg.hidden, 64), nn.ReLU(), nn.Linear(64, 1))
        self.register_buffer("step_scale", torch.tensor(float(step_scale)))
        self.prior = cfg.prior
        if self.prior != "none":
            mean, std = ego_state_norm or ([0.0] * 4, [1.0] * 4)
            self.register_buffer("ego_mean", torch.tensor(list(mean), dtype=torch.float32))
            self.register_buffer("ego_std", torch.tensor(list(std), dtype=torch.float32))
            nn.init.zeros_(self.delta.weight)
            nn.init.zeros_(self.delta.bias)

    def prior_waypoints(self, ego_state: torch.Tensor) -> torch.Tensor:
        """The prior's (B, K, 2) waypoints for normalised ego states."""
        raw = ego_state * self.get_buffer("ego_std") + self.get_buffer("ego_mean")
        return ctra(raw, self.args.horizon, self.args.dt)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(waypoints, target_speed) from the input tensors by name."""
        missing = [name for name in self.args.inputs if name not in inputs]
        if missing:
            raise ValueError(
                f"model input(s) {', '.join(missing)} missing (the model takes {', '.join(self.args.inputs)})"
            )
        state = torch.cat([inputs[name].flatten(1) for name in self.args.vector_inputs], dim=1)
        feats = [self.state_mlp(state)]
        if self.encoder is not None:
            feats.insert(0, self.encoder(inputs[IMAGE.name]))
        h = self.fuse(torch.cat(feats, dim=1))
        speed = self.speed(h)
        scale = self.get_buffer("step_scale")
        wp = torch.zeros(state.shape[0], 2, dtype=h.dtype, device=h.device)
        route = [inputs[ROUTE_TARGET.name]] if self.args.route_dim else []  # no route input: the ego state alone
        out = []
        for _ in range(self.args.horizon):
            h = self.gru(torch.cat([wp / scale, *route], dim=1), h)
            wp = wp + self.delta(h) * scale
            out.append(wp)
        waypoints = torch.stack(out, dim=1)
        if self.prior != "none":
            waypoints = waypoints + self.prior_waypoints(inputs[EGO_STATE.name]).to(waypoints.dtype)
        return waypoints, speed

    @property
    def scale(self) -> float:
        """Metres per unit of the GRU's displacement output."""
        return float(self.get_buffer("step_scale"))


class EgoStatusMLP(nn.Module):
    """The "ego status is all you need" baseline: waypoints from the normalised ego state alone."""

    def __init__(self, horizon: int, ego_dim: int, step_scale: float = 1.0, hidden: int = 64) -> None:
        super().__init__()
        self.horizon = horizon
        self.net = nn.Sequential(nn.Linear(ego_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, horizon * 2)
        self.register_buffer("step_scale", torch.tensor(float(step_scale)))

    def forward(self, ego_state: torch.Tensor) -> torch.Tensor:
        deltas = self.out(self.net(ego_state)).view(-1, self.horizon, 2) * self.step_scale
        return torch.cumsum(deltas, dim=1)


def build_policy(
    args: ModelArgs, step_scale: float = 1.0, ego_state_norm: tuple[Sequence[float], Sequence[float]] | None = None
) -> DrivingPolicy:
    return DrivingPolicy(args, step_scale, ego_state_norm)
