"""The summary line replay.launch.py logs when the player exits (then it shuts the launch down)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from roadloop_core.bag import read_metadata
from roadloop_vehicle.replay.launch_summary import replay_summary


@pytest.fixture(scope="module")
def drive_bag(tmp_path_factory: pytest.TempPathFactory, fx: ModuleType) -> Path:
    return fx.write_drive_bag(tmp_path_factory.mktemp("bags") / "drive")  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("returncode", "ok", "needles"),
    [
        (0, True, ["finished: ros2 bag play exited 0 after 12.5 s", "(rate 2.0)"]),
        (1, False, ["failed: ros2 bag play exited 1 after 12.5 s", "roadloop bag reindex", "--distro $ROS_DISTRO"]),
        (-2, False, ["exited -2"]),
    ],
)
def test_summary_names_the_exit_and_what_the_bag_holds(
    drive_bag: Path, returncode: int, ok: bool, needles: list[str]
) -> None:
    meta = read_metadata(drive_bag)
    got_ok, line = replay_summary(drive_bag, returncode, 12.49, "2.0")
    assert got_ok is ok and "\n" not in line
    assert f"{meta.message_count} messages on {len(meta.topics)} topics" in line
    for needle in needles:
        assert needle in line, line


def test_a_bag_without_metadata_is_still_one_line(tmp_path: Path) -> None:
    ok, line = replay_summary(tmp_path / "nothing", 1, 0.2, "1.0")
    assert not ok and "\n" not in line and "metadata is unreadable here" in line
