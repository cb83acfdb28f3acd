"""Provisioning a fresh car: its config folder, the fleet's public key, its hub token and the first model.

    CAR/vehicle.yaml        the nodes' parameters (from the template's vehicle.yaml), every path in it absolute
    CAR/bridge.yaml         the bridge's parameters: this car's name, the channel, models folder, key
    CAR/topics.yaml         copied from the template (the topic registry both nodes read)
    CAR/dataset.yaml        copied from the template (the vehicle's ObservationSpec; bundles must match it)
    CAR/keys/signing.pub    the fleet's Ed25519 public key every bundle must be signed with
    CAR/hub.token           the car's bearer token for the hub (mode 0600)
    CAR/provisioned.json    what was done: hub, vehicle, channel, key fingerprint, model
    CAR/bridge-state/       the bridge's state folder (models.json remembers refused bundles)
    CAR/models/             versions/<name>-v<version>/ and `current`, filled by the same puller the bridge runs

The first model goes through the bridge's `ModelPuller` (size, Ed25519 signature, every sha256, the observation
spec) and is then loaded and warmed up by the drive node's `ModelManager` with the car's own runtime settings, so
what provisioning accepts is what the drive node will run. Every file is written under a temp name, fsynced and
renamed: a provisioning interrupted half way leaves each file whole (old or new), and a rerun finishes the job.
A channel without a release is not an error: the car is ready, the nodes start, and the safety node holds a
controlled stop (no command arrives) until the bridge installs a model.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization

from roadloop_core.bundle import load_public_key
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import HubClientError, RoadloopError
from roadloop_core.fsio import atomic_write_bytes, atomic_write_json, atomic_write_text
from roadloop_core.hub_client import HubClient
from roadloop_vehicle.bridge.config import load_bridge_config
from roadloop_vehicle.bridge.model_pull import ModelPuller
from roadloop_vehicle.errors import ProvisionError
from roadloop_vehicle.model_manager import ModelManager
from roadloop_vehicle.params import VehicleParams, load_vehicle_params

__all__ = ["CAR_FILES", "ProvisionRequest", "ProvisionResult", "provision"]

# what a provisioned car folder holds (the keys of ProvisionResult.files)
CAR_FILES = ("vehicle.yaml", "bridge.yaml", "topics.yaml", "dataset.yaml", "keys/signing.pub", "hub.token")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ProvisionRequest:
    hub_url: str
    token: str
    public_key: Path  # the fleet's public key (PEM), handed to the car out of band: never taken from the hub
    out: Path  # the car's config folder
    template: Path  # a config folder holding vehicle.yaml, bridge.yaml, topics.yaml, dataset.yaml
    vehicle: str  # the car's name (hardware_id on /diagnostics)
    channel: str = "production"
    models_dir: Path | None = None  # default CAR/models


@dataclass(frozen=True)
class ProvisionResult:
    out: Path
    files: dict[str, Path]
    action: str  # installed | unchanged | switched | none (the channel has no release yet)
    model: str  # <name>-v<version>, "" without one
    reason: str  # why there is no model, "" with one
    key_sha256: str  # sha256 of the public key's DER bytes: compare with the fleet's before trusting the car

    @property
    def has_model(self) -> bool:
        return bool(self.model)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ProvisionError(f"{path}: cannot read the template ({err})") from err
    if not isinstance(data, dict):
        raise ProvisionError(f"{path}: not a YAML mapping")
    return data


def _section(data: dict[str, Any], node: str, path: Path) -> dict[str, Any]:
    section = data.get(node, {}).get("ros__parameters") if isinstance(data.get(node), dict) else None
    if not isinstance(section, dict):
        raise ProvisionError(f"{path}: no '{node}: ros__parameters:' section")
    return section


def _header(template: Path) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return (
        f"# Written by `roadloop vehicle provision` from {template} on {when}.\n"
        "# Paths are absolute so the file can be passed from anywhere (ros2 launch ... params_file:=this file).\n"
    )


def _vehicle_yaml(req: ProvisionRequest, models: Path) -> str:
    src = req.template / "vehicle.yaml"
    data = _read_yaml(src)
    out = req.out.resolve()
    shared = _section(data, "/**", src)
    shared["topics_config"] = str(out / "topics.yaml")
    shared["observation_config"] = str(out / "dataset.yaml")  # read by drive and safety node alike
    drive = _section(data, "drive_node", src)
    drive["bundle"] = ""  # follow models/current, which the bridge switches
    drive["public_key"] = str(out / "keys" / "signing.pub")
    if not isinstance(drive.get("model_manager"), dict):
        raise ProvisionError(f"{src}: drive_node has no model_manager section")
    drive["model_manager"]["models_dir"] = str(models)
    return _header(src) + yaml.safe_dump(data, sort_keys=False)


def _bridge_yaml(req: ProvisionRequest, models: Path) -> str:
    src = req.template / "bridge.yaml"
    data = _read_yaml(src)
    out = req.out.resolve()
    bridge = _section(data, "bridge", src)
    bridge.update(
        vehicle=req.vehicle,
        channel=req.channel,
        pull_models=True,
        models_dir=str(models),
        public_key=str(out / "keys" / "signing.pub"),
        vehicle_params=str(out / "vehicle.yaml"),
    )
    return _header(src) + yaml.safe_dump(data, sort_keys=False)


def _check_request(req: ProvisionRequest) -> None:
    if not _NAME_RE.match(req.vehicle):
        raise ProvisionError(f"vehicle name {req.vehicle!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if not _NAME_RE.match(req.channel):
        raise ProvisionError(f"channel {req.channel!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if not req.token or any(c.isspace() for c in req.token):
        raise ProvisionError("hub token: empty or contains whitespace")
    if not req.hub_url.startswith(("http://", "https://")):
        raise ProvisionError(f"hub URL {req.hub_url!r}: must start with http:// or https://")
    for name in ("vehicle.yaml", "bridge.yaml", "topics.yaml", "dataset.yaml"):
        if not (req.template / name).is_file():
            raise ProvisionError(f"{req.template / name}: template file missing (--template names the config folder)")
    if req.out.exists() and not req.out.is_dir():
        raise ProvisionError(f"{req.out}: exists and is not a folder")


def _write_config(req: ProvisionRequest, models: Path, key_pem: bytes) -> dict[str, Path]:
    out = req.out
    (out / "keys").mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in CAR_FILES}
    for name in ("topics.yaml", "dataset.yaml"):
        atomic_write_bytes(files[name], (req.template / name).read_bytes())
    atomic_write_bytes(files["keys/signing.pub"], key_pem)
    atomic_write_text(files["hub.token"], req.token + "\n", mode=0o600)
    atomic_write_text(files["vehicle.yaml"], _vehicle_yaml(req, models))
    atomic_write_text(files["bridge.yaml"], _bridge_yaml(req, models))
    return files


def _load_written(files: dict[str, Path]) -> VehicleParams:
    """The written files load as the nodes and the bridge load them (a bad template fails here, not on the road)."""
    try:
        load_bridge_config(files["bridge.yaml"])
        return load_vehicle_params(files["vehicle.yaml"])
    except (RoadloopError, ValueError, TypeError) as err:
        raise ProvisionError(f"the provisioned config does not load: {err}") from err


def provision(req: ProvisionRequest, client: HubClient) -> ProvisionResult:
    """Write the car's config folder, then pull, verify and load the channel's current model (if there is one)."""
    _check_request(req)
    key = load_public_key(req.public_key)  # BundleError naming the file when it is not an Ed25519 PEM key
    key_pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_sha = hashlib.sha256(der).hexdigest()
    out = req.out.resolve()
    models = (req.models_dir or out / "models").expanduser().resolve()
    try:
        client.health()
    except HubClientError as err:
        raise ProvisionError(f"hub {req.hub_url}: {err}") from err
    files = _write_config(req, models, key_pem)
    params = _load_written(files)
    observation = ObservationSpec.from_config(params.path(params.drive.observation_config))
    state = out / "bridge-state"
    state.mkdir(exist_ok=True)
    # The bridge remembers refused bundles so it does not download them again; provisioning is the operator
    # asking again on purpose (e.g. after a wrong --public-key), so it starts without that memory.
    (state / "models.json").unlink(missing_ok=True)
    puller = ModelPuller(client, req.channel, models, state, key, files["keys/signing.pub"], observation, params)
    try:
        pulled = puller.poll()  # the token is checked here: the channel is read with it
    except HubClientError as err:
        raise ProvisionError(f"hub {req.hub_url}, channel {req.channel}: {err}") from err
    if pulled.action == "refused":
        raise ProvisionError(f"first model {pulled.label} refused: {pulled.reason}")
    model = ""
    if pulled.action != "none":
        manager = ModelManager(params.drive.model_manager, params.drive.runtime, observation, key)
        try:
            loaded = manager.load(models / "current")  # what the drive node does at start
        except RoadloopError as err:
            raise ProvisionError(f"first model {pulled.label} does not load on this car: {err}") from err
        model = loaded.label
    record = {
        "hub": req.hub_url,
        "vehicle": req.vehicle,
        "channel": req.channel,
        "public_key_sha256": key_sha,
        "model": model,
        "models_dir": str(models),
        "provisioned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "by": f"roadloop vehicle provision (uid {os.getuid()})",
    }
    atomic_write_json(out / "provisioned.json", record, indent=2)
    files["provisioned.json"] = out / "provisioned.json"
    return ProvisionResult(out, files, pulled.action, model, pulled.reason, key_sha)
