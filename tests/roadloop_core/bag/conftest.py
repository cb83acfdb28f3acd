"""Bag-test fixtures: random messages of any known type, bags with known content, tools to damage them."""

from __future__ import annotations

import shutil
import stat
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from rosbags.typesys.store import Typestore

from roadloop_core.bag import BagWriter, open_bag
from roadloop_core.registry import load_registry

NUMPY = {
    "bool": np.bool_,
    "byte": np.int8,  # rosbags maps byte to int8
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}
BASE, NAME, ARRAY, SEQUENCE = 1, 2, 3, 4


def _scalar(name: str, rng: np.random.Generator) -> Any:
    if name == "string":
        return "".join(rng.choice(list("abcxyz/_ 0123")) for _ in range(int(rng.integers(0, 12))))
    if name == "bool":
        return bool(rng.integers(0, 2))
    if name.startswith("float"):
        return float(np.float32(rng.normal())) if name == "float32" else float(rng.normal())
    info = np.iinfo(NUMPY[name])
    return int(rng.integers(info.min, info.max, dtype=np.int64 if info.min < 0 else np.uint64, endpoint=True))


def _array(name: str, n: int, rng: np.random.Generator) -> Any:
    if name == "string":
        return [_scalar(name, rng) for _ in range(n)]
    dtype = NUMPY[name]
    if dtype is np.bool_:
        return rng.integers(0, 2, n).astype(np.bool_)
    if np.issubdtype(dtype, np.floating):
        return rng.normal(size=n).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)


def _value(store: Typestore, desc: Any, rng: np.random.Generator, big: int) -> Any:
    kind, rest = desc
    if kind == BASE:
        return _scalar(rest[0], rng)
    if kind == NAME:
        return make_message(store, rest, rng, big)
    inner, size = rest
    n = size if kind == ARRAY else (big if big else int(rng.integers(0, 4)))
    if kind == SEQUENCE and size:
        n = min(n, size)
    if inner[0] == BASE:
        return _array(inner[1][0], n, rng)
    return [_value(store, inner, rng, 0) for _ in range(n)]


def make_message(store: Typestore, typename: str, rng: np.random.Generator, big: int = 0) -> Any:
    """A random `typename` message; `big` sets the length of its top-level sequences (e.g. image bytes)."""
    _, fields = store.fielddefs[typename]
    values = {name: _value(store, desc, rng, big) for name, desc in fields}
    return store.types[typename](**values)


@pytest.fixture
def message_factory() -> Any:
    """`message_factory(store, typename, rng, big=0)` -> a random message of `typename`."""
    return make_message


# -- bags with known content, and the layout of an mcap file (for tests that damage them) ---------------

Written = list[tuple[str, int, bytes]]  # (topic, timestamp ns, CDR bytes) in write order


def write_imu_bag(
    path: Path,
    n: int = 1900,
    *,
    chunk_bytes: int = 4096,
    compression: str = "zstd",
    distro: str = "jazzy",
    custom: dict[str, str] | None = None,
    max_bytes: int | None = None,
) -> Written:
    """A bag of `n` messages on /imu (Imu) and every 10th on /status (String), small chunks; what was written."""
    registry = load_registry()
    written: Written = []
    with BagWriter(
        path, chunk_bytes=chunk_bytes, compression=compression, distro=distro, custom_data=custom, max_bytes=max_bytes
    ) as w:
        w.add_topic("/imu", "sensor_msgs/msg/Imu", registry["imu"].qos)
        w.add_topic("/status", "std_msgs/msg/String", registry["command"].qos)
        store = w.typestore
        rng = np.random.default_rng(7)
        for i in range(n):
            topic = "/status" if i % 10 == 9 else "/imu"
            typename = "std_msgs/msg/String" if topic == "/status" else "sensor_msgs/msg/Imu"
            data = bytes(store.serialize_cdr(make_message(store, typename, rng), typename))
            ts = 1_700_000_000_000_000_000 + i * 5_000_000
            w.write(topic, ts, data)
            written.append((topic, ts, data))
    return written


def mcap_layout(path: Path) -> list[tuple[int, int, int]]:
    """(opcode, offset, record length) of every top-level record, data section and summary, up to the footer."""
    data = path.read_bytes()
    out, pos = [], 8
    while pos + 9 <= len(data) - 8:
        op, length = struct.unpack_from("<BQ", data, pos)
        out.append((op, pos, length))
        pos += 9 + length
        if op == 0x02:
            break
    return out


def read_all(bag: Path) -> Written:
    """Every message of `bag` (timestamp order) as plain tuples."""
    with open_bag(bag) as reader:
        return [(m.topic, m.timestamp_ns, bytes(m.data)) for m in reader.messages()]


def copy_bag(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in [dst, *dst.iterdir()]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dst


def flip_bit(path: Path, byte: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[byte] ^= 1 << bit
    path.write_bytes(bytes(data))


@pytest.fixture(scope="session")
def imu_bag() -> Any:
    """`imu_bag(path, n=1900, chunk_bytes=4096, compression="zstd", ...)` -> what was written, in order."""
    return write_imu_bag


@pytest.fixture(scope="session")
def bag_tools() -> Any:
    """Helpers for tests that damage bags: layout (mcap records), read_all, copy_bag, flip_bit."""
    return SimpleNamespace(layout=mcap_layout, read_all=read_all, copy_bag=copy_bag, flip_bit=flip_bit)
