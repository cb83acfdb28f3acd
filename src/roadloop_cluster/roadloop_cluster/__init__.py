"""roadloop_cluster: dataset builder, torch data loading, models, trainer, export, gate, the fleet loop."""

from roadloop_cluster.errors import ClusterError

__all__ = ["ClusterError"]
