"""Bag-test fixtures: `make_message` builds a message of any known type with random field values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rosbags.typesys.store import Typestore

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
