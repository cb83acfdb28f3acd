"""The bag's tar stream: round trip through tarfile, byte ranges, determinism, refused names."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from roadloop_core.contract.wire import TarStream, check_name, chunk_count, chunk_range, is_safe_name


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "bag"
    d.mkdir()
    (d / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    (d / "bag_0.mcap").write_bytes(os.urandom(5000))
    (d / "empty.db3").write_bytes(b"")
    (d / "exact.bin").write_bytes(os.urandom(1024))
    return d


def test_round_trip_through_tarfile(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    stream = TarStream(d)
    data = stream.read(0, stream.size)
    assert len(data) == stream.size and stream.size % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["bag_0.mcap", "empty.db3", "exact.bin", "metadata.yaml"]
        for m in members:
            assert m.isreg() and m.mtime == 0 and m.uid == 0 and m.uname == ""
            f = tar.extractfile(m)
            assert f is not None and f.read() == (d / m.name).read_bytes()
    assert stream.sha256() == hashlib.sha256(data).hexdigest()


def test_any_range_matches_the_whole(tmp_path: Path) -> None:
    stream = TarStream(_folder(tmp_path))
    whole = stream.read(0, stream.size)
    for off, n in [(0, 1), (511, 2), (512, 5000), (600, 10_000), (stream.size - 3, 100), (stream.size, 10)]:
        assert stream.read(off, n) == whole[off : off + n]
    chunk = 4096
    pieces = [stream.read(*chunk_range(i, stream.size, chunk)) for i in range(chunk_count(stream.size, chunk))]
    assert b"".join(pieces) == whole


def test_deterministic_and_change_detected(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    a = TarStream(d)
    os.utime(d / "bag_0.mcap", (1, 1))  # mtime is not part of the stream...
    b = TarStream(d)
    assert a.sha256() == b.sha256()
    assert not a.unchanged()  # ...but a changed file is noticed
    assert b.unchanged()


def test_unsafe_file_name_in_bag_refused(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    (d / ".hidden").write_bytes(b"x")
    with pytest.raises(ValueError, match="refused"):
        TarStream(d)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("bag_2026-01-01", True),
        ("a.b-c_d", True),
        ("..", False),
        ("../x", False),
        ("a/b", False),
        (".x", False),
        ("a..b", False),
        ("", False),
        ("é", False),
        ("x" * 100, True),
        ("x" * 101, False),
    ],
)
def test_names(name: str, ok: bool) -> None:
    assert is_safe_name(name) is ok
    if not ok:
        with pytest.raises(ValueError):
            check_name(name, "bag name")


@pytest.mark.parametrize(
    ("size", "chunk", "n", "last"), [(1, 10, 1, (0, 1)), (10, 10, 1, (0, 10)), (25, 10, 3, (20, 5))]
)
def test_chunk_math(size: int, chunk: int, n: int, last: tuple[int, int]) -> None:
    assert chunk_count(size, chunk) == n
    assert chunk_range(n - 1, size, chunk) == last
