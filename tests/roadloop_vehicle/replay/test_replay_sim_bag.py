"""Replay of a simulator bag (`roadloop sim record`): byte-identical twice, no drops, all frames served."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from roadloop_core.cli import main
from roadloop_core.config import config_dir
from roadloop_core.features import ObservationSpec
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.replay import replay_bag

pytestmark = pytest.mark.needs("roadloop_sim")

VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")  # what the car runs on

REPO = Path(__file__).resolve().parents[3]


def digest(bag: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(bag.iterdir())}


@pytest.mark.slow
def test_sim_bag_replays_byte_identically(
    fx: ModuleType, keypair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scen = yaml.safe_load((REPO / "config" / "scenarios.yaml").read_text())
    scen["scenarios"] = {"highway_light": {**scen["scenarios"]["highway_light"], "max_duration_s": 4.0}}
    scen_file = tmp_path / "scenarios.yaml"
    scen_file.write_text(yaml.safe_dump(scen))
    args = ["sim", "record", "--out", str(tmp_path / "rec"), "--episodes", "1", "--scenarios-file", str(scen_file)]
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code
    (bag,) = [p for p in (tmp_path / "rec").iterdir() if (p / "metadata.yaml").is_file()]
    bundle = fx.make_bundle(
        tmp_path / "tiny-v1", keypair[0], observation=ObservationSpec.from_config(config_dir() / "dataset.yaml")
    )
    a = replay_bag(bag, tmp_path / "a" / "out", bundle, params=VEHICLE, public_key=keypair[1])
    b = replay_bag(bag, tmp_path / "b" / "out", bundle, params=VEHICLE, public_key=keypair[1])
    assert digest(tmp_path / "a" / "out") == digest(tmp_path / "b" / "out")
    assert a.deterministic == b.deterministic
    d = a.deterministic
    assert d["frames"] >= 35  # 10 Hz camera over 4 s
    assert sum(v for k, v in d["drops"].items() if k != "camera_rate") <= 1  # at most the last, at end of stream
    assert d["states"].get("active", 0) >= d["frames"] - 1
    shutil.rmtree(tmp_path / "rec")
