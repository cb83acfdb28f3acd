"""`Layout`: where everything of one run goes under OUT (see docs/loop.md, "What a run leaves")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Layout", "bags_in", "tree_size"]


@dataclass(frozen=True)
class Layout:
    """The run's folders and files; nothing here touches the disk."""

    out: Path

    @property
    def keys(self) -> Path:
        return self.out / "keys"

    @property
    def signing_key(self) -> Path:
        return self.keys / "signing.key"

    @property
    def public_key(self) -> Path:
        return self.keys / "signing.pub"

    @property
    def config(self) -> Path:
        """The run's config folder (ROADLOOP_CONFIG_DIR of every part): the workspace's, plus this run's key."""
        return self.out / "config"

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    def log(self, stage: str) -> Path:
        """Every command a stage runs, with its output (`OUT/logs/<stage>.log`)."""
        return self.logs / f"{stage}.log"

    @property
    def secrets(self) -> Path:
        return self.out / "secrets"

    @property
    def admin_token(self) -> Path:
        return self.secrets / "admin.token"

    def vehicle_token(self, vehicle: str) -> Path:
        return self.secrets / f"{vehicle}.token"

    @property
    def hub(self) -> Path:
        return self.out / "hub"

    @property
    def vehicle(self) -> Path:
        return self.out / "vehicle"

    @property
    def recordings(self) -> Path:
        return self.vehicle / "recordings"

    @property
    def golden(self) -> Path:
        return self.vehicle / "golden"

    @property
    def bridge_state(self) -> Path:
        return self.vehicle / "bridge-state"

    @property
    def models(self) -> Path:
        return self.vehicle / "models"

    @property
    def current_model(self) -> Path:
        """The symlink the bridge switches to the installed bundle."""
        return self.models / "current"

    def round(self, n: int) -> Path:
        return self.out / f"round{n}"

    def rel(self, path: Path) -> str:
        """`path` as the report shows it: relative to OUT when it lies under OUT."""
        try:
            return str(path.relative_to(self.out))
        except ValueError:
            return str(path)


def bags_in(root: Path) -> list[Path]:
    """Closed bags (folders with metadata.yaml) under `root`, sorted by path."""
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob("metadata.yaml") if not p.parent.name.startswith("."))


def tree_size(root: Path) -> int:
    """Bytes of every file under `root`."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
