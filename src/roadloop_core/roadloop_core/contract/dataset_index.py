"""DATASET/index.json: the dataset index as typed objects, with its one writer and its one reader.

The index is written last (the dataset exists iff it does) by `write_dataset_index`, which the
dataset builder calls; everything that opens a dataset (`roadloop data info`, the torch loaders,
the trainer, the exporter's parity check, the loop's summary) reads it with `read_dataset_index`.
The JSON form is fixed: the same DatasetIndex always gives the same bytes, so the same inputs
give the same dataset id and identical files. What the arrays hold: `roadloop_core.contract.tensors`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import ConfigError, RoadloopError
from roadloop_core.fsio import atomic_write_json

__all__ = [
    "DATASET_FORMAT",
    "INDEX_FILE",
    "SPLITS",
    "ArrayStats",
    "DatasetIndex",
    "DatasetIndexError",
    "Shard",
    "Skipped",
    "Source",
    "Split",
    "TimeBlock",
    "read_dataset_index",
    "write_dataset_index",
]

DATASET_FORMAT = "roadloop-dataset/1"
INDEX_FILE = "index.json"
SPLITS = ("train", "val")

T = TypeVar("T")


class DatasetIndexError(RoadloopError):
    """A dataset index is missing, unreadable, of another format, or has a missing or ill-typed field."""


@dataclass(frozen=True)
class Shard:
    file: str  # relative to the dataset folder: shards/<split>-<NNNNN>.npz
    count: int
    sha256: str


@dataclass(frozen=True)
class Split:
    count: int
    shards: tuple[Shard, ...]


@dataclass(frozen=True)
class ArrayStats:
    """Mean and std (nested lists shaped like one sample) over the `stats_split`; arrays with per-step
    statistics (waypoints) hold the per-coordinate figures pooled over the steps in mean/std."""

    count: int
    mean: list[Any]
    std: list[Any]
    per_step_mean: list[Any] | None = None
    per_step_std: list[Any] | None = None


@dataclass(frozen=True)
class Source:
    path: str
    sha256: str
    split: str
    samples: int


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class TimeBlock:
    """A stretch of one source bag in one split (datasets split by time inside bags)."""

    source: int  # index into `sources`
    split: str
    start_ns: int  # header-stamp clock, [start, end)
    end_ns: int
    samples: int  # kept (samples within the gap of a block of the other split are dropped)


@dataclass(frozen=True)
class DatasetIndex:
    """What index.json says (its JSON form: `to_json`/`from_json`)."""

    dataset_id: str
    count: int
    arrays: tuple[str, ...]  # shard members, in file order
    observation: ObservationSpec  # also the labels: label_horizon waypoints every label_dt_s
    topics: dict[str, tuple[str, str]]  # registry role -> (topic name, message type) the bags were read with
    splits: dict[str, Split]
    stats: dict[str, ArrayStats]
    stats_split: str
    sources: tuple[Source, ...]
    drops: dict[str, int]
    skipped: tuple[Skipped, ...]
    config: dict[str, Any] = field(default_factory=dict)  # the builder's configuration as it ran (provenance)
    format: str = DATASET_FORMAT
    # how the splits were made: "bag" (whole bags; `Source.split`) or "time" (blocks inside bags, `time_blocks`,
    # with at least `split_gap_s` between samples of different splits: label horizon + ego history)
    split_by: str = "bag"
    split_gap_s: float = 0.0
    time_blocks: tuple[TimeBlock, ...] = ()
    # where the values of an array come from when it is not plain from its observed topic (labels, a
    # hindsight route target): array name -> a sentence naming the role, topic and method
    array_sources: dict[str, str] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        try:
            return self.splits[name]
        except KeyError:
            raise DatasetIndexError(f"no split '{name}' (the dataset has {', '.join(self.splits)})") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "dataset_id": self.dataset_id,
            "count": self.count,
            "arrays": list(self.arrays),
            "observation": self.observation.to_dict(),
            "label": {"horizon": self.observation.label_horizon, "dt": self.observation.label_dt_s},
            "topics": {role: list(pair) for role, pair in self.topics.items()},
            "splits": {
                name: {"count": s.count, "shards": [_plain(sh) for sh in s.shards]} for name, s in self.splits.items()
            },
            "stats": {name: _plain(st) for name, st in self.stats.items()},
            "stats_split": self.stats_split,
            "sources": [_plain(s) for s in self.sources],
            "drops": dict(self.drops),
            "skipped": [_plain(s) for s in self.skipped],
            "config": self.config,
            "split_by": self.split_by,
            "split_gap_s": self.split_gap_s,
            "time_blocks": [_plain(b) for b in self.time_blocks],
            "array_sources": dict(self.array_sources),
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> DatasetIndex:
        """Parse the JSON form; any missing or ill-typed field is one DatasetIndexError naming it."""
        doc = _Doc(where)
        top = doc.mapping(raw, "")
        fmt = top.get("format")
        if fmt != DATASET_FORMAT:
            raise DatasetIndexError(f"{where}: format is {fmt!r}, expected {DATASET_FORMAT!r}")
        try:
            obs_raw = doc.get(top, "observation", dict)
            observation = ObservationSpec.from_dict(obs_raw, f"{where}: observation", complete=True)
        except ConfigError as err:
            raise DatasetIndexError(str(err)) from None
        label = doc.get(top, "label", dict)
        horizon, dt = doc.get(label, "horizon", int, "label"), doc.get(label, "dt", float, "label")
        if (horizon, dt) != (observation.label_horizon, observation.label_dt_s):
            raise DatasetIndexError(
                f"{where}: label {{horizon: {horizon}, dt: {dt}}} disagrees with observation.label_horizon "
                f"{observation.label_horizon}, label_dt_s {observation.label_dt_s}"
            )
        splits = {
            name: Split(
                doc.get(s, "count", int, f"splits.{name}"),
                tuple(
                    doc.record(Shard, sh, f"splits.{name}.shards[{i}]")
                    for i, sh in enumerate(doc.get(s, "shards", list, f"splits.{name}"))
                ),
            )
            for name, s in doc.entries(doc.get(top, "splits", dict), "splits", dict)
        }
        return cls(
            dataset_id=doc.get(top, "dataset_id", str),
            count=doc.get(top, "count", int),
            arrays=tuple(doc.items(doc.get(top, "arrays", list), "arrays", str)),
            observation=observation,
            topics={
                role: _pair(doc, pair, f"topics.{role}")
                for role, pair in doc.entries(doc.get(top, "topics", dict), "topics", list)
            },
            splits=splits,
            stats={
                name: doc.record(ArrayStats, st, f"stats.{name}")
                for name, st in doc.entries(doc.get(top, "stats", dict), "stats", dict)
            },
            stats_split=doc.get(top, "stats_split", str),
            sources=tuple(doc.record(Source, s, f"sources[{i}]") for i, s in enumerate(doc.get(top, "sources", list))),
            drops=dict(doc.entries(doc.get(top, "drops", dict), "drops", int)),
            skipped=tuple(doc.record(Skipped, s, f"skipped[{i}]") for i, s in enumerate(doc.get(top, "skipped", list))),
            config=doc.get(top, "config", dict),
            # written since the time splits; an index without them was split by bag
            split_by=doc.get(top, "split_by", str) if "split_by" in top else "bag",
            split_gap_s=doc.get(top, "split_gap_s", float) if "split_gap_s" in top else 0.0,
            time_blocks=tuple(
                doc.record(TimeBlock, b, f"time_blocks[{i}]")
                for i, b in enumerate(doc.get(top, "time_blocks", list) if "time_blocks" in top else [])
            ),
            array_sources=dict(doc.entries(doc.get(top, "array_sources", dict), "array_sources", str))
            if "array_sources" in top
            else {},
        )


def write_dataset_index(root: Path, index: DatasetIndex) -> Path:
    """DATASET/index.json, atomically (temp + fsync + rename); the only writer of the format."""
    path = root / INDEX_FILE
    atomic_write_json(path, index.to_json(), indent=1)
    return path


def read_dataset_index(root: Path) -> DatasetIndex:
    """DATASET/index.json as a DatasetIndex; the only reader of the format."""
    path = root / INDEX_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetIndexError(
            f"{path}: no dataset here (index.json is written last; a build may be unfinished)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetIndexError(f"{path}: unreadable dataset index: {err}") from None
    return DatasetIndex.from_json(raw, str(path))


# -- parsing -------------------------------------------------------------------------------------

_JSON_TYPES: dict[type, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), dict: (dict,)}
_JSON_TYPES[list] = (list,)
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", dict: "a mapping", list: "a list"}


def _plain(obj: Any) -> dict[str, Any]:
    """A record's JSON object: its fields in order, absent optional ones left out."""
    return {k: v for k, v in vars(obj).items() if v is not None}


def _pair(doc: _Doc, value: list[Any], where: str) -> tuple[str, str]:
    if len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise doc.fail(where, "must be [topic name, message type]")
    return str(value[0]), str(value[1])


@cache
def _record_fields(cls: type) -> dict[str, tuple[type, bool]]:
    """field name -> (JSON type, required) of a record dataclass, from its annotations."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[type, bool]] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in _UNIONS else [tp]
        base = typing.get_origin(args[0]) or args[0]
        out[f.name] = (base, f.default is dataclasses.MISSING)
    return out


_UNIONS = (typing.Union, types.UnionType)


class _Doc:
    """Typed field access into the parsed JSON, with errors naming the file and the dotted field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field_path: str, problem: str) -> DatasetIndexError:
        return DatasetIndexError(f"{self.where}: field '{field_path}' {problem}")

    def mapping(self, value: Any, field_path: str) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        if not field_path:
            raise DatasetIndexError(f"{self.where}: expected a JSON object")
        raise self.fail(field_path, "must be a mapping")

    def check(self, value: Any, tp: type[T], field_path: str) -> T:
        if not isinstance(value, _JSON_TYPES[tp]) or isinstance(value, bool):
            raise self.fail(field_path, f"must be {_TYPE_NAMES[tp]}, got {str(value)[:60]!r}")
        out: Any = value
        return float(out) if tp is float else out  # type: ignore[return-value]

    def get(self, obj: Mapping[str, Any], key: str, tp: type[T], parent: str = "") -> T:
        path = f"{parent}.{key}" if parent else key
        if key not in obj:
            raise self.fail(path, "missing")
        return self.check(obj[key], tp, path)

    def entries(self, obj: dict[str, Any], parent: str, tp: type[T]) -> list[tuple[str, T]]:
        return [(str(k), self.check(v, tp, f"{parent}.{k}")) for k, v in obj.items()]

    def items(self, values: list[Any], parent: str, tp: type[T]) -> list[T]:
        return [self.check(v, tp, f"{parent}[{i}]") for i, v in enumerate(values)]

    def record(self, cls: type[T], value: Any, field_path: str) -> T:
        """A record dataclass from a JSON object: fields without a default are required; all are typed."""
        obj = self.mapping(value, field_path)
        kwargs: dict[str, Any] = {}
        for name, (tp, required) in _record_fields(typing.cast(type, cls)).items():
            if name in obj:
                kwargs[name] = self.check(obj[name], tp, f"{field_path}.{name}")
            elif required:
                raise self.fail(f"{field_path}.{name}", "missing")
        return cls(**kwargs)
