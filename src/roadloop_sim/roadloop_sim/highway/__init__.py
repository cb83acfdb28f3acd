"""highway-env backend (the default Simulator): no GPU, deterministic, faster than real time on one core."""

from roadloop_sim.highway.backend import HighwayEnvSimulator

__all__ = ["HighwayEnvSimulator"]
