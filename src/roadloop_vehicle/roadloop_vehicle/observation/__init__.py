"""ObservationAssembler: raw messages by registry role -> synchronized model features."""

from roadloop_vehicle.observation.assembler import ObservationAssembler

__all__ = ["ObservationAssembler"]
