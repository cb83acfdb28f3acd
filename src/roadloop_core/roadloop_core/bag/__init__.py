"""rosbag2 reading and writing (sqlite3 and mcap) that never loses a message.

Layers, each testable alone: storage files -> raw messages (bytes + timestamps) -> decode.

    with open_bag(path) as bag:                 # BagReader
        bag.info                                # BagInfo: storage, counts, topics, QoS ...
        for raw in bag.messages(topics=[...]):  # RawMessage, timestamp order across files
            msg = bag.decode(raw)               # rosbags message object

    with BagWriter(out, registry=...) as w:     # mcap + zstd chunks, split by size/duration
        w.add_topic(name, typename, qos)
        w.write(name, timestamp_ns, cdr_bytes)

    meta = read_metadata(bag_dir)               # the one metadata parser: bounded cost, BagError naming the field
"""

from roadloop_core.bag.metadata import BagMetadata, parse_metadata, read_metadata
from roadloop_core.bag.reader import BagReader, open_bag
from roadloop_core.bag.types import BagInfo, RawMessage, TopicInfo
from roadloop_core.bag.writer import BagWriter

__all__ = [
    "BagInfo",
    "BagMetadata",
    "BagReader",
    "BagWriter",
    "RawMessage",
    "TopicInfo",
    "open_bag",
    "parse_metadata",
    "read_metadata",
]
