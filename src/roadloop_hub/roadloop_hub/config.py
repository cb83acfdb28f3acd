"""The hub's settings (`config/hub.yaml`, section `hub:`); CLI options override single fields.

The CLI resolves which file to read (`--config`, else `config/hub.yaml`); everything below it is
handed a `HubConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from roadloop_core.config import dataclass_from_dict, load_yaml
from roadloop_core.contract.wire import CHANNEL_RE, MIN_CHUNK_BYTES
from roadloop_core.errors import ConfigError

__all__ = ["HubConfig", "load_hub_config"]


@dataclass(frozen=True)
class HubConfig:
    host: str = "127.0.0.1"
    port: int = 8470
    db: str = ""  # empty: SQLite at ROOT/catalog.db; or postgresql://user@host/db
    public_key: str = ""  # Ed25519 public key (PEM) every published bundle must verify against
    channels: list[str] = field(default_factory=lambda: ["candidate", "production"])
    max_chunk_bytes: int = 16 << 20  # largest chunk PUT body
    max_upload_bytes: int = 64 << 30  # largest bag (tar stream) one upload may declare
    max_bundle_bytes: int = 512 << 20  # largest bundle tar a publish may send
    max_json_bytes: int = 64 << 10  # every other request body
    max_recording_json_bytes: int = 4 << 20  # a recording's piece list (a day of 1-minute splits is ~0.15 MB)
    max_open_uploads: int = 32  # per vehicle: unfinished uploads it may hold (429 beyond; caps its disk use)
    log_level: str = "warning"

    def __post_init__(self) -> None:
        if not MIN_CHUNK_BYTES <= self.max_chunk_bytes <= 256 << 20:
            raise ValueError(f"max_chunk_bytes must be in [{MIN_CHUNK_BYTES} (the smallest chunk), 256 MiB]")
        if self.max_open_uploads < 1:
            raise ValueError("max_open_uploads must be >= 1")
        if not self.channels:
            raise ValueError("channels must name at least one channel")
        bad = [c for c in self.channels if not CHANNEL_RE.match(c)]
        if bad:
            names = ", ".join(map(repr, bad))
            raise ValueError(f"channel name(s) {names} refused: use 1-32 of [a-z0-9-], starting with a letter")


def load_hub_config(path: Path) -> HubConfig:
    """The `hub:` section of `path`; an empty file or one without that section is an error, never silent defaults."""
    data = load_yaml(path)
    if not data:
        raise ConfigError(f"{path}: empty; expected a 'hub:' section (see config/hub.yaml)")
    if "hub" not in data:
        raise ConfigError(f"{path}: no 'hub:' section (top-level keys: {', '.join(map(str, data))})")
    section = data["hub"]
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: 'hub:' must be a mapping")
    return dataclass_from_dict(HubConfig, section, f"{path}: hub")
