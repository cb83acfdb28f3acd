"""The end-to-end driving policy (TransFuser/TCP spirit): image encoder + state MLP -> GRU -> waypoints.

Tensor names and units are the bundle contract: inputs `image` (B,3,H,W) = uint8/255 (camera
variant only), `ego_state` (B,4) and `route_target` (B,2) normalised (x - mean) / std; outputs
`waypoints` (B,K,2) in metres in the ego frame and `target_speed` (B,1) in m/s. The model knows
nothing of distribution; roadloop_cluster.train.parallelize wraps it.
"""

from __future__ import annotations

import torch
from torch import nn

from roadloop_cluster.models.config import ModelConfig
from roadloop_cluster.models.encoders import build_encoder

__all__ = ["DrivingPolicy", "EgoStatusMLP", "build_policy"]


class DrivingPolicy(nn.Module):
    """Fuses image features with ego state and route target; a GRUCell unrolls K waypoint deltas.

    As in TransFuser, each GRU step sees the current waypoint and the (normalised) route target and
    emits the next displacement; waypoints are the cumulative sum, scaled to metres by `step_scale`
    (a typical displacement per step, taken from the dataset so the network works near unit scale).
    """

    def __init__(self, cfg: ModelConfig, step_scale: float = 1.0) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = build_encoder(cfg.encoder, cfg.channels) if cfg.uses_image else None
        img_dim = self.encoder.out_dim if self.encoder is not None else 0
        self.state_mlp = nn.Sequential(
            nn.Linear(6, cfg.state_hidden), nn.ReLU(), nn.Linear(cfg.state_hidden, cfg.state_hidden), nn.ReLU()
        )
        self.fuse = nn.Sequential(nn.Linear(img_dim + cfg.state_hidden, cfg.hidden), nn.ReLU())
        self.gru = nn.GRUCell(input_size=4, hidden_size=cfg.hidden)
        self.delta = nn.Linear(cfg.hidden, 2)
        self.speed = nn.Sequential(nn.Linear(cfg.hidden, 64), nn.ReLU(), nn.Linear(64, 1))
        self.register_buffer("step_scale", torch.tensor(float(step_scale)))

    def forward(
        self, ego_state: torch.Tensor, route_target: torch.Tensor, image: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feats = [self.state_mlp(torch.cat([ego_state, route_target], dim=1))]
        if self.encoder is not None:
            if image is None:
                raise ValueError("the camera variant needs an image input")
            feats.insert(0, self.encoder(image))
        h = self.fuse(torch.cat(feats, dim=1))
        speed = self.speed(h)
        scale = self.get_buffer("step_scale")
        wp = torch.zeros(ego_state.shape[0], 2, dtype=h.dtype, device=h.device)
        out = []
        for _ in range(self.cfg.horizon):
            h = self.gru(torch.cat([wp / scale, route_target], dim=1), h)
            wp = wp + self.delta(h) * scale
            out.append(wp)
        return torch.stack(out, dim=1), speed

    @property
    def scale(self) -> float:
        """Metres per unit of the GRU's displacement output."""
        return float(self.get_buffer("step_scale"))


class EgoStatusMLP(nn.Module):
    """The "ego status is all you need" baseline: waypoints from the normalised ego state alone."""

    def __init__(self, horizon: int, step_scale: float = 1.0, hidden: int = 64) -> None:
        super().__init__()
        self.horizon = horizon
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, horizon * 2)
        self.register_buffer("step_scale", torch.tensor(float(step_scale)))

    def forward(self, ego_state: torch.Tensor) -> torch.Tensor:
        deltas = self.out(self.net(ego_state)).view(-1, self.horizon, 2) * self.step_scale
        return torch.cumsum(deltas, dim=1)


def build_policy(cfg: ModelConfig, step_scale: float = 1.0) -> DrivingPolicy:
    return DrivingPolicy(cfg, step_scale)
