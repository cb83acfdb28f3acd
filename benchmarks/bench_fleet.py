"""Fleet link benchmarks (issue 7), measured side by side against one real hub process on loopback.

1. upload throughput: the bridge's resumable, checksummed upload of a bag (sha256 of the tar stream,
   8 MiB chunks each with its sha256, the hub fsyncing each chunk, re-hashing the whole and unpacking
   it into the store) until the hub confirms it, against ONE plain HTTP PUT of the same bytes to the
   same server (body spooled to a fsynced file): ratio of MB/s, target >= 0.5;
2. the bridge's CPU time per GB uploaded (its own process: hashing, reading, HTTP client).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np

from benchmarks.common import Bench

__all__ = ["run"]

REPEATS = 2


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


def run(bench: Bench) -> None:
    from roadloop_cluster.hub.auth import add_token
    from roadloop_cluster.hub.db import open_database
    from roadloop_vehicle.bridge import Bridge, BridgeConfig, RunReport, TarStream

    megabytes = 48 if bench.quick else 192
    root = bench.workdir / "hub"
    root.mkdir()
    db = open_database("", root)
    admin, car = add_token(db, "bench-admin", "admin"), add_token(db, "bench-car", "vehicle")
    db.close()
    port = _port()
    url = f"http://127.0.0.1:{port}"
    log = open(bench.workdir / "hub.log", "wb")  # noqa: SIM115 - closed below
    hub = subprocess.Popen(
        [sys.executable, "-m", "roadloop_cluster.hub", "serve", "--root", str(root), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        plain_s, upload_s, total_s, bridge_cpu = [], [], [], 0.0
        size = 0
        for rep in range(REPEATS):  # alternate baseline and bridge; best of each (this machine is shared)
            watch = bench.workdir / f"rec{rep}"
            watch.mkdir()
            bag = _bag(watch / "bench_bag", megabytes, seed=rep)  # new content each time: no dedup shortcut
            stream = TarStream(bag)
            size = stream.size

            # Baseline: one plain PUT of the same bytes (read from the same files) to the same server.
            t0 = time.perf_counter()
            resp = httpx.put(
                f"{url}/v1/admin/sink",
                content=stream.iter_blocks(8 << 20),
                headers={"Authorization": f"Bearer {admin}", "Content-Length": str(size)},
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
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            hub.kill()
        log.close()
        os.sync()
