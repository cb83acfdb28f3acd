"""The upload wire format between the vehicle bridge and the hub: what both sides read, defined once.

- **Names**: bag names, tags, vehicle names, bundle file names and tar members are one safe
  path component (`check_name`); channels and sha256 digests have their own patterns.
- **A bag travels as one deterministic tar stream**: a rosbag2 bag is a folder (metadata.yaml +
  storage files), so it travels as one plain USTAR tar of its regular files: sorted names at
  the top level, mode 0644, uid/gid 0, mtime 0, no user names, ended by two zero blocks. The
  same folder always gives the same bytes, so the tar's sha256 identifies the bag's content
  (the hub's content address). The bridge never writes the tar: `TarStream` maps any byte
  range of it onto the bag's files (headers are built in memory), so a chunk is read straight
  from the bag and a resumed upload re-reads only what it sends. A bundle folder is published
  as the same kind of stream.
  The hub accepts exactly this layout and nothing else (`tar_members`): a stored bag folder
  re-tarred gives the uploaded bytes again, so the hub can read any range of an object it holds.
- **Chunks**: chunk `i` of an object of `size` bytes is `chunk_range(i, size, chunk_size)`; each
  chunk PUT carries its sha256 in the `X-Chunk-Sha256` header.
- **Proof of possession**: the hub deduplicates an upload onto an object another vehicle sent
  only when the uploader answers the upload's `proof` challenge: for each hub-chosen random
  range, `proof_digest(nonce, bytes of that range)` (`ProofChallenge`).
- **The HTTP protocol** (docs/fleet.md): the route templates below are what the hub declares
  and what the client formats, so the two sides cannot drift apart.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ABANDONED",
    "BLOCK",
    "CHANNEL_RE",
    "CHUNK_SHA256_HEADER",
    "COMPLETE",
    "FAILED",
    "MIN_CHUNK_BYTES",
    "NAME_RE",
    "OPEN",
    "PATH_BAG",
    "PATH_BAGS",
    "PATH_BUNDLE_FILE",
    "PATH_CHANNEL",
    "PATH_CHUNK",
    "PATH_COMPLETE",
    "PATH_EVENTS",
    "PATH_HEALTH",
    "PATH_HISTORY",
    "PATH_PROOF",
    "PATH_PUBLISH",
    "PATH_RECORDING",
    "PATH_ROLLBACK",
    "PATH_UPLOAD",
    "PATH_UPLOADS",
    "SHA256_RE",
    "ProofChallenge",
    "TarMember",
    "TarStream",
    "check_name",
    "chunk_count",
    "chunk_range",
    "is_safe_name",
    "proof_digest",
    "tar_members",
]

# One path component, ASCII, starting with a letter or digit (so never ".", ".." or a hidden file),
# at most 100 characters (the USTAR name field, so a name always fits a plain tar header).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CHANNEL_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
BLOCK = 512

# -- the upload protocol ---------------------------------------------------------------------------
CHUNK_SHA256_HEADER = "X-Chunk-Sha256"  # a chunk PUT's own checksum (lowercase hex sha256 of its body)
MIN_CHUNK_BYTES = 64 << 10  # smallest chunk_size an upload may declare (the hub's limit is the largest)
# An upload's states: open (chunks arriving), complete (stored and cataloged), abandoned (hub gc),
# failed (the hub refused the object for good, e.g. not the wire's tar; `error` says why).
OPEN, COMPLETE, ABANDONED, FAILED = "open", "complete", "abandoned", "failed"

# Route templates (str.format fields = FastAPI path parameters).
PATH_HEALTH = "/v1/health"
PATH_UPLOADS = "/v1/uploads"
PATH_UPLOAD = "/v1/uploads/{upload_id}"
PATH_CHUNK = "/v1/uploads/{upload_id}/chunks/{idx}"
PATH_COMPLETE = "/v1/uploads/{upload_id}/complete"
PATH_EVENTS = "/v1/uploads/{upload_id}/events"
PATH_PROOF = "/v1/uploads/{upload_id}/proof"
PATH_BAGS = "/v1/bags"
PATH_BAG = "/v1/bags/{sha256}"
PATH_RECORDING = "/v1/recordings/{name}"  # assemble a recording shipped as pieces (one upload per file)
PATH_CHANNEL = "/v1/channels/{channel}"
PATH_PUBLISH = "/v1/channels/{channel}/bundles"
PATH_HISTORY = "/v1/channels/{channel}/history"
PATH_ROLLBACK = "/v1/channels/{channel}/rollback"
PATH_BUNDLE_FILE = "/v1/bundles/{bundle_id}/files/{name}"


def is_safe_name(name: str) -> bool:
    return bool(NAME_RE.match(name)) and ".." not in name


def check_name(name: str, what: str) -> str:
    """Return `name` or raise ValueError saying which name is refused and why."""
    if not is_safe_name(name):
        raise ValueError(
            f"{what} {name!r} refused: use 1-100 of [A-Za-z0-9._-], starting with a letter or digit, no '..'"
        )
    return name


def chunk_count(size: int, chunk_size: int) -> int:
    return max(1, -(-size // chunk_size))


def chunk_range(index: int, size: int, chunk_size: int) -> tuple[int, int]:
    """(offset, length) of chunk `index` in an object of `size` bytes."""
    start = index * chunk_size
    return start, max(0, min(chunk_size, size - start))


@dataclass(frozen=True)
class _Segment:
    offset: int  # where the segment starts in the tar stream
    length: int
    data: bytes | None  # header or padding bytes held in memory, or None for file content
    path: Path | None = None


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o644, 0, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


class TarStream:
    """The deterministic tar of a folder's regular files, readable at any offset without a copy.

    `only`: just these files of the folder (a piece of a recording still being written travels
    as the tar of its one file); a missing one is an OSError.
    """

    def __init__(self, folder: Path, only: Sequence[str] | None = None) -> None:
        self.folder = folder
        self.only = None if only is None else frozenset(only)
        self.files: list[tuple[str, int, int]] = []  # (name, size, mtime_ns) as seen when built
        segments: list[_Segment] = []
        pos = 0
        for entry in self._entries():
            if not entry.is_file(follow_symlinks=False):
                continue
            check_name(entry.name, f"{folder}: file")
            st = entry.stat(follow_symlinks=False)
            self.files.append((entry.name, st.st_size, st.st_mtime_ns))
            head = _header(entry.name, st.st_size)
            segments.append(_Segment(pos, len(head), head))
            pos += len(head)
            segments.append(_Segment(pos, st.st_size, None, Path(entry.path)))
            pos += st.st_size
            pad = -st.st_size % BLOCK
            if pad:
                segments.append(_Segment(pos, pad, b"\0" * pad))
                pos += pad
        segments.append(_Segment(pos, 2 * BLOCK, b"\0" * (2 * BLOCK)))
        pos += 2 * BLOCK
        self._segments = segments
        self.size = pos
        if self.only is not None and len(self.files) != len(self.only):
            missing = sorted(self.only - {f[0] for f in self.files})
            raise OSError(f"{folder}: no regular file {missing[0]}")

    def _entries(self) -> list[os.DirEntry[str]]:
        entries = sorted(os.scandir(self.folder), key=lambda e: e.name)
        return entries if self.only is None else [e for e in entries if e.name in self.only]

    def unchanged(self) -> bool:
        """True while every file still has the size and mtime it had when the stream was built."""
        try:
            now = [
                (e.name, e.stat().st_size, e.stat().st_mtime_ns)
                for e in self._entries()
                if e.is_file(follow_symlinks=False)
            ]
        except OSError:
            return False
        return now == self.files

    def read(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of the stream (shorter only at its end)."""
        parts: list[bytes] = []
        end = min(offset + length, self.size)
        for seg in self._segments:
            s0, s1 = seg.offset, seg.offset + seg.length
            if s1 <= offset or s0 >= end:
                continue
            lo, hi = max(offset, s0) - s0, min(end, s1) - s0
            if seg.data is not None:
                parts.append(seg.data[lo:hi])
                continue
            assert seg.path is not None
            fd = os.open(seg.path, os.O_RDONLY)
            try:
                got = os.pread(fd, hi - lo, lo)
            finally:
                os.close(fd)
            if len(got) != hi - lo:
                raise OSError(f"{seg.path}: shrank while being read")
            parts.append(got)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def iter_blocks(self, block: int = 4 << 20) -> Iterator[bytes]:
        for off in range(0, self.size, block):
            yield self.read(off, block)

    def sha256(self) -> str:
        return self.digests(4 << 20)[0]

    def digests(self, chunk_size: int) -> tuple[str, list[str]]:
        """The whole stream's sha256 and each chunk's, in one read pass."""
        whole = hashlib.sha256()
        chunks: list[str] = []
        for off in range(0, self.size, chunk_size):
            data = self.read(off, chunk_size)
            whole.update(data)
            chunks.append(hashlib.sha256(data).hexdigest())
        return whole.hexdigest(), chunks


# -- reading the stream back (the hub) ---------------------------------------------------------------
@dataclass(frozen=True)
class TarMember:
    name: str
    offset: int  # of the member's data in the stream
    size: int


def _parse_size(field: bytes) -> int:
    text = field.rstrip(b"\0 ").decode("ascii")
    if not text or not all(c in "01234567" for c in text):
        raise ValueError(f"size field {field!r} is not octal")
    return int(text, 8)


def tar_members(read_at: Callable[[int, int], bytes], size: int) -> list[TarMember]:
    """The members of a stream in exactly `TarStream`'s layout, or ValueError saying what differs.

    `read_at(offset, length)` reads the stream. Every header must be the one `TarStream` writes
    for that name and size, names must be safe and strictly ascending (so never duplicated),
    padding zero, and the stream must end with exactly two zero blocks. Only headers and padding
    are read: checking a stream costs a few bytes per file.
    """
    members: list[TarMember] = []
    pos, last = 0, ""
    zero = b"\0" * BLOCK
    while True:
        if pos + BLOCK > size:
            raise ValueError(f"tar stream ends inside a header at byte {pos} (truncated)")
        head = read_at(pos, BLOCK)
        if head == zero:
            if size - pos != 2 * BLOCK or read_at(pos + BLOCK, BLOCK) != zero:
                raise ValueError(f"tar stream does not end with exactly two zero blocks at byte {pos}")
            return members
        raw_name = head[:100].split(b"\0", 1)[0]
        try:
            name = raw_name.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"tar member name {raw_name[:40]!r} at byte {pos} is not ASCII") from None
        check_name(name, "tar member")
        if name <= last:
            what = "duplicate" if name == last else "out of order"
            raise ValueError(f"tar member {name!r} at byte {pos}: {what} (names are unique and sorted)")
        length = _parse_size(head[124:136])
        if head != _header(name, length):
            raise ValueError(
                f"tar member {name!r} at byte {pos}: header is not the wire format's "
                "(a regular file, mode 0644, uid/gid 0, mtime 0, USTAR)"
            )
        pad = -length % BLOCK
        if pos + BLOCK + length + pad > size - 2 * BLOCK:
            raise ValueError(f"tar member {name!r} at byte {pos}: {length} bytes run past the end (truncated)")
        if pad and read_at(pos + BLOCK + length, pad) != b"\0" * pad:
            raise ValueError(f"tar member {name!r}: padding after its data is not zero")
        members.append(TarMember(name, pos + BLOCK, length))
        pos += BLOCK + length + pad
        last = name


# -- proof of possession -------------------------------------------------------------------------
PROOF_RANGES = 4  # ranges per challenge
PROOF_RANGE_BYTES = 4096


def proof_digest(nonce: str, data: bytes) -> str:
    """The answer for one challenged range: sha256 over the nonce's bytes, then the range's bytes."""
    return hashlib.sha256(bytes.fromhex(nonce) + data).hexdigest()


@dataclass(frozen=True)
class ProofChallenge:
    """Hub-chosen random ranges of an object: the uploader proves it holds the bytes, not just their sha256."""

    nonce: str  # hex
    ranges: tuple[tuple[int, int], ...]  # (offset, length)

    def to_json(self) -> dict[str, Any]:
        return {"nonce": self.nonce, "ranges": [list(r) for r in self.ranges]}

    @classmethod
    def from_json(cls, data: Any) -> ProofChallenge:
        if not isinstance(data, dict) or not isinstance(data.get("nonce"), str):
            raise ValueError("proof challenge must be {nonce, ranges}")
        ranges = data.get("ranges")
        if not isinstance(ranges, list) or not all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) and v >= 0 for v in r) for r in ranges
        ):
            raise ValueError("proof challenge ranges must be [[offset, length], ...]")
        return cls(data["nonce"], tuple((int(r[0]), int(r[1])) for r in ranges))

    @classmethod
    def random(cls, size: int, n: int = PROOF_RANGES, length: int = PROOF_RANGE_BYTES) -> ProofChallenge:
        """`n` ranges of `length` bytes (all of a smaller object) at uniformly random offsets."""
        import secrets

        length = min(length, size)
        offsets = [secrets.randbelow(size - length + 1) for _ in range(n)]
        return cls(secrets.token_hex(16), tuple((off, length) for off in offsets))

    def answer(self, read_at: Callable[[int, int], bytes]) -> list[str]:
        """The digests proving possession of the object `read_at` reads."""
        return [proof_digest(self.nonce, read_at(off, n)) for off, n in self.ranges]

    def accepts(self, read_at: Callable[[int, int], bytes], digests: Sequence[str]) -> bool:
        import hmac

        expected = self.answer(read_at)
        return len(digests) == len(expected) and all(
            hmac.compare_digest(a, str(b)) for a, b in zip(expected, digests, strict=True)
        )
