"""Write -> read round trips: byte-identical for every registry type, split and compressed bags, interop."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.rosbag2 import Reader as RosbagsReader
from rosbags.rosbag2 import Writer as RosbagsWriter

from roadloop_core.bag import BagWriter, open_bag
from roadloop_core.codec import image_to_numpy
from roadloop_core.config import config_dir
from roadloop_core.errors import BagError
from roadloop_core.registry import load_registry
from roadloop_core.typesys import typestore_for

REG = load_registry(config_dir() / "topics.yaml")
STORE = typestore_for("jazzy")
IMAGE_BYTES = 1280 * 720 * 3  # one 720p RGB frame: a multi-megabyte payload


def _write_all_registry_types(path: Path, factory: Callable[..., Any], **kw: Any) -> list[tuple[str, int, bytes]]:
    rng = np.random.default_rng(7)
    written = []
    with BagWriter(path, **kw) as w:
        for spec in REG.topics.values():
            w.add_topic(spec.name, spec.type, spec.qos)
        t = 1_700_000_000_000_000_000
        for i in range(3):
            for spec in REG.topics.values():
                big = IMAGE_BYTES if spec.type == "sensor_msgs/msg/Image" and i == 0 else 0
                data = bytes(STORE.serialize_cdr(factory(STORE, spec.type, rng, big), spec.type))
                t += 1_000_000
                w.write(spec.name, t, data)
                written.append((spec.name, t, data))
    return written


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_every_registry_type_round_trips_byte_identical(
    tmp_path: Path, message_factory: Callable[..., Any], compression: str
) -> None:
    bag = tmp_path / "bag"
    written = _write_all_registry_types(bag, message_factory, compression=compression)
    assert max(len(d) for _, _, d in written) > IMAGE_BYTES
    with open_bag(bag) as reader:
        got = [(r.topic, r.timestamp_ns, bytes(r.data)) for r in reader.messages()]
        assert got == written
        for r in reader.messages():
            msg = reader.decode(r)
            assert bytes(reader.typestore.serialize_cdr(msg, r.typename)) == bytes(r.data)
        info = reader.info
        assert info.chunk_compression == ("zstd" if compression == "zstd" else "")
        assert {t.name: t.type for t in info.topics} == {s.name: s.type for s in REG.topics.values()}
        assert info.custom_data == {}
    # rosbags reads our bag too (rosbag2 conventions: schemas, channel QoS, metadata v9)
    with RosbagsReader(bag) as ref:
        theirs = [(c.topic, t, bytes(d)) for c, t, d in ref.messages()]
    assert theirs == written


def test_image_payload_decodes_to_numpy_without_copy(tmp_path: Path) -> None:
    frame = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    Image, Header, Time = (
        STORE.types[f"{p}"] for p in ("sensor_msgs/msg/Image", "std_msgs/msg/Header", "builtin_interfaces/msg/Time")
    )
    msg = Image(
        header=Header(stamp=Time(sec=1, nanosec=2), frame_id="cam"),
        height=720,
        width=1280,
        encoding="rgb8",
        is_bigendian=0,
        step=3840,
        data=frame.reshape(-1),
    )
    cam = REG["camera"]
    with BagWriter(tmp_path / "bag") as w:
        w.add_topic(cam.name, cam.type, cam.qos)
        w.write_msg(cam.name, 5, msg)
    with open_bag(tmp_path / "bag") as reader:
        raw = next(reader.messages())
        arr = image_to_numpy(reader.decode(raw))
        assert np.shares_memory(arr, np.frombuffer(raw.data, np.uint8))
        assert np.array_equal(arr, frame)


MSG_BYTES = 10_000 + 12  # one /blob message as CDR


@pytest.mark.parametrize(
    ("kw", "files"),
    [
        ({"max_bytes": 40_000}, None),  # a file holds ~40 KB of messages; how many depends on compression
        ({"max_duration_s": 0.5}, 4),  # 20 messages 0.1 s apart: 5 per file
        ({"max_duration_s": 0.5, "max_bytes": 25_000}, None),
    ],
)
def test_split_bags_keep_every_message_in_order(tmp_path: Path, kw: dict[str, Any], files: int | None) -> None:
    rng = np.random.default_rng(3)
    bag = tmp_path / "split"
    sent = []
    string = STORE.types["std_msgs/msg/String"]
    with BagWriter(bag, chunk_bytes=8_000, custom_data={"roadloop.seed": "3"}, **kw) as w:
        w.add_topic("/blob", "std_msgs/msg/String")
        w.add_topic("/never", "std_msgs/msg/String")
        for i in range(20):
            data = bytes(STORE.serialize_cdr(string(data=rng.bytes(5000).hex()), "std_msgs/msg/String"))
            w.write("/blob", i * 100_000_000, data)
            sent.append(data)
    parts = sorted((p for p in bag.iterdir() if p.suffix == ".mcap"), key=lambda p: int(p.stem.split("_")[-1]))
    n = len(parts)
    assert sorted(p.name for p in bag.iterdir()) == sorted([*(f"split_{i}.mcap" for i in range(n)), "metadata.yaml"])
    if files is not None:
        assert n == files
    else:
        assert n >= 2
    if "max_bytes" in kw:  # a file is cut at the first message past the limit (plus its summary)
        assert all(p.stat().st_size <= kw["max_bytes"] + MSG_BYTES + 4_000 for p in parts)
    with open_bag(bag) as reader:
        assert [bytes(r.data) for r in reader.messages()] == sent
        assert reader.problems == []
        info = reader.info
        assert len(info.files) == n and info.message_count == 20
        assert {t.name: t.message_count for t in info.topics} == {"/blob": 20, "/never": 0}
        assert info.custom_data == {"roadloop.seed": "3"}
        assert info.start_ns == 0 and info.end_ns == 1_900_000_000
    with RosbagsReader(bag) as ref:
        assert [bytes(d) for _, _, d in ref.messages()] == sent


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
@pytest.mark.parametrize("mode", [CompressionMode.FILE, CompressionMode.MESSAGE, CompressionMode.NONE])
def test_reads_file_and_message_compressed_bags(tmp_path: Path, storage: StoragePlugin, mode: CompressionMode) -> None:
    """Bags written by another rosbag2 implementation (rosbags), in each compression mode."""
    bag = tmp_path / "b"
    msgs = [f"message {i}" * (i + 1) for i in range(30)]
    w = RosbagsWriter(bag, version=9, storage_plugin=storage)
    w.set_compression(mode, CompressionFormat.ZSTD)
    w.open()
    conn = w.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE)
    for i, text in enumerate(msgs):
        w.write(
            conn, 1000 + i, STORE.serialize_cdr(STORE.types["std_msgs/msg/String"](data=text), "std_msgs/msg/String")
        )
    w.close()
    with open_bag(bag) as reader:
        assert reader.info.compression_mode == ("" if mode is CompressionMode.NONE else mode.name.lower())
        assert [reader.decode(r).data for r in reader.messages()] == msgs
        assert reader.problems == []


def test_writer_refuses_bad_use(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(BagError, match="already exists"):
        BagWriter(tmp_path / "taken")
    with BagWriter(tmp_path / "ok") as w:
        with pytest.raises(BagError, match="not added"):
            w.write("/nope", 1, b"")
        with pytest.raises(BagError, match="unknown"):
            w.add_topic("/x", "nope_msgs/msg/Nope")
        w.add_topic("/custom", "demo_msgs/msg/Pair", definition="int32 a\nstring b\n")
        w.write_msg("/custom", 1, w.typestore.types["demo_msgs/msg/Pair"](a=4, b="two"))
    assert "demo_msgs/msg/Pair" not in typestore_for("jazzy").fielddefs  # the shared store stays clean
    with open_bag(tmp_path / "ok") as reader:  # a type no store knows, decoded from the definition we wrote
        msg = reader.decode(next(reader.messages()))
        assert (msg.a, msg.b) == (4, "two")


def test_bag_is_unfinished_until_close(tmp_path: Path) -> None:
    w = BagWriter(tmp_path / "bag")
    w.add_topic("/a", "std_msgs/msg/String")
    w.write_msg("/a", 1, STORE.types["std_msgs/msg/String"](data="x"))
    assert sorted(p.name for p in (tmp_path / "bag").iterdir()) == ["bag_0.mcap.active"]
    with pytest.raises(BagError, match="reindex"):
        open_bag(tmp_path / "bag")
    w.close()
    assert sorted(p.name for p in (tmp_path / "bag").iterdir()) == ["bag_0.mcap", "metadata.yaml"]


def test_idl_defined_type_round_trips(tmp_path: Path) -> None:
    idl = "module demo_msgs { module msg {\n  struct Point3 {\n    double x;\n    string label;\n  };\n}; };\n"
    with BagWriter(tmp_path / "b") as w:
        w.add_topic("/p", "demo_msgs/msg/Point3", definition=idl, encoding="ros2idl")
        w.write_msg("/p", 1, w.typestore.types["demo_msgs/msg/Point3"](x=1.5, label="a"))
    with open_bag(tmp_path / "b") as reader:
        msg = reader.decode(next(reader.messages()))
    assert (msg.x, msg.label) == (1.5, "a")


@pytest.mark.ros
@pytest.mark.skipif(shutil.which("ros2") is None, reason="needs a ROS 2 installation: the `ros2` CLI is not on PATH")
def test_ros2_bag_reads_our_bag(tmp_path: Path) -> None:
    """Where ROS 2 is installed, `ros2 bag info` and `ros2 bag play`-side readers accept what we write."""
    cam = REG["command"]
    with BagWriter(tmp_path / "b") as w:
        w.add_topic(cam.name, cam.type, cam.qos)
        for i in range(5):
            w.write_msg(
                cam.name,
                i,
                STORE.types[cam.type](
                    header=STORE.types["std_msgs/msg/Header"](
                        stamp=STORE.types["builtin_interfaces/msg/Time"](sec=0, nanosec=i), frame_id="base_link"
                    ),
                    drive=STORE.types["ackermann_msgs/msg/AckermannDrive"](speed=float(i)),
                ),
            )
    res = subprocess.run(["ros2", "bag", "info", str(tmp_path / "b")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Messages:" in res.stdout and " 5" in res.stdout and cam.name in res.stdout


@pytest.mark.parametrize("chunk_bytes", [200, 1 << 20])  # overlapping chunks / one chunk written out of order
def test_messages_written_out_of_order_are_read_in_timestamp_order(tmp_path: Path, chunk_bytes: int) -> None:
    rng = np.random.default_rng(5)
    stamps = [int(t) for t in rng.permutation(300)]
    with BagWriter(tmp_path / "b", chunk_bytes=chunk_bytes) as w:
        w.add_topic("/a", "std_msgs/msg/String")
        w.add_topic("/b", "std_msgs/msg/String")
        for t in stamps:
            w.write_msg("/a" if t % 2 else "/b", t, STORE.types["std_msgs/msg/String"](data=f"m{t}"))
    with open_bag(tmp_path / "b") as reader:
        got = [(r.timestamp_ns, reader.decode(r).data) for r in reader.messages()]
        only_a = [r.timestamp_ns for r in reader.messages(["/a"])]
    assert got == [(t, f"m{t}") for t in range(300)]
    assert only_a == list(range(1, 300, 2))
