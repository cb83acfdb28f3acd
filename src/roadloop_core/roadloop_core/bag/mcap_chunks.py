"""Fast path for reading messages out of an indexed mcap file.

The `mcap` library builds a Python object per record and pushes every message through a
heap; on bags of small messages (IMU, odometry) that costs 4x rosbags' reader. Bags
written by rosbag2 and by us have their chunks in time order, so we walk the chunk index,
decompress each chunk once and slice its Message records with `struct`. Large payloads
(images) are returned as memoryviews into the decompressed chunk (no copy); small ones are
copied to `bytes`, so keeping a few small messages never pins whole chunks in memory.
Files whose chunks overlap in time are left to the library (which merges them).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import zstandard

from roadloop_core.errors import BagDamagedError

__all__ = ["chunks_in_time_order", "iter_chunk_messages"]

ZERO_COPY_BYTES = 64 * 1024  # payloads at least this large are memoryviews into their chunk
_OP_CHUNK = 0x06
_OP_MESSAGE = 0x05
_CHUNK_HEAD = struct.Struct("<BQQQQI")  # opcode, record length, start, end, uncompressed size, crc
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_RECORD = struct.Struct("<BQ")
_MESSAGE = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time


def chunks_in_time_order(chunk_indexes: list[Any]) -> list[Any] | None:
    """The chunk indexes sorted by start time, or None if any two chunks overlap in time."""
    ordered = sorted(chunk_indexes, key=lambda c: (c.message_start_time, c.chunk_start_offset))
    end = None
    for c in ordered:
        if end is not None and c.message_start_time < end:
            return None
        end = c.message_end_time if end is None else max(end, c.message_end_time)
    return ordered


def _chunk_records(buf: Any, offset: int, where: str) -> memoryview | bytes:
    view = memoryview(buf)
    try:
        op, _, _, _, usize, _ = _CHUNK_HEAD.unpack_from(view, offset)
        if op != _OP_CHUNK:
            raise BagDamagedError(f"{where}: chunk index points at a record of opcode {op:#x} at {offset}")
        pos = offset + _CHUNK_HEAD.size
        (clen,) = _U32.unpack_from(view, pos)
        compression = bytes(view[pos + 4 : pos + 4 + clen]).decode("ascii", errors="replace")
        pos += 4 + clen
        (rlen,) = _U64.unpack_from(view, pos)
        pos += 8
        if pos + rlen > len(view):
            raise BagDamagedError(f"{where}: chunk at {offset} runs past the end of the file")
        data = view[pos : pos + rlen]
        if compression == "":
            return bytes(data)  # a copy: views into the mmap would keep it from closing
        if compression == "zstd":
            if usize > 64 * rlen + (1 << 26):
                raise BagDamagedError(f"{where}: chunk at {offset} claims an implausible size {usize}")
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=usize)
        raise BagDamagedError(f"{where}: chunk compression '{compression}' is not supported here")
    except struct.error as err:
        raise BagDamagedError(f"{where}: chunk at {offset} is truncated: {err}") from err
    except zstandard.ZstdError as err:
        raise BagDamagedError(f"{where}: chunk at {offset} does not decompress: {err}") from err
    finally:
        view.release()


def _messages_of(records: memoryview | bytes, wanted: set[int] | None, where: str) -> list[tuple[int, int, Any]]:
    view = memoryview(records)
    out: list[tuple[int, int, Any]] = []
    pos, end = 0, len(view)
    try:
        while pos < end:
            op, length = _RECORD.unpack_from(view, pos)
            body = pos + 9
            pos = body + length
            if pos > end:
                raise BagDamagedError(f"{where}: a record inside a chunk runs past the chunk's end")
            if op != _OP_MESSAGE:
                continue
            cid, _, log_time, _ = _MESSAGE.unpack_from(view, body)
            if wanted is not None and cid not in wanted:
                continue
            payload = view[body + _MESSAGE.size : pos]
            out.append((cid, log_time, payload if len(payload) >= ZERO_COPY_BYTES else bytes(payload)))
    except struct.error as err:
        raise BagDamagedError(f"{where}: truncated record inside a chunk: {err}") from err
    return out


def iter_chunk_messages(
    buf: Any, ordered_chunks: list[Any], wanted: set[int] | None, where: str
) -> Iterator[tuple[int, int, Any]]:
    """(channel id, log time, payload) of every message, chunk by chunk, in time order."""
    for chunk in ordered_chunks:
        if wanted is not None and chunk.message_index_offsets and not (wanted & set(chunk.message_index_offsets)):
            continue  # the chunk's message index says it holds none of the wanted channels
        found = _messages_of(_chunk_records(buf, chunk.chunk_start_offset, where), wanted, where)
        if any(found[i][1] > found[i + 1][1] for i in range(len(found) - 1)):
            found.sort(key=lambda m: m[1])
        yield from found
