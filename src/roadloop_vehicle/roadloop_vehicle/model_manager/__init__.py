"""ModelManager: verified loading, swap between frames, rollback, `MODELS/current` watching.

`load_model` is the one load of a bundle, shared by the drive node's manager and the bridge.
"""

from roadloop_vehicle.model_manager.loader import LoadedModel, load_model
from roadloop_vehicle.model_manager.manager import ModelEvent, ModelManager, ModelManagerConfig

__all__ = ["LoadedModel", "ModelEvent", "ModelManager", "ModelManagerConfig", "load_model"]
