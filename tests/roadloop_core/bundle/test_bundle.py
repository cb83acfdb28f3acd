"""Bundle format: round trip, and every kind of tampering refused with a reason."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from roadloop_core.bundle import (
    Manifest,
    TensorSpec,
    check_observation_compatible,
    generate_keypair,
    load_bundle,
    read_manifest,
    verify_bundle,
    write_bundle,
)
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import BundleError

OBS = ObservationSpec(camera="camera", image_width=64, image_height=32, route_lookahead_m=20.0)


def _manifest(version: int = 1) -> Manifest:
    return Manifest(
        name="policy",
        version=version,
        inputs=(
            TensorSpec("image", (1, 3, 32, 64), normalization={"scale": 1 / 255}),
            TensorSpec("ego_state", (1, 4), normalization={"mean": [0.0] * 4, "std": [1.0] * 4}),
        ),
        outputs=(TensorSpec("waypoints", (1, 8, 2)), TensorSpec("target_speed", (1, 1))),
        observation=OBS,
        dataset_id="ds-123",
        metrics={"l2_3s": 1.5},
    )


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys")


@pytest.fixture()
def bundle(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not really onnx, but bytes to hash" * 100)
    out = tmp_path / "bundle"
    write_bundle(out, files={"policy.onnx": onnx}, manifest=_manifest(), signing_key=keys[0])
    return out


def test_round_trip_verifies(bundle: Path, keys: tuple[Path, Path]) -> None:
    manifest = verify_bundle(bundle, keys[1])
    assert manifest.name == "policy" and manifest.version == 1
    assert set(manifest.files) == {"policy.onnx"}
    assert manifest.input("ego_state") == _manifest().input("ego_state")
    assert read_manifest(bundle) == manifest
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "manifest.sig", "policy.onnx"]


def test_private_key_is_owner_only(keys: tuple[Path, Path]) -> None:
    assert keys[0].stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("name", ["policy.onnx", "manifest.json", "manifest.sig"])
@pytest.mark.parametrize("offset", [0, -1])
def test_one_changed_byte_in_any_file_is_refused(bundle: Path, keys: tuple[Path, Path], name: str, offset: int) -> None:
    path = bundle / name
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        verify_bundle(bundle, keys[1])


def test_unsigned_bundle_is_refused(bundle: Path, keys: tuple[Path, Path]) -> None:
    (bundle / "manifest.sig").unlink()
    with pytest.raises(BundleError, match="unsigned"):
        verify_bundle(bundle, keys[1])


def test_other_key_is_refused(bundle: Path, tmp_path: Path) -> None:
    _, other_pub = generate_keypair(tmp_path / "other")
    with pytest.raises(BundleError, match="signature"):
        verify_bundle(bundle, other_pub)


def test_extra_and_missing_files_are_refused(bundle: Path, keys: tuple[Path, Path]) -> None:
    (bundle / "payload.bin").write_bytes(b"x")
    with pytest.raises(BundleError, match="not listed"):
        verify_bundle(bundle, keys[1])
    (bundle / "payload.bin").unlink()
    (bundle / "policy.onnx").unlink()
    with pytest.raises(BundleError, match="missing"):
        verify_bundle(bundle, keys[1])


def test_write_refuses_existing_target_and_leaves_nothing_behind(bundle: Path, keys: tuple[Path, Path]) -> None:
    with pytest.raises(BundleError, match="already exists"):
        write_bundle(bundle, files={}, manifest=_manifest(), signing_key=keys[0])
    target = bundle.parent / "b2"
    with pytest.raises(BundleError, match="cannot copy"):
        write_bundle(target, files={"policy.onnx": bundle / "nope"}, manifest=_manifest(), signing_key=keys[0])
    assert not target.exists()
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".b2")]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"format": "other/1"}, "format"),
        ({"version": 0}, "version"),
        ({"version": "3"}, "version"),
        ({"files": ["policy.onnx"]}, "files"),
        ({"observation": {"camera": "camera"}}, r"observation: missing field\(s\) imu, odometry"),
        ({"observation": {**OBS.to_dict(), "lidar": "lidar"}}, "observation: unknown parameter"),
    ],
)
def test_malformed_manifest_fields(patch: dict[str, object], message: str) -> None:
    doc = json.loads(_manifest().to_json_bytes())
    doc.update(patch)
    with pytest.raises(BundleError, match=message):
        Manifest.from_json_bytes(json.dumps(doc).encode())


def test_observation_is_typed_and_written_as_before() -> None:
    doc = json.loads(_manifest().to_json_bytes())
    assert doc["observation"] == OBS.to_dict() and list(doc)[6] == "observation"
    assert Manifest.from_json_bytes(_manifest().to_json_bytes()).observation == OBS


def test_observation_compatibility() -> None:
    check_observation_compatible(_manifest(), OBS)
    other = dataclasses.replace(OBS, image_width=128, sample_rate_hz=20.0)
    with pytest.raises(
        BundleError, match=r"image_width: bundle 64 != vehicle 128; sample_rate_hz: bundle 10.0 != vehicle"
    ):
        check_observation_compatible(_manifest(), other)


def _roadloop(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("roadloop")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_cli_keys_gen_and_verify(tmp_path: Path, bundle: Path, keys: tuple[Path, Path]) -> None:
    gen = _roadloop("keys", "gen", "--out", str(tmp_path / "k"))
    assert gen.returncode == 0, gen.stderr
    assert (tmp_path / "k" / "signing.key").is_file()
    again = _roadloop("keys", "gen", "--out", str(tmp_path / "k"))
    assert again.returncode == 2 and "already exists" in again.stderr
    ok = _roadloop("bundle", "verify", str(bundle), "--public-key", str(keys[1]))
    assert ok.returncode == 0 and "ok: policy v1" in ok.stdout
    bad = _roadloop("bundle", "verify", str(bundle), "--public-key", str(tmp_path / "k" / "signing.pub"))
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "signature" in bad.stderr
    shown = _roadloop("bundle", "show", str(bundle), "--json")
    assert json.loads(shown.stdout)["version"] == 1


def test_copy_of_bundle_still_verifies(bundle: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    assert verify_bundle(copy, keys[1]).version == 1


# -- bundle files are regular files inside the bundle; the verified bytes are the bytes loaded (issue 13) --
def _finishes(fn: object, deadline_s: float = 60.0) -> object:
    """Run `fn` in a thread; fail (instead of hanging the suite) if it has not returned by a generous deadline."""
    import threading

    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())  # type: ignore[operator]
        except BaseException as err:
            out.append(err)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(deadline_s)
    assert not t.is_alive(), "verification did not finish: it followed something that never ends"
    return out[0]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, outside: p.symlink_to("/dev/zero"), "is a symbolic link"),
        (lambda p, outside: p.symlink_to(outside), "is a symbolic link"),  # same bytes, outside the bundle
        (lambda p, outside: os.mkfifo(p), "is a FIFO"),
        (lambda p, outside: p.mkdir(), "is a folder"),
    ],
)
def test_policy_that_is_not_a_regular_file_is_refused_at_once(
    bundle: Path, keys: tuple[Path, Path], tmp_path: Path, make: object, message: str
) -> None:
    outside = tmp_path / "outside.onnx"
    shutil.copy(bundle / "policy.onnx", outside)  # the exact bytes the manifest lists
    (bundle / "policy.onnx").unlink()
    make(bundle / "policy.onnx", outside)  # type: ignore[operator]
    for check in (verify_bundle, load_bundle):
        err = _finishes(lambda check=check: check(bundle, keys[1]))
        assert isinstance(err, BundleError) and message in str(err), err
        assert str(err).startswith(str(bundle / "policy.onnx"))


def test_the_manifest_must_be_a_regular_file_too(bundle: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    real = tmp_path / "manifest.json"
    shutil.move(bundle / "manifest.json", real)
    (bundle / "manifest.json").symlink_to(real)
    with pytest.raises(BundleError, match=r"manifest\.json: is a symbolic link"):
        verify_bundle(bundle, keys[1])


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(
    bundle: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import roadloop_core.bundle.store as store

    monkeypatch.setattr(store, "MAX_FILE_BYTES", 100)
    with pytest.raises(BundleError, match="more than the 100 a bundle file may have"):
        verify_bundle(bundle, keys[1])


def test_load_bundle_keeps_the_bytes_it_verified(bundle: Path, keys: tuple[Path, Path]) -> None:
    loaded = load_bundle(bundle, keys[1])
    verified = (bundle / "policy.onnx").read_bytes()
    (bundle / "policy.onnx").write_bytes(b"swapped after verification")  # what a second read would see
    assert loaded.files["policy.onnx"] == verified and loaded.manifest.version == 1
    assert set(loaded.files) == {"policy.onnx"}


def test_a_deeply_nested_manifest_is_a_bundle_error() -> None:
    with pytest.raises(BundleError, match="nested too deeply"):
        Manifest.from_json_bytes(b"[" * 100_000)
