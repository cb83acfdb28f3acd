"""/diagnostics: the DiagnosticArray the bridge publishes round-trips through CDR; the JSONL sink appends."""

from __future__ import annotations

import json
from pathlib import Path

from roadloop_core.typesys import typestore_for
from roadloop_vehicle.bridge.decisions import disk_status
from roadloop_vehicle.bridge.diagnostics import JsonlSink, statuses, to_message


def test_message_round_trip_and_sink(tmp_path: Path) -> None:
    disk = disk_status(300, 200, unconfirmed=250, warn_fraction=0.9)
    items = statuses("car7", disk, free_bytes=12345, queued=2, failed=0, upload_error="", model="pilot-v3")
    msg = to_message(items, stamp_ns=1_700_000_000_123_456_789)
    store = typestore_for("jazzy")
    typename = "diagnostic_msgs/msg/DiagnosticArray"
    back = store.deserialize_cdr(store.serialize_cdr(msg, typename), typename)
    assert back.header.stamp.sec == 1_700_000_000 and back.header.stamp.nanosec == 123_456_789
    disk_msg = back.status[0]
    assert disk_msg.level == 2 and disk_msg.hardware_id == "car7" and "over quota" in disk_msg.message
    assert {kv.key: kv.value for kv in disk_msg.values}["unconfirmed_bytes"] == "250"
    sink = JsonlSink(tmp_path / "diag.jsonl")
    sink.publish(items, 1)
    sink.publish(items, 2)
    lines = [json.loads(x) for x in (tmp_path / "diag.jsonl").read_text().splitlines()]
    assert [x["stamp_ns"] for x in lines] == [1, 2] and lines[0]["status"][2]["message"] == "pilot-v3"
