"""Model hyper-parameters (the `model:` section of config/train.yaml) and the args derived from the data.

As in torchtitan, what the job's inputs decide is not configured twice: `ModelConfig` holds only the
choices (encoder, widths); `ModelArgs.from_dataset` adds what the dataset decides, the input
tensors of the tensor table with their sizes (image size; no image in state-only data), the horizon
and dt of the labels, and the network is built from the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from roadloop_cluster.models.prior import PRIORS
from roadloop_core.contract.dataset_index import DatasetIndex
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import IMAGE, ROUTE_TARGET, model_inputs

__all__ = ["ModelArgs", "ModelConfig"]

ENCODERS = ("small", "resnet")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the policy that is a choice; what the data decides comes in through ModelArgs."""

    encoder: str = "small"
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    state_hidden: int = 64
    hidden: int = 128
    # waypoints = this kinematic prior from the ego state + the network's correction (none: the network alone)
    prior: str = "none"

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive widths, got {self.channels}")
        if self.state_hidden < 1 or self.hidden < 1:
            raise ValueError(f"state_hidden and hidden must be >= 1, got {self.state_hidden}, {self.hidden}")


@dataclass(frozen=True)
class ModelArgs:
    """Everything the network is built from: the config's choices plus the data's inputs and labels."""

    config: ModelConfig
    inputs: dict[str, tuple[int, ...]]  # input tensor name -> one sample's shape (no batch), in graph order
    horizon: int  # K waypoints ...
    dt: float  # ... every dt seconds

    @classmethod
    def from_observation(cls, config: ModelConfig, observation: ObservationSpec) -> ModelArgs:
        """The args of a model for data observed with `observation` (a dataset index's, a run's)."""
        inputs = {t.name: t.resolve(observation)[1:] for t in model_inputs(observation)}
        return cls(config, inputs, observation.label_horizon, observation.label_dt_s)

    @classmethod
    def from_dataset(cls, config: ModelConfig, index: DatasetIndex) -> ModelArgs:
        """The args of a model trained on the dataset `index` describes."""
        return cls.from_observation(config, index.observation)

    @property
    def uses_image(self) -> bool:
        return IMAGE.name in self.inputs

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the image input, None without one."""
        shape = self.inputs.get(IMAGE.name)
        return None if shape is None else (shape[1], shape[2])

    @property
    def vector_inputs(self) -> list[str]:
        """The inputs but the image (fused, flattened, by the state MLP), in graph order."""
        return [name for name in self.inputs if name != IMAGE.name]

    def vector_dim(self, name: str) -> int:
        return math.prod(self.inputs[name])

    @property
    def route_dim(self) -> int:
        """Size of the route input (0: a model without one, `route_source: none`)."""
        shape = self.inputs.get(ROUTE_TARGET.name)
        return 0 if shape is None else shape[0]
