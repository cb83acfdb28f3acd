"""The bridge loop: scan -> queue -> upload by priority -> free disk -> pull models -> /diagnostics.

A recording still being written ships in pieces: each finished split file as an upload of its own,
the rest once the recorder stops, then the hub assembles the bag from them (`pieces`, hub `recordings`).

All decisions come from `decisions` (pure); this module only does the IO around them.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roadloop_core.bundle import load_public_key
from roadloop_core.contract.wire import COMPLETE, FAILED, OPEN, TarStream, is_safe_name
from roadloop_core.errors import HubRefused, HubUnavailable, RoadloopError
from roadloop_core.hub_client import HubClient
from roadloop_vehicle.bridge.config import BridgeConfig
from roadloop_vehicle.bridge.decisions import backoff_delay, disk_status, plan_deletions
from roadloop_vehicle.bridge.diagnostics import JsonlSink, statuses
from roadloop_vehicle.bridge.errors import BridgeError
from roadloop_vehicle.bridge.model_pull import ModelPuller, PullResult, RetryPolicy, current_label
from roadloop_vehicle.bridge.pacing import bandwidth_pacer
from roadloop_vehicle.bridge.queue import RECORDING, Piece, QueueEntry, UploadQueue
from roadloop_vehicle.bridge.scanner import FoundBag, bag_size, scan

if TYPE_CHECKING:
    from roadloop_vehicle.params import VehicleParams

__all__ = ["Bridge", "RunReport"]

log = logging.getLogger("roadloop.bridge")


@dataclass
class RunReport:
    queued: int = 0
    uploaded: list[str] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)  # "<bag>/<file>" of recordings shipped in pieces
    chunks_sent: int = 0
    chunks_skipped: int = 0
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    model: PullResult | None = None
    errors: list[str] = field(default_factory=list)


class Bridge:
    def __init__(
        self,
        cfg: BridgeConfig,
        watch: Path,
        hub_url: str,
        token: str,
        state: Path,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        vehicle: VehicleParams | None = None,
    ) -> None:
        """`vehicle`: the drive node's parameters (bundles must match its observation spec); pulling models needs it."""
        self.cfg, self.watch, self.state = cfg, watch, state
        self.vehicle = vehicle
        state.mkdir(parents=True, exist_ok=True)
        self.queue = UploadQueue(state / "queue.db")
        self.client = HubClient(
            hub_url, token, timeout_s=cfg.request_timeout_s, pace=bandwidth_pacer(cfg.bandwidth_bytes_per_s)
        )
        self.sink = JsonlSink(state / "diagnostics.jsonl")
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.models_dir = Path(os.path.expanduser(cfg.models_dir))
        self.puller: ModelPuller | None = None
        self.last_error = ""
        self._chunk_digests: dict[str, tuple[str, list[str]]] = {}  # bag -> (sha256, chunk sha256s) this run
        self.on_bytes: Callable[[int], None] | None = None  # progress: bytes sent
        self.on_total: Callable[[int], None] | None = None  # progress: bytes queued

    def close(self) -> None:
        self.client.close()
        self.queue.close()

    # -- discover --------------------------------------------------------------------------------
    def _scan(self) -> list[FoundBag]:
        cfg = self.cfg
        return scan(
            self.watch, cfg.settle_s, time.time(), cfg.priority_tags,
            distro=cfg.recording_distro, splits=cfg.ship_while_recording,
        )  # fmt: skip

    def discover(self) -> int:
        """Queue closed bags, and the finished split files of recordings still being written."""
        new = 0
        for bag in self._scan():
            entry = self.queue.get(bag.name)
            tags = list(bag.tags)
            if bag.closed and entry is not None and entry.state == RECORDING:
                self.queue.stopped(bag.name, bag.priority, tags, bag.start_ns)
                log.info("%s: recording stopped; the rest ships, then the hub assembles it", bag.name)
            elif bag.closed and self.queue.add(bag.name, bag.priority, tags, bag.start_ns):
                new += 1
                log.info("queued %s (priority %d, tags %s)", bag.name, bag.priority, ",".join(bag.tags))
            elif not bag.closed and bag.pieces and (entry is None or entry.state == RECORDING):
                if self.queue.add_recording(bag.name, bag.priority, tags, bag.start_ns):
                    new += 1
                for file in bag.pieces:
                    if self.queue.add_piece(bag.name, file):
                        log.info("queued %s/%s (a finished split of a recording in progress)", bag.name, file)
        return new

    # -- upload ----------------------------------------------------------------------------------
    def upload_one(self, entry: QueueEntry, report: RunReport) -> None:
        """One attempt at one bag; raises HubUnavailable (retry later) or HubRefused (give up)."""
        path = self.watch / entry.name
        if not is_safe_name(entry.name):
            self.queue.fail(entry.name, "bag folder name is not a safe name; rename it to upload")
            report.failed.append(entry.name)
            return
        if not path.is_dir():  # removed by hand before it was shipped: nothing left to send
            self.queue.fail(entry.name, f"{path}: bag folder is gone")
            report.failed.append(entry.name)
            return
        if entry.pieces:
            self._ship_pieces(entry, path, report)
            return
        stream = TarStream(path)
        entry = self._hashed(entry, stream)
        assert entry.sha256 is not None

        def forget() -> None:
            self.queue.set_content(entry.name, stream.size, "", [])

        self._send(
            entry, "", stream, entry.sha256, entry.upload_id, report,
            remember=lambda upload_id: self.queue.set_upload(entry.name, upload_id), forget=forget,
        )  # fmt: skip
        if not stream.unchanged():
            forget()
            raise HubUnavailable(f"{path}: changed during upload; it will be sent again")
        self.queue.confirm(entry.name)
        report.uploaded.append(entry.name)
        log.info("confirmed %s sha256 %s", entry.name, entry.sha256[:12])

    def _send(
        self,
        entry: QueueEntry,
        piece: str,
        stream: TarStream,
        sha256: str,
        upload_id: str | None,
        report: RunReport,
        *,
        remember: Callable[[str], None],
        forget: Callable[[], None],
    ) -> None:
        """Resume or create the upload of `stream` (a whole bag, or one `piece` file of it), send what the hub
        lacks and check its confirmation; `remember(upload_id)` records a new upload, `forget()` the hash."""
        what = f"{entry.name}/{piece}" if piece else entry.name
        upload: dict[str, Any] | None = None
        if upload_id:
            try:
                upload = self.client.upload_status(upload_id)
            except HubRefused as err:
                if err.status not in (403, 404):
                    raise
                upload = None  # the hub lost or never had it: start a new upload
            if upload is not None and upload["state"] == FAILED:
                raise HubRefused(422, f"{what}: the hub refused the bag: {upload.get('error', '')}")
            if upload is not None and upload["state"] not in (OPEN, COMPLETE):
                upload = None  # abandoned (hub gc): start a new upload
        if upload is None:
            upload = self.client.create_upload(
                entry.name, stream.size, sha256, self.cfg.chunk_bytes, entry.priority, entry.tags, piece
            )
            remember(str(upload["upload_id"]))
        if upload["state"] == COMPLETE:
            result: dict[str, Any] = upload
        else:
            known = self._chunk_digests.get(what)
            digests = known[1] if known and known[0] == sha256 else None
            try:
                sent = self.client.send_missing(upload, stream, self.on_bytes, digests)
            except HubRefused as err:
                if err.status in (409, 422):
                    if (reason := self._refused_for_good(str(upload["upload_id"]))) is not None:
                        raise HubRefused(422, f"{what}: the hub refused the bag: {reason}") from err
                    # the bag's bytes are not what was hashed (a chunk or the whole sha256 differs, or a held
                    # chunk is not what we send now): hash again and retry, never give up on it
                    forget()
                    self._chunk_digests.pop(what, None)
                    raise HubUnavailable(f"{what}: content changed since it was hashed ({err})") from err
                raise
            report.chunks_sent += int(sent["sent"])
            report.chunks_skipped += int(sent["skipped"])
            result = sent["result"]
        if result.get("state") != COMPLETE or result.get("sha256") != sha256:
            raise HubUnavailable(f"{what}: hub did not confirm sha256 {sha256[:12]}…")

    # -- recordings shipped in pieces ------------------------------------------------------------
    def _ship_pieces(self, entry: QueueEntry, path: Path, report: RunReport) -> None:
        """Send the bag's queued pieces; once the recorder stopped (`queued`), every file is a piece and the
        hub assembles the bag from them."""
        if entry.state != RECORDING:
            for name, _, _ in TarStream(path).files:
                self.queue.add_piece(entry.name, name)
        for piece in self.queue.pieces_of(entry.name):
            if piece.state != "confirmed":
                self._send_piece(entry, path, piece, report)
        if entry.state == RECORDING:
            return
        self._assemble(entry, path, report)

    def _send_piece(self, entry: QueueEntry, path: Path, piece: Piece, report: RunReport) -> None:
        stream = TarStream(path, only=[piece.file])
        _, size, mtime_ns = stream.files[0]
        sha, upload_id = piece.sha256, piece.upload_id
        if not sha or (piece.size, piece.mtime_ns) != (size, mtime_ns):
            sha, chunks = stream.digests(self.cfg.chunk_bytes)
            if not stream.unchanged():
                raise HubUnavailable(f"{path / piece.file}: changed while hashing")
            self._chunk_digests[f"{entry.name}/{piece.file}"] = (sha, chunks)
            self.queue.set_piece_content(entry.name, piece.file, size, mtime_ns, sha)
            upload_id = None
        self._send(
            entry, piece.file, stream, sha, upload_id, report,
            remember=lambda uid: self.queue.set_piece_upload(entry.name, piece.file, uid),
            forget=lambda: self.queue.requeue_piece(entry.name, piece.file),
        )  # fmt: skip
        if not stream.unchanged():
            self.queue.requeue_piece(entry.name, piece.file)
            raise HubUnavailable(f"{path / piece.file}: changed during upload; it will be sent again")
        self.queue.confirm_piece(entry.name, piece.file)
        report.pieces.append(f"{entry.name}/{piece.file}")
        log.info("confirmed %s/%s sha256 %s", entry.name, piece.file, sha[:12])

    def _assemble(self, entry: QueueEntry, path: Path, report: RunReport) -> None:
        """Every file of the stopped recording is a confirmed piece unchanged since: the hub makes it one bag."""
        stream = TarStream(path)
        shipped = {p.file: p for p in self.queue.pieces_of(entry.name)}
        for name, size, mtime_ns in stream.files:
            p = shipped.get(name)
            if p is None or p.state != "confirmed" or not p.sha256 or (p.size, p.mtime_ns) != (size, mtime_ns):
                self.queue.add_piece(entry.name, name)
                self.queue.requeue_piece(entry.name, name)
                raise HubUnavailable(f"{path / name}: changed since it was shipped; it will be sent again")
        pieces = {name: str(shipped[name].sha256) for name, _, _ in stream.files}
        try:
            result = self.client.assemble(entry.name, pieces, stream.size, entry.priority, entry.tags)
        except HubRefused as err:
            if err.status != 409:
                raise
            # the hub lacks a piece it had confirmed (e.g. the car now ships to another hub): send them again
            # (a piece it still holds completes at once)
            self.queue.unconfirm_pieces(entry.name)
            raise HubUnavailable(f"{entry.name}: {err}; its pieces will be sent again") from err
        if result.get("state") != COMPLETE or result.get("size") != stream.size:
            raise HubUnavailable(f"{entry.name}: the hub did not confirm the assembled bag ({stream.size} B)")
        if not stream.unchanged():
            raise HubUnavailable(f"{path}: changed during assembly; it will be checked again")
        sha = str(result["sha256"])
        self.queue.set_content(entry.name, stream.size, sha, stream.files)
        self.queue.set_upload(entry.name, str(result["upload_id"]))
        self.queue.confirm(entry.name)
        report.uploaded.append(entry.name)
        log.info("confirmed %s sha256 %s (assembled by the hub from %d pieces)", entry.name, sha[:12], len(pieces))

    def _refused_for_good(self, upload_id: str) -> str | None:
        """Why the hub failed this upload for good (it will not take these bytes), or None."""
        status = self.client.upload_status(upload_id)
        return str(status.get("error", "")) if status.get("state") == FAILED else None

    def _hashed(self, entry: QueueEntry, stream: TarStream) -> QueueEntry:
        """The entry with the sha256 of the bag's current content (hashed once; a resume reuses it)."""
        if entry.sha256 and entry.files == [list(f) for f in stream.files]:
            return entry
        sha, chunks = stream.digests(self.cfg.chunk_bytes)
        self._chunk_digests[entry.name] = (sha, chunks)
        if not stream.unchanged():
            raise HubUnavailable(f"{stream.folder}: changed while hashing")
        self.queue.set_content(entry.name, stream.size, sha, stream.files)
        return self.queue.get(entry.name) or entry

    def hash_pending(self) -> None:
        """Hash queued bags in upload order, before any network IO (the content address the hub checks)."""
        for entry in self.queue.pending():
            if is_safe_name(entry.name) and not entry.pieces:  # a piece is hashed when it is sent
                try:
                    self._hashed(entry, TarStream(self.watch / entry.name))
                except (OSError, ValueError, HubUnavailable) as err:
                    log.warning("%s: cannot hash yet: %s", entry.name, err)

    def drain(self, report: RunReport) -> None:
        """Upload queued bags in priority order; transient failures back off (jittered) and retry."""
        self.queue.reset_attempts()
        if self.on_total is not None:
            self.on_total(sum(bag_size(self.watch / e.name) for e in self.queue.pending()))
        while True:
            pending = self.queue.pending()
            if not pending:
                return
            progressed = False
            for entry in pending:
                if entry.attempts >= self.cfg.max_attempts:
                    continue
                try:
                    self.upload_one(entry, report)
                    progressed = True
                    self.last_error = ""
                except HubRefused as err:
                    if err.status in (401, 403):
                        raise BridgeError(f"hub refused the token: {err}") from err
                    self.queue.fail(entry.name, str(err))
                    report.failed.append(entry.name)
                    self.last_error = str(err)
                except ValueError as err:  # a file in the bag has a name that cannot travel
                    self.queue.fail(entry.name, str(err))
                    report.failed.append(entry.name)
                    self.last_error = str(err)
                except (HubUnavailable, OSError) as err:
                    attempts = self.queue.failed_attempt(entry.name, str(err))
                    self.last_error = str(err)
                    delay = backoff_delay(attempts, self.cfg.backoff_base_s, self.cfg.backoff_max_s, self.rng)
                    log.warning("%s: %s (attempt %d, retry in %.1fs)", entry.name, err, attempts, delay)
                    self.sleep(delay)
                    break  # re-read the queue: a higher-priority bag may have arrived meanwhile
            if not progressed and not [e for e in self.queue.pending() if e.attempts < self.cfg.max_attempts]:
                return

    # -- disk ------------------------------------------------------------------------------------
    def free_disk(self, report: RunReport) -> None:
        entries = {e.name: e for e in self.queue.all()}
        bags = []
        usage = 0
        for found in self._scan():
            usage += found.size
            e = entries.get(found.name)
            if e is not None:
                bags.append(e.local(found.size))
        for victim in plan_deletions(bags, usage, self.cfg.quota_bytes):
            entry = entries[victim.name]
            path = self.watch / victim.name
            if entry.files != [list(f) for f in TarStream(path).files]:
                continue  # not what the hub confirmed any more: never delete it
            trash = self.watch / f".deleting-{victim.name}"
            os.rename(path, trash)  # a half-deleted bag never looks like a bag
            self.queue.deleted(victim.name)
            shutil.rmtree(trash, ignore_errors=True)
            (self.watch / f"{victim.name}.tags").unlink(missing_ok=True)
            report.deleted.append(victim.name)
            log.info("freed %s (%d B, confirmed by the hub)", victim.name, victim.size)

    def publish_diagnostics(self) -> None:
        entries = self.queue.all()
        usage = 0
        unconfirmed = 0
        states = {e.name: e.state for e in entries}
        for found in self._scan():
            usage += found.size
            if states.get(found.name) != "confirmed":
                unconfirmed += found.size
        disk = disk_status(usage, self.cfg.quota_bytes, unconfirmed, self.cfg.warn_fraction)
        try:
            free = shutil.disk_usage(self.watch).free
        except OSError:
            free = 0
        queued = sum(1 for e in entries if e.state in ("queued", RECORDING))
        failed = sum(1 for e in entries if e.state == "failed")
        items = statuses(self.cfg.vehicle, disk, free, queued, failed, self.last_error, current_label(self.models_dir))
        self.sink.publish(items, time.time_ns())

    # -- models ----------------------------------------------------------------------------------
    def pull_model(self) -> PullResult | None:
        if not self.cfg.pull_models:
            return None
        if self.puller is None:
            if not self.cfg.public_key:
                raise BridgeError("bridge.yaml: public_key is required to pull models (or set pull_models: false)")
            if self.vehicle is None:
                raise BridgeError("pulling models needs the drive node's parameters (bridge.yaml: vehicle_params)")
            from roadloop_core.contract.observation import ObservationSpec

            key_path = Path(os.path.expanduser(self.cfg.public_key))
            params = self.vehicle
            observation = ObservationSpec.from_config(params.path(params.drive.observation_config))
            golden = Path(os.path.expanduser(self.cfg.golden_bag)) if self.cfg.golden_bag else None
            self.puller = ModelPuller(
                self.client,
                self.cfg.channel,
                self.models_dir,
                self.state,
                load_public_key(key_path),
                key_path,
                observation,
                params,
                golden,
                RetryPolicy(self.cfg.max_attempts, self.cfg.backoff_base_s, self.cfg.backoff_max_s),
            )
        return self.puller.poll()

    # -- one pass --------------------------------------------------------------------------------
    def run_once(self) -> RunReport:
        report = RunReport()
        report.queued = self.discover()
        self.hash_pending()
        try:
            self.drain(report)
        finally:
            self.free_disk(report)
        try:
            report.model = self.pull_model()
        except HubUnavailable as err:
            report.errors.append(str(err))
            self.last_error = str(err)
        except RoadloopError as err:
            if isinstance(err, BridgeError) and "public_key is required" in str(err):
                raise
            report.errors.append(str(err))
        report.left = [e.name for e in self.queue.pending()]
        self.publish_diagnostics()
        return report

    def run_forever(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Scan, upload, free disk and pull models every `poll_interval_s` until `stop()` (SIGTERM) says so."""
        while not stop():
            try:
                self.run_once()
            except (HubUnavailable, HubRefused) as err:
                self.last_error = str(err)
                log.warning("%s", err)
            deadline = time.monotonic() + self.cfg.poll_interval_s
            while not stop() and time.monotonic() < deadline:
                self.sleep(min(0.2, self.cfg.poll_interval_s))
