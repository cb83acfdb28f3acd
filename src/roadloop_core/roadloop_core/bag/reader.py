"""Bag reading: metadata.yaml + storage backends -> raw messages in timestamp order -> decode.

Every storage file of a bag is opened through the StorageReader protocol; messages of
split bags are merged by timestamp; file- and message-compressed (zstd) bags are
decompressed on the way. Types the typestore lacks are registered from the definitions
the bag carries (mcap schemas, the sqlite3 `message_definitions` table), including
service-event types built from `.srv` text. Types the typestore has are decoded with the
typestore (the selected distro): some recorders stored truncated definitions (the
rosbag2 `talker` sqlite3 bag), so the store is the safer source for what it knows.

What is read is verified, never assumed: every storage file's messages are counted as they are
read and compared, at the end of the pass, with the file's own index (mcap summary statistics,
sqlite3 row counts) and with metadata.yaml; mcap chunks are CRC-checked. A mismatch is a
BagDamagedError (and a line in `problems`), never a short read that looks complete.
"""

from __future__ import annotations

import heapq
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

import zstandard
from rosbags.typesys.store import Typestore

from roadloop_core.bag.metadata import NO_START, BagMetadata, distro_for_version, read_metadata
from roadloop_core.bag.plugins import open_storage
from roadloop_core.bag.storage import ACTIVE_SUFFIX, STORAGE_SUFFIXES, StorageReader, storage_id_for
from roadloop_core.bag.types import BagInfo, RawMessage, TopicInfo
from roadloop_core.errors import BagDamagedError, BagError, BagUnfinishedError, BagUnsupportedError, TypesysError
from roadloop_core.fsio import file_kind
from roadloop_core.typesys import make_typestore, register_definition

__all__ = ["ACTIVE_SUFFIX", "BagReader", "open_bag"]

SUPPORTED_FORMATS = ("cdr",)


def _storage_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in STORAGE_SUFFIXES)


def _active_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(ACTIVE_SUFFIX))


class BagReader:
    """A rosbag2 bag (a folder with metadata.yaml, or one .mcap/.db3 file) opened for reading.

    `problems` lists, one line each, what disagrees or was found damaged but could be worked around:
    filled while opening (metadata.yaml counts vs the storage files' own indexes, a damaged mcap
    summary read by a linear scan instead, rows on undeclared topics) and extended by every complete
    pass of `messages()` (what was read vs metadata.yaml). A consumer that must not take a partial or
    inconsistent bag (the dataset builder) refuses a bag whose `problems` is not empty; `messages()`
    itself raises BagDamagedError when what it read falls short of what a file's index promised.
    """

    def __init__(self, path: Path | str, distro: str = "jazzy") -> None:
        self.path = Path(path)
        self._storages: list[StorageReader] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.problems: list[str] = []
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            raise BagError(f"{self.path}: no such file or directory") from None
        except OSError as err:
            raise BagError(f"{self.path}: cannot read: {err.strerror}") from None
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a FIFO would block the first read: never opened
            raise BagError(f"{self.path}: not a bag: {file_kind(mode)}, not a bag folder or a .mcap/.db3 file")
        try:
            self._open(distro)
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------------

    def _open(self, distro: str) -> None:
        meta: BagMetadata | None
        if self.path.is_file():
            if storage_id_for(self.path) is None:
                raise BagError(
                    f"{self.path}: not a bag: expected a bag folder with metadata.yaml or a .mcap/.db3 storage file"
                )
            files = [self.path]
            meta = None
        else:
            if not (self.path / "metadata.yaml").exists():
                if _storage_files(self.path) or _active_files(self.path):
                    raise BagUnfinishedError(
                        f"{self.path}: no metadata.yaml (the bag was not closed, or was copied without it); "
                        f"run `roadloop bag reindex {self.path}` to rebuild it from its storage files"
                    )
                raise BagError(f"{self.path}: not a bag: no metadata.yaml and no .mcap/.db3 storage files")
            meta = read_metadata(self.path)
            files = self._files_of(meta)
        self.metadata = meta
        self._check_formats(meta.topics if meta else [])
        if meta and meta.compression_mode == "file":
            files = self._decompress_files(files)
        for f in files:
            self._storages.append(open_storage(f))
            self.problems.extend(self._storages[-1].problems)
        self._check_storage_ids(meta)
        self._build_topics(meta)
        self.typestore: Typestore = make_typestore(distro)
        self._undecodable: dict[str, str] = {}
        self._register_types()

    def _files_of(self, meta: BagMetadata) -> list[Path]:
        where = self.path / "metadata.yaml"
        if meta.storage_identifier not in ("sqlite3", "mcap"):
            raise BagUnsupportedError(
                f"{where}: storage plugin '{meta.storage_identifier}' is not supported (sqlite3, mcap)"
            )
        if meta.compression_mode not in ("", "file", "message"):
            raise BagError(f"{where}: unknown compression_mode '{meta.compression_mode}'")
        if meta.compression_mode and meta.compression_format != "zstd":
            raise BagUnsupportedError(
                f"{where}: compression format '{meta.compression_format}' is not supported (zstd)"
            )
        if not meta.relative_file_paths and meta.message_count:
            raise BagError(f"{where}: relative_file_paths is empty but message_count is {meta.message_count}")
        files = [self.path / PurePath(p).name for p in meta.relative_file_paths]
        if len({f.name for f in files}) != len(files):  # parse_metadata refuses this too; never read a file twice
            raise BagError(f"{where}: relative_file_paths lists a storage file twice")
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise BagError(f"{where}: storage file(s) missing: {', '.join(missing)}")
        for f in files:
            mode = f.stat().st_mode
            if not stat.S_ISREG(mode):
                raise BagError(f"{f}: {file_kind(mode)}, not a storage file")
        return files

    def _check_formats(self, topics: Iterable[Any]) -> None:
        for t in topics:
            if t.serialization_format not in SUPPORTED_FORMATS:
                where = self.path / "metadata.yaml" if self.path.is_dir() else self.path
                raise BagUnsupportedError(
                    f"{where}: topic {t.name} uses serialization format '{t.serialization_format}'; "
                    f"only {', '.join(SUPPORTED_FORMATS)} can be read"
                )

    def _check_storage_ids(self, meta: BagMetadata | None) -> None:
        for s in self._storages:
            if meta and s.storage_id != meta.storage_identifier:
                raise BagError(f"{s.path}: is {s.storage_id} but metadata.yaml says {meta.storage_identifier}")
            self._check_formats(
                [t for t in s.topics if t.serialization_format or s.storage_id == "sqlite3"]  # mcap: "" = schemaless
            )

    def _decompress_files(self, files: list[Path]) -> list[Path]:
        self._tmp = tempfile.TemporaryDirectory(prefix="roadloop-bag-")
        out = []
        for f in files:
            target = Path(self._tmp.name) / f.name.removesuffix(".zstd")
            try:
                with open(f, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(zstandard.ZstdDecompressor().stream_reader(src), dst, 1 << 20)
            except (zstandard.ZstdError, OSError) as err:
                raise BagDamagedError(f"{f}: cannot decompress (file compression zstd): {err}") from err
            out.append(target)
        return out

    def _build_topics(self, meta: BagMetadata | None) -> None:
        """Join storage topics to metadata topics by (name, type) and check every count."""
        self._topic_of: list[dict[int, tuple[str, str]]] = []
        counts: dict[tuple[str, str], int] = {}
        first: dict[tuple[str, str], Any] = {}
        for s in self._storages:
            ids = {}
            for t in s.topics:
                key = (t.name, t.type)
                ids[t.id] = key
                counts[key] = counts.get(key, 0) + t.message_count
                first.setdefault(key, t)
            self._topic_of.append(ids)
        topics: dict[tuple[str, str], TopicInfo] = {}
        self._flagged: set[str] = set()  # metadata counts already found wrong at open ("" = the total)
        for mt in meta.topics if meta else []:
            key = (mt.name, mt.type)
            n = counts.get(key, 0)
            if n != mt.message_count:
                self._flagged.add(mt.name)
                self.problems.append(
                    f"{self.path / 'metadata.yaml'}: topic {mt.name} has {mt.message_count} messages in metadata "
                    f"but {n} in the storage files"
                )
            topics[key] = TopicInfo(
                mt.name, mt.type, n, mt.serialization_format, mt.offered_qos_profiles, mt.type_description_hash
            )
        for key, st in first.items():
            if key not in topics:
                if meta is not None and counts[key]:
                    self.problems.append(
                        f"{self.path}: topic {key[0]} ({key[1]}) is in the storage but not in metadata"
                    )
                topics[key] = TopicInfo(
                    st.name,
                    st.type,
                    counts[key],
                    st.serialization_format or "cdr",
                    st.offered_qos_profiles,
                    st.type_description_hash,
                )
        self._topics = topics
        self._definitions: dict[str, tuple[str, str]] = {}
        for s in self._storages:
            for typ, (text, enc) in s.definitions.items():
                if enc:
                    self._definitions.setdefault(typ, (text, enc))
        total = sum(counts.values())
        if meta is not None and total != meta.message_count:
            self._flagged.add("")
            self.problems.append(
                f"{self.path / 'metadata.yaml'}: message_count is {meta.message_count}, the storage files hold {total}"
            )

    def _register_types(self) -> None:
        for _name, typ in self._topics:
            if typ in self.typestore.fielddefs or typ in self._undecodable:
                continue
            # sqlite3 bags store a service event's .srv text under the service's own name.
            srv = typ.removesuffix("_Event") if "/srv/" in typ else typ
            text, encoding = self._definitions.get(typ) or self._definitions.get(srv, ("", ""))
            if not encoding:
                self._undecodable[typ] = "not in the typestore and the bag carries no definition for it"
                continue
            try:
                register_definition(self.typestore, typ, text, encoding)
            except TypesysError as err:
                self._undecodable[typ] = f"its definition in the bag cannot be used: {err}"

    # -- public API ------------------------------------------------------------------------

    def __enter__(self) -> BagReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for s in self._storages:
            s.close()
        self._storages = []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def topics(self) -> tuple[TopicInfo, ...]:
        return tuple(self._topics.values())

    @property
    def info(self) -> BagInfo:
        meta = self.metadata
        spans = [s.time_range for s in self._storages if any(t.message_count for t in s.topics)]
        start = min((a for a, _ in spans), default=0)
        end = max((b for _, b in spans), default=0)
        if not spans and meta is not None and meta.message_count and meta.start_ns != NO_START:
            start, end = meta.start_ns, meta.start_ns + meta.duration_ns
        files = tuple(self.path / PurePath(p).name for p in meta.relative_file_paths) if meta else (self.path,)
        custom: dict[str, str] = {}
        for s in self._storages:  # what the writer stored in the files themselves (metadata v5 has no custom data)
            custom.update(s.custom_data)
        if meta is not None and meta.custom_data:
            custom = dict(meta.custom_data)
        distro = meta.ros_distro if meta else ""
        inferred = bool(meta and not distro and distro_for_version(meta.version))
        if meta is not None and inferred:
            distro = distro_for_version(meta.version)
        return BagInfo(
            path=self.path,
            storage=meta.storage_identifier if meta else self._storages[0].storage_id,
            files=files,
            compression_mode=meta.compression_mode if meta else "",
            compression_format=meta.compression_format if meta else "",
            start_ns=start,
            end_ns=end,
            message_count=sum(t.message_count for t in self._topics.values()),
            topics=self.topics,
            custom_data=custom,
            version=meta.version if meta else 0,
            ros_distro=distro,
            ros_distro_inferred=inferred,
            chunk_compression=next((s.chunk_compression for s in self._storages if s.chunk_compression), ""),
            size_bytes=sum(f.stat().st_size for f in files if f.is_file()),
        )

    def verify_files(self) -> list[str]:
        """Whole-file checks (mcap data-section CRC, sqlite3 quick_check): the failures, also added to `problems`.

        One more pass over every file; `bag check` runs it after reading, a plain read does not.
        """
        found = [why for s in self._storages if (why := s.verify_file())]
        for line in found:
            self._problem(line)
        return found

    def undecodable_reason(self, typename: str) -> str | None:
        """Why messages of `typename` cannot be decoded, or None if they can."""
        return self._undecodable.get(typename)

    def _problem(self, line: str) -> None:
        line = " ".join(line.split())  # one line each, whatever a backend's message held
        if line not in self.problems:
            self.problems.append(line)

    def _verify_pass(self, storage: StorageReader, sel: list[int], read: dict[int, int], undeclared: int) -> None:
        """After a complete pass over one file: what was read against what the file's own index promised."""
        promised = {t.id: t for t in storage.topics}
        short = [
            f"{storage.path}: read {read.get(i, 0)} message(s) of {promised[i].name}, but the file's index says "
            f"{promised[i].message_count}"
            for i in sel
            if read.get(i, 0) != promised[i].message_count
        ]
        if undeclared:
            self._problem(f"{storage.path}: {undeclared} message(s) on topic/channel ids the file does not declare")
        for line in short:
            self._problem(line)
        if short:
            more = f" (and {len(short) - 1} more topic(s))" if len(short) > 1 else ""
            raise BagDamagedError(short[0] + more)

    def _iter_storage(self, index: int, wanted: set[str] | None) -> Iterator[RawMessage]:
        storage, ids = self._storages[index], self._topic_of[index]
        sel = [i for i, (name, _) in ids.items() if wanted is None or name in wanted]
        if not sel:
            return
        decompress = None
        if self.metadata is not None and self.metadata.compression_mode == "message":
            decompress = zstandard.ZstdDecompressor()
        read = dict.fromkeys(ids, 0)  # what this pass yields per topic id: checked against the file's index
        self._pass_counts[index] = read
        undeclared = 0
        for tid, ts, data in storage.messages(None if wanted is None else sel):
            try:
                name, typ = ids[tid]
            except KeyError:
                undeclared += 1
                continue
            read[tid] += 1
            if decompress is not None:
                try:
                    data = decompress.decompress(data)
                except zstandard.ZstdError as err:
                    raise BagDamagedError(f"{storage.path}: {name} @ {ts}: cannot decompress message: {err}") from err
            yield RawMessage(name, typ, ts, data)
        self._verify_pass(storage, sel, read, undeclared)

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[RawMessage]:
        """Every message of `topics` (default: all) in timestamp order across all storage files.

        Verified: mcap chunks are CRC-checked as they are read, and when a file's stream ends, the
        messages read per topic are compared with that file's index; a shortfall raises
        BagDamagedError (also added to `problems`). A complete pass over all topics also compares
        the totals with metadata.yaml (a mismatch is added to `problems`).
        """
        wanted = set(topics) if topics is not None else None
        self._pass_counts: dict[int, dict[int, int]] = {}
        streams = [self._iter_storage(i, wanted) for i in range(len(self._storages))]
        yield from streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda m: m.timestamp_ns)
        meta = self.metadata
        if meta is None or wanted is not None:
            return
        read: dict[str, int] = {}
        for index, counts in self._pass_counts.items():
            for tid, n in counts.items():
                name = self._topic_of[index][tid][0]
                read[name] = read.get(name, 0) + n
        for t in meta.topics:
            if t.name in self._flagged or sum(1 for x in meta.topics if x.name == t.name) > 1:
                continue
            if read.get(t.name, 0) != t.message_count:
                self._problem(
                    f"{self.path / 'metadata.yaml'}: topic {t.name} has {t.message_count} messages in metadata, "
                    f"{read.get(t.name, 0)} were read"
                )
        total = sum(read.values())
        if total != meta.message_count and "" not in self._flagged:
            self._problem(f"{self.path / 'metadata.yaml'}: message_count is {meta.message_count}, {total} were read")

    def decode(self, raw: RawMessage) -> Any:
        reason = self._undecodable.get(raw.typename)
        if reason is not None:
            raise BagError(f"{self.path}: {raw.topic}: cannot decode {raw.typename}: {reason}")
        try:
            # A memoryview: rosbags slices off the CDR header, and slicing bytes would copy the payload.
            return self.typestore.deserialize_cdr(memoryview(raw.data), raw.typename)
        except Exception as err:  # rosbags raises assorted errors on malformed CDR
            raise BagError(
                f"{self.path}: {raw.topic} @ {raw.timestamp_ns}: bytes do not decode as {raw.typename}: "
                f"{type(err).__name__}: {err}"
            ) from err


def open_bag(path: Path | str, distro: str = "jazzy") -> BagReader:
    """Open a bag folder (or one .mcap/.db3 file) for reading; BagError with one line on any fault."""
    return BagReader(path, distro)
