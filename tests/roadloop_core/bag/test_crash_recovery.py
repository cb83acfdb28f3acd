"""A writer killed with SIGKILL mid-bag: files are recognisably unfinished, reindex recovers every flushed chunk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from roadloop_core.bag import open_bag
from roadloop_core.bag.reindex import reindex_bag
from roadloop_core.errors import BagError
from roadloop_core.typesys import typestore_for

WRITTEN = 43
CHUNK = 4096  # ~1 KB messages: a chunk is cut (and flushed to the OS) every 4 messages

CHILD = (
    textwrap.dedent(
        """
    import sys, time
    from roadloop_core.bag import BagWriter
    from roadloop_core.typesys import typestore_for
    store = typestore_for("jazzy")
    w = BagWriter(sys.argv[1], chunk_bytes=CHUNK, custom_data={"roadloop.episode": "7"})
    w.add_topic("/chatter", "std_msgs/msg/String")
    for i in range(WRITTEN):
        w.write_msg("/chatter", 1000 + i, store.types["std_msgs/msg/String"](data=f"message {i:04d}" * 80))
    print("written", flush=True)
    time.sleep(120)  # killed before close(): metadata.yaml never written
    """
    )
    .replace("CHUNK", str(CHUNK))
    .replace("WRITTEN", str(WRITTEN))
)


def _expected(i: int) -> bytes:
    store = typestore_for("jazzy")
    return bytes(
        store.serialize_cdr(store.types["std_msgs/msg/String"](data=f"message {i:04d}" * 80), "std_msgs/msg/String")
    )


@pytest.mark.timeout(60)
def test_killed_writer_is_recovered_by_reindex(tmp_path: Path) -> None:
    bag = tmp_path / "episode"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(bag)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
        # while the writer lives: unfinished, and reindex refuses to touch its file
        assert sorted(p.name for p in bag.iterdir()) == ["episode_0.mcap.active"]
        with pytest.raises(BagError, match="still being written"):
            reindex_bag(bag)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert sorted(p.name for p in bag.iterdir()) == ["episode_0.mcap.active"]
    with pytest.raises(BagError, match="roadloop bag reindex"):
        open_bag(bag)

    meta, reports = reindex_bag(bag)
    assert [r.target.name for r in reports] == ["episode_0.mcap"]
    recovered = reports[0].messages
    assert WRITTEN - 4 <= recovered <= WRITTEN  # at most the unflushed chunk in progress is lost
    assert recovered == meta.message_count
    assert sorted(p.name for p in bag.iterdir()) == ["episode_0.mcap", "metadata.yaml"]
    with open_bag(bag) as reader:
        got = [bytes(r.data) for r in reader.messages()]
        assert reader.problems == []
        assert reader.info.custom_data == {"roadloop.episode": "7"}
    assert got == [_expected(i) for i in range(recovered)]


def test_truncated_active_file_recovers_its_intact_prefix(tmp_path: Path) -> None:
    """A crash can also tear the last chunk in half: the torn chunk is dropped, not the file."""
    from roadloop_core.bag import BagWriter

    bag = tmp_path / "torn"
    store = typestore_for("jazzy")
    w = BagWriter(bag, chunk_bytes=CHUNK, compression="none")  # uncompressed: chunks of ~4 KB to tear
    w.add_topic("/chatter", "std_msgs/msg/String")
    for i in range(20):
        w.write_msg("/chatter", 1000 + i, store.types["std_msgs/msg/String"](data=f"message {i:04d}" * 80))
    active = bag / "torn_0.mcap.active"
    data = active.read_bytes()
    w._file.stream.close()  # type: ignore[union-attr]  # simulate the process dying: no close()
    active.write_bytes(data[: len(data) - 1500])
    _, reports = reindex_bag(bag)
    assert 0 < reports[0].messages < 20 and reports[0].stopped_by
    with open_bag(bag) as reader:
        assert [bytes(r.data) for r in reader.messages()] == [_expected(i) for i in range(reports[0].messages)]


def test_crash_after_a_split_keeps_finished_files_and_recovers_the_active_one(tmp_path: Path) -> None:
    from roadloop_core.bag import BagWriter

    bag = tmp_path / "split"
    w = BagWriter(bag, chunk_bytes=CHUNK, max_bytes=20_000, compression="none")
    w.add_topic("/chatter", "std_msgs/msg/String")
    for i in range(50):
        w.write("/chatter", 1000 + i, _expected(i))
    w._file.mcap.flush()  # type: ignore[union-attr]  # the last chunk reached the OS ...
    w._file.stream.flush()  # type: ignore[union-attr]
    w._file.stream.close()  # type: ignore[union-attr]  # ... then the process died: no close()
    names = sorted(p.name for p in bag.iterdir())
    assert names[-1].endswith(".mcap.active") and "metadata.yaml" not in names and len(names) >= 3
    meta, reports = reindex_bag(bag)
    assert len(reports) == 1 and meta.message_count == 50
    assert meta.relative_file_paths == [f"split_{i}.mcap" for i in range(len(names))]
    with open_bag(bag) as reader:
        assert [bytes(r.data) for r in reader.messages()] == [_expected(i) for i in range(50)]
