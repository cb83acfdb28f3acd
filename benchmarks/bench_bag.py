"""Bag I/O: our reader against a plain rosbags Reader on the same ~200 MB mcap bag of 720p images.

Figures (ratios measured side by side in this run, rounds interleaved, best of each):
- reader throughput ours / rosbags (target >= 0.9: our layer costs at most 10 %);
- whether decoding an Image into numpy copies the pixel buffer (target: no copy), and
  decode-to-numpy time per frame beside a plain copy of the same frame;
- writer throughput (mcap, zstd chunks).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader as RosbagsReader

from benchmarks.common import Bench
from roadloop_core.bag import BagWriter, open_bag
from roadloop_core.codec import image_to_numpy, numpy_to_image
from roadloop_core.config import config_dir
from roadloop_core.registry import load_registry
from roadloop_core.typesys import typestore_for

H, W = 720, 1280
FRAME_BYTES = H * W * 3


def _frames(n: int) -> list[np.ndarray]:
    """Camera-like frames: smooth gradients that move, plus sensor noise (zstd gets ~2-3x, not 100x)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    out = []
    for i in range(n):
        base = (xx + 3 * i) % 256 // 2 + (yy // 6) % 128
        noise = rng.integers(0, 24, (H, W), dtype=np.int64)
        gray = (base + noise).clip(0, 255).astype(np.uint8)
        out.append(np.stack([gray, np.roll(gray, i, axis=1), gray[::-1]], axis=-1))
    return out


def _write(path: Path, count: int) -> float:
    cam = load_registry(config_dir() / "topics.yaml")["camera"]
    frames = _frames(8)
    msgs = [numpy_to_image(f, 0, "camera") for f in frames]
    start = time.perf_counter()
    with BagWriter(path) as w:
        w.add_topic(cam.name, cam.type, cam.qos)
        for i in range(count):
            msg = msgs[i % len(msgs)]
            msg.header.stamp.sec = i // 10
            msg.header.stamp.nanosec = (i % 10) * 100_000_000
            w.write_msg(cam.name, i * 100_000_000, msg)
    return time.perf_counter() - start


def _read_ours(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    total = 0
    with open_bag(path) as bag:
        for raw in bag.messages():
            total += len(raw.data)
    return time.perf_counter() - start, total


def _read_rosbags(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    total = 0
    with RosbagsReader(path) as reader:
        for _, _, data in reader.messages():
            total += len(data)
    return time.perf_counter() - start, total


def _imu_cdr() -> bytes:
    store = typestore_for("jazzy")
    t = store.types
    cov = np.zeros(9, dtype=np.float64)
    msg = t["sensor_msgs/msg/Imu"](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="imu"),
        orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        orientation_covariance=cov,
        angular_velocity=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.1),
        angular_velocity_covariance=cov,
        linear_acceleration=t["geometry_msgs/msg/Vector3"](x=0.2, y=0.0, z=9.81),
        linear_acceleration_covariance=cov,
    )
    return bytes(store.serialize_cdr(msg, "sensor_msgs/msg/Imu"))


def _small_messages(bench: Bench) -> None:
    """IMU-like traffic: many ~300-byte messages, where per-message overhead dominates."""
    count = 40_000 if bench.quick else 200_000
    path = bench.workdir / "small"
    imu = load_registry(config_dir() / "topics.yaml")["imu"]
    data = _imu_cdr()
    with BagWriter(path) as w:
        w.add_topic(imu.name, imu.type, imu.qos)
        for i in range(count):
            w.write(imu.name, i * 20_000_000, data)
    ours, theirs = [], []
    for _ in range(2):
        ours.append(_read_ours(path)[0])
        theirs.append(_read_rosbags(path)[0])
    ratio = min(theirs) / min(ours)
    rates = f"{count} Imu messages: ours {count / min(ours):.0f} msg/s, rosbags {count / min(theirs):.0f} msg/s"
    bench.figure(
        "reader ratio ours/rosbags, small messages", ratio, "x", target=">= 0.9", ok=ratio >= 0.9, detail=rates
    )


def run(bench: Bench) -> None:
    target_mb = 40 if bench.quick else 200
    count = max(4, target_mb * 1_000_000 // FRAME_BYTES)
    path = bench.workdir / "images"
    wrote_s = _write(path, count)
    size_mb = sum(f.stat().st_size for f in path.glob("*.mcap")) / 1e6
    payload_mb = count * FRAME_BYTES / 1e6
    bench.figure("writer throughput (mcap, zstd chunks)", payload_mb / wrote_s, "MB/s", detail=f"{count} frames")

    ours_s, theirs_s = [], []
    for _ in range(2 if bench.quick else 3):  # interleaved rounds: same page cache, same machine load
        t, n_ours = _read_ours(path)
        ours_s.append(t)
        t, n_theirs = _read_rosbags(path)
        theirs_s.append(t)
        assert n_ours == n_theirs, "readers disagree on the bag's bytes"
    ours_mbps, theirs_mbps = payload_mb / min(ours_s), payload_mb / min(theirs_s)
    detail = f"{size_mb:.0f} MB on disk, {count} frames 1280x720"
    bench.figure("reader throughput, ours", ours_mbps, "MB/s", detail=detail)
    bench.figure("reader throughput, rosbags Reader", theirs_mbps, "MB/s", detail=detail)
    ratio = ours_mbps / theirs_mbps
    bench.figure("reader ratio ours/rosbags", ratio, "x", target=">= 0.9", ok=ratio >= 0.9)

    _small_messages(bench)

    with open_bag(path) as bag:
        raw = next(bag.messages())
        buffer = np.frombuffer(raw.data, np.uint8)
        arr = image_to_numpy(bag.decode(raw))
        shared = bool(np.shares_memory(arr, buffer))
        bench.figure(
            "Image -> numpy shares the bag's buffer",
            1.0 if shared else 0.0,
            "bool",
            target="1 (no pixel copy)",
            ok=shared,
        )
        reps = 50
        t0 = time.perf_counter()
        for _ in range(reps):
            image_to_numpy(bag.decode(raw))
        decode_us = (time.perf_counter() - t0) / reps * 1e6
        t0 = time.perf_counter()
        for _ in range(reps):
            arr.copy()
        copy_us = (time.perf_counter() - t0) / reps * 1e6
    bench.figure(
        "decode Image to numpy, per 720p frame", decode_us, "us", detail=f"one plain frame copy: {copy_us:.0f} us"
    )
