"""`roadloop bag reindex`: rebuild metadata.yaml from what a bag's storage files verifiably hold.

Like `ros2 bag reindex`, with three rules:
- Every count it writes is a count it read: each storage file is read through (mcap chunks
  CRC-checked), never taken from an index that may be damaged. A file that cannot be read to its
  end is refused (one line, nothing written), with how to keep its intact prefix.
- It finishes what a killed writer left: each `*.mcap.active` file is rewritten as a complete
  `*.mcap` holding every message up to its last intact chunk (temp name + fsync + rename, then the
  `.active` file is removed); a file still locked by a live writer is refused; an empty one (the
  writer was killed before its first byte) is removed. A plain `.mcap` whose summary is damaged
  but whose data section verifies to its end is rewritten with a fresh summary.
- Byte-stable: metadata.yaml that already says what the files hold is left untouched, and the
  same bag always gives the same bytes (so a healthy bag's content address never changes).

The metadata version follows the target distro: `distro=` (humble: 5, jazzy: 9), else what the bag
says of itself (its metadata.yaml, else the metadata embedded in its files), else `default_distro`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mcap.records import Channel, DataEnd, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter

from roadloop_core.bag.mcap_chunks import MAGIC
from roadloop_core.bag.metadata import (
    BagMetadata,
    distro_for_version,
    dump_metadata,
    parse_embedded,
    parse_metadata,
    read_metadata,
    version_for_distro,
    write_metadata,
)
from roadloop_core.bag.plugins import open_storage
from roadloop_core.bag.storage import ACTIVE_SUFFIX, STORAGE_SUFFIXES
from roadloop_core.bag.types import FileInfo, TopicInfo
from roadloop_core.bag.writer import CUSTOM_DATA_RECORD, LIBRARY
from roadloop_core.errors import BagDamagedError, BagError, BagUnfinishedError
from roadloop_core.fsio import file_kind, fsync_dir

__all__ = ["RecoveryReport", "recover_active_file", "reindex_bag"]

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class RecoveryReport:
    """What reindex did to one storage file besides reading it."""

    source: Path
    target: Path
    messages: int
    stopped_by: str  # why the copy stopped before the end ("" = it reached the end)
    action: str = "recovered"  # recovered (.active -> .mcap) | repaired (fresh summary) | removed (empty .active)


@dataclass
class _Read:
    """One storage file read through: per-topic counts and time range of what was read."""

    topics: list[TopicInfo]
    info: FileInfo
    custom: dict[str, str]
    embedded: BagMetadata | None


def _natural_key(p: Path) -> tuple[str, int, str]:
    m = re.match(r"^(.*?)(\d+)(\.[^.]+)$", p.name)
    return (m.group(1), int(m.group(2)), m.group(3)) if m else (p.name, -1, "")


def _copy_records(src: Path, out: Path) -> tuple[int, str]:
    """Copy the intact records of mcap `src` into a new complete mcap `out`: (messages, why it stopped)."""
    count, stopped = 0, ""
    with open(src, "rb") as stream, open(out, "wb") as f:
        writer = McapWriter(f, compression=CompressionType.ZSTD, enable_data_crcs=True)
        writer.start(profile="ros2", library=LIBRARY)
        schemas: dict[int, int] = {}
        channels: dict[int, int] = {}
        try:
            for rec in StreamReader(stream, validate_crcs=True).records:
                if isinstance(rec, Schema) and rec.id not in schemas:
                    schemas[rec.id] = writer.register_schema(rec.name, rec.encoding, rec.data)
                elif isinstance(rec, Channel) and rec.id not in channels:
                    sid = schemas.get(rec.schema_id, 0)
                    channels[rec.id] = writer.register_channel(rec.topic, rec.message_encoding, sid, rec.metadata)
                elif isinstance(rec, Message) and rec.channel_id in channels:
                    writer.add_message(channels[rec.channel_id], rec.log_time, rec.data, rec.publish_time, rec.sequence)
                    count += 1
                elif isinstance(rec, Metadata) and rec.name == CUSTOM_DATA_RECORD:
                    writer.add_metadata(rec.name, rec.metadata)
                elif isinstance(rec, DataEnd):
                    break  # the data section is complete; what follows is the (old) summary
        except Exception as err:  # the damaged tail: everything before it is kept
            stopped = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        writer.finish()  # type: ignore[no-untyped-call]
        f.flush()
        os.fsync(f.fileno())
    return count, stopped


def _lock_or_refuse(f: IO[bytes], active: Path) -> None:
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:
        raise BagUnfinishedError(f"{active}: still being written by a running process; stop it first") from err


def _is_empty_start(active: Path) -> bool:
    """True when the file holds no more than the start of the mcap magic (the writer died before writing)."""
    with open(active, "rb") as f:
        head = f.read(len(MAGIC) + 1)
    return len(head) <= len(MAGIC) and MAGIC.startswith(head)


def recover_active_file(active: Path) -> RecoveryReport:
    """Rewrite an unfinished `X.mcap.active` as a complete `X.mcap` (intact prefix), remove the original."""
    final = active.with_name(active.name.removesuffix(ACTIVE_SUFFIX))
    if final.suffix != ".mcap":
        raise BagError(f"{active}: only unfinished .mcap files can be recovered")
    tmp = final.with_name(f".{final.name}.recover.tmp")
    with open(active, "rb") as src:
        _lock_or_refuse(src, active)  # before anything else: a live writer's new file may not hold its magic yet
        if _is_empty_start(active):
            active.unlink()
            fsync_dir(active.parent)
            return RecoveryReport(active, active, 0, "empty: the writer was killed before it wrote a record", "removed")
        if src.read(len(MAGIC)) != MAGIC:
            raise BagError(
                f"{active}: not an mcap file (bad magic), so there is nothing in it to recover; "
                "delete it (or move it out of the bag folder) and reindex again"
            )
        try:
            count, stopped = _copy_records(active, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, final)
        os.unlink(active)
    fsync_dir(final.parent)
    return RecoveryReport(active, final, count, stopped)


def _repair(path: Path, expected: int, why: str) -> RecoveryReport:
    """Rewrite a `.mcap` whose data section verified to its end but whose summary did not."""
    tmp = path.with_name(f".{path.name}.repair.tmp")
    try:
        count, stopped = _copy_records(path, tmp)
        if stopped or count != expected:
            raise BagDamagedError(
                f"{path}: cannot rebuild its summary ({why}): copying stopped after {count} of {expected} messages "
                f"({stopped or 'short'}); nothing was written"
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return RecoveryReport(path, path, count, "", "repaired")


def _keep_hint(f: Path) -> str:
    if f.suffix != ".mcap":
        return ""
    return f" (to keep its intact part, rename it {f.name}{ACTIVE_SUFFIX} and reindex again)"


def _read_through(f: Path) -> tuple[_Read, str]:
    """Read every message of storage file `f`: (what it holds, why its summary needs rebuilding or "")."""
    storage = open_storage(f)
    try:
        counts: dict[int, int] = {}
        lo = hi = 0
        try:
            for tid, ts, _ in storage.messages():
                if counts:
                    lo, hi = min(lo, ts), max(hi, ts)
                else:
                    lo = hi = ts
                counts[tid] = counts.get(tid, 0) + 1
        except BagError as err:
            raise BagDamagedError(f"{err}; nothing was written{_keep_hint(f)}") from err
        whole = storage.verify_file()
        if whole:
            raise BagDamagedError(f"{whole}; nothing was written{_keep_hint(f)}")
        declared = {t.id for t in storage.topics}
        undeclared = sum(n for tid, n in counts.items() if tid not in declared)
        mismatch = [t for t in storage.topics if counts.get(t.id, 0) != t.message_count]
        needs = ""
        if storage.problems:
            needs = storage.problems[0]
        elif undeclared or mismatch:
            needs = (
                f"{f}: its index disagrees with its chunks "
                f"({undeclared} undeclared, {len(mismatch)} topic(s) miscounted)"
            )
        if needs and storage.storage_id != "mcap":
            raise BagDamagedError(f"{needs}; reindex cannot repair a {storage.storage_id} file; nothing was written")
        topics = [
            TopicInfo(
                t.name,
                t.type,
                counts.get(t.id, 0),
                t.serialization_format or "cdr",
                t.offered_qos_profiles,
                t.type_description_hash,
            )
            for t in storage.topics
        ]
        n = sum(counts.get(t.id, 0) for t in storage.topics)
        embedded = parse_embedded(storage.embedded_metadata, str(f)) if storage.embedded_metadata else None
        return _Read(topics, FileInfo(f.name, lo, hi - lo, n), dict(storage.custom_data), embedded), needs
    finally:
        storage.close()


def _check_folder(bag: Path) -> None:
    try:
        mode = os.stat(bag).st_mode
    except FileNotFoundError:
        raise BagError(f"{bag}: no such file or directory") from None
    if not stat.S_ISDIR(mode):
        raise BagError(f"{bag}: not a bag folder (reindex works on the folder holding the storage files)")
    if not os.access(bag, os.W_OK):
        raise BagError(f"{bag}: folder is not writable; copy the bag somewhere writable and reindex the copy")
    meta = bag / "metadata.yaml"
    if os.path.lexists(meta):
        try:
            mode = os.stat(meta).st_mode
        except OSError:
            mode = 0
        if not stat.S_ISREG(mode):
            what = file_kind(mode) if mode else "a dangling link"
            raise BagError(f"{meta}: {what}, not a file; move it away, then reindex")


def _existing(bag: Path) -> BagMetadata | None:
    if not (bag / "metadata.yaml").exists():
        return None
    with contextlib.suppress(BagError):  # a malformed metadata.yaml is what reindex replaces
        return read_metadata(bag)
    return None


def _version(
    distro: str | None, existing: BagMetadata | None, embedded: BagMetadata | None, default: str
) -> tuple[int, str]:
    """(metadata version, ros_distro to write) for the target distro, else what the bag says, else `default`."""
    if distro:
        return version_for_distro(distro), distro.lower()
    for own in (existing, embedded):
        if own is not None:
            version = 5 if own.version <= 5 else 9
            return version, own.ros_distro or distro_for_version(own.version)
    return version_for_distro(default), default.lower()


def reindex_bag(
    path: Path | str, progress: Progress | None = None, *, distro: str | None = None, default_distro: str = "jazzy"
) -> tuple[BagMetadata, list[RecoveryReport]]:
    """Recover unfinished files, verify every storage file, then write metadata.yaml (if it changed)."""
    bag = Path(path)
    _check_folder(bag)
    if distro:
        version_for_distro(distro)  # an unknown name fails before anything is touched
    existing = _existing(bag)
    actives = sorted(bag.glob(f"*{ACTIVE_SUFFIX}"), key=_natural_key)
    for active in actives:  # every lock before any write: a live writer means nothing is touched
        with open(active, "rb") as stream:
            _lock_or_refuse(stream, active)
    plain = sorted((p for p in bag.iterdir() if p.is_file() and p.suffix in STORAGE_SUFFIXES), key=_natural_key)
    if not plain and actives and all(_is_empty_start(a) for a in actives):
        raise BagError(
            f"{bag}: nothing to reindex: {', '.join(a.name for a in actives)} is empty (the writer was killed before "
            "it wrote anything); delete it"
        )
    reads: dict[Path, _Read] = {}
    repairs: list[tuple[Path, int, str]] = []
    for i, f in enumerate(plain):  # verify what exists before changing anything
        if progress:
            progress(f"verifying {f.name}", i, len(plain))
        reads[f], needs = _read_through(f)
        if needs:
            repairs.append((f, reads[f].info.message_count, needs))
    reports = []
    for i, active in enumerate(actives):
        if progress:
            progress(f"recovering {active.name}", i, len(actives))
        report = recover_active_file(active)
        reports.append(report)
        if report.action == "recovered":
            reads[report.target], _ = _read_through(report.target)
    for f, expected, why in repairs:
        if progress:
            progress(f"rewriting the summary of {f.name}", 0, 1)
        reports.append(_repair(f, expected, why))
    files = sorted(reads, key=_natural_key)
    if not files:
        raise BagError(f"{bag}: no .mcap or .db3 storage files to reindex")
    kinds = {STORAGE_SUFFIXES[f.suffix] for f in files}
    if len(kinds) > 1:
        raise BagError(f"{bag}: mixes storage plugins ({', '.join(sorted(kinds))}); one bag uses one")
    topics: dict[tuple[str, str], TopicInfo] = {}
    counts: dict[tuple[str, str], int] = {}
    custom: dict[str, str] = {}
    embedded = None
    for f in files:
        r = reads[f]
        for t in r.topics:
            key = (t.name, t.type)
            counts[key] = counts.get(key, 0) + t.message_count
            if key not in topics or (t.type_description_hash and not topics[key].type_description_hash):
                topics[key] = t
        if r.embedded is not None:
            custom.update(r.embedded.custom_data)
            embedded = embedded or r.embedded
        custom.update(r.custom)
    infos = [reads[f].info for f in files]
    counted = [x for x in infos if x.message_count]
    start = min((x.start_ns for x in counted), default=0)
    end = max((x.start_ns + x.duration_ns for x in counted), default=0)
    version, ros_distro = _version(distro, existing, embedded, default_distro)
    meta = BagMetadata(
        version=version,
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
        ros_distro=ros_distro,
    )
    text = dump_metadata(meta)
    if existing is None or parse_metadata(text, "rebuilt metadata") != existing:
        if progress:
            progress("writing metadata.yaml", len(files), len(files))
        write_metadata(bag, meta)
    return meta, reports
