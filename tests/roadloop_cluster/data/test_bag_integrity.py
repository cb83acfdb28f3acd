"""The dataset builder never takes a silently shortened bag (issue 13.1): a damaged one is skipped, with its reason.

Before, one bit flipped in an mcap summary's chunk index made the reader walk fewer chunks, and
`data build` built fewer samples from that bag as if it were whole.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from roadloop_cluster.data import BuildOptions, build_dataset


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _records(mcap: Path, opcode: int) -> list[tuple[int, int]]:
    data, out, pos = mcap.read_bytes(), [], 8
    while pos + 9 <= len(data) - 8:
        op, length = struct.unpack_from("<BQ", data, pos)
        if op == opcode:
            out.append((pos, length))
        pos += 9 + length
        if op == 0x02:
            break
    return out


def _flip(path: Path, offset: int, mask: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def test_bags_with_a_damaged_summary_or_chunk_are_skipped_with_the_reason(bag_root: Path, tmp_path: Path) -> None:
    good = sorted(p.parent for p in bag_root.rglob("metadata.yaml"))[0]
    summary = _copy(good, tmp_path / "in" / "summary")
    mcap = next(summary.glob("*.mcap"))
    index, _ = _records(mcap, 0x08)[1]
    _flip(mcap, index, 0x80)  # a chunk index readers would skip: the probe's input
    chunk = _copy(good, tmp_path / "in" / "chunk")
    mcap = next(chunk.glob("*.mcap"))
    at, length = _records(mcap, 0x06)[0]
    _flip(mcap, at + 9 + length - 2, 0x01)  # inside a chunk's compressed records
    built = build_dataset([good, summary, chunk], tmp_path / "ds", BuildOptions(progress=False))
    reasons = {Path(s["path"]).name: s["reason"] for s in built["skipped"]}
    assert reasons.keys() == {"summary", "chunk"}
    assert "summary" in reasons["summary"]
    assert "chunk at byte" in reasons["chunk"] or "CRC" in reasons["chunk"], reasons["chunk"]
    assert [Path(s["path"]) for s in built["sources"]] == [good]
