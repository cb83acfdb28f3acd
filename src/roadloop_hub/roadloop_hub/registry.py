"""The model registry: verified bundles and each channel's release history (publish, rollback, download)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roadloop_core.bundle import MANIFEST_FILE, SIGNATURE_FILE, verify_bundle
from roadloop_core.errors import RoadloopError
from roadloop_hub.auth import Principal
from roadloop_hub.catalog import BundleRecord, ModelRegistry, Release
from roadloop_hub.errors import RequestRefused
from roadloop_hub.request_fields import channel_field, name_field, sha256_field
from roadloop_hub.store import BlobStore

__all__ = ["PUBLISH", "ROLLBACK", "RegistryService"]

PUBLISH, ROLLBACK = "publish", "rollback"  # release actions


class RegistryService:
    def __init__(
        self, catalog: ModelRegistry, store: BlobStore, channels: list[str], public_key: Ed25519PublicKey | None
    ) -> None:
        self.catalog, self.store, self.channels, self.public_key = catalog, store, channels, public_key

    def _channel(self, channel: str) -> str:
        return channel_field(channel, self.channels)

    def publish(self, who: Principal, channel: str, tar_path: Path) -> dict[str, Any]:
        """Unpack a bundle tar, verify it against the hub's public key, store it, release it on `channel`."""
        if not who.is_admin:
            raise RequestRefused(403, "publishing needs the admin token")
        self._channel(channel)
        if self.public_key is None:
            raise RequestRefused(503, "the hub has no public key configured (hub.yaml public_key / --public-key)")
        staged = self.store.staging_dir()
        try:
            try:
                self.store.unpack_bundle(tar_path, staged)
                manifest = verify_bundle(staged, self.public_key)
            except RoadloopError as err:
                raise RequestRefused(422, f"bundle refused: {err}".replace(str(staged), "bundle")) from err
            manifest_bytes = (staged / MANIFEST_FILE).read_bytes()
            bundle_id = hashlib.sha256(manifest_bytes).hexdigest()
            self.store.commit_bundle(staged, bundle_id)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        with self.catalog.transaction():
            self.catalog.add_bundle(
                BundleRecord(bundle_id, manifest.name, manifest.version, manifest_bytes.decode(), time.time())
            )
            self.catalog.append_release(channel, bundle_id, PUBLISH, who.name, time.time())
        return self.current(channel)

    def _view(self, release: Release) -> dict[str, Any]:
        bundle = self.catalog.get_bundle(release.bundle_id)
        if bundle is None:
            where = f"release {release.seq} of {release.channel}"
            raise RequestRefused(500, f"{where}: bundle {release.bundle_id[:12]}… is not in the catalog")
        bdir = self.store.bundle_dir(release.bundle_id)
        files = {p.name: p.stat().st_size for p in sorted(bdir.iterdir()) if p.is_file()}
        manifest = json.loads(bundle.manifest)
        # What each file's bytes must hash to, so a vehicle tells a corrupt download (retry) from a refused bundle.
        hashes = {**dict(manifest.get("files", {})), MANIFEST_FILE: release.bundle_id}
        sig = bdir / SIGNATURE_FILE
        if sig.is_file():
            hashes[SIGNATURE_FILE] = hashlib.sha256(sig.read_bytes()).hexdigest()
        return {
            "channel": release.channel,
            "seq": release.seq,
            "action": release.action,
            "at": release.at,
            "bundle_id": release.bundle_id,
            "name": bundle.name,
            "version": bundle.version,
            "files": files,
            "sha256": hashes,
            "manifest": manifest,  # for display; the vehicle verifies the downloaded bytes
        }

    def current(self, channel: str) -> dict[str, Any]:
        self._channel(channel)
        release = self.catalog.latest_release(channel)
        if release is None:
            raise RequestRefused(404, f"channel {channel} has no release yet")
        return self._view(release)

    def history(self, channel: str) -> list[dict[str, Any]]:
        self._channel(channel)
        return [self._view(r) for r in self.catalog.releases(channel)]

    def rollback(self, who: Principal, channel: str, to_version: int | None) -> dict[str, Any]:
        """Make an earlier release current again (recorded as a new history entry, never rewriting it)."""
        if not who.is_admin:
            raise RequestRefused(403, "rollback needs the admin token")
        hist = self.history(channel)
        if not hist:
            raise RequestRefused(404, f"channel {channel} has no release yet")
        current = hist[-1]
        earlier = [h for h in hist if h["bundle_id"] != current["bundle_id"]]
        if to_version is not None:
            earlier = [h for h in earlier if h["version"] == to_version]
        if not earlier:
            raise RequestRefused(409, f"channel {channel}: no earlier release to roll back to")
        self.catalog.append_release(channel, earlier[-1]["bundle_id"], ROLLBACK, who.name, time.time())
        return self.current(channel)

    def bundle_file(self, bundle_id: str, name: str) -> Path:
        """A stored bundle file to download (404 unless the bundle is registered and has it)."""
        sha256_field(bundle_id, "bundle id")
        name_field(name, "file name")
        path = self.store.bundle_dir(bundle_id) / name
        if self.catalog.get_bundle(bundle_id) is None or not path.is_file():
            raise RequestRefused(404, f"bundle {bundle_id[:12]}… has no file {name}")
        return path
