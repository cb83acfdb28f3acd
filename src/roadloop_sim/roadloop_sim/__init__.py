"""roadloop_sim: Simulator protocol, highway-env and CARLA backends, expert driver, closed-loop evaluator."""

from roadloop_sim.errors import SimError

__all__ = ["SimError"]
