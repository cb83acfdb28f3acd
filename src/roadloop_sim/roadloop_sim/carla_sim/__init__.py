"""CARLA backend (carla client 0.9.16): the same Simulator protocol with a real perspective camera.

Nothing here imports `carla` at module import time, so the package imports (and its
unreachable-server error path is tested) on machines without the client.
"""

from roadloop_sim.carla_sim.backend import (
    CarlaConfig,
    CarlaSimulator,
    carla_scenario_set,
    load_carla_config,
    probe_server,
)

__all__ = ["CarlaConfig", "CarlaSimulator", "carla_scenario_set", "load_carla_config", "probe_server"]
