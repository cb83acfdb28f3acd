"""Fault injection over every storage format: a clean error, a reported problem, or exact data; never silent loss.

Bags of known content (mcap with zstd chunks, uncompressed mcap, sqlite3 written by rosbags) get
bit flips and truncations at offsets chosen from each file's own structure (mcap: header, every
chunk's opcode/length/times/size/CRC/compression/body, message indexes, metadata records, DataEnd,
every summary record, footer, trailing magic; sqlite3: header, every page's header, cell pointers
and cell bodies) plus seeded random offsets. Each case is judged as `roadloop bag check` sees it
(open, read every message, whole-file checks), then `bag reindex` is run on a fresh copy:

- clean error: one line (a BagError; the CLI prints it and exits 2), and a refused reindex changed
  nothing in the folder;
- reported: `problems` names the fault (the CLI prints PROBLEM lines and exits 1);
- exact: every message read equals what was written, in order;
- altered (sqlite3 only): counts are right but a stored value changed. sqlite3 keeps no
  checksums, so a flipped bit inside a timestamp or a payload is read as stored; the suite counts
  these and states them, it cannot turn them into errors;
- silent loss (fewer or other messages, nothing reported) or a crash (any other exception) fails.

The fast cases run in `make test`; the full sweep is `make soak` (marker `soak`). Both print
their counts: tried / survived, by outcome.
"""

from __future__ import annotations

import random
import shutil
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roadloop_core.bag import open_bag
from roadloop_core.bag.reindex import reindex_bag
from roadloop_core.errors import BagError

Written = list[tuple[str, int, bytes]]
FORMATS = ("mcap-zstd", "mcap-none", "sqlite3")
SURVIVED = {"clean error", "reported", "exact", "altered"}


# -- the bags ----------------------------------------------------------------------------------------------------


def _sqlite_bag(path: Path, written: Written) -> None:
    from rosbags.rosbag2 import StoragePlugin
    from rosbags.rosbag2 import Writer as RosbagsWriter

    from roadloop_core.typesys import typestore_for

    store = typestore_for("jazzy")
    w = RosbagsWriter(path, version=9, storage_plugin=StoragePlugin.SQLITE3)
    w.open()
    types = {"/imu": "sensor_msgs/msg/Imu", "/status": "std_msgs/msg/String"}
    conns = {t: w.add_connection(t, typ, typestore=store) for t, typ in types.items()}
    for topic, ts, data in written:
        w.write(conns[topic], ts, data)
    w.close()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, imu_bag: Any) -> dict[str, tuple[Path, Written]]:
    """The three bags, each with metadata.yaml and what was written to it."""
    root = tmp_path_factory.mktemp("fault-sources")
    out: dict[str, tuple[Path, Written]] = {}
    for fmt, compression in (("mcap-zstd", "zstd"), ("mcap-none", "none")):
        written = imu_bag(root / fmt, n=300, chunk_bytes=4096, compression=compression, custom={"roadloop.seed": "1"})
        out[fmt] = (root / fmt, written)
    sqlite = root / "sqlite3"
    _sqlite_bag(sqlite, out["mcap-zstd"][1])
    out["sqlite3"] = (sqlite, out["mcap-zstd"][1])
    return out


def _order(written: Written) -> Written:
    return sorted(written, key=lambda m: m[1])


# -- where to hit ------------------------------------------------------------------------------------------------


def _mcap_offsets(data: bytes) -> tuple[list[int], list[int]]:
    """(byte offsets to flip, sizes to truncate to) from the file's own records."""
    flips: list[int] = [0, 5, 7]
    cuts: list[int] = [0, 7, 8, 20]
    pos = 8
    while pos + 9 <= len(data) - 8:
        op, length = struct.unpack_from("<BQ", data, pos)
        end = pos + 9 + length
        flips += [pos, pos + 1, pos + 8]  # opcode, low and high byte of the length
        if op == 0x06:  # chunk: times, uncompressed size, CRC, compression, records length, body
            (clen,) = struct.unpack_from("<I", data, pos + 37)
            body = pos + 37 + 4 + clen + 8
            flips += [
                pos + 9,
                pos + 17,
                pos + 25,
                pos + 33,
                pos + 36,
                pos + 41,
                body - 8,
                body,
                (body + end) // 2,
                end - 1,
            ]
            cuts += [pos + 20, (body + end) // 2, end - 1]
        elif length:
            flips += [pos + 9, pos + 9 + length // 2, end - 1]
        cuts += [pos, end]
        pos = end
        if op == 0x02:
            break
    flips += [len(data) - 8, len(data) - 1]
    cuts += [len(data) - 8, len(data) - 1]
    return sorted({f for f in flips if 0 <= f < len(data)}), sorted({c for c in cuts if 0 <= c < len(data)})


def _sqlite_offsets(data: bytes) -> tuple[list[int], list[int]]:
    page = int.from_bytes(data[16:18], "big")
    page = 65536 if page == 1 else page
    flips = [0, 16, 17, 18, 24, 28, 31, 56, 92, 96]
    cuts = [0, 50, 100, page - 1]
    for start in range(0, len(data), page):
        head = start + (100 if start == 0 else 0)
        flips += [head, head + 1, head + 3, head + 4, head + 5, head + 7, head + 8, head + 9]
        cells = [head + 12 + 2 * i for i in range(3)]
        flips += cells
        flips += [start + page // 2, start + page - 40, start + page - 1]
        cuts += [start, start + page // 2]
    return sorted({f for f in flips if f < len(data)}), sorted({c for c in cuts if 0 < c < len(data)})


def _storage_file(bag: Path) -> Path:
    return next(p for p in sorted(bag.iterdir()) if p.suffix in (".mcap", ".db3"))


def cases(fmt: str, bag: Path, *, fast: bool) -> Iterator[tuple[str, int, int]]:
    """(kind, offset, bit) for one format: structure-chosen offsets, plus seeded random ones in the sweep."""
    data = _storage_file(bag).read_bytes()
    flips, cuts = (_sqlite_offsets if fmt == "sqlite3" else _mcap_offsets)(data)
    rng = random.Random(f"faults-{fmt}")
    if fast:
        flips, cuts = sorted(rng.sample(flips, min(12, len(flips)))), sorted(rng.sample(cuts, min(4, len(cuts))))
    else:
        flips += [rng.randrange(len(data)) for _ in range(150)]
    for offset in flips:
        yield "flip", offset, rng.randrange(8)
    for offset in cuts:
        yield "cut", offset, 0


# -- judging -----------------------------------------------------------------------------------------------------


def _damage(src: Path, dst: Path, kind: str, offset: int, bit: int) -> Path:
    shutil.copytree(src, dst)
    f = _storage_file(dst)
    data = bytearray(f.read_bytes())
    if kind == "flip":
        data[offset] ^= 1 << bit
    else:
        del data[offset:]
    f.write_bytes(bytes(data))
    return dst


def _read_like_check(bag: Path) -> tuple[Written, list[str]]:
    with open_bag(bag) as reader:
        got = [(m.topic, m.timestamp_ns, bytes(m.data)) for m in reader.messages()]
        reader.verify_files()
        return got, list(reader.problems)


def judge(bag: Path, expected: Written) -> str:
    """The outcome of reading `bag` the way `bag check` does."""
    try:
        got, problems = _read_like_check(bag)
    except BagError as err:
        assert "\n" not in str(err), f"a multi-line error: {err!r}"
        return "clean error"
    except Exception as err:  # any other exception is a crash of the reader
        return f"CRASH {type(err).__name__}: {err}"
    if problems:
        assert all("\n" not in p for p in problems)
        return "reported"
    if got == expected:
        return "exact"
    same_counts = Counter(m[0] for m in got) == Counter(m[0] for m in expected)
    return "altered" if same_counts else f"SILENT LOSS: {len(got)} of {len(expected)} messages, nothing reported"


def judge_reindex(bag: Path, expected: Written, fmt: str) -> str:
    """`bag reindex` on the damaged copy: refused with nothing changed, or a bag that then reads exactly."""
    before = {p.name: p.read_bytes() for p in bag.iterdir()}
    try:
        reindex_bag(bag)
    except BagError as err:
        assert "\n" not in str(err)
        after = {p.name: p.read_bytes() for p in bag.iterdir()}
        return "clean error" if after == before else "REFUSED BUT CHANGED THE FOLDER"
    except Exception as err:
        return f"CRASH {type(err).__name__}: {err}"
    outcome = judge(bag, expected)
    if outcome == "reported":
        return "REINDEXED BUT STILL INCONSISTENT"
    return outcome


def sweep(sources: dict[str, tuple[Path, Written]], tmp: Path, say: Any, *, fast: bool) -> dict[str, Counter[str]]:
    tally: dict[str, Counter[str]] = {}
    failures: list[str] = []
    for fmt in FORMATS:
        src, written = sources[fmt]
        expected = _order(written)
        counts: Counter[str] = Counter()
        for i, (kind, offset, bit) in enumerate(cases(fmt, src, fast=fast)):
            where = f"{fmt} {kind} @{offset}" + (f" bit {bit}" if kind == "flip" else "")
            read = judge(_damage(src, tmp / f"{fmt}-{i}-read", kind, offset, bit), expected)
            fixed = judge_reindex(_damage(src, tmp / f"{fmt}-{i}-reindex", kind, offset, bit), expected, fmt)
            for stage, outcome in (("read", read), ("reindex", fixed)):
                counts[f"{stage}: {outcome.split(':')[0] if outcome[0].isupper() else outcome}"] += 1
                if outcome not in SURVIVED or (outcome == "altered" and fmt != "sqlite3"):
                    failures.append(f"{where} ({stage}): {outcome}")
            counts["tried"] += 1
            counts["survived"] += read in SURVIVED and fixed in SURVIVED
            shutil.rmtree(tmp / f"{fmt}-{i}-read")
            shutil.rmtree(tmp / f"{fmt}-{i}-reindex")
        tally[fmt] = counts
    for fmt, counts in tally.items():
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("tried", "survived"))
        label = "fast" if fast else "sweep"
        say(f"fault injection ({label}) {fmt}: {counts['tried']} tried, {counts['survived']} survived ({detail})")
    assert not failures, "\n".join(failures[:20])
    return tally


@pytest.fixture
def say(capsys: pytest.CaptureFixture[str]) -> Any:
    """Print a line to the terminal even under -q and output capture (the suite's counts)."""

    def line(text: str) -> None:
        with capsys.disabled():
            print(f"\n{text}", end="")

    return line


def test_fault_injection_fast_cases(sources: dict[str, tuple[Path, Written]], tmp_path: Path, say: Any) -> None:
    tally = sweep(sources, tmp_path, say, fast=True)
    assert sum(c["tried"] for c in tally.values()) >= 36
    for fmt in ("mcap-zstd", "mcap-none"):  # the mcap CRCs leave no room for an undetected change
        assert tally[fmt]["tried"] == tally[fmt]["survived"]


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_fault_injection_sweep(sources: dict[str, tuple[Path, Written]], tmp_path: Path, say: Any) -> None:
    tally = sweep(sources, tmp_path, say, fast=False)
    assert sum(c["tried"] for c in tally.values()) >= 600
