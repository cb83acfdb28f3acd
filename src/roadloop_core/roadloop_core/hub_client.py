"""The one HTTP client of the hub, for the bridge, the hub's own CLI and the loop.

Every operation of the hub's API (docs/fleet.md) is one method; the routes come from
`roadloop_core.contract.wire`, the same templates the hub declares. One error mapping:
no connection, a timeout, 5xx or 429 -> `HubUnavailable` (retry after a backoff; the bridge
does); any other 4xx -> `HubRefused(status)` (retrying will not help). Both are
RoadloopErrors, so a CLI prints them as one line.

Resumable upload: `create_upload` -> `upload_status` (which chunks the hub holds, and a proof
challenge) -> `prove` (content the hub already holds is deduplicated once the answer shows this
vehicle has the bytes) or `put_chunk` for the missing ones (with `X-Chunk-Sha256`) -> `complete`
(the hub checks the whole sha256); `send_missing` does all of it with four chunks in flight.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from roadloop_core.contract.wire import (
    CHUNK_SHA256_HEADER,
    OPEN,
    PATH_BAG,
    PATH_BAGS,
    PATH_BUNDLE_FILE,
    PATH_CHANNEL,
    PATH_CHUNK,
    PATH_COMPLETE,
    PATH_EVENTS,
    PATH_HEALTH,
    PATH_HISTORY,
    PATH_PROOF,
    PATH_PUBLISH,
    PATH_RECORDING,
    PATH_ROLLBACK,
    PATH_UPLOAD,
    PATH_UPLOADS,
    ProofChallenge,
    TarStream,
    chunk_count,
    chunk_range,
)
from roadloop_core.errors import HubClientError, HubRefused, HubUnavailable

__all__ = ["IN_FLIGHT", "PIECE", "HubClient", "UploadReport", "read_token"]

IN_FLIGHT = 4  # chunks sent at once: reading the next one overlaps the hub storing this one
PIECE = 16 << 10  # granularity of `pace` inside one chunk body
COMPLETE_BYTES_PER_S = 20e6  # `complete` re-hashes and unpacks the object before answering: allow for it


def read_token(path: Path) -> str:
    """The bearer token in `path` (one line), or one clear error naming the file."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise HubClientError(f"{path}: cannot read the token file: {err.strerror}") from err
    if not token:
        raise HubClientError(f"{path}: the token file is empty")
    return token


class UploadReport(dict[str, Any]):
    """What `send_missing` did: `sent` and `skipped` (already held) chunks, the hub's answer as `result`,
    `deduplicated` (the hub held the content and accepted this vehicle's proof of possession)."""


class HubClient:
    """`with HubClient(url, token) as hub: hub.list_bags()`; `pace(n)` (optional) is called before each
    `PIECE` of a chunk body is sent and may sleep: the bridge's bandwidth cap."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 60.0,
        pace: Callable[[int], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.pace = pace
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
        )

    @classmethod
    def from_token_file(
        cls, base_url: str, token_file: Path, *, timeout_s: float = 60.0, pace: Callable[[int], None] | None = None
    ) -> HubClient:
        return cls(base_url, read_token(token_file), timeout_s=timeout_s, pace=pace)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- one request, one error mapping ----------------------------------------------------------
    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as err:
            raise HubUnavailable(f"{self.base_url}{path}: {type(err).__name__}: {err}") from err
        _raise_for(resp, f"{self.base_url}{path}")
        return resp

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self._call(method, path, **kw)
        try:
            return resp.json()
        except ValueError as err:
            raise HubUnavailable(f"{self.base_url}{path}: the answer is not JSON: {resp.text[:200]!r}") from err

    def _object(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        out = self._json(method, path, **kw)
        if not isinstance(out, dict):
            raise HubUnavailable(f"{self.base_url}{path}: expected a JSON object, got {type(out).__name__}")
        return out

    def _list(self, method: str, path: str, **kw: Any) -> list[dict[str, Any]]:
        out = self._json(method, path, **kw)
        if not isinstance(out, list):
            raise HubUnavailable(f"{self.base_url}{path}: expected a JSON list, got {type(out).__name__}")
        return out

    # -- service ---------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """`{"ok": true, "db": "sqlite"|"postgresql"}` (needs no token)."""
        return self._object("GET", PATH_HEALTH)

    # -- uploads ---------------------------------------------------------------------------------
    def create_upload(
        self,
        bag_name: str,
        size: int,
        sha256: str,
        chunk_size: int,
        priority: int = 0,
        tags: Sequence[str] = (),
        piece: str = "",
    ) -> dict[str, Any]:
        """Create (or resume: same name and sha256) an upload; `state: complete` at once if the hub holds it.

        `piece`: the upload is that one file of recording `bag_name` (its tar holds only that file)."""
        body: dict[str, Any] = {
            "bag_name": bag_name,
            "size": size,
            "sha256": sha256,
            "chunk_size": chunk_size,
            "priority": priority,
            "tags": list(tags),
        }
        if piece:
            body["piece"] = piece
        return self._object("POST", PATH_UPLOADS, json=body)

    def assemble(
        self, name: str, pieces: dict[str, str], size: int, priority: int = 0, tags: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Make recording `name` one bag from its uploaded pieces (file -> piece sha256); `size` (of the whole
        bag's tar stream) lengthens the read timeout, as the hub hashes every byte once."""
        timeout = self.http.timeout.read or 60.0
        wait = httpx.Timeout(timeout + size / COMPLETE_BYTES_PER_S, connect=self.http.timeout.connect)
        body = {"pieces": pieces, "priority": priority, "tags": list(tags)}
        return self._object("POST", PATH_RECORDING.format(name=name), json=body, timeout=wait)

    def list_uploads(self) -> list[dict[str, Any]]:
        """This vehicle's uploads (an admin: all), oldest first."""
        return self._list("GET", PATH_UPLOADS)

    def upload_status(self, upload_id: str) -> dict[str, Any]:
        """`{state, size, chunk_size, n_chunks, have: [chunk indices held], ...}`."""
        return self._object("GET", PATH_UPLOAD.format(upload_id=upload_id))

    def _paced(self, data: bytes, pace: Callable[[int], None]) -> Iterator[bytes]:
        for off in range(0, len(data), PIECE):
            piece = data[off : off + PIECE]
            pace(len(piece))
            yield piece

    def put_chunk(self, upload_id: str, idx: int, data: bytes, digest: str | None = None) -> dict[str, Any]:
        """Send chunk `idx` (`digest`: its sha256 if already known); `{"stored": false}` if the hub held it."""
        headers = {CHUNK_SHA256_HEADER: digest or hashlib.sha256(data).hexdigest()}
        headers["Content-Type"] = "application/octet-stream"
        content: bytes | Iterator[bytes] = data
        if self.pace is not None:
            headers["Content-Length"] = str(len(data))
            content = self._paced(data, self.pace)
        return self._object("PUT", PATH_CHUNK.format(upload_id=upload_id, idx=idx), content=content, headers=headers)

    def prove(self, upload_id: str, challenge: dict[str, Any], stream: TarStream) -> dict[str, Any] | None:
        """Answer the upload's proof challenge from the bag's bytes: the completed upload when the hub holds
        that content, None when it does not (or the answer was not accepted): then send the chunks."""
        try:
            digests = ProofChallenge.from_json(challenge).answer(stream.read)
        except ValueError as err:
            raise HubUnavailable(f"{self.base_url}: malformed proof challenge: {err}") from err
        try:
            return self._object("POST", PATH_PROOF.format(upload_id=upload_id), json={"sha256": digests})
        except HubRefused as err:
            if err.status == 409:
                return None
            raise

    def complete(self, upload_id: str, size: int = 0) -> dict[str, Any]:
        """Ask the hub to check the whole sha256 and store the bag; `size` lengthens the read timeout."""
        timeout = self.http.timeout.read or 60.0
        wait = httpx.Timeout(timeout + size / COMPLETE_BYTES_PER_S, connect=self.http.timeout.connect)
        return self._object("POST", PATH_COMPLETE.format(upload_id=upload_id), timeout=wait)

    def chunk_events(self, upload_id: str) -> list[dict[str, Any]]:
        """Admin: the per-chunk log (`stored`, `duplicate`, `bad-sha256`, ...)."""
        return self._list("GET", PATH_EVENTS.format(upload_id=upload_id))

    def send_missing(
        self,
        upload: dict[str, Any],
        stream: TarStream,
        on_chunk: Callable[[int], None] | None = None,
        digests: list[str] | None = None,
    ) -> UploadReport:
        """Send the chunks the hub does not hold yet (asking it first), then complete the upload.

        `digests`: the chunks' sha256 computed when the bag was queued (else each is hashed here);
        `on_chunk(n)` after each chunk the hub acknowledged (progress).
        """
        status = self.upload_status(str(upload["upload_id"]))
        if status["state"] == OPEN and not status["have"] and isinstance(status.get("proof"), dict):
            done = self.prove(str(upload["upload_id"]), status["proof"], stream)
            if done is not None:
                return UploadReport(sent=0, skipped=0, result=done, deduplicated=True)
        have = set(status["have"])
        size, chunk = int(status["size"]), int(status["chunk_size"])
        n = chunk_count(size, chunk)
        missing = [i for i in range(n) if i not in have and status["state"] == OPEN]
        if digests is not None and len(digests) != n:
            digests = None

        def send(idx: int) -> None:
            off, length = chunk_range(idx, size, chunk)
            data = stream.read(off, length)
            if len(data) != length:
                raise OSError(f"{stream.folder}: changed while uploading")
            self.put_chunk(str(upload["upload_id"]), idx, data, digests[idx] if digests else None)
            if on_chunk is not None:
                on_chunk(length)

        with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
            for future in [pool.submit(send, idx) for idx in missing]:
                future.result()
        done = self.complete(str(upload["upload_id"]), size)
        return UploadReport(sent=len(missing), skipped=len(have), result=done, deduplicated=False)

    # -- catalog ---------------------------------------------------------------------------------
    def list_bags(self, vehicle: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
        """The catalog, oldest arrival first (a vehicle token sees only its own bags)."""
        params = {k: v for k, v in (("vehicle", vehicle), ("tag", tag)) if v}
        return self._list("GET", PATH_BAGS, params=params)

    def get_bag(self, sha256: str) -> dict[str, Any]:
        """One bag's record: topics and counts, time range, custom data, its uploads."""
        return self._object("GET", PATH_BAG.format(sha256=sha256))

    # -- registry --------------------------------------------------------------------------------
    def current(self, channel: str) -> dict[str, Any] | None:
        """The channel's current release, or None before its first one (an unknown channel is HubRefused 404)."""
        try:
            return self._object("GET", PATH_CHANNEL.format(channel=channel))
        except HubRefused as err:
            if err.status == 404 and "no release" in str(err):
                return None
            raise

    def history(self, channel: str) -> list[dict[str, Any]]:
        """Every release of the channel, oldest first (the last one is current)."""
        return self._list("GET", PATH_HISTORY.format(channel=channel))

    def rollback(self, channel: str, to_version: int | None = None) -> dict[str, Any]:
        """Admin: make an earlier release current again (the previous one, or `to_version`)."""
        body = {} if to_version is None else {"to_version": to_version}
        return self._object("POST", PATH_ROLLBACK.format(channel=channel), json=body)

    def publish(self, channel: str, bundle: Path) -> dict[str, Any]:
        """Admin: send a bundle folder (as the wire's tar stream); the hub verifies it, then releases it."""
        try:
            stream = TarStream(bundle)
        except (OSError, ValueError) as err:
            raise HubClientError(f"{bundle}: {err}") from err
        headers = {"Content-Length": str(stream.size), "Content-Type": "application/x-tar"}
        return self._object("POST", PATH_PUBLISH.format(channel=channel), content=stream.iter_blocks(), headers=headers)

    def download(self, bundle_id: str, name: str, dest: Path, size: int) -> None:
        """Fetch one bundle file into `dest` (fsynced), resuming a partial file with an HTTP Range request."""
        have = dest.stat().st_size if dest.exists() else 0
        if have > size:
            dest.unlink()
            have = 0
        if have == size:
            return
        path = PATH_BUNDLE_FILE.format(bundle_id=bundle_id, name=name)
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with self.http.stream("GET", path, headers=headers) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    _raise_for(resp, f"{self.base_url}{path}")
                mode = "ab" if have and resp.status_code == 206 else "wb"
                with open(dest, mode) as f:
                    for block in resp.iter_bytes(1 << 20):
                        f.write(block)
                    f.flush()
                    os.fsync(f.fileno())
        except httpx.HTTPError as err:
            raise HubUnavailable(f"{self.base_url}{path}: {type(err).__name__}: {err}") from err
        if dest.stat().st_size != size:
            raise HubUnavailable(f"{self.base_url}{path}: got {dest.stat().st_size} of {size} bytes")


def _raise_for(resp: httpx.Response, where: str) -> None:
    if resp.status_code >= 500 or resp.status_code == 429:
        raise HubUnavailable(f"{where}: HTTP {resp.status_code}: {_detail(resp)}")
    if resp.status_code >= 400:
        raise HubRefused(resp.status_code, f"{where}: HTTP {resp.status_code}: {_detail(resp)}")


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        return resp.text[:200]
