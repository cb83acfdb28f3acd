"""The vehicle side of the fleet link: ship closed bags to the hub, bring verified bundles back.

    bridge = Bridge(load_bridge_config(CONFIG / "bridge.yaml"), watch, hub_url, token, state_dir,
                    vehicle=load_vehicle_params(CONFIG / "vehicle.yaml"))  # the drive node's params
    report = bridge.run_once()     # scan -> queue -> upload -> free disk -> pull model -> /diagnostics

Pure core: `decisions` (priority, order, closed-bag rule, backoff, bandwidth cap, disk plan). The
wire format (safe names, the deterministic tar stream a bag travels as) is
`roadloop_core.contract.wire`, read by the hub too; the HTTP client is `roadloop_core.hub_client`.
"""

from roadloop_vehicle.bridge.config import BridgeConfig, load_bridge_config
from roadloop_vehicle.bridge.daemon import Bridge, RunReport
from roadloop_vehicle.bridge.diagnostics import JsonlSink, Status, statuses, to_message
from roadloop_vehicle.bridge.errors import BridgeError
from roadloop_vehicle.bridge.model_pull import ModelPuller, PullResult, RetryPolicy, switch_current
from roadloop_vehicle.bridge.queue import UploadQueue

__all__ = [
    "Bridge",
    "BridgeConfig",
    "BridgeError",
    "JsonlSink",
    "ModelPuller",
    "PullResult",
    "RetryPolicy",
    "RunReport",
    "Status",
    "UploadQueue",
    "load_bridge_config",
    "statuses",
    "switch_current",
    "to_message",
]
