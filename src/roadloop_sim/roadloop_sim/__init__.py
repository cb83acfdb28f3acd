"""roadloop_sim: Simulator protocol, highway-env and CARLA backends, expert driver, closed-loop evaluator.

    from roadloop_sim import HighwayEnvSimulator, make_driver, run_episode, evaluate, record_episodes

See docs/simulation.md; the Simulator/Driver protocols are documented in `roadloop_sim.protocol`.
"""

from roadloop_sim.drivers import ConstantDriver, ExpertDriver, LaneKeepDriver, make_driver
from roadloop_sim.episode import EpisodeLog, run_episode, sanitize_command
from roadloop_sim.errors import CarlaUnavailableError, DriverError, ScenarioError, SimError
from roadloop_sim.evaluate import evaluate, write_report
from roadloop_sim.highway import HighwayEnvSimulator
from roadloop_sim.metrics import aggregate, episode_metrics
from roadloop_sim.protocol import (
    AgentState,
    Driver,
    EgoSample,
    Observation,
    PrivilegedState,
    Simulator,
    StepResult,
    Truth,
)
from roadloop_sim.record import interventions_from_report, record_episodes
from roadloop_sim.scenarios import Scenario, ScenarioSet, SimulationConfig, episode_plan, load_scenarios

__all__ = [
    "AgentState",
    "CarlaUnavailableError",
    "ConstantDriver",
    "Driver",
    "DriverError",
    "EgoSample",
    "EpisodeLog",
    "ExpertDriver",
    "HighwayEnvSimulator",
    "LaneKeepDriver",
    "Observation",
    "PrivilegedState",
    "Scenario",
    "ScenarioError",
    "ScenarioSet",
    "SimError",
    "SimulationConfig",
    "Simulator",
    "StepResult",
    "Truth",
    "aggregate",
    "episode_metrics",
    "episode_plan",
    "evaluate",
    "interventions_from_report",
    "load_scenarios",
    "make_driver",
    "record_episodes",
    "run_episode",
    "sanitize_command",
    "write_report",
]
