"""Drivers and the `--driver` resolver: expert | constant | lanekeep | bundle:PATH.

`bundle:PATH` resolves to `roadloop_sim.drivers.bundle.BundleDriver` (it wraps
`roadloop_vehicle.pipeline`), imported lazily so that the other drivers never load the onboard
runtime; it runs on the vehicle parameters the entry point loaded (config/vehicle.yaml).
A RoadloopError from the constructor passes through; any other exception becomes a
one-line DriverError. See `roadloop_sim.protocol` for the Driver protocol.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roadloop_core.errors import RoadloopError
from roadloop_core.registry import TopicRegistry
from roadloop_sim.drivers.baselines import ConstantDriver, LaneKeepDriver
from roadloop_sim.drivers.expert import ExpertConfig, ExpertDriver
from roadloop_sim.errors import DriverError
from roadloop_sim.protocol import Driver

if TYPE_CHECKING:
    from roadloop_vehicle.params import VehicleParams

__all__ = [
    "DRIVERS",
    "ConstantDriver",
    "ExpertConfig",
    "ExpertDriver",
    "LaneKeepDriver",
    "driver_name",
    "make_driver",
]

DRIVERS = ("expert", "constant", "lanekeep", "bundle:PATH")


def _bundle_driver(path: str, registry: TopicRegistry, vehicle: VehicleParams | None) -> Driver:
    if not path:
        raise DriverError("driver 'bundle:PATH' needs a bundle folder after 'bundle:'")
    if not Path(path).exists():
        raise DriverError(f"driver bundle:{path}: no such bundle folder")
    try:
        module = importlib.import_module("roadloop_sim.drivers.bundle")
    except ModuleNotFoundError as err:
        raise DriverError(
            f"driver bundle:{path}: roadloop_sim.drivers.bundle is not available ({err}); "
            "it needs the onboard pipeline (roadloop_vehicle)"
        ) from err
    if vehicle is None:
        raise DriverError(f"driver bundle:{path}: needs the vehicle parameters (config/vehicle.yaml)")
    cls: Any = module.BundleDriver
    try:
        driver: Driver = cls(Path(path), registry, params=vehicle)
    except RoadloopError:
        raise
    except Exception as err:  # the bundle driver's own failure, whatever its type, as one line
        raise DriverError(f"driver bundle:{path}: {type(err).__name__}: {err}") from err
    return driver


def make_driver(spec: str, registry: TopicRegistry, vehicle: VehicleParams | None = None) -> Driver:
    """Build a driver from its CLI spec; an unknown spec is a DriverError listing the valid ones.

    `vehicle`: the onboard parameters a `bundle:` driver runs on (the other drivers need none).
    """
    name, _, arg = spec.partition(":")
    if name == "expert" and not arg:
        return ExpertDriver(distro=registry.typestore)
    if name == "constant" and not arg:
        return ConstantDriver(registry)
    if name == "lanekeep" and not arg:
        return LaneKeepDriver(registry)
    if name == "bundle":
        return _bundle_driver(arg, registry, vehicle)
    raise DriverError(f"unknown driver '{spec}'; valid: {', '.join(DRIVERS)}")


def driver_name(spec: str, driver: Any) -> str:
    """What the bag's `roadloop.driver` says: the driver's own name (a bundle: its model label)."""
    name = getattr(driver, "name", None)
    return str(name) if isinstance(name, str) and name not in ("", "bundle") else spec
