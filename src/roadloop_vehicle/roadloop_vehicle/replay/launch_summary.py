"""The last line of `replay.launch.py`: how the player ended and what the bag held (the launch then shuts down)."""

from __future__ import annotations

from pathlib import Path

from roadloop_core.bag import read_metadata
from roadloop_core.errors import RoadloopError

__all__ = ["replay_summary"]


def replay_summary(bag: Path, returncode: int | None, wall_s: float, rate: str) -> tuple[bool, str]:
    """(ok, one line): ok when `ros2 bag play` exited 0. The bag's own counts say what was played."""
    try:
        meta = read_metadata(bag)
        held = (
            f"{meta.message_count} messages on {len(meta.topics)} topics over {meta.duration_ns / 1e9:.1f} s "
            f"of bag time (rate {rate})"
        )
    except RoadloopError as err:
        held = f"its metadata is unreadable here ({err})"
    if returncode == 0:
        return True, f"replay of {bag} finished: ros2 bag play exited 0 after {wall_s:.1f} s; the bag holds {held}"
    hint = (
        " - if this distro's rosbag2 cannot open the bag, rewrite its metadata: "
        f"roadloop bag reindex {bag} --distro $ROS_DISTRO"
    )
    ended = f"ros2 bag play exited {returncode} after {wall_s:.1f} s"
    return False, f"replay of {bag} failed: {ended}; the bag holds {held}{hint}"
