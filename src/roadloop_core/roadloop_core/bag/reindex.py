"""`roadloop bag reindex`: rebuild metadata.yaml from a bag's storage files (like `ros2 bag reindex`).

Also finishes what a killed writer left: each `*.mcap.active` file is rewritten as a
complete `*.mcap` holding every message up to its last intact chunk (temp name + fsync
+ rename, then the `.active` file is removed). A file still locked by a live writer is
refused. metadata.yaml is written last, atomically.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable
from pathlib import Path

from mcap.records import Channel, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter

from roadloop_core.bag.metadata import BagMetadata, parse_embedded, write_metadata
from roadloop_core.bag.plugins import open_storage
from roadloop_core.bag.storage import ACTIVE_SUFFIX, STORAGE_SUFFIXES
from roadloop_core.bag.types import FileInfo, TopicInfo
from roadloop_core.bag.writer import CUSTOM_DATA_RECORD, LIBRARY
from roadloop_core.errors import BagDamagedError, BagError, BagUnfinishedError
from roadloop_core.fsio import fsync_dir

__all__ = ["RecoveryReport", "recover_active_file", "reindex_bag"]

Progress = Callable[[str, int, int], None]  # (what, done, total)


class RecoveryReport:
    def __init__(self, source: Path, target: Path, messages: int, stopped_by: str) -> None:
        self.source, self.target, self.messages, self.stopped_by = source, target, messages, stopped_by


def _natural_key(p: Path) -> tuple[str, int, str]:
    m = re.match(r"^(.*?)(\d+)(\.[^.]+)$", p.name)
    return (m.group(1), int(m.group(2)), m.group(3)) if m else (p.name, -1, "")


def recover_active_file(active: Path) -> RecoveryReport:
    """Rewrite an unfinished `X.mcap.active` as a complete `X.mcap` (intact prefix), remove the original."""
    final = active.with_name(active.name.removesuffix(ACTIVE_SUFFIX))
    if final.suffix != ".mcap":
        raise BagError(f"{active}: only unfinished .mcap files can be recovered")
    tmp = final.with_name(f".{final.name}.recover.tmp")
    with open(active, "rb") as src:
        if src.read(8) != b"\x89MCAP0\r\n":
            raise BagError(f"{active}: not an mcap file (bad magic); cannot recover it")
        src.seek(0)
        try:
            fcntl.flock(src.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            raise BagUnfinishedError(f"{active}: still being written by a running process; stop it first") from err
        count, stopped = 0, ""
        with open(tmp, "wb") as out:
            writer = McapWriter(out, compression=CompressionType.ZSTD)
            writer.start(profile="ros2", library=LIBRARY)
            schemas: dict[int, int] = {}
            channels: dict[int, int] = {}
            try:
                for rec in StreamReader(src, validate_crcs=True).records:
                    if isinstance(rec, Schema) and rec.id not in schemas:
                        schemas[rec.id] = writer.register_schema(rec.name, rec.encoding, rec.data)
                    elif isinstance(rec, Channel) and rec.id not in channels:
                        sid = schemas.get(rec.schema_id, 0)
                        channels[rec.id] = writer.register_channel(rec.topic, rec.message_encoding, sid, rec.metadata)
                    elif isinstance(rec, Message) and rec.channel_id in channels:
                        writer.add_message(
                            channels[rec.channel_id], rec.log_time, rec.data, rec.publish_time, rec.sequence
                        )
                        count += 1
                    elif isinstance(rec, Metadata) and rec.name == CUSTOM_DATA_RECORD:
                        writer.add_metadata(rec.name, rec.metadata)
            except Exception as err:  # the damaged tail: everything before it is kept
                stopped = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            writer.finish()  # type: ignore[no-untyped-call]
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, final)
        os.unlink(active)
    fsync_dir(final.parent)
    return RecoveryReport(active, final, count, stopped)


def reindex_bag(path: Path | str, progress: Progress | None = None) -> tuple[BagMetadata, list[RecoveryReport]]:
    """Recover unfinished files, then write metadata.yaml for the bag folder `path`."""
    bag = Path(path)
    if not bag.exists():
        raise BagError(f"{bag}: no such file or directory")
    if not bag.is_dir():
        raise BagError(f"{bag}: not a bag folder (reindex works on the folder holding the storage files)")
    if not os.access(bag, os.W_OK):
        raise BagError(f"{bag}: folder is not writable; copy the bag somewhere writable and reindex the copy")
    reports = []
    actives = sorted(bag.glob(f"*{ACTIVE_SUFFIX}"), key=_natural_key)
    for i, active in enumerate(actives):
        if progress:
            progress(f"recovering {active.name}", i, len(actives))
        reports.append(recover_active_file(active))
    files = sorted((p for p in bag.iterdir() if p.is_file() and p.suffix in STORAGE_SUFFIXES), key=_natural_key)
    if not files:
        raise BagError(f"{bag}: no .mcap or .db3 storage files to reindex")
    kinds = {STORAGE_SUFFIXES[f.suffix] for f in files}
    if len(kinds) > 1:
        raise BagError(f"{bag}: mixes storage plugins ({', '.join(sorted(kinds))}); one bag uses one")
    topics: dict[tuple[str, str], TopicInfo] = {}
    counts: dict[tuple[str, str], int] = {}
    hashes: dict[tuple[str, str], str] = {}
    infos: list[FileInfo] = []
    custom: dict[str, str] = {}
    distro = ""
    for i, f in enumerate(files):
        if progress:
            progress(f"indexing {f.name}", i, len(files))
        storage = open_storage(f)
        try:
            if storage.damage:
                raise BagDamagedError(f"{f}: damaged ({storage.damage}); nothing was written")
            n = 0
            for t in storage.topics:
                key = (t.name, t.type)
                counts[key] = counts.get(key, 0) + t.message_count
                n += t.message_count
                if t.type_description_hash:
                    hashes[key] = t.type_description_hash
                topics.setdefault(
                    key,
                    TopicInfo(
                        t.name,
                        t.type,
                        0,
                        t.serialization_format or "cdr",
                        t.offered_qos_profiles,
                        t.type_description_hash,
                    ),
                )
            lo, hi = storage.time_range
            infos.append(FileInfo(f.name, lo, hi - lo, n))
            embedded = parse_embedded(storage.embedded_metadata, str(f)) if storage.embedded_metadata else None
            if embedded is not None:
                custom.update(embedded.custom_data)
                distro = distro or embedded.ros_distro
            custom.update(storage.custom_data)
        finally:
            storage.close()
    counted = [x for x in infos if x.message_count]
    start = min((x.start_ns for x in counted), default=0)
    end = max((x.start_ns + x.duration_ns for x in counted), default=0)
    meta = BagMetadata(
        version=9,
        storage_identifier=kinds.pop(),
        relative_file_paths=[f.name for f in files],
        start_ns=start,
        duration_ns=end - start,
        message_count=sum(x.message_count for x in infos),
        topics=[
            TopicInfo(
                t.name, t.type, counts[k], t.serialization_format, t.offered_qos_profiles, t.type_description_hash
            )
            for k, t in topics.items()
        ],
        files=infos,
        custom_data=custom,
        ros_distro=distro,
    )
    if progress:
        progress("writing metadata.yaml", len(files), len(files))
    write_metadata(bag, meta)
    return meta, reports
