"""The hub runs with neither torch nor the vehicle, sim or cluster packages importable.

Each command runs in an interpreter whose import system refuses those packages (as if they
were not installed, which is what the hub image is): serve, tokens, an upload through the
hub client, `ls` and `export-bags` all work.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from roadloop_core.bag import BagWriter
from roadloop_core.contract.wire import TarStream
from roadloop_core.errors import HubUnavailable
from roadloop_core.hub_client import HubClient

ABSENT = ("torch", "onnxruntime", "roadloop_vehicle", "roadloop_sim", "roadloop_cluster")
WITHOUT = f"""
import importlib.abc, runpy, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (absent from the hub image)", name=name)
        return None
sys.meta_path.insert(0, Absent())
sys.argv[0] = "roadloop_hub"
runpy.run_module("roadloop_hub", run_name="__main__", alter_sys=True)
"""


def _hub(*args: str) -> list[str]:
    return [sys.executable, "-c", WITHOUT, *args]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_hub_needs_no_vehicle_package_and_no_torch(tmp_path: Path) -> None:
    root, port = tmp_path / "hub", _port()
    token = subprocess.run(_hub("token", "add", "car1", "--root", str(root)), capture_output=True, text=True)
    assert token.returncode == 0, token.stderr
    bag = tmp_path / "rec" / "drive1"
    with BagWriter(bag, compression="none") as w:
        w.add_topic("/chatter", "std_msgs/msg/String")
        for i in range(5):
            w.write("/chatter", 10**9 + i, b"\x00\x01\x00\x00" + (4).to_bytes(4, "little") + b"hey\x00")  # CDR
    stream = TarStream(bag)
    log = open(tmp_path / "hub.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        _hub("serve", "--root", str(root), "--port", str(port)), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        with HubClient(f"http://127.0.0.1:{port}", token.stdout.strip()) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (tmp_path / "hub.log").read_text()
                try:
                    client.health()
                    break
                except HubUnavailable:
                    assert time.monotonic() < deadline, "hub did not come up"
                    time.sleep(0.1)
            sha, digests = stream.digests(65536)
            up = client.create_upload("drive1", stream.size, sha, 65536)
            done = client.send_missing(up, stream, digests=digests)["result"]
            assert done["state"] == "complete" and done["bag"]["readable"], done
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert "absent from the hub image" not in (tmp_path / "hub.log").read_text()
    ls = subprocess.run(_hub("ls", "--root", str(root), "--json"), capture_output=True, text=True)
    assert ls.returncode == 0, ls.stderr
    assert [(r["bag_name"], r["sha256"], r["message_count"]) for r in json.loads(ls.stdout)] == [("drive1", sha, 5)]
    out = tmp_path / "bags"
    exported = subprocess.run(
        _hub("export-bags", "--root", str(root), "--out", str(out)), capture_output=True, text=True
    )
    assert exported.returncode == 0, exported.stderr
    assert (out / "car1__drive1" / "metadata.yaml").is_file()


def test_the_blocker_is_real(tmp_path: Path) -> None:
    """The same interpreter set-up does refuse a vehicle import (so the test above can fail)."""
    probe = WITHOUT.replace('runpy.run_module("roadloop_hub", run_name="__main__", alter_sys=True)',
                            "import roadloop_vehicle.bridge")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode != 0 and "absent from the hub image" in proc.stderr
