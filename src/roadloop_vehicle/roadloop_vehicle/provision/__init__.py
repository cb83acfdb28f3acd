"""Provisioning a fresh car (`roadloop vehicle provision`): config folder, fleet key, hub token, first model."""

from roadloop_vehicle.provision.core import CAR_FILES, ProvisionRequest, ProvisionResult, provision

__all__ = ["CAR_FILES", "ProvisionRequest", "ProvisionResult", "provision"]
