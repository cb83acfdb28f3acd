"""Which files of a recording folder may ship: table tests of the pure piece rules."""

from __future__ import annotations

import pytest

from roadloop_vehicle.bridge.pieces import FolderFile, closed_splits, recording_stopped, split_index

NOW = 1000.0


def f(name: str, mtime: float = 0.0, complete: bool | None = None) -> FolderFile:
    if complete is None and name.endswith(".mcap"):
        complete = True
    return FolderFile(name, 100, mtime, complete)


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("drive_0.mcap", 0),
        ("drive_12.mcap", 12),
        ("my_drive_3.db3", 3),
        ("drive_4.mcap.active", 4),
        ("metadata.yaml", None),
        ("drive.mcap", None),
        ("drive_1.mcap.tmp", None),
    ],
)
def test_split_index(name: str, index: int | None) -> None:
    assert split_index(name) == index


@pytest.mark.parametrize(
    ("files", "settle", "closed"),
    [
        ([f("d_0.mcap", complete=False)], 0.0, []),  # the only split is the one being written
        ([f("d_0.mcap"), f("d_1.mcap", complete=False)], 0.0, ["d_0.mcap"]),
        ([f("d_0.mcap"), f("d_1.mcap"), f("d_2.mcap", complete=False)], 0.0, ["d_0.mcap", "d_1.mcap"]),
        ([f("d_0.mcap"), f("d_1.mcap")], 0.0, ["d_0.mcap"]),  # the newest may be written to again
        ([f("d_0.mcap", complete=False), f("d_1.mcap", complete=False)], 0.0, []),  # no footer yet: not finished
        ([f("d_0.mcap", mtime=NOW - 1), f("d_1.mcap", complete=False)], 5.0, []),  # touched a second ago
        ([f("d_0.mcap", mtime=NOW - 9), f("d_1.mcap", complete=False)], 5.0, ["d_0.mcap"]),
        ([f("d_0.db3"), f("d_1.db3")], 0.0, ["d_0.db3"]),  # sqlite3: the newest split is the live one
        ([f("d_0.mcap"), f("d_1.mcap.active")], 0.0, ["d_0.mcap"]),  # our writer: the .active file is live
        ([f("d_10.mcap"), f("d_9.mcap"), f("d_2.mcap")], 0.0, ["d_2.mcap", "d_9.mcap"]),  # by number, not by name
        ([f("d_0.mcap"), f("metadata.yaml"), f("d_1.mcap", complete=False)], 0.0, ["d_0.mcap"]),  # never metadata
        ([f("notes.txt"), f("x.mcap")], 0.0, []),  # not rosbag2 split names: they wait for the stop
    ],
)
def test_closed_splits(files: list[FolderFile], settle: float, closed: list[str]) -> None:
    assert closed_splits(files, NOW, settle) == closed


DONE = [f("d_0.mcap"), f("d_1.mcap"), f("metadata.yaml")]
LIVE_META = [f("d_0.mcap"), f("d_1.mcap", complete=False), f("metadata.yaml")]


@pytest.mark.parametrize(
    ("distro", "files", "listed", "settle", "stopped"),
    [
        ("humble", DONE, None, 0.0, True),
        ("humble", [f("d_0.mcap"), f("d_1.mcap", complete=False)], None, 0.0, False),  # no metadata.yaml yet
        ("humble", [*DONE, f("d_2.mcap.active")], None, 0.0, False),
        ("humble", [f("d_0.mcap", mtime=NOW - 1), f("metadata.yaml", mtime=NOW - 1)], None, 5.0, False),
        ("jazzy", DONE, ["d_0.mcap", "d_1.mcap"], 0.0, True),
        ("kilted", DONE, ["d_0.mcap", "d_1.mcap"], 0.0, True),
        ("jazzy", LIVE_META, ["d_0.mcap", "d_1.mcap"], 0.0, False),  # rewritten at the split: d_1 has no footer
        ("jazzy", DONE, ["d_0.mcap"], 0.0, False),  # written before d_1 was opened: d_1 is live
        ("jazzy", DONE, ["bag/d_0.mcap", "bag/d_1.mcap"], 0.0, True),  # paths relative to the parent
        ("jazzy", DONE, None, 0.0, True),  # unreadable metadata: every mcap finished and quiet is all there is
        ("jazzy", [f("d_0.db3"), f("d_1.db3"), f("metadata.yaml")], ["d_0.db3"], 0.0, False),
    ],
)
def test_recording_stopped(
    distro: str, files: list[FolderFile], listed: list[str] | None, settle: float, stopped: bool
) -> None:
    assert recording_stopped(distro, files, listed, NOW, settle) is stopped
