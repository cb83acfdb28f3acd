"""Model hyper-parameters (the `model:` section of config/train.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ModelConfig"]

VARIANTS = ("camera", "state")
ENCODERS = ("small", "resnet")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the policy; image_size/horizon/dt must agree with the dataset it trains on."""

    variant: str = "camera"
    encoder: str = "small"
    image_size: list[int] = field(default_factory=lambda: [64, 64])
    horizon: int = 6
    dt: float = 0.5
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    state_hidden: int = 64
    hidden: int = 128

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ValueError(f"image_size must be [H, W] with both >= 16, got {self.image_size}")
        if self.horizon < 1 or self.dt <= 0:
            raise ValueError(f"horizon must be >= 1 and dt > 0, got {self.horizon}, {self.dt}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive widths, got {self.channels}")

    @property
    def uses_image(self) -> bool:
        return self.variant == "camera"
