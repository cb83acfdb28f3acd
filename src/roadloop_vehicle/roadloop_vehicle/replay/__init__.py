"""Deterministic replay of a bag through the onboard pipeline on a simulated clock."""

from roadloop_vehicle.replay.bag_replay import ReplayResult, replay_bag

__all__ = ["ReplayResult", "replay_bag"]
