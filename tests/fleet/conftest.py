"""Real hub and bridge processes on loopback for the fleet tests.

`hub_proc` starts `python -m roadloop_hub serve` (the `roadloop hub` app) on a free
port; `make_bag` writes small, incompressible mcap bags with `BagWriter`; `run_bridge`
runs the bridge CLI as a subprocess.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from roadloop_core.bag import BagWriter
from roadloop_core.codec import numpy_to_image
from roadloop_hub.auth import add_token
from roadloop_hub.sql_catalog import open_catalog

CAMERA = "/sensors/camera/front/image"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProc:
    """One `roadloop hub serve` process over a root folder; restartable on the same root and port."""

    def __init__(self, root: Path, db_url: str = "", public_key: Path | None = None) -> None:
        self.root, self.db_url, self.public_key = root, db_url, public_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root.parent / f"{root.name}.hub.log"
        root.mkdir(parents=True, exist_ok=True)
        self.admin = self.token("boss", admin=True)

    def token(self, name: str, admin: bool = False) -> str:
        catalog = open_catalog(self.db_url, self.root)
        try:
            return add_token(catalog, name, "admin" if admin else "vehicle")
        finally:
            catalog.close()

    def token_file(self, name: str, tmp: Path) -> Path:
        path = tmp / f"{name}.token"
        path.write_text(self.token(name) + "\n")
        return path

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "roadloop_hub",
            "serve",
            "--root",
            str(self.root),
            "--port",
            str(self.port),
        ]
        if self.db_url:
            cmd += ["--db", self.db_url]
        if self.public_key:
            cmd += ["--public-key", str(self.public_key)]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("hub did not come up")

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def admin_get(self, path: str) -> Any:
        with self.client(self.admin) as c:
            r = c.get(path)
            r.raise_for_status()
            return r.json()


@pytest.fixture
def hub_proc(tmp_path: Path) -> Iterator[Callable[..., HubProc]]:
    started: list[HubProc] = []

    def make(db_url: str = "", public_key: Path | None = None, name: str = "hub") -> HubProc:
        hub = HubProc(tmp_path / name, db_url, public_key)
        hub.start()
        started.append(hub)
        return hub

    yield make
    for hub in started:
        hub.stop()


def write_bag(path: Path, seed: int, frames: int = 40, intervention: bool = False, start_s: int = 1000) -> Path:
    """An mcap bag of `frames` random 48x64 RGB images (~9 KB each, incompressible)."""
    rng = np.random.default_rng(seed)
    custom = {"roadloop.intervention": "true"} if intervention else {}
    with BagWriter(path, compression="none", custom_data=custom) as w:
        w.add_topic(CAMERA, "sensor_msgs/msg/Image")
        for i in range(frames):
            stamp = (start_s + seed) * 1_000_000_000 + i * 100_000_000
            img = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
            w.write_msg(CAMERA, stamp, numpy_to_image(img, stamp, "camera"))
    return path


@pytest.fixture
def make_bag() -> Callable[..., Path]:
    return write_bag


def bridge_cmd(watch: Path, hub: HubProc, token_file: Path, state: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "roadloop_vehicle.bridge", "run", "--watch", str(watch), "--hub", hub.url,
        "--token-file", str(token_file), "--state", str(state), "--settle", "0", "--quiet", *extra,
    ]  # fmt: skip


@pytest.fixture
def run_bridge() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(watch: Path, hub: HubProc, token_file: Path, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        cmd = bridge_cmd(watch, hub, token_file, state, "--once", *extra)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    return run
