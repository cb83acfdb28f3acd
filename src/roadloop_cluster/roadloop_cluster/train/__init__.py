"""torchrun/DDP training of the driving policy: config, data, checkpoints, launch."""

from roadloop_cluster.train.config import OptimConfig, RunConfig, TrainConfig, load_train_config
from roadloop_cluster.train.errors import DatasetMismatchError, ExportError, NonFiniteLossError, TrainError
from roadloop_cluster.train.launch import launch

__all__ = [
    "DatasetMismatchError",
    "ExportError",
    "NonFiniteLossError",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "TrainError",
    "launch",
    "load_train_config",
]
