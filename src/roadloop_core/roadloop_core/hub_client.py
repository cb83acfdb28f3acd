"""HTTP client of the hub for the vehicle: the resumable upload protocol and ranged downloads.

Protocol (docs/fleet.md): POST /v1/uploads -> GET /v1/uploads/{id} (chunks held) ->
PUT /v1/uploads/{id}/chunks/{i} with X-Chunk-Sha256 (only the missing ones) ->
POST /v1/uploads/{id}/complete (the hub checks the whole sha256).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from roadloop_vehicle.bridge.decisions import TokenBucket
from roadloop_vehicle.bridge.errors import HubRefused, HubUnavailable
from roadloop_vehicle.bridge.wire import TarStream, chunk_count, chunk_range

__all__ = ["HubClient", "UploadReport"]

IN_FLIGHT = 4
PIECE = 16 << 10  # granularity of the bandwidth cap inside one chunk body


class UploadReport(dict[str, Any]):
    """What one upload did: chunks sent and skipped (already held by the hub), the hub's bag record."""


class HubClient:
    def __init__(self, base_url: str, token: str, timeout_s: float = 60.0, bandwidth: float = 0.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
        )
        self.bucket = TokenBucket(bandwidth)
        self._bucket_lock = threading.Lock()  # shared by the chunks in flight

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, url, **kw)
        except httpx.HTTPError as err:
            raise HubUnavailable(f"{self.base_url}{url}: {type(err).__name__}: {err}") from err
        if resp.status_code >= 500 or resp.status_code == 429:
            raise HubUnavailable(f"{self.base_url}{url}: HTTP {resp.status_code}: {_detail(resp)}")
        if resp.status_code >= 400:
            raise HubRefused(resp.status_code, f"{self.base_url}{url}: HTTP {resp.status_code}: {_detail(resp)}")
        return resp

    def json(self, method: str, url: str, **kw: Any) -> Any:
        return self._call(method, url, **kw).json()

    # -- uploads ---------------------------------------------------------------------------------
    def create_upload(
        self, bag_name: str, size: int, sha256: str, chunk_size: int, priority: int, tags: list[str]
    ) -> dict[str, Any]:
        body = {
            "bag_name": bag_name,
            "size": size,
            "sha256": sha256,
            "chunk_size": chunk_size,
            "priority": priority,
            "tags": tags,
        }
        out: dict[str, Any] = self.json("POST", "/v1/uploads", json=body)
        return out

    def upload_status(self, upload_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.json("GET", f"/v1/uploads/{upload_id}")
        return out

    def _paced(self, data: bytes) -> Iterator[bytes]:
        for off in range(0, len(data), PIECE):
            piece = data[off : off + PIECE]
            with self._bucket_lock:
                wait = self.bucket.take(len(piece), time.monotonic())
            if wait > 0:
                time.sleep(wait)
            yield piece

    def put_chunk(self, upload_id: str, idx: int, data: bytes, digest: str | None = None) -> dict[str, Any]:
        digest = digest or hashlib.sha256(data).hexdigest()
        headers = {"X-Chunk-Sha256": digest, "Content-Type": "application/octet-stream"}
        content: bytes | Iterator[bytes] = data
        if self.bucket.rate > 0:
            headers["Content-Length"] = str(len(data))
            content = self._paced(data)
        out: dict[str, Any] = self.json(
            "PUT", f"/v1/uploads/{upload_id}/chunks/{idx}", content=content, headers=headers
        )
        return out

    def complete(self, upload_id: str, size: int = 0) -> dict[str, Any]:
        # The hub re-hashes and unpacks the object before answering: allow for that on big bags.
        timeout = self.http.timeout.read or 60.0
        wait = httpx.Timeout(timeout + size / 20e6, connect=self.http.timeout.connect)
        out: dict[str, Any] = self.json("POST", f"/v1/uploads/{upload_id}/complete", timeout=wait)
        return out

    def send_missing(
        self,
        upload: dict[str, Any],
        stream: TarStream,
        on_chunk: Callable[[int], None] | None = None,
        digests: list[str] | None = None,
    ) -> UploadReport:
        """Send the chunks the hub does not hold yet (asking it first), then complete the upload.

        `digests`: the chunks' sha256 computed when the bag was queued (else each is hashed here).
        """
        status = self.upload_status(upload["upload_id"])
        have = set(status["have"])
        size, chunk = int(status["size"]), int(status["chunk_size"])
        missing = [i for i in range(chunk_count(size, chunk)) if i not in have and status["state"] == "open"]
        if digests is not None and len(digests) != chunk_count(size, chunk):
            digests = None

        def send(idx: int) -> None:
            off, length = chunk_range(idx, size, chunk)
            data = stream.read(off, length)
            if len(data) != length:
                raise OSError(f"{stream.folder}: changed while uploading")
            self.put_chunk(upload["upload_id"], idx, data, digests[idx] if digests else None)
            if on_chunk is not None:
                on_chunk(length)

        # Several chunks in flight: reading the next one overlaps the hub storing this one.
        with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
            for future in [pool.submit(send, idx) for idx in missing]:
                future.result()
        done = self.complete(upload["upload_id"], size)
        return UploadReport(sent=len(missing), skipped=len(have), result=done)

    # -- registry --------------------------------------------------------------------------------
    def channel(self, channel: str) -> dict[str, Any] | None:
        try:
            out: dict[str, Any] = self.json("GET", f"/v1/channels/{channel}")
        except HubRefused as err:
            if err.status == 404 and "no release" in str(err):
                return None
            raise
        return out

    def download(self, bundle_id: str, name: str, dest: Path, size: int) -> None:
        """Fetch one bundle file into `dest`, resuming a partial file with an HTTP Range request."""
        have = dest.stat().st_size if dest.exists() else 0
        if have > size:
            dest.unlink()
            have = 0
        if have == size:
            return
        url = f"/v1/bundles/{bundle_id}/files/{name}"
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with self.http.stream("GET", url, headers=headers) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    msg = f"{self.base_url}{url}: HTTP {resp.status_code}: {_detail(resp)}"
                    if resp.status_code >= 500:
                        raise HubUnavailable(msg)
                    raise HubRefused(resp.status_code, msg)
                mode = "ab" if have and resp.status_code == 206 else "wb"
                with open(dest, mode) as f:
                    for block in resp.iter_bytes(1 << 20):
                        f.write(block)
                    f.flush()
                    os.fsync(f.fileno())
        except httpx.HTTPError as err:
            raise HubUnavailable(f"{self.base_url}{url}: {type(err).__name__}: {err}") from err
        if dest.stat().st_size != size:
            raise HubUnavailable(f"{self.base_url}{url}: got {dest.stat().st_size} of {size} bytes")


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        return resp.text[:200]
