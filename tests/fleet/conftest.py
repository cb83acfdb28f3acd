"""Real hub and bridge processes on loopback for the fleet tests.

`hub_proc` starts `python -m roadloop_hub serve` (the `roadloop hub` app) on a free
port; `make_bag` writes small, incompressible mcap bags with `BagWriter`; `run_bridge`
runs the bridge CLI as a subprocess. For the fault-injection suite (`test_faults.py`):
`HealthPoller` asks `/v1/health` over and over from another thread while a hostile request
runs, `upload_bytes` sends arbitrary bytes through the upload protocol, and `TALLY` counts the
cases tried and survived, printed at the end of the run.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


# -- fault injection -------------------------------------------------------------------------------
class Tally:
    """Fault-injection cases tried and survived (clean 4xx or exact data), per group."""

    def __init__(self) -> None:
        self.tried: Counter[str] = Counter()
        self.survived: Counter[str] = Counter()

    @contextmanager
    def case(self, group: str) -> Iterator[None]:
        self.tried[group] += 1
        yield
        self.survived[group] += 1


TALLY = Tally()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.tried:
        return
    terminalreporter.section("fleet fault injection")
    for group in sorted(TALLY.tried):
        terminalreporter.write_line(f"{group}: tried {TALLY.tried[group]}, survived {TALLY.survived[group]}")
    tried, survived = sum(TALLY.tried.values()), sum(TALLY.survived.values())
    terminalreporter.write_line(f"total: tried {tried}, survived {survived}")


class HealthPoller:
    """Polls `/v1/health` from a thread while the test runs; every poll must be answered (generous timeout)."""

    def __init__(self, url: str, timeout_s: float = 15.0) -> None:
        self.url, self.timeout_s = f"{url}/v1/health", timeout_s
        self.answered = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as c:
            while not self._stop.is_set():
                try:
                    r = c.get(self.url)
                    if r.status_code == 200:
                        self.answered += 1
                    else:
                        self.failures.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as err:
                    self.failures.append(f"{type(err).__name__}: {err}")
                self._stop.wait(0.05)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 5)


def put_chunks(c: httpx.Client, upload: dict[str, Any], data: bytes, skip: tuple[int, ...] = ()) -> None:
    from roadloop_core.contract.wire import chunk_range

    for i in range(int(upload["n_chunks"])):
        if i in skip:
            continue
        off, n = chunk_range(i, len(data), int(upload["chunk_size"]))
        piece = data[off : off + n]
        r = c.put(f"/v1/uploads/{upload['upload_id']}/chunks/{i}", content=piece,
                  headers={"X-Chunk-Sha256": hashlib.sha256(piece).hexdigest()})  # fmt: skip
        assert r.status_code == 200, r.text


def upload_bytes(c: httpx.Client, name: str, data: bytes, chunk: int = 65536) -> tuple[str, httpx.Response]:
    """Send `data` as an upload (create, every chunk, complete): (upload id, the complete answer)."""
    sha = hashlib.sha256(data).hexdigest()
    r = c.post("/v1/uploads", json={"bag_name": name, "size": len(data), "sha256": sha, "chunk_size": chunk})
    assert r.status_code == 201, r.text
    up = r.json()
    put_chunks(c, up, data)
    return str(up["upload_id"]), c.post(f"/v1/uploads/{up['upload_id']}/complete")
