"""roadloop_core: topic registry, message codec, bag I/O, time sync, bundle format, config, CLI."""

from roadloop_core.errors import RoadloopError
from roadloop_core.registry import TopicRegistry, TopicSpec, load_registry
from roadloop_core.typesys import make_typestore, typestore_for

__all__ = ["RoadloopError", "TopicRegistry", "TopicSpec", "load_registry", "make_typestore", "typestore_for"]
