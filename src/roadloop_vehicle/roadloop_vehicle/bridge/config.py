"""The bridge's parameters (`config/bridge.yaml`, `bridge: ros__parameters:`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from roadloop_core.config import load_params
from roadloop_vehicle.bridge.pieces import RECORDING_DISTROS

__all__ = ["BridgeConfig", "load_bridge_config"]


@dataclass(frozen=True)
class BridgeConfig:
    vehicle: str = "vehicle"  # hardware_id on /diagnostics (the hub knows the vehicle from its token)
    chunk_bytes: int = 8 << 20
    settle_s: float = 5.0  # a bag is closed once metadata.yaml exists and no file changed for this long
    bandwidth_bytes_per_s: float = 0.0  # 0 = no cap
    quota_bytes: int = 20 << 30  # bags in the watch folder may use this much before confirmed ones are freed
    warn_fraction: float = 0.9  # disk WARN on /diagnostics above this fraction of the quota
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    max_attempts: int = 8  # per bag and run of `--once`; the daemon keeps retrying
    request_timeout_s: float = 60.0
    poll_interval_s: float = 10.0
    priority_tags: dict[str, int] = field(default_factory=lambda: {"disengagement": 100, "intervention": 100})
    # model pull
    pull_models: bool = True
    channel: str = "production"
    models_dir: str = "~/.roadloop/models"
    public_key: str = ""  # Ed25519 public key (PEM) bundles must be signed for
    vehicle_params: str = ""  # the drive node's params (its observation spec, replay) ("" = config/vehicle.yaml)
    golden_bag: str = ""  # replayed with every new bundle before it becomes current ("" = skip)
    # recording
    ship_while_recording: bool = True  # finished split files of a recording in progress ship at once
    recording_distro: str = "jazzy"  # the car's rosbag2: humble writes metadata.yaml only at stop, later at each split

    def __post_init__(self) -> None:
        if self.chunk_bytes < 64 << 10:
            raise ValueError("chunk_bytes must be at least 64 KiB")
        if self.bandwidth_bytes_per_s < 0 or self.quota_bytes < 0 or self.settle_s < 0:
            raise ValueError("bandwidth_bytes_per_s, quota_bytes and settle_s must be >= 0")
        if self.poll_interval_s <= 0 or self.request_timeout_s <= 0:
            raise ValueError("poll_interval_s and request_timeout_s must be > 0")
        if self.recording_distro not in RECORDING_DISTROS:
            raise ValueError(f"recording_distro must be one of {', '.join(RECORDING_DISTROS)}")
        if self.backoff_base_s <= 0 or self.backoff_max_s < self.backoff_base_s or self.max_attempts < 1:
            raise ValueError("need 0 < backoff_base_s <= backoff_max_s and max_attempts >= 1")


def load_bridge_config(path: Path) -> BridgeConfig:
    """`bridge: ros__parameters:` of a bridge params file (the entry point says which: config/bridge.yaml)."""
    return load_params(path, "bridge", BridgeConfig)
