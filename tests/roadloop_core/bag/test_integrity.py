"""Readers verify what they read; reindex writes only what it read (issue 13: 1-4, 6, 16).

Each test reproduces a probe's input: a bit flipped in an mcap summary or inside a chunk, a
flipped Statistics record, duplicated file paths, a 0-byte `.active` file, odd paths. A bag is
either read exactly, or the fault is reported (a problem line, exit 1) or refused (one line,
exit 2); never a short read that says OK.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zstandard

from roadloop_core.bag import open_bag
from roadloop_core.errors import BagDamagedError, BagError

ROADLOOP = shutil.which("roadloop", path=str(Path(sys.executable).parent)) or "roadloop"
OP_CHUNK, OP_CHUNK_INDEX, OP_STATISTICS, OP_FOOTER = 0x06, 0x08, 0x0B, 0x02


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("ROADLOOP_DEBUG", None)
    return subprocess.run([ROADLOOP, *args], capture_output=True, text=True, timeout=300, env=env)


def _zero_summary_crc(mcap: Path) -> None:
    """What a writer without CRCs leaves: the footer's summary_crc is 0."""
    data = bytearray(mcap.read_bytes())
    struct.pack_into("<I", data, len(data) - 8 - 4, 0)
    mcap.write_bytes(bytes(data))


def _structure(records: bytes) -> list[tuple[int, int, int]]:
    """(opcode, length, channel id or 0) of each record in a chunk, and each message's log time."""
    out, pos = [], 0
    while pos + 9 <= len(records):
        op, length = struct.unpack_from("<BQ", records, pos)
        head = struct.unpack_from("<HIQ", records, pos + 9) if op == 0x05 and length >= 14 else (0, 0, 0)
        out.append((op, length, head[0] * 10**20 + head[2]))
        pos += 9 + length
    return out


def _records(tools: Any, mcap: Path, op: int) -> list[tuple[int, int, int]]:
    return [r for r in tools.layout(mcap) if r[0] == op]


# -- 13.1: a damaged summary is never a short read that says OK ----------------------------------------------


@pytest.mark.parametrize("summary_crc", ["stored", "zero"])
def test_flipped_chunk_index_in_the_summary_reads_every_message_and_is_reported(
    tmp_path: Path, imu_bag: Any, bag_tools: Any, summary_crc: str
) -> None:
    bag = tmp_path / "b"
    written = imu_bag(bag)
    mcap = bag / "b_0.mcap"
    if summary_crc == "zero":
        _zero_summary_crc(mcap)
    index = _records(bag_tools, mcap, OP_CHUNK_INDEX)[3]
    bag_tools.flip_bit(mcap, index[1], 7)  # opcode 0x08 -> 0x88: a record readers skip
    with open_bag(bag) as reader:
        assert reader.problems and "summary" in reader.problems[0] and "\n" not in reader.problems[0]
        got = [(m.topic, m.timestamp_ns, bytes(m.data)) for m in reader.messages()]
    assert got == sorted(written, key=lambda m: m[1])  # every message, from a linear scan of the chunks
    res = run("bag", "check", str(bag))
    assert res.returncode == 1, res.stdout
    assert f"OK: {len(written)}" not in res.stdout and f"FAILED: {len(written)} decoded" in res.stdout
    assert "PROBLEM:" in res.stdout
    res = run("bag", "info", str(bag))
    assert res.returncode == 1 and "PROBLEM:" in res.stdout


def test_a_short_read_against_the_files_own_index_raises(tmp_path: Path, imu_bag: Any, bag_tools: Any) -> None:
    """A chunk the index leaves out (summary CRC 0, statistics consistent): the pass ends with an error."""
    bag = tmp_path / "b"
    imu_bag(bag)
    mcap = bag / "b_0.mcap"
    _zero_summary_crc(mcap)
    data = bytearray(mcap.read_bytes())
    # point chunk index 2 at chunk 3: both entries then name the same chunk, chunk 2 is never read
    indexes = _records(bag_tools, mcap, OP_CHUNK_INDEX)
    a, b = indexes[2][1] + 9, indexes[3][1] + 9
    data[a : a + indexes[2][2]] = data[b : b + indexes[3][2]]
    mcap.write_bytes(bytes(data))
    with open_bag(bag) as reader:
        with pytest.raises(BagDamagedError, match="the file's index says"):
            for _ in reader.messages():
                pass
        assert any("the file's index says" in p for p in reader.problems)


# -- 13.2: chunk CRCs are checked ------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_altered_chunk_bytes_fail_the_crc(tmp_path: Path, imu_bag: Any, bag_tools: Any, compression: str) -> None:
    bag = tmp_path / "b"
    imu_bag(bag, compression=compression)
    mcap = bag / "b_0.mcap"
    _, at, length = _records(bag_tools, mcap, OP_CHUNK)[2]
    raw = mcap.read_bytes()
    (clen,) = struct.unpack_from("<I", raw, at + 37)  # after opcode, length, start, end, size, crc
    body = at + 37 + 4 + clen + 8
    # a flip that only changes message bytes (zstd literals): the records still parse, only the CRC can tell
    original = raw[body : at + 9 + length]
    if compression == "zstd":
        original = zstandard.ZstdDecompressor().decompress(original)
    for pos in range(body + 40, at + 9 + length):
        data = bytearray(raw)
        data[pos] ^= 0x01
        if compression == "none":
            break
        try:
            altered = zstandard.ZstdDecompressor().decompress(bytes(data[body : at + 9 + length]))
        except zstandard.ZstdError:
            continue
        if altered != original and _structure(altered) == _structure(original):
            break
    else:
        pytest.fail("no flip found that keeps the chunk's record structure")
    mcap.write_bytes(bytes(data))
    with open_bag(bag) as reader, pytest.raises(BagDamagedError, match="fails its CRC check") as err:
        for _ in reader.messages():
            pass
    assert "\n" not in str(err.value)
    res = run("bag", "check", str(bag))
    assert res.returncode == 1 and "fails its CRC check" in res.stdout


# -- 13.3: reindex trusts nothing it did not read ----------------------------------------------------------------


def test_reindex_ignores_a_flipped_statistics_record_and_keeps_correct_metadata(
    tmp_path: Path, imu_bag: Any, bag_tools: Any
) -> None:
    bag = tmp_path / "b"
    written = imu_bag(bag)
    before = (bag / "metadata.yaml").read_bytes()
    mcap = bag / "b_0.mcap"
    stats = _records(bag_tools, mcap, OP_STATISTICS)[0]
    bag_tools.flip_bit(mcap, stats[1] + 9 + 6, 6)  # a high byte of message_count: 1900 -> 1900 + 2**54
    res = run("bag", "reindex", str(bag))
    assert res.returncode == 0, res.stderr
    assert "repaired b_0.mcap" in res.stdout and "18014398509" not in res.stdout
    assert (bag / "metadata.yaml").read_bytes() == before  # a correct metadata.yaml is never overwritten
    assert run("bag", "check", str(bag)).returncode == 0  # the summary was rebuilt from the verified chunks
    assert bag_tools.read_all(bag) == sorted(written, key=lambda m: m[1])


def test_reindex_refuses_a_file_check_calls_damaged_and_writes_nothing(
    tmp_path: Path, imu_bag: Any, bag_tools: Any
) -> None:
    bag = tmp_path / "b"
    imu_bag(bag, compression="none")
    mcap = bag / "b_0.mcap"
    chunk = _records(bag_tools, mcap, OP_CHUNK)[1]
    bag_tools.flip_bit(mcap, chunk[1] + chunk[2] - 3)  # inside the chunk's records: its CRC no longer matches
    (bag / "metadata.yaml").unlink()
    listing = sorted(p.name for p in bag.iterdir())
    res = run("bag", "reindex", str(bag))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "fails its CRC check" in res.stderr
    assert "nothing was written" in res.stderr and ".active" in res.stderr  # how to keep the intact part
    assert sorted(p.name for p in bag.iterdir()) == listing


# -- 13.4: duplicate file paths ------------------------------------------------------------------------------------


def test_duplicate_relative_file_paths_are_refused(tmp_path: Path, imu_bag: Any) -> None:
    bag = tmp_path / "b"
    imu_bag(bag, n=50)
    meta = bag / "metadata.yaml"
    text = meta.read_text()
    listed = "relative_file_paths:\n  - b_0.mcap"
    meta.write_text(text.replace(listed, listed + "\n  - b_0.mcap"))
    assert meta.read_text().count("- b_0.mcap") == 2
    with pytest.raises(BagError, match=r"lists b_0\.mcap twice"):
        open_bag(bag)
    res = run("bag", "info", str(bag))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1


# -- 13.6: reindex is byte-stable; empty .active files ---------------------------------------------------------------


@pytest.mark.parametrize("distro", ["jazzy", "humble"])
def test_reindex_of_a_healthy_bag_is_byte_stable(tmp_path: Path, imu_bag: Any, distro: str) -> None:
    bag = tmp_path / "b"
    custom = {"roadloop.scenario": "highway", "b.second": "2", "a.third": "3"}  # not in sorted order
    imu_bag(bag, n=300, custom=custom, distro=distro, max_bytes=8000)
    files = {p.name: p.read_bytes() for p in bag.iterdir()}
    res = run("bag", "reindex", str(bag))
    assert res.returncode == 0 and "left unchanged" in res.stdout
    assert {p.name: p.read_bytes() for p in bag.iterdir()} == files
    (bag / "metadata.yaml").unlink()  # rebuilt from the files alone: the same bytes the writer wrote
    assert run("bag", "reindex", str(bag)).returncode == 0
    assert (bag / "metadata.yaml").read_bytes() == files["metadata.yaml"]
    with open_bag(bag) as reader:
        assert list(reader.info.custom_data) == list(custom)


def test_an_empty_active_file_is_removed_and_the_rest_reindexed(tmp_path: Path, imu_bag: Any) -> None:
    bag = tmp_path / "b"
    written = imu_bag(bag, n=100)
    (bag / "metadata.yaml").unlink()
    (bag / "b_1.mcap.active").write_bytes(b"")  # killed between creating the file and writing its magic
    res = run("bag", "reindex", str(bag))
    assert res.returncode == 0, res.stderr
    assert "removed b_1.mcap.active" in res.stdout
    assert sorted(p.name for p in bag.iterdir()) == ["b_0.mcap", "metadata.yaml"]
    with open_bag(bag) as reader:
        assert len(list(reader.messages())) == len(written) and not reader.problems


def test_an_only_empty_active_file_says_to_delete_it(tmp_path: Path) -> None:
    bag = tmp_path / "b"
    bag.mkdir()
    (bag / "b_0.mcap.active").write_bytes(b"")
    res = run("bag", "reindex", str(bag))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "empty" in res.stderr and "delete it" in res.stderr
    (bag / "b_0.mcap.active").write_bytes(b"not an mcap file at all")
    res = run("bag", "reindex", str(bag))
    assert res.returncode == 2 and "bad magic" in res.stderr and "delete it" in res.stderr


# -- 13.16: odd paths ---------------------------------------------------------------------------------------------


def test_devices_and_fifos_are_one_line_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, what in ((Path("/dev/null"), "character device"), (fifo, "FIFO")):
        for verb in ("info", "check", "reindex"):
            res = run("bag", verb, str(path))
            assert res.returncode == 2, (verb, path, res.stderr)
            assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
            assert verb == "reindex" or what in res.stderr


def test_a_fifo_as_metadata_yaml_does_not_block(tmp_path: Path, imu_bag: Any) -> None:
    bag = tmp_path / "b"
    imu_bag(bag, n=20)
    (bag / "metadata.yaml").unlink()
    os.mkfifo(bag / "metadata.yaml")
    res = run("bag", "info", str(bag))  # a blocking open would hang here until the timeout
    assert res.returncode == 2 and "FIFO" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_metadata_yaml_that_is_a_folder_leaves_nothing_behind(tmp_path: Path, imu_bag: Any) -> None:
    bag = tmp_path / "b"
    imu_bag(bag, n=20)
    (bag / "metadata.yaml").unlink()
    (bag / "metadata.yaml").mkdir()
    listing = sorted(p.name for p in bag.iterdir())
    for verb in ("info", "reindex"):
        res = run("bag", verb, str(bag))
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "folder" in res.stderr
    assert sorted(p.name for p in bag.iterdir()) == listing  # no .metadata.yaml.tmp left
