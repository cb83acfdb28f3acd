"""Fleet link benchmarks (issue 7), measured side by side on loopback.

1. upload throughput: the bridge's resumable, checksummed upload of a bag (sha256 of the tar stream,
   8 MiB chunks each with its sha256, the hub hashing and writing each chunk, re-hashing the whole and
   unpacking it into the store) to one real hub process until the hub confirms it, against ONE plain
   HTTP PUT of the same bytes to a plain server on the same stack (`plain_put_server`: FastAPI on
   uvicorn, body spooled to a fsynced file, as the hub spools a body): ratio of MB/s, target >= 0.5;
2. the bridge's CPU time per GB uploaded (its own process: hashing, reading, HTTP client).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np

from benchmarks.common import Bench

__all__ = ["run"]

REPEATS = 2
REPO = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bag(path: Path, megabytes: int, seed: int) -> Path:
    from roadloop_core.bag import BagWriter
    from roadloop_core.codec import numpy_to_image

    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)  # ~0.9 MB, incompressible
    frames = max(1, megabytes * 1_000_000 // frame.nbytes)
    with BagWriter(path, compression="none") as w:
        w.add_topic("/sensors/camera/front/image", "sensor_msgs/msg/Image")
        for i in range(frames):
            frame[0, 0, 0] = i % 256
            w.write_msg("/sensors/camera/front/image", i * 50_000_000, numpy_to_image(frame, i * 50_000_000, "cam"))
    return path


@contextmanager
def _server(argv: list[str], health_url: str, log: Path) -> Iterator[None]:
    """A server process on loopback, healthy before the body runs, stopped (SIGTERM) after."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv[2]} exited: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(health_url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(bench: Bench) -> None:
    from benchmarks.plain_put_server import PATH
    from roadloop_core.contract.wire import TarStream
    from roadloop_hub.auth import add_token
    from roadloop_hub.sql_catalog import open_catalog
    from roadloop_vehicle.bridge import Bridge, BridgeConfig, RunReport

    megabytes = 48 if bench.quick else 192
    root = bench.workdir / "hub"
    root.mkdir()
    catalog = open_catalog("", root)
    car = add_token(catalog, "bench-car", "vehicle")
    catalog.close()
    port, plain_port = _port(), _port()
    url, plain_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{plain_port}"
    hub_argv = [sys.executable, "-m", "roadloop_hub", "serve", "--root", str(root), "--port", str(port)]
    # the plain server spools into the hub's own tmp/: the same disk the hub writes to
    plain_argv = [sys.executable, "-m", "benchmarks.plain_put_server", "--port", str(plain_port),
                  "--dir", str(root / "tmp")]  # fmt: skip
    with (
        _server(hub_argv, f"{url}/v1/health", bench.workdir / "hub.log"),
        _server(plain_argv, f"{plain_url}/health", bench.workdir / "plain.log"),
    ):
        plain_s, upload_s, total_s, bridge_cpu = [], [], [], 0.0
        size = 0
        for rep in range(REPEATS):  # alternate baseline and bridge; best of each (this machine is shared)
            watch = bench.workdir / f"rec{rep}"
            watch.mkdir()
            bag = _bag(watch / "bench_bag", megabytes, seed=rep)  # new content each time: no dedup shortcut
            stream = TarStream(bag)
            size = stream.size

            # Baseline: one plain PUT of the same bytes (read from the same files) to the plain server.
            t0 = time.perf_counter()
            resp = httpx.put(
                f"{plain_url}{PATH}",
                content=stream.iter_blocks(8 << 20),
                headers={"Content-Length": str(size)},
                timeout=600,
            )
            plain_s.append(time.perf_counter() - t0)
            resp.raise_for_status()
            assert resp.json()["bytes"] == size

            cfg = replace(BridgeConfig(), settle_s=0.0, pull_models=False, chunk_bytes=8 << 20)
            bridge = Bridge(cfg, watch, url, car, bench.workdir / f"state{rep}")
            report = RunReport()
            cpu0 = time.process_time()
            bridge.discover()
            t0 = time.perf_counter()
            bridge.hash_pending()  # done once when a bag is queued: its content address and chunk digests
            t1 = time.perf_counter()
            bridge.drain(report)  # create -> chunks (in flight) -> complete: until the hub confirms the sha256
            t2 = time.perf_counter()
            bridge_cpu += time.process_time() - cpu0
            bridge.close()
            if report.uploaded != ["bench_bag"] or report.chunks_sent == 0:
                raise RuntimeError(f"bridge did not upload the bag: {report}")
            upload_s.append(t2 - t1)
            total_s.append(t2 - t0)

        mb = size / 1e6
        plain_rate, upload_rate, total_rate = mb / min(plain_s), mb / min(upload_s), mb / min(total_s)
        ratio = upload_rate / plain_rate
        detail = f"bridge {upload_rate:.0f} vs plain PUT {plain_rate:.0f} MB/s, {mb:.0f} MB bag, best of {REPEATS}"
        bench.figure("upload throughput / plain PUT", ratio, "x", target=">= 0.5", ok=ratio >= 0.5, detail=detail)
        bench.figure(
            "upload incl. queue-time hash / plain PUT",
            total_rate / plain_rate,
            "x",
            detail=f"{total_rate:.0f} MB/s counting the bag's hashing pass too",
        )
        cpu_per_gb = bridge_cpu / (REPEATS * size / 1e9)
        bench.figure("bridge CPU time per GB", cpu_per_gb, "s/GB", detail="scan + hash + read + HTTP, bridge process")
    os.sync()
