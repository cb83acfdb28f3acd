"""ROS 2 time stamps <-> integer nanoseconds, the one clock representation inside roadloop.

Works on rosbags typestore messages and rclpy messages alike (both have `sec` / `nanosec`).
Negative times floor towards -inf (sec -1, nanosec 999_999_999 is -1 ns), as rclpy does.
"""

from __future__ import annotations

from typing import Any

from rosbags.typesys.store import Typestore

from roadloop_core.typesys import typestore_for

__all__ = ["NS_PER_S", "header", "header_stamp_ns", "ns_to_stamp", "stamp_to_ns"]

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def header_stamp_ns(msg: Any) -> int:
    """`msg.header.stamp` in integer nanoseconds."""
    return stamp_to_ns(msg.header.stamp)


def _store(store: Typestore | str) -> Typestore:
    return typestore_for(store) if isinstance(store, str) else store


def ns_to_stamp(ns: int, store: Typestore | str = "jazzy") -> Any:
    """Integer nanoseconds -> builtin_interfaces/Time of `store` (a typestore or a distro name)."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return _store(store).types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def header(store: Typestore | str, stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header with `stamp_ns` and `frame_id`."""
    ts = _store(store)
    return ts.types["std_msgs/msg/Header"](stamp=ns_to_stamp(stamp_ns, ts), frame_id=frame_id)
