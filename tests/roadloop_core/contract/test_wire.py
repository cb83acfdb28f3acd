"""The bag's tar stream: round trip through tarfile, byte ranges, determinism, refused names."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from roadloop_core.contract.wire import (
    ProofChallenge,
    TarStream,
    check_name,
    chunk_count,
    chunk_range,
    is_safe_name,
    tar_members,
)


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


def test_tar_members_reads_back_exactly_what_tarstream_wrote(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    stream = TarStream(d)
    members = tar_members(stream.read, stream.size)
    assert [m.name for m in members] == sorted(p.name for p in d.iterdir())
    for m in members:
        assert stream.read(m.offset, m.size) == (d / m.name).read_bytes()


def _mutations(good: bytes) -> list[tuple[str, bytes, str]]:
    head = bytearray(good[:512])
    head[100:108] = b"0000777\0"  # mode 0777: a header TarStream never writes
    return [
        ("truncated header", good[:300], "ends inside a header"),
        ("no end blocks", good[:-1024], "truncated"),
        ("extra zeros", good + b"\0" * 512, "exactly two zero blocks"),
        ("garbage after", good + b"x" * 512, "exactly two zero blocks"),
        ("foreign header", bytes(head) + good[512:], "header is not the wire format's"),
    ]


def test_tar_members_refuses_anything_else(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "metadata.yaml").write_text("x: 1\n")
    stream = TarStream(tmp_path / "one")
    good = stream.read(0, stream.size)
    for what, data, message in _mutations(good):
        with pytest.raises(ValueError, match=message):
            tar_members(lambda off, n, data=data: data[off : off + n], len(data))
        assert what
    twice = good[:-1024] * 2 + b"\0" * 1024  # the same member twice: the probe's duplicate-member tar
    with pytest.raises(ValueError, match=r"'metadata\.yaml' at byte 1024: duplicate"):
        tar_members(lambda off, n: twice[off : off + n], len(twice))


def test_proof_challenge_round_trip_and_answers(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    read = lambda off, n: data[off : off + n]  # noqa: E731
    challenge = ProofChallenge.random(len(data))
    assert len(challenge.ranges) == 4 and all(0 <= off <= len(data) - n for off, n in challenge.ranges)
    again = ProofChallenge.from_json(challenge.to_json())
    assert again == challenge and again.accepts(read, challenge.answer(read))
    other = bytearray(data)
    off = challenge.ranges[0][0]
    other[off] ^= 1
    assert not challenge.accepts(lambda o, n: bytes(other[o : o + n]), challenge.answer(read))
    assert not challenge.accepts(read, challenge.answer(read)[:3])
    assert ProofChallenge.random(1000).ranges[0] == (0, 1000)  # a small object is challenged whole
    with pytest.raises(ValueError):
        ProofChallenge.from_json({"nonce": "00", "ranges": [[-1, 5]]})
