"""ModelManager: verified loading, swap between frames, rollback, `MODELS/current` watching."""

from roadloop_vehicle.model_manager.manager import LoadedModel, ModelEvent, ModelManager, ModelManagerConfig

__all__ = ["LoadedModel", "ModelEvent", "ModelManager", "ModelManagerConfig"]
