"""Truncated and bit-flipped copies of every conformance file: a clean BagError or a correct partial read.

Never a crash (any other exception) and never a hang (pytest-timeout). A fixed seed picks a
handful of truncation points and flips per file to keep the suite quick.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import stat
from pathlib import Path

import pytest

from roadloop_core.bag import open_bag
from roadloop_core.bag.reindex import reindex_bag
from roadloop_core.errors import BagError

ROOT = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "rosbag2-conformance"
FILES = sorted(p.relative_to(ROOT) for p in ROOT.glob("*/*/*") if p.is_file()) if ROOT.is_dir() else []
Key = tuple[str, int, bytes]


def _read_all(bag: Path) -> list[Key]:
    """Open (reindexing a metadata-less copy first), read and decode everything; BagError is fine."""
    if not (bag / "metadata.yaml").exists():
        reindex_bag(bag)
    out = []
    with open_bag(bag) as reader:
        for raw in reader.messages():
            out.append((raw.topic, raw.timestamp_ns, bytes(raw.data)))
            with contextlib.suppress(BagError):  # an undecodable message is reported, not a crash
                reader.decode(raw)
        reader.info  # noqa: B018 - must not raise either
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in [dst, *dst.iterdir()]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dst


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def _original(bag: Path, tmp: Path) -> set[Key]:
    try:
        return set(_read_all(_copy(bag, tmp / "original")))
    except BagError:  # wrong_rmw_test: unreadable by design
        return set()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("rel", FILES, ids=[str(f) for f in FILES])
def test_damaged_copies_fail_cleanly_or_read_a_correct_part(conformance_dir: Path, tmp_path: Path, rel: Path) -> None:
    source_bag = conformance_dir / rel.parent
    original = _original(source_bag, tmp_path)
    size = (conformance_dir / rel).stat().st_size
    rng = random.Random(f"{rel}")
    cuts = sorted({0, 7, size // 3, size // 2, size - 1, rng.randrange(1, max(2, size))})
    trials: list[tuple[str, int]] = [("cut", c) for c in cuts if c < size]
    trials += [("flip", rng.randrange(0, size * 8)) for _ in range(6)]
    for i, (kind, where) in enumerate(trials):
        bag = _copy(source_bag, tmp_path / f"t{i}")
        target = bag / rel.name
        data = bytearray(target.read_bytes())
        if kind == "cut":
            del data[where:]
        else:
            data[where // 8] ^= 1 << (where % 8)
        target.write_bytes(bytes(data))
        if not (bag / "metadata.yaml").exists():
            try:
                reindex_bag(bag)
            except BagError as err:
                assert "\n" not in str(err), f"{kind}@{where}: error is not one line: {err!r}"
                assert not (bag / "metadata.yaml").exists(), f"{kind}@{where}: a failed reindex wrote metadata.yaml"
                continue
        try:
            got = _read_all(bag)
        except BagError as err:
            assert "\n" not in str(err), f"{kind}@{where}: error is not one line: {err!r}"
            continue
        if kind == "cut" and rel.suffix != ".yaml":
            assert set(got) <= original, f"cut@{where}: read messages that the bag does not hold"


@pytest.mark.timeout(60)
def test_reading_never_writes(conformance_dir: Path) -> None:
    for bag in sorted(p.parent for p in conformance_dir.glob("*/*/metadata.yaml")):
        before = _snapshot(bag)
        with contextlib.suppress(BagError):
            _read_all(bag)
        assert _snapshot(bag) == before


@pytest.mark.parametrize("name", ["x.mcap", "x.db3", "x_0.mcap.active"])
def test_garbage_storage_files(tmp_path: Path, name: str) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / name).write_bytes(random.Random(1).randbytes(5000))
    with pytest.raises(BagError) as err:
        _read_all(bag)
    assert "\n" not in str(err.value)
    if not name.endswith(".active"):
        assert name in str(err.value)
    assert not (bag / "metadata.yaml").exists()


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("\x00\x01 garbage: [", "invalid YAML"),
        ("just a string", "not rosbag2 metadata"),
        ("rosbag2_bagfile_information: {version: 4}", "storage_identifier"),
        ("rosbag2_bagfile_information: {version: 99}", "newer than supported"),
    ],
)
def test_bad_metadata_names_the_file_and_field(conformance_dir: Path, tmp_path: Path, text: str, fault: str) -> None:
    bag = _copy(conformance_dir / "sqlite3" / "talker", tmp_path / "bag")
    (bag / "metadata.yaml").write_text(text)
    with pytest.raises(BagError, match=fault) as err:
        open_bag(bag)
    assert "metadata.yaml" in str(err.value) and "\n" not in str(err.value)


def test_error_kinds_let_callers_tell_unfinished_unsupported_and_damaged(conformance_dir: Path, tmp_path: Path) -> None:
    from roadloop_core.errors import BagDamagedError, BagUnfinishedError, BagUnsupportedError

    with pytest.raises(BagUnfinishedError):
        open_bag(conformance_dir / "mcap" / "no_metadata_multiple_files")
    with pytest.raises(BagUnsupportedError):
        open_bag(conformance_dir / "sqlite3" / "wrong_rmw_test")
    for storage in ("sqlite3", "mcap"):
        bag = _copy(conformance_dir / storage / "talker", tmp_path / storage)
        f = next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 8])  # inside the data: messages are lost
        with pytest.raises(BagDamagedError):
            _read_all(bag)
